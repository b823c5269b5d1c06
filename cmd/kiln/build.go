package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/kiln-build/kiln/pkg/builder"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/preseed"
	"github.com/kiln-build/kiln/pkg/tdl"
	"github.com/kiln-build/kiln/qemu"
)

const buildUsage = `Usage:
  kiln build [--tdl T.tdl] [--ks K.ks] (--iso ISO|URL | --url TREE) -o OUT [flags]
  kiln build --preseed P.cfg (--netboot DIR|URL | --iso debian-12-*.iso) --mirror debian=URL -o OUT [flags]

Runs the distribution's own installer under QEMU with the kickstart and
writes disk images of the installed system: OUT.qcow2 (and each other
--format), OUT.manifest.json (inputs, versions, phase times, every
installed package, mirror bytes, outputs) and OUT.icicle.xml (Oz's
package list). No root, no libvirt.

A kickstart alone, a TDL alone, or both work: the TDL then supplies the
source and its customisations are added to the kickstart, as %post
scripts. Everything is checked before anything is downloaded or booted;
bad input exits 3 with file:line.

The VM reaches only kiln: the kickstart, a caching proxy of each mirror
the kickstart names (and each --mirror), and --files. The served copy of
the kickstart ends in poweroff and its URLs point at the proxy; the
installed system keeps the user's kickstart and URLs. A repeat build
fetches nothing from the mirrors.

--boot direct (the default) boots the ISO's own kernel and initrd with the
kickstart appended to the initrd, the ISO attached as the install media;
--boot iso boots the remastered ISO with firmware, as a physical machine
would; --boot pxe netboots the VM with the iPXE in its NIC's ROM from the
ISO served as an install tree, as a machine on the network would, with no
CD attached. --iso-out also writes that install ISO, with the user's kickstart.

--preseed installs Debian with Debian's own installer, d-i: the netboot
kernel and initrd (or a Debian ISO's install.amd/) boot with the served
preseed appended to the initrd as /preseed.cfg. d-i's mirror and the URLs
of configured upstreams in preseed/early_command and late_command point at
the proxy in the served copy only; the installed system keeps the user's
mirror in /etc/apt/sources.list. No ICICLE is written for Debian.

Examples:
  kiln build --ks my-rocky9.ks --iso Rocky-9.5-x86_64-dvd.iso -o rocky9 --format qcow2,raw --iso-out rocky9-install.iso
  kiln build --tdl rocky9.tdl -o rocky9 --files ./files
  kiln build --ks my.ks --url http://mirror.example/rocky/9/BaseOS/x86_64/os/ -o out --dry-run
  kiln build --preseed debian.cfg --netboot /usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64 --mirror debian=http://mirror.example/debian/ -o debian12`

// buildFlags are the flags kiln build and kiln oz-install share.
type buildFlags struct {
	ks, tdlPath, iso, tree, out, formats, diskSize, memory, firmware, accel, boot, isoOut string
	preseed, netboot                                                                      string
	files, cacheDir, ca, version                                                          string
	mirrors                                                                               []string
	cpus                                                                                  int
	vhdSub, vmdkSub                                                                       string
	compress, offline, keep, force, dryRun, verify                                        bool
	timeout, inactivity, verifyTimeout                                                    time.Duration
}

