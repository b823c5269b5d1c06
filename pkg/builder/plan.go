package builder

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/qemu"
)

// BuildPlan is a build worked out before anything is downloaded or
// booted. Plan makes it, --dry-run prints it, and Run carries it out: the
// notices a build gives and its VM's command line come from the plan, so
// the two cannot drift.
type BuildPlan struct {
	Source   string   `json:"source"`
	Boot     string   `json:"boot"`
	Firmware string   `json:"firmware"`
	Outputs  []string `json:"outputs"`
	Notices  []string `json:"notices,omitempty"`
	// Verify lists the boot checks --verify runs, in order.
	Verify  []string `json:"verify,omitempty"`
	Mirrors []string `json:"mirrors"`
	// Sources are the kickstart's network sources and how the VM
	// reaches each.
	Sources []Source `json:"sources"`
	// Cmdline is the QEMU command line, with the work directory shown as
	// /tmp/kiln-build-DRYRUN and the proxy's port as PORT.
	Cmdline []string `json:"cmdline"`

	b       *builder      // the validated build
	boot    bootPlan      // how its VM boots, as far as it is known before the source is fetched
	planned time.Duration // validating took this long
}

// bootPlan is how the build VM boots the installer. A relative path is a
// file the build writes in its work directory.
type bootPlan struct {
	CDROM  string   // attached as a CD: the installer ISO, or a remastered copy
	Kernel string   // booted directly, with Initrd and Args
	Initrd string   //
	Args   string   //
	Order  []string // the firmware's boot order, when it boots a device
}

// The dry run's stand-ins for what a build learns as it starts.
const (
	dryRunWork = "/tmp/kiln-build-DRYRUN"
	dryRunPort = "PORT"
	dryRunPath = "/TOKEN/"
)

// Plan validates o as a build does and works out what Run will do.
func Plan(o Options) (*BuildPlan, error) {
	start := time.Now()
	events := o.Events
	// A build's events begin with its first phase, which is this one.
	if events != nil {
		events(Event{Event: "phase", Phase: "validate"})
	}
	b := &builder{o: o, manifest: &Manifest{}}
	var notices []string
	b.o.Events = func(ev Event) {
		if ev.Event == "warning" {
			notices = append(notices, ev.Message)
		}
	}
	if err := b.validate(); err != nil {
		return nil, err
	}
	b.o.Events = events
	o = b.o
	p := &BuildPlan{Boot: o.Boot, Firmware: o.Firmware, Outputs: b.outputs, b: b}
	if o.Verify {
		p.Verify = append(p.Verify, fmt.Sprintf("boot the image under %s until a login prompt or an SSH banner, within %v", o.Firmware, o.VerifyTimeout))
		if o.ISOOut != "" {
			p.Verify = append(p.Verify, "install from the install ISO as a USB stick under uefi and as a CD under bios, and boot each disk the same way")
		}
	}
	var ups map[string]string
	var src *source
	switch {
	case o.Preseed != nil:
		ups = b.upstreamsCache
		p.Sources = b.debianSources()
		for _, n := range debianNotices(o.Preseed) {
			if n.text != "" {
				notices = append(notices, n.text)
			}
		}
		switch {
		case o.ISO != "":
			p.Source = "Debian ISO " + cache.Redact(o.ISO)
			src = &source{iso: o.ISO}
		case isURL(o.Netboot):
			p.Source = "d-i netboot " + cache.Redact(o.Netboot)
			src = &source{} // d-i is fetched through the proxy: a kernel in the work directory
		default:
			p.Source = "d-i netboot " + o.Netboot
			src = &source{kernel: filepath.Join(o.Netboot, netbootKernel), initrd: filepath.Join(o.Netboot, netbootInitrd), local: true}
		}
	default:
		ups = b.upstreams()
		p.Sources = b.sources(nil)
		if n := shutdownNotice(b.ks); n != "" {
			notices = append(notices, n)
		}
		switch {
		case o.ISO == "":
			p.Source = "install tree " + cache.Redact(o.TreeURL)
			src = &source{}
		case isURL(o.ISO):
			p.Source = "ISO " + cache.Redact(o.ISO)
			src = &source{iso: o.ISO, volID: "LABEL"}
		default:
			p.Source = "ISO " + o.ISO
			var err error
			if src, err = openISO(o.ISO); err != nil {
				return nil, err
			}
		}
	}
	for n, u := range ups {
		p.Mirrors = append(p.Mirrors, n+"="+cache.Redact(u))
	}
	sort.Strings(p.Mirrors)
	p.Notices = notices
	guest := "http://" + guestHost + ":" + dryRunPort
	p.boot = b.bootPlan(src, guest+dryRunPath+"mirror/"+installMirror+"/")
	opts, err := b.vmOptions(p.boot, dryRunWork, dryRunPort, guest+dryRunPath+"boot/boot.ipxe")
	if err != nil {
		return nil, err
	}
	accel := o.Accel
	if accel == "auto" || accel == "" {
		accel = "kvm" // what auto tries first; a build probes it
	}
	cfg, err := qemu.New(append(opts, qemu.WithAccel(accel))...)
	if err != nil {
		return nil, err
	}
	cfg.RunDir = dryRunWork
	if p.Cmdline, err = cfg.Cmdline(); err != nil {
		return nil, err
	}
	p.planned = time.Since(start)
	return p, nil
}

