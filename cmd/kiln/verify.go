package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/builder"
	"github.com/kiln-build/kiln/pkg/verify"
	"github.com/kiln-build/kiln/qemu"
)

const verifyUsage = `Usage:
  kiln verify IMAGE [--firmware auto|bios|uefi|both] [flags]

Boots a finished disk image and checks that it reaches a login prompt on
the serial console or an SSH version banner on its port 22. The image is
booted on a throwaway qcow2 overlay, so it is never changed, with no
install media and a network that reaches nothing. Neither signal needs a
password or changes the image.

--firmware auto (the default) reads the partition table: an EFI system
partition means UEFI, a BIOS boot partition (or an MBR disk) means BIOS;
a disk with both is booted under both. A failure names the serial log,
the screendump and the QEMU command line that reproduces it.

Examples:
  kiln verify rocky9.qcow2
  kiln verify --firmware uefi --timeout 5m rocky9.raw`

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "verify", verifyUsage)
	firmware := fs.String("firmware", "auto", "auto, bios, uefi or both")
	format := fs.String("format", "", "the image's format (default: from its extension; raw, qcow2, vmdk, vhd, vhdx)")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the prompt or banner")
	accel := fs.String("accel", "auto", "auto, kvm or tcg")
	memory := fs.String("memory", "1G", "VM memory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("verify: give one IMAGE (see kiln verify --help)")
	}
	image := fs.Arg(0)
	f := *format
	if f == "" {
		ext := strings.TrimPrefix(filepath.Ext(image), ".")
		if _, ok := builder.Formats[ext]; !ok {
			return usagef("verify: cannot tell the format of %s from its name; give --format", image)
		}
		f = ext
	}
	qf, ok := builder.Formats[f]
	if !ok {
		return usagef("verify: --format %q: want raw, qcow2, vmdk, vhd or vhdx", f)
	}
	mem, err := parseSize(*memory, 1<<20)
	if err != nil {
		return usagef("--memory: %v", err)
	}
	var fws []qemu.FirmwareKind
	switch *firmware {
	case "bios":
		fws = []qemu.FirmwareKind{qemu.BIOS}
	case "uefi":
		fws = []qemu.FirmwareKind{qemu.UEFI}
	case "both":
		fws = []qemu.FirmwareKind{qemu.BIOS, qemu.UEFI}
	case "auto":
		types, err := verify.PartitionTypes(ctx, image, qf.QEMU)
		if err != nil {
			return &invalidError{err: err}
		}
		fws = verify.FirmwareOf(types)
	default:
		return usagef("verify: --firmware %q: want auto, bios, uefi or both", *firmware)
	}
	ar, err := qemu.ResolveAccel(ctx, *accel, kvmProbe())
	if err != nil {
		return usagef("--accel: %v", err)
	}
	if ar.Reason != "" {
		e.log.Warn(ar.Reason + "; falling back to TCG, which is much slower")
	}
	for _, fw := range fws {
		e.log.Info("booting the image", "image", image, "firmware", fw)
		r, err := verify.Boot(ctx, verify.Options{Image: image, Format: qf.QEMU, Firmware: fw, Accel: ar.Used, MemoryMiB: int(mem >> 20), Timeout: *timeout, Log: e.log})
		if e.json && r != nil {
			b, _ := json.Marshal(struct {
				Event string `json:"event"`
				*verify.Result
			}{"verify", r})
			fmt.Fprintf(e.stdout, "%s\n", b)
		}
		if err != nil {
			return err
		}
		if !e.json {
			fmt.Fprintf(e.stdout, "%s boots under %s: %s %q after %.1fs\n", image, fw, r.Signal, r.Detail, r.Duration.Seconds())
		}
	}
	return nil
}

// kvmProbe is the KVM probe with its verdict kept in the default cache,
// as kiln build keeps it, for the host's boot.
func kvmProbe() *qemu.KVMProbe {
	p := &qemu.KVMProbe{}
	if d, err := cache.DefaultDir(); err == nil {
		p.CacheFile = filepath.Join(d, "kvm-probe.json")
	}
	return p
}
