// Command kiln builds operating-system images from Anaconda kickstarts and
// Oz templates by running the distribution's own installer under QEMU,
// with no libvirt, no daemon and no root.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kiln-build/kiln/qemu"
)

func main() {
	// The build VM's connections to kiln, one process each (see
	// qemu.RelayFwd).
	if len(os.Args) == 3 && os.Args[1] == qemu.RelayCommand {
		if err := qemu.Relay(os.Args[2], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "kiln: %v\n", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	cancelled := ctx.Err() != nil
	stop()
	if err != nil && cancelled {
		// Ctrl-C or SIGTERM: what was stopped says so itself, and the
		// exit code is the shell's for SIGINT.
		fmt.Fprintln(os.Stderr, "kiln: cancelled")
		os.Exit(exitCancelled)
	}
	if err != nil {
		if !isReported(err) {
			fmt.Fprintf(os.Stderr, "kiln: %v\n", err)
		}
		os.Exit(exitCode(err))
	}
}
