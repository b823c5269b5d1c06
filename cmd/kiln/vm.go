package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/qemu"
)

const vmUsage = `Usage:
  kiln vm [flags]

Boots a VM under kiln's supervisor until the guest powers off: the same
QEMU command line, KVM probe, log monitors and watchdogs a build uses. Use
it to check install media or a built image. The serial console and the
Anaconda log port are saved; a failure keeps them with a screendump and
prints a command line that reproduces the VM without kiln.

Examples:
  kiln vm --iso rocky9-install.iso --disk out.qcow2:qcow2 --firmware uefi
  kiln vm --kernel vmlinuz --initrd initrd.img --append "console=ttyS0" --dry-run`

func runVM(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "vm", vmUsage)
	kernel := fs.String("kernel", "", "boot this kernel directly")
	initrdPath := fs.String("initrd", "", "initrd for --kernel")
	appendArgs := fs.String("append", "", "kernel command line for --kernel")
	iso := fs.String("iso", "", "attach an ISO as a CD-ROM")
	disks := fs.StringArray("disk", nil, "attach a disk image: PATH[:FORMAT] (repeatable; format default raw)")
	usb := fs.StringArray("usb", nil, "attach a raw image as a USB stick (repeatable)")
	firmware := fs.String("firmware", "bios", "bios (SeaBIOS) or uefi (OVMF)")
	accel := fs.String("accel", "auto", "auto, kvm or tcg; auto uses KVM only if a probe guest runs")
	memory := fs.Int("memory", 2048, "guest memory in MiB")
	cpus := fs.Int("cpus", 2, "virtual CPUs")
	boot := fs.String("boot", "", "boot order, e.g. usb,cdrom,disk")
	timeout := fs.Duration("timeout", 2*time.Hour, "give up after this long")
	inactivity := fs.Duration("inactivity", 0, "give up after this long without disk or network activity (0: never)")
	keep := fs.Bool("keep", false, "keep the run directory (logs, sockets) after success")
	dryRun := fs.Bool("dry-run", false, "print the QEMU command line and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("vm: unexpected argument %q", fs.Arg(0))
	}
	opts := []qemu.Option{qemu.WithMemory(*memory), qemu.WithCPUs(*cpus), qemu.WithKernel(*kernel, *initrdPath, *appendArgs)}
	if *iso != "" {
		opts = append(opts, qemu.WithCDROM(*iso))
	}
	for _, d := range *disks {
		path, format, _ := strings.Cut(d, ":")
		opts = append(opts, qemu.WithDisk(qemu.Disk{Path: path, Format: format}))
	}
	for _, u := range *usb {
		opts = append(opts, qemu.WithUSB(u))
	}
	if *boot != "" {
		opts = append(opts, qemu.WithBootOrder(strings.Split(*boot, ",")...))
	}
	switch *firmware {
	case "bios":
	case "uefi":
		fw, err := qemu.FindOVMF(false)
		if err != nil {
			return err
		}
		opts = append(opts, qemu.WithFirmware(fw))
	default:
		return usagef("--firmware %q: want bios or uefi", *firmware)
	}
	var report qemu.AccelReport
	if *dryRun {
		// No probe for a dry run: show what auto would try first.
		report.Used = *accel
		if *accel == "auto" {
			report.Used = "kvm"
		}
	} else {
		var err error
		report, err = qemu.ResolveAccel(ctx, *accel, kvmProbe())
		if err != nil {
			return usagef("--accel: %v", err)
		}
		if report.Reason != "" {
			e.log.Warn("falling back to TCG, which is much slower", "reason", report.Reason)
		}
	}
	opts = append(opts, qemu.WithAccel(report.Used))
	cfg, err := qemu.New(opts...)
	if err != nil {
		return usagef("vm: %v", err)
	}
	if *dryRun {
		cfg.RunDir = filepath.Join("/tmp", "kiln-vm-DRYRUN")
		argv, err := cfg.Cmdline()
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, qemu.ShellQuote(argv))
		return nil
	}
	res, err := qemu.Run(ctx, cfg, qemu.RunOptions{
		Timeout: *timeout, Inactivity: *inactivity, Keep: *keep, Accel: report, Log: e.log,
		OnLine: func(src, line string) { e.log.Debug(line, "log", src) },
	})
	if res != nil && e.json {
		writeJSON(e.stdout, map[string]any{"event": "result", "result": res})
	}
	var ve *qemu.Error
	if errors.As(err, &ve) {
		return err
	}
	if err != nil {
		return err
	}
	if !e.json {
		fmt.Fprintf(e.stdout, "vm powered off after %v (%s)\n", res.Duration.Round(time.Millisecond), res.Accel.Used)
	}
	return nil
}