func runBuild(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "build", buildUsage)
	var f buildFlags
	fs.StringVar(&f.ks, "ks", "", "the kickstart")
	fs.StringVar(&f.tdlPath, "tdl", "", "an Oz TDL template")
	fs.StringVar(&f.preseed, "preseed", "", "a Debian preseed: install Debian with Debian's installer, d-i, instead of a kickstart with Anaconda")
	fs.StringVar(&f.netboot, "netboot", "", "with --preseed: d-i's netboot directory or its URL, holding linux and initrd.gz")
	fs.StringVar(&f.iso, "iso", "", "the installer ISO: a path, or an http(s) URL to download into the cache")
	fs.StringVar(&f.tree, "url", "", "an install tree (its .treeinfo names the kernel and initrd) instead of an ISO")
	fs.StringVarP(&f.out, "output", "o", "", "output name: writes OUT.FORMAT, OUT.manifest.json, OUT.icicle.xml")
	fs.StringVar(&f.formats, "format", "qcow2", "image formats, comma-separated: raw, qcow2, vmdk, vhd, vhdx")
	fs.BoolVar(&f.compress, "compress", false, "compress the qcow2 image")
	fs.StringVar(&f.vhdSub, "vhd-subformat", "fixed", "vhd: fixed (exact size, 1 MiB aligned, for Azure) or dynamic")
	fs.StringVar(&f.vmdkSub, "vmdk-subformat", "streamOptimized", "vmdk: streamOptimized (vSphere, OVA) or monolithicSparse (Workstation)")
	fs.StringVar(&f.diskSize, "disk-size", "", "disk size, e.g. 20G (default: the TDL's, else 20G)")
	fs.StringVar(&f.memory, "memory", "2G", "VM memory, e.g. 2G or 2048 (MiB)")
	fs.IntVar(&f.cpus, "cpus", 2, "VM CPUs")
	fs.StringVar(&f.firmware, "firmware", "bios", "bios (SeaBIOS) or uefi (OVMF)")
	fs.StringVar(&f.accel, "accel", "auto", "auto, kvm or tcg; auto uses KVM only if a probe guest runs")
	fs.StringVar(&f.boot, "boot", "direct", "direct (-kernel with the ISO's kernel and initrd), iso (the remastered ISO, by firmware) or pxe (iPXE, from the ISO served as a tree)")
	fs.StringVar(&f.isoOut, "iso-out", "", "also write the install ISO for physical machines here")
	fs.StringArrayVar(&f.mirrors, "mirror", nil, "proxy another upstream: NAME=URL (repeatable)")
	fs.StringVar(&f.files, "files", "", "serve this directory to %post, at the URL kiln puts in place of @KILN_FILES@ in the kickstart's scripts")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "mirror and ISO cache (default ~/.cache/kiln/mirror)")
	fs.StringVar(&f.ca, "ca", "", "PEM CA bundle for HTTPS mirrors")
	fs.BoolVar(&f.offline, "offline", false, "serve the mirrors from the cache alone")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Hour, "give up on the install after this long")
	fs.DurationVar(&f.inactivity, "inactivity", 5*time.Minute, "give up when neither the disk nor the network moved for this long")
	fs.BoolVar(&f.verify, "verify", false, "boot the finished image (on a throwaway overlay, no install media) and fail unless it reaches a login prompt or an SSH banner")
	fs.DurationVar(&f.verifyTimeout, "verify-timeout", 10*time.Minute, "how long --verify waits for the image to boot")
	fs.BoolVar(&f.keep, "keep", false, "keep the work directory (logs, disk) after success")
	fs.BoolVar(&f.force, "force", false, "replace existing outputs")
	fs.BoolVar(&f.dryRun, "dry-run", false, "check the inputs and print the plan, its notices and the QEMU command line; boot nothing")
	fs.StringVar(&f.version, "version", "", "kickstart syntax version (default: the file's #version=, else RHEL9)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("build: unexpected argument %q (see kiln build --help)", fs.Arg(0))
	}
	if f.out == "" {
		return usagef("build: -o OUT is required")
	}
	o, err := f.options(ctx, e)
	if err != nil {
		return err
	}
	if f.dryRun {
		return dryRunBuild(e, o)
	}
	return doBuild(ctx, e, o)
}

