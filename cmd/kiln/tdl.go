package main

import (
	"context"
	"fmt"

	"github.com/kiln-build/kiln/pkg/tdl"
)

const tdlUsage = `Usage:
  kiln tdl validate FILE...

Checks Oz TDL templates as Oz does (tdl.rng and TDL.py), and that kiln can
install the OS they name. Errors name the element path and line.

Example:
  kiln tdl validate rocky9.tdl`

func runTDL(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, tdlUsage)
		if len(args) == 0 {
			return usagef("tdl: want validate")
		}
		return nil
	}
	if args[0] != "validate" {
		return usagef("tdl: unknown subcommand %q (validate)", args[0])
	}
	fs := flagSet(e, "tdl validate", tdlUsage)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("tdl validate: name at least one TDL file")
	}
	bad := 0
	for _, name := range fs.Args() {
		t, err := tdl.ParseFile(name)
		if err == nil && t.OS.Name == "Debian" {
			// Oz installs Debian with d-i and a preseed (oz-install -a).
			if e.json {
				writeJSON(e.stdout, map[string]any{"event": "result", "file": name, "valid": true, "os": t.OS.Name, "installer": "d-i"})
			} else {
				fmt.Fprintf(e.stdout, "%s: valid TDL for %s %s (d-i, with a preseed)\n", name, t.OS.Name, t.OS.Version)
			}
			continue
		}
		if err == nil {
			var v fmt.Stringer
			v, err = t.KickstartVersion()
			if err == nil {
				if e.json {
					writeJSON(e.stdout, map[string]any{"event": "result", "file": name, "valid": true, "os": t.OS.Name, "kickstart_version": v.String()})
				} else {
					fmt.Fprintf(e.stdout, "%s: valid TDL for %s %s (kickstart %s)\n", name, t.OS.Name, t.OS.Version, v)
				}
				continue
			}
			err = fmt.Errorf("%s: %w", name, err)
		}
		bad++
		if e.json {
			writeJSON(e.stdout, map[string]any{"event": "result", "file": name, "valid": false, "error": err.Error()})
		} else {
			fmt.Fprintln(e.stderr, err)
		}
	}
	if bad > 0 {
		return &invalidError{err: fmt.Errorf("%d of %d templates are invalid", bad, fs.NArg()), reported: true}
	}
	return nil
}