// shutdownNotice says what the served kickstart changes about how the
// install ends, if anything: it always ends in a poweroff, which the build
// waits for.
func shutdownNotice(ks *kickstart.File) string {
	switch action, _ := ks.Shutdown(); action {
	case "poweroff", "shutdown":
		return ""
	case "":
		return "the kickstart has no poweroff, so Anaconda would wait at the end for a key press; the served copy ends with poweroff"
	default:
		return "the kickstart ends with " + action + "; the served copy ends with poweroff instead, so the build sees the install finish"
	}
}

// bootPlan is how the build VM boots src. tree is the install tree's URL
// as the VM reaches it, for a build from a tree.
func (b *builder) bootPlan(src *source, tree string) bootPlan {
	o := b.o
	switch {
	case o.Preseed != nil:
		// d-i's cdrom-detect finds an ISO and installs from its pool.
		bp := bootPlan{CDROM: src.iso, Kernel: "vmlinuz", Initrd: "initrd.img", Args: strings.Join(debianArgs, " ")}
		if src.local {
			bp.Kernel = src.kernel
		}
		return bp
	case o.Boot == "pxe":
		// iPXE fetches the boot script, kernel and initrd from the ISO
		// kiln serves as an install tree.
		return bootPlan{Order: []string{"net", "disk"}}
	case o.Boot == "iso":
		return bootPlan{CDROM: "boot.iso", Order: []string{"cdrom", "disk"}}
	case src.iso != "":
		return bootPlan{CDROM: src.iso, Kernel: "vmlinuz", Initrd: "initrd.img", Args: installArgs("inst.stage2=hd:LABEL=" + iso.UdevEscape(src.volID))}
	default:
		return bootPlan{Kernel: "vmlinuz", Initrd: "initrd.img", Args: installArgs("inst.stage2="+tree, "inst.repo="+tree)}
	}
}

// vmOptions are the build VM's options, but for its accelerator: the boot
// bp, in the work directory work, with kiln's server on port, and
// bootScript for iPXE when the VM boots from the network.
func (b *builder) vmOptions(bp bootPlan, work, port, bootScript string) ([]qemu.Option, error) {
	o := b.o
	in := func(p string) string {
		if p == "" || filepath.IsAbs(p) || isURL(p) {
			return p
		}
		return filepath.Join(work, p)
	}
	var opts []qemu.Option
	if bp.CDROM != "" {
		opts = append(opts, qemu.WithCDROM(in(bp.CDROM)))
	}
	if bp.Kernel != "" {
		opts = append(opts, qemu.WithKernel(in(bp.Kernel), in(bp.Initrd), bp.Args))
	}
	if bp.Order != nil {
		opts = append(opts, qemu.WithBootOrder(bp.Order...))
	}
	opts = append(opts, qemu.WithMemory(o.MemoryMiB), qemu.WithCPUs(o.CPUs),
		qemu.WithDisk(qemu.Disk{Path: filepath.Join(work, "disk.raw"), Format: "raw", Unsafe: true}),
		fencedNet(guestHost+":"+port, "127.0.0.1:"+port, o.RelayExe, bootFile(o.Boot, bootScript)))
	if o.Firmware == "uefi" {
		fw, err := qemu.FindOVMF(false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, qemu.WithFirmware(fw))
	}
	return opts, nil
}
