package builder

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/qemu"
)

// BuildPlan is what a build would do, for --dry-run: it is made after
// the same validation a build does, with nothing downloaded or booted.
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
}

// Plan validates o as Run does and says what Run would do.
func Plan(o Options) (*BuildPlan, error) {
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
	o = b.o
	p := &BuildPlan{Boot: o.Boot, Firmware: o.Firmware, Outputs: b.outputs}
	if o.Verify {
		p.Verify = append(p.Verify, fmt.Sprintf("boot the image under %s until a login prompt or an SSH banner, within %v", o.Firmware, o.VerifyTimeout))
		if o.ISOOut != "" {
			p.Verify = append(p.Verify, "install from the install ISO as a USB stick under uefi and as a CD under bios, and boot each disk the same way")
		}
	}
	if o.Preseed != nil {
		return b.debianPlan(p, notices)
	}
	if o.ISO != "" {
		p.Source = "ISO " + cache.Redact(o.ISO)
	} else {
		p.Source = "install tree " + cache.Redact(o.TreeURL)
	}
	ups := b.upstreams()
	for n, u := range ups {
		p.Mirrors = append(p.Mirrors, n+"="+cache.Redact(u))
	}
	sort.Strings(p.Mirrors)
	p.Sources = b.sources(nil)
	switch action, _ := b.ks.Shutdown(); action {
	case "poweroff", "shutdown":
	case "":
		notices = append(notices, "the kickstart has no poweroff; the served copy ends with poweroff")
	default:
		notices = append(notices, "the kickstart ends with "+action+"; the served copy ends with poweroff instead")
	}
	p.Notices = notices

	work := "/tmp/kiln-build-DRYRUN"
	guest := "http://" + guestHost + ":PORT"
	var opts []qemu.Option
	switch {
	case o.Boot == "pxe":
		opts = append(opts, qemu.WithBootOrder("net", "disk"))
	case o.Boot == "iso":
		opts = append(opts, qemu.WithCDROM(filepath.Join(work, "boot.iso")), qemu.WithBootOrder("cdrom", "disk"))
	case o.ISO != "":
		label := "LABEL"
		if !isURL(o.ISO) {
			src, err := openISO(o.ISO)
			if err != nil {
				return nil, err
			}
			label = iso.UdevEscape(src.volID)
		}
		opts = append(opts, qemu.WithCDROM(o.ISO), qemu.WithKernel(filepath.Join(work, "vmlinuz"), filepath.Join(work, "initrd.img"),
			installArgs("inst.stage2=hd:LABEL="+label)))
	default:
		tree := guest + "/TOKEN/mirror/" + installMirror + "/"
		opts = append(opts, qemu.WithKernel(filepath.Join(work, "vmlinuz"), filepath.Join(work, "initrd.img"),
			installArgs("inst.stage2="+tree, "inst.repo="+tree)))
	}
	if err := b.planCmdline(p, work, opts); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(p.Source, "ISO") && (o.Boot == "iso" || o.Boot == "pxe") {
		return nil, inputErrorf("--boot %s needs an ISO", o.Boot)
	}
	return p, nil
}

// planCmdline fills in the plan's QEMU command line from the boot's
// options and the build VM's own.
func (b *builder) planCmdline(p *BuildPlan, work string, opts []qemu.Option) error {
	o := b.o
	guest := "http://" + guestHost + ":PORT"
	opts = append(opts, qemu.WithMemory(o.MemoryMiB), qemu.WithCPUs(o.CPUs),
		qemu.WithDisk(qemu.Disk{Path: filepath.Join(work, "disk.raw"), Format: "raw", Unsafe: true}),
		fencedNet(guestHost+":PORT", "127.0.0.1:PORT", o.RelayExe, bootFile(o.Boot, guest+"/TOKEN/boot/boot.ipxe")))
	if o.Firmware == "uefi" {
		fw, err := qemu.FindOVMF(false)
		if err != nil {
			return err
		}
		opts = append(opts, qemu.WithFirmware(fw))
	}
	accel := o.Accel
	if accel == "auto" {
		accel = "kvm" // what auto tries first; a build probes it
	}
	cfg, err := qemu.New(append(opts, qemu.WithAccel(accel))...)
	if err != nil {
		return err
	}
	cfg.RunDir = work
	p.Cmdline, err = cfg.Cmdline()
	return err
}

// debianPlan is Plan for a Debian build.
func (b *builder) debianPlan(p *BuildPlan, notices []string) (*BuildPlan, error) {
	o := b.o
	work := "/tmp/kiln-build-DRYRUN"
	var opts []qemu.Option
	if o.ISO != "" {
		p.Source = "Debian ISO " + cache.Redact(o.ISO)
		opts = append(opts, qemu.WithCDROM(o.ISO))
	} else {
		p.Source = "d-i netboot " + cache.Redact(o.Netboot)
	}
	kernel := filepath.Join(work, "vmlinuz")
	if o.Netboot != "" && !isURL(o.Netboot) {
		kernel = filepath.Join(o.Netboot, netbootKernel)
	}
	opts = append(opts, qemu.WithKernel(kernel, filepath.Join(work, "initrd.img"), strings.Join(debianArgs, " ")))
	for n, u := range b.upstreamsCache {
		p.Mirrors = append(p.Mirrors, n+"="+cache.Redact(u))
	}
	sort.Strings(p.Mirrors)
	p.Sources = b.debianSources()
	for _, n := range debianNotices(o.Preseed) {
		if n.text != "" {
			notices = append(notices, n.text)
		}
	}
	p.Notices = notices
	if err := b.planCmdline(p, work, opts); err != nil {
		return nil, err
	}
	return p, nil
}
