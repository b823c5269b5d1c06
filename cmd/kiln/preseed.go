package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kiln-build/kiln/pkg/preseed"
)

const preseedUsage = `Usage:
  kiln preseed validate FILE...

Checks Debian installer preseeds as debconf-set-selections --checkonly
does: a line with fewer than OWNER QUESTION TYPE, or a seen flag for a
question no line answers, is an error (file:line, exit 3); an unknown type
is a warning, and debconf skips the line. It also says which mirror d-i
would install from.

Example:
  kiln preseed validate debian12.cfg`

func runPreseed(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, preseedUsage)
		if len(args) == 0 {
			return usagef("preseed: want validate")
		}
		return nil
	}
	if args[0] != "validate" {
		return usagef("preseed: unknown subcommand %q (validate)", args[0])
	}
	fs := flagSet(e, "preseed validate", preseedUsage)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("preseed validate: name at least one preseed file")
	}
	bad := 0
	for _, name := range fs.Args() {
		data, err := os.ReadFile(name)
		var p *preseed.File
		if err == nil {
			p, err = preseed.Parse(name, data)
		}
		if err != nil {
			bad++
			if e.json {
				writeJSON(e.stdout, map[string]any{"event": "result", "file": name, "valid": false, "error": err.Error()})
			} else {
				fmt.Fprintln(e.stderr, err)
			}
			continue
		}
		for _, w := range p.Warnings {
			e.log.Warn(w)
		}
		mirror := p.Mirror()
		if e.json {
			writeJSON(e.stdout, map[string]any{"event": "result", "file": name, "valid": true, "selections": len(p.Selections()),
				"warnings": p.Warnings, "mirror": mirror})
			continue
		}
		where := "no mirror (give kiln build --mirror debian=URL)"
		if mirror != "" {
			where = "mirror " + mirror
		}
		fmt.Fprintf(e.stdout, "%s: valid preseed, %d selections, %s\n", name, len(p.Selections()), where)
	}
	if bad > 0 {
		return &invalidError{err: fmt.Errorf("%d of %d preseeds are invalid", bad, fs.NArg()), reported: true}
	}
	return nil
}