// options checks the flags and reads the inputs into build options.
func (f *buildFlags) options(ctx context.Context, e *env) (builder.Options, error) {
	o := builder.Options{Output: f.out, ISO: f.iso, TreeURL: f.tree, Compress: f.compress, CPUs: f.cpus, Firmware: f.firmware,
		Accel: f.accel, Boot: f.boot, ISOOut: f.isoOut, FilesDir: f.files, CacheDir: f.cacheDir, CA: f.ca, Offline: f.offline,
		Timeout: f.timeout, Inactivity: f.inactivity, Verify: f.verify, VerifyTimeout: f.verifyTimeout, VHDSubformat: f.vhdSub, VMDKSubformat: f.vmdkSub, Keep: f.keep, Force: f.force, KilnVersion: version, Log: e.log,
		KickstartPath: f.ks, TDLPath: f.tdlPath, PreseedPath: f.preseed, Netboot: f.netboot, Mirrors: map[string]string{}}
	if f.ks == "" && f.tdlPath == "" && f.preseed == "" {
		return o, usagef("build: give --ks, --tdl or both, or --preseed for Debian")
	}
	if f.preseed != "" && f.ks != "" {
		return o, usagef("build: --preseed and --ks: a build runs one installer; give one")
	}
	if f.netboot != "" && f.preseed == "" {
		return o, usagef("build: --netboot boots d-i; it needs --preseed")
	}
	for _, s := range strings.Split(f.formats, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Formats = append(o.Formats, s)
		}
	}
	var err error
	if f.diskSize != "" {
		if o.DiskSize, err = parseSize(f.diskSize, 1); err != nil {
			return o, usagef("--disk-size: %v", err)
		}
	}
	mem, err := parseSize(f.memory, 1<<20)
	if err != nil {
		return o, usagef("--memory: %v", err)
	}
	o.MemoryMiB = int(mem >> 20)
	if err := addMirrors(o.Mirrors, f.mirrors); err != nil {
		return o, err
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return o, usagef("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		o.Time = time.Unix(n, 0)
	}
	v, err := parseVersionFlag(f.version)
	if err != nil {
		return o, err
	}
	if f.tdlPath != "" {
		t, err := tdl.ParseFile(f.tdlPath)
		if err != nil {
			return o, &invalidError{err: fmt.Errorf("%s: %w", f.tdlPath, err)}
		}
		o.TDL = t
		if v == 0 && f.preseed == "" {
			if v, err = t.KickstartVersion(); err != nil {
				return o, &invalidError{err: fmt.Errorf("%s: %w", f.tdlPath, err)}
			}
		}
	}
	if f.preseed != "" {
		data, err := os.ReadFile(f.preseed)
		if err != nil {
			return o, &invalidError{err: fmt.Errorf("reading the preseed: %w", err)}
		}
		p, err := preseed.Parse(f.preseed, data)
		if err != nil {
			return o, &invalidError{err: err}
		}
		for _, w := range p.Warnings {
			e.log.Warn(w)
		}
		o.Preseed = p
	}
	if f.ks != "" {
		data, err := os.ReadFile(f.ks)
		if err != nil {
			return o, &invalidError{err: fmt.Errorf("reading kickstart: %w", err)}
		}
		ks := kickstart.Parse(f.ks, data, kickstart.Options{Version: v, Context: ctx})
		report(e, ks.Diagnostics)
		if len(ks.Errors()) > 0 {
			return o, &invalidError{err: fmt.Errorf("%s has errors; nothing was built", f.ks), reported: true}
		}
		o.Kickstart, o.Original = ks, data
	}
	return o, nil
}

func doBuild(ctx context.Context, e *env, o builder.Options) error {
	p := &progress{e: e}
	o.Events = p.event
	plan, err := builder.Plan(o)
	if err != nil {
		p.finish()
		return buildError(err)
	}
	m, err := builder.Run(ctx, plan)
	p.finish()
	if err != nil {
		return buildError(err)
	}
	if e.json {
		return nil // the result event said it
	}
	for _, out := range m.Outputs {
		fmt.Fprintf(e.stdout, "wrote %s (%s)\n", out.Path, humanBytes(out.Size))
	}
	fmt.Fprintf(e.stdout, "wrote %s.manifest.json: %d packages, %s from the mirrors, %s from the cache\n",
		o.Output, len(m.Packages), humanBytes(m.UpstreamBytes), humanBytes(m.CacheBytes))
	fmt.Fprintf(e.stdout, "the install took %v under %s; kiln's own work %v\n",
		time.Duration(m.VMSeconds*float64(time.Second)).Round(time.Second), m.Accel.Used, time.Duration(m.OverheadSeconds*float64(time.Second)).Round(time.Millisecond))
	return nil
}

// progress shows a build's events: NDJSON with --json; on a terminal, a
// bar for the install (the installer's step, packages n/N, elapsed time
// and an ETA, bytes from the mirrors and from the cache) under a line per
// phase; otherwise a line per phase, per installer step and per tenth of
// the packages. Events come from several goroutines (the VM's two logs,
// the proxy's counts).
type progress struct {
	e  *env
	mu sync.Mutex

	started  bool
	tty      bool
	lastPct  int
	bar      *progressbar.ProgressBar
	total    int    // the bar's max: 0 until the installer gives a count
	step     string // the installer's current step, or package
	upstream int64
	cached   int64
}

