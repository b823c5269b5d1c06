package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/tdl"
)

const ksUsage = `Usage:
  kiln ks validate [--version V] [--strict] FILE...
  kiln ks render [--version V] [edits] FILE

validate checks each kickstart against the syntax of one version (RHEL8,
RHEL9, RHEL10, F40...; default: the file's #version= comment, else RHEL9)
and prints every error and warning as file:line: message. It exits 3 when
a file has errors, or warnings with --strict.

render prints the kickstart with %include and %ksappend resolved. Without
edits the output is the input byte for byte; edits change only their lines.

Examples:
  kiln ks validate --version RHEL9 my-rocky9.ks
  kiln ks render --poweroff --tdl rocky9.tdl my-rocky9.ks`

func runKS(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, ksUsage)
		if len(args) == 0 {
			return usagef("ks: want validate or render")
		}
		return nil
	}
	switch args[0] {
	case "validate":
		return runKSValidate(ctx, e, args[1:])
	case "render":
		return runKSRender(ctx, e, args[1:])
	}
	return usagef("ks: unknown subcommand %q (validate or render)", args[0])
}

func parseVersionFlag(s string) (kickstart.Version, error) {
	if s == "" {
		return 0, nil
	}
	v, err := kickstart.ParseVersion(s)
	if err != nil {
		return 0, usagef("--version: %v", err)
	}
	return v, nil
}

// report prints diagnostics, as text on stderr or as JSON lines on stdout.
func report(e *env, ds []kickstart.Diagnostic) {
	for _, d := range ds {
		if e.json {
			sev := "error"
			if d.Warning {
				sev = "warning"
			}
			writeJSON(e.stdout, map[string]any{"event": "diagnostic", "file": d.File, "line": d.Line, "severity": sev, "message": d.Msg})
			continue
		}
		fmt.Fprintln(e.stderr, d.String())
	}
}

func runKSValidate(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "ks validate", ksUsage)
	ver := fs.String("version", "", "kickstart syntax version (RHEL8, RHEL9, RHEL10, F40, ...)")
	strict := fs.Bool("strict", false, "treat warnings as errors, as ksvalidator does")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("ks validate: name at least one kickstart file")
	}
	v, err := parseVersionFlag(*ver)
	if err != nil {
		return err
	}
	bad := 0
	for _, name := range fs.Args() {
		data, err := readInput(e, name)
		if err != nil {
			return &invalidError{err: fmt.Errorf("reading kickstart: %w", err)}
		}
		f := kickstart.Parse(name, data, kickstart.Options{Version: v, Context: ctx})
		report(e, f.Diagnostics)
		nerr, nwarn := len(f.Errors()), 0
		for _, w := range f.Warnings() {
			if !w.Notice {
				nwarn++
			}
		}
		ok := nerr == 0 && (!*strict || nwarn == 0)
		if !ok {
			bad++
		}
		if e.json {
			writeJSON(e.stdout, map[string]any{"event": "result", "file": name, "version": f.Version.String(), "valid": ok, "errors": nerr, "warnings": nwarn})
		} else if ok {
			fmt.Fprintf(e.stdout, "%s: valid %s kickstart\n", name, f.Version)
		}
	}
	if bad > 0 {
		return &invalidError{err: fmt.Errorf("%d of %d kickstarts are invalid", bad, fs.NArg()), reported: true}
	}
	return nil
}

func runKSRender(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "ks render", ksUsage)
	ver := fs.String("version", "", "kickstart syntax version (RHEL8, RHEL9, RHEL10, F40, ...)")
	poweroff := fs.Bool("poweroff", false, "make the install end with poweroff, replacing reboot/halt/shutdown")
	tdlFile := fs.String("tdl", "", "apply an Oz TDL's repositories, packages, files and commands")
	setURL := fs.StringArray("set-url", nil, "replace a source URL: FROM=TO, matched as a prefix (repeatable)")
	addPost := fs.StringArray("add-post", nil, "append a file as a %post script (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("ks render: name one kickstart file")
	}
	v, err := parseVersionFlag(*ver)
	if err != nil {
		return err
	}
	name := fs.Arg(0)
	data, err := readInput(e, name)
	if err != nil {
		return &invalidError{err: fmt.Errorf("reading kickstart: %w", err)}
	}
	f := kickstart.Parse(name, data, kickstart.Options{Version: v, Context: ctx})
	report(e, f.Diagnostics)
	if len(f.Errors()) > 0 {
		return &invalidError{err: fmt.Errorf("%s has errors; nothing rendered", name), reported: true}
	}
	if *tdlFile != "" {
		t, err := tdl.ParseFile(*tdlFile)
		if err != nil {
			return &invalidError{err: err}
		}
		if err := t.Apply(f); err != nil {
			return &invalidError{err: fmt.Errorf("applying %s: %w", *tdlFile, err)}
		}
	}
	for _, m := range *setURL {
		from, to, ok := strings.Cut(m, "=")
		if !ok || from == "" {
			return usagef("--set-url %q: want FROM=TO", m)
		}
		f.RewriteURLs(func(u string) string {
			if strings.HasPrefix(u, from) {
				return to + strings.TrimPrefix(u, from)
			}
			return u
		})
	}
	for _, p := range *addPost {
		body, err := os.ReadFile(p)
		if err != nil {
			return &invalidError{err: fmt.Errorf("reading --add-post script: %w", err)}
		}
		f.AppendScript(kickstart.Script{Kind: kickstart.SectionPost, Body: string(body)})
	}
	if *poweroff {
		if changed, err := f.SetShutdown("poweroff"); err != nil {
			return err
		} else if changed {
			e.log.Info("the rendered kickstart ends with poweroff")
		}
	}
	_, err = e.stdout.Write(f.Render())
	return err
}
