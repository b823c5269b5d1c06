package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Exit codes, as documented in the README and in kiln --help.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitInvalid = 3
	// exitCancelled is 128+SIGINT, as a shell reports a command Ctrl-C
	// stopped.
	exitCancelled = 130
)

// usageError is a mistake in the command line itself.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// invalidError means the user's input (a kickstart, TDL or ISO) is wrong.
type invalidError struct {
	err error
	// reported is set when the details were already printed, so main only
	// sets the exit code.
	reported bool
}

func (e *invalidError) Error() string { return e.err.Error() }
func (e *invalidError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var u *usageError
	var inv *invalidError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &u), errors.Is(err, pflag.ErrHelp):
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	case errors.As(err, &inv):
		return exitInvalid
	}
	return exitFailure
}

func isReported(err error) bool {
	var inv *invalidError
	if errors.As(err, &inv) && inv.reported {
		return true
	}
	return errors.Is(err, pflag.ErrHelp)
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// env is what every subcommand gets: its streams and the logger.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	json           bool
	verbose        int
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"ks", "check and render kickstarts (ks validate, ks render)", runKS},
		{"tdl", "check Oz TDL templates (tdl validate)", runTDL},
		{"preseed", "check Debian preseeds (preseed validate)", runPreseed},
		{"build", "install a kickstart or TDL in QEMU and write disk images and a manifest", runBuild},
		{"oz-install", "oz-install's flags and meanings, for migrating scripts", runOzInstall},
		{"iso", "remaster an installer ISO with a kickstart; iso inspect", runISO},
		{"serve", "serve a kickstart, mirror proxy and files for PXE and physical installs", runServe},
		{"cache", "report or clean the mirror cache (cache clean)", runCache},
		{"verify", "boot a disk image and check that it reaches a login prompt or an SSH banner", runVerify},
		{"vm", "boot a VM under kiln's supervisor (media checks, --dry-run)", runVM},
		{"version", "print kiln's version, its Go version and commit", runVersion},
	}
}

const mainUsage = `kiln builds OS images from Anaconda kickstarts and Oz templates,
driving the distribution's own installer under QEMU: no libvirt, no root.

Usage:
  kiln [-v] [--json] COMMAND [ARGS]

Commands:
%s
Global flags:
  -v, --verbose   more detail (repeat for debug output)
      --json      one JSON object per line on stdout, for machines
  -h, --help      this help; "kiln COMMAND --help" for a command

Examples:
  kiln build --ks my-rocky9.ks --iso Rocky-9.5-x86_64-dvd.iso -o rocky9 --format qcow2,raw
  kiln ks validate my-rocky9.ks
  kiln iso --ks my-rocky9.ks Rocky-9.5-x86_64-dvd.iso rocky9-install.iso

Exit codes:
  0  success
  1  failure
  2  usage error
  3  invalid input (kickstart, TDL or ISO)
  130  cancelled (Ctrl-C or SIGTERM)
`

func usageText() string {
	var sb strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&sb, "  %-10s %s\n", c.name, c.summary)
	}
	return fmt.Sprintf(mainUsage, sb.String())
}

// run is kiln's whole command line, callable from tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("kiln", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetInterspersed(false)
	verbose := fs.CountP("verbose", "v", "")
	jsonOut := fs.Bool("json", false, "")
	help := fs.BoolP("help", "h", false, "")
	if err := fs.Parse(args); err != nil {
		return usagef("%v (see kiln --help)", err)
	}
	if *help || fs.NArg() == 0 {
		fmt.Fprint(stdout, usageText())
		if *help {
			return nil
		}
		return usagef("no command given")
	}
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, json: *jsonOut, verbose: *verbose}
	e.log = newLogger(e)
	name := fs.Arg(0)
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, e, fs.Args()[1:])
		}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	sort.Strings(names)
	return usagef("unknown command %q (commands: %s)", name, strings.Join(names, ", "))
}

// newLogger logs human-readable text to stderr, or JSON to stdout with --json.
func newLogger(e *env) *slog.Logger {
	level := slog.LevelInfo
	if e.verbose > 0 {
		level = slog.LevelDebug
	}
	if e.json {
		return slog.New(slog.NewJSONHandler(e.stdout, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(newTextHandler(e.stderr, level))
}

// flagSet makes a subcommand's flag set, printing usage on --help.
func flagSet(e *env, name, usage string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "%s\nFlags:\n%s", usage, fs.FlagUsages())
	}
	return fs
}

// parseFlags parses a subcommand's flags, turning errors into usage errors.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			// pflag has printed the usage itself.
			return err
		}
		return usagef("%s: %v (see kiln %s --help)", fs.Name(), err, fs.Name())
	}
	return nil
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "version", "Usage: kiln version\n\nPrints kiln's version, the Go version it was built with, and its commit.\n\nExample:\n  kiln version")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	commit, modified := "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += "+modified"
	}
	if e.json {
		return writeJSON(e.stdout, map[string]string{"version": version, "go": runtime.Version(), "commit": commit})
	}
	fmt.Fprintf(e.stdout, "kiln %s\ngo %s\ncommit %s\n", version, runtime.Version(), commit)
	return nil
}

// readInput reads a named file, or standard input for "-".
func readInput(e *env, name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(e.stdin)
	}
	return os.ReadFile(name)
}