func (p *progress) event(ev builder.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.e.json {
		writeJSON(p.e.stdout, ev)
		return
	}
	if !p.started {
		p.started = true
		if f, ok := p.e.stderr.(*os.File); ok {
			p.tty = term.IsTerminal(int(f.Fd()))
		}
	}
	switch ev.Event {
	case "phase":
		p.clear()
		fmt.Fprintf(p.e.stderr, "kiln: %s\n", ev.Phase)
		p.lastPct = -1
		if ev.Phase == "install" && p.tty {
			p.newBar(-1)
		}
	case "warning":
		p.clear()
		fmt.Fprintf(p.e.stderr, "kiln: warning: %s\n", ev.Message)
		if p.tty {
			p.newBar(p.barMax())
		}
	case "stats":
		p.upstream, p.cached = ev.UpstreamBytes, ev.CacheBytes
		p.describe()
	case "progress":
		if ev.Message != "" {
			p.step = ev.Message
			if !p.tty {
				fmt.Fprintf(p.e.stderr, "kiln: %s: %s\n", ev.Phase, ev.Message)
			}
		}
		if ev.Package != "" {
			p.step = ev.Package
		}
		if p.tty {
			p.show(ev)
			return
		}
		if ev.Total <= 0 {
			return
		}
		if pct := ev.Done * 10 / ev.Total; pct != p.lastPct {
			p.lastPct = pct
			fmt.Fprintf(p.e.stderr, "kiln: %s %d/%d %s\n", ev.Phase, ev.Done, ev.Total, ev.Package)
		}
	}
}

func (p *progress) barMax() int {
	if p.total > 0 {
		return p.total
	}
	return -1
}

// newBar starts the install's bar: a spinner until the installer says
// how many packages it installs (max -1), then a bar of them.
func (p *progress) newBar(max int) {
	p.bar = progressbar.NewOptions(max,
		progressbar.OptionSetWriter(p.e.stderr),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionFullWidth(),
	)
	p.describe()
}

func (p *progress) show(ev builder.Event) {
	if p.bar == nil {
		p.newBar(-1)
	}
	if ev.Total > 0 && ev.Total != p.total {
		p.total = ev.Total
		p.bar.ChangeMax(ev.Total)
	}
	p.describe()
	if ev.Done > 0 && p.total > 0 {
		p.bar.Set(ev.Done)
	} else {
		p.bar.Add(0)
	}
}

// describe puts the step and the proxy's bytes before the bar.
func (p *progress) describe() {
	if p.bar == nil {
		return
	}
	d := "install"
	if p.step != "" {
		d += ": " + p.step
	}
	if p.upstream > 0 || p.cached > 0 {
		d += fmt.Sprintf(" · mirror %s · cache %s", humanBytes(p.upstream), humanBytes(p.cached))
	}
	p.bar.Describe(d)
}

func (p *progress) clear() {
	if p.bar != nil {
		p.bar.Clear()
		p.bar = nil
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

// dryRunBuild prints what a build would do. It validates as a build
// does, but downloads and boots nothing.
func dryRunBuild(e *env, o builder.Options) error {
	plan, err := builder.Plan(o)
	if err != nil {
		return buildError(err)
	}
	if e.json {
		return writeJSON(e.stdout, map[string]any{"event": "plan", "plan": plan})
	}
	fmt.Fprintf(e.stdout, "source:   %s\nboot:     %s, %s firmware\noutputs:  %s\n", plan.Source, plan.Boot, plan.Firmware, strings.Join(plan.Outputs, ", "))
	for _, n := range plan.Notices {
		fmt.Fprintf(e.stdout, "notice:   %s\n", n)
	}
	for _, v := range plan.Verify {
		fmt.Fprintf(e.stdout, "verify:   %s\n", v)
	}
	fmt.Fprintf(e.stdout, "mirrors:  %s\n", strings.Join(plan.Mirrors, ", "))
	for _, s := range plan.Sources {
		fmt.Fprintf(e.stdout, "source:   %s: %s %s: %s\n", s.Where, s.Kind, s.URL, s.How)
	}
	fmt.Fprintf(e.stdout, "qemu:     %s\n", qemu.ShellQuote(plan.Cmdline))
	return nil
}

// buildError gives a build's input errors exit code 3.
func buildError(err error) error {
	var ie *builder.InputError
	if errors.As(err, &ie) {
		return &invalidError{err: err}
	}
	return err
}
