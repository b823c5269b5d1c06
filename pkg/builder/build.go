// Package builder is kiln's orchestrator, its main job: a kickstart, an Oz TDL or both in;
// the distribution's own installer run under QEMU with the kickstart, a
// caching proxy of the user's mirrors and their files served to it; disk
// images, an install ISO for physical machines and a manifest of what went
// in out. It needs no root and no libvirt.
//
// A build runs in phases, each timed in the manifest: validate (before
// anything is downloaded or booted), source (the installer ISO or tree),
// prepare (the served kickstart and the boot files), accel, install (the VM),
// verify (with Verify: the image boots),
// convert (the output images), iso (the install ISO) and manifest.
package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/preseed"
	"github.com/kiln-build/kiln/pkg/tdl"
	"github.com/kiln-build/kiln/qemu"
)

// Options describe one build.
type Options struct {
	// Kickstart is the user's kickstart, parsed, and Original its bytes
	// as the user wrote them; nil for a TDL-only build.
	Kickstart *kickstart.File
	Original  []byte
	// KickstartPath and TDLPath name the inputs, for the manifest.
	KickstartPath, TDLPath string
	// TDL, when set, supplies the source and the customisations.
	TDL *tdl.Template
	// Preseed, for a Debian build with Debian's installer, is the user's
	// preseed, parsed, and PreseedPath its file. Netboot is d-i's
	// netboot directory, or its URL, holding linux and initrd.gz; a
	// Debian build boots it or a Debian ISO's install.amd/.
	Preseed     *preseed.File
	PreseedPath string
	Netboot     string
	// ISO is the installer image: a path, or an http(s) URL downloaded
	// into the cache. TreeURL is an install tree instead.
	ISO, TreeURL string
	// Output is OUT: images are written as OUT.FORMAT, and the manifest
	// as OUT.manifest.json.
	Output string
	// VHDSubformat is fixed (the default, for Azure) or dynamic;
	// VMDKSubformat is streamOptimized (the default, for vSphere and OVA)
	// or monolithicSparse (Workstation).
	VHDSubformat, VMDKSubformat string
	// Formats are the image formats: raw, qcow2, vmdk, vhd, vhdx.
	Formats []string
	// Images names an image's path for a format, instead of OUT.FORMAT;
	// IciclePath the ICICLE's, instead of OUT.icicle.xml.
	Images     map[string]string
	IciclePath string
	// Compress compresses qcow2 output.
	Compress bool
	// DiskSize is the installed disk's size in bytes.
	DiskSize int64
	// MemoryMiB and CPUs size the build VM.
	MemoryMiB, CPUs int
	// Firmware is "bios" or "uefi".
	Firmware string
	// Verify boots the finished image before it is published and fails
	// the build unless it reaches a login prompt or an SSH banner within
	// VerifyTimeout (default 10 minutes).
	Verify        bool
	VerifyTimeout time.Duration
	// Accel is "auto", "kvm" or "tcg".
	Accel string
	// Boot is "direct" (the ISO's kernel and initrd with -kernel),
	// "pxe" (iPXE in the NIC's ROM boots the ISO served as an install
	// tree, as a physical machine netboots) or
	// "iso" (the remastered ISO, booted by firmware).
	Boot string
	// ISOOut, when set, is where the install ISO for physical machines is
	// written, with the user's original kickstart.
	ISOOut string
	// Mirrors are more upstreams the proxy may fetch from, by name.
	Mirrors map[string]string
	// FilesDir is served to %post at the files URL.
	FilesDir string
	// CacheDir is the mirror cache; CA a PEM bundle for HTTPS upstreams.
	CacheDir, CA string
	// Offline serves mirrors from the cache alone.
	Offline bool
	// Timeout bounds the install; Inactivity ends it when neither the
	// disk nor the network moved for so long.
	Timeout, Inactivity time.Duration
	// Keep keeps the work directory; Force replaces existing outputs.
	Keep, Force bool
	// Time is the time of new ISO records (SOURCE_DATE_EPOCH).
	Time time.Time
	// KilnVersion is recorded in the manifest.
	KilnVersion string
	// Log receives progress messages; Events, when set, gets every event.
	Log    *slog.Logger
	Events func(Event)
	// RelayExe is the program QEMU runs for each guest connection to
	// kiln, as "RelayExe internal-relay ADDR"; default this executable.
	RelayExe string
	// TempDir holds the work directory; default beside Output, so that
	// finished images are renamed into place rather than copied.
	TempDir string
}

// Event is one thing a build reports as it goes: a phase starting, the
// installer's progress, a warning, or the result.
type Event struct {
	Event   string  `json:"event"` // "phase", "progress", "stats", "warning", "result"
	Phase   string  `json:"phase,omitempty"`
	Message string  `json:"message,omitempty"` // for progress, the installer's current step
	Package string  `json:"package,omitempty"`
	Done    int     `json:"done,omitempty"`
	Total   int     `json:"total,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	// For stats, sent every few seconds of the install: the bytes the
	// proxy took from the mirrors and served from its cache so far.
	UpstreamBytes int64 `json:"upstream_bytes,omitempty"`
	CacheBytes    int64 `json:"cache_bytes,omitempty"`
}

// InputError is a mistake in the build's inputs, found before anything is
// downloaded or booted; kiln exits 3 on it.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErrorf(format string, args ...any) error {
	return &InputError{fmt.Errorf(format, args...)}
}

// Formats are the image formats kiln writes, with qemu-img's name and the
// file extension of each.
var Formats = map[string]struct{ QEMU, Ext string }{
	"raw":   {"raw", "raw"},
	"qcow2": {"qcow2", "qcow2"},
	"vmdk":  {"vmdk", "vmdk"},
	"vhd":   {"vpc", "vhd"},
	"vhdx":  {"vhdx", "vhdx"},
}

// OutputPath is where the image of one format goes by default.
func OutputPath(out, format string) string {
	return out + "." + Formats[format].Ext
}

func (o *Options) imagePath(format string) string {
	if p := o.Images[format]; p != "" {
		return p
	}
	return OutputPath(o.Output, format)
}

func (o *Options) iciclePath() string {
	if o.IciclePath != "" {
		return o.IciclePath
	}
	return o.Output + ".icicle.xml"
}

// builder carries one build's state from phase to phase.
type builder struct {
	o        Options
	log      *slog.Logger
	start    time.Time
	phase    string
	phaseAt  time.Time
	manifest *Manifest
	work     string // the private work directory
	ks       *kickstart.File
	original []byte // what becomes /root/original-ks.cfg and goes on --iso-out
	outputs  []string
	// A Debian build's: the upstream d-i installs from, the build's
	// upstreams, and the packages unpacked in the current step.
	debianName     string
	upstreamsCache map[string]string
	debianDone     int
}

// emit reports an event to the caller, or, without an Events callback,
// logs phases and warnings.
func (b *builder) emit(ev Event) {
	switch {
	case b.o.Events != nil:
		b.o.Events(ev)
	case ev.Event == "warning":
		b.log.Warn(ev.Message)
	case ev.Event == "phase":
		b.log.Info("phase " + ev.Phase)
	}
}

// enter ends the current phase, records its time, and starts the next.
func (b *builder) enter(phase string) {
	now := time.Now()
	if b.phase != "" {
		b.manifest.Phases = append(b.manifest.Phases, PhaseTime{Phase: b.phase, Seconds: now.Sub(b.phaseAt).Seconds()})
	}
	b.phase, b.phaseAt = phase, now
	if phase != "" {
		b.emit(Event{Event: "phase", Phase: phase})
	}
}

func (b *builder) warn(msg string) {
	b.emit(Event{Event: "warning", Message: msg})
}

// Run carries out the plan. Every output appears complete or not at all;
// an existing output is kept unless Force. A plan can be run more than
// once; each run is a build of its own.
func Run(ctx context.Context, p *BuildPlan) (*Manifest, error) {
	b := *p.b
	o := b.o
	b.log, b.start, b.phase = o.Log, time.Now(), ""
	b.manifest = &Manifest{KilnVersion: o.KilnVersion, Phases: []PhaseTime{{Phase: "validate", Seconds: p.planned.Seconds()}}}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for _, n := range p.Notices {
		b.warn(n)
	}
	dir := o.TempDir
	if dir == "" {
		dir = filepath.Dir(o.Output)
	}
	b.removeStale(dir)
	work, err := os.MkdirTemp(dir, workPrefix)
	if err != nil {
		return nil, fmt.Errorf("making the work directory in %s: %w", dir, err)
	}
	b.work = work
	// The lock, held for the build's life, tells a later build that this
	// work directory is in use; a build killed outright drops it.
	lock, err := os.OpenFile(filepath.Join(work, workLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("locking the work directory %s: %w", work, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		os.RemoveAll(work)
		return nil, fmt.Errorf("locking the work directory %s: %w", work, err)
	}
	m, err := (&b).run(ctx)
	if err != nil && ctx.Err() != nil {
		// Ctrl-C is the user's choice, not a failure whose logs must be
		// kept.
		err = ErrCancelled
	}
	switch {
	case (err == nil || errors.Is(err, ErrCancelled)) && !o.Keep:
		os.RemoveAll(work)
	case err != nil:
		// The logs, screendump and served kickstart stay for the user;
		// the disk and the boot files, which can be large, go.
		for _, f := range []string{"disk.raw", "boot.iso", "initrd.img", "initrd.orig", "vmlinuz", "iso-usb.raw", "iso-cdrom.raw"} {
			os.Remove(filepath.Join(work, f))
		}
	}
	// A directory kept for the user (--keep, or a failure's logs) is not
	// a dead build's: without its lock file, later builds leave it be.
	os.Remove(filepath.Join(work, workLock))
	if entries, _ := os.ReadDir(work); len(entries) == 0 {
		os.Remove(work)
	}
	return m, err
}

// ErrCancelled is a build stopped by its context: Ctrl-C or SIGTERM.
var ErrCancelled = errors.New("cancelled")

// A build's work directory is OUTDIR/.kiln-build-*, with a lock file
// flocked for the build's life.
const (
	workPrefix = ".kiln-build-"
	workLock   = "lock"
)

// removeStale removes the work directories in dir of builds that are no
// longer alive: those whose lock nobody holds. A directory without a lock
// file is left alone, since its build may be just starting.
func (b *builder) removeStale(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, workPrefix+"*"))
	for _, w := range matches {
		f, err := os.OpenFile(filepath.Join(w, workLock), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if err := os.RemoveAll(w); err == nil {
				b.log.Info("removed the work directory of a build that is no longer running", "dir", w)
			}
		}
		f.Close()
	}
}

// validate checks everything that can be checked before a download or a
// VM: the inputs and flags (checkInputs), then the host (checkEnvironment).
func (b *builder) validate() error {
	if err := b.checkInputs(); err != nil {
		return err
	}
	return b.checkEnvironment()
}

// checkInputs checks the user's inputs and flags, and the outputs they
// name: nothing here needs QEMU, so the input table tests run without it.
func (b *builder) checkInputs() error {
	o := &b.o
	if o.Kickstart == nil && o.TDL == nil && o.Preseed == nil {
		return inputErrorf("no kickstart, preseed or TDL: give --ks, --preseed or --tdl")
	}
	if o.Preseed != nil && o.Kickstart != nil {
		return inputErrorf("--preseed and --ks: a build runs one installer; give one")
	}
	if o.Output == "" {
		return inputErrorf("no output: give -o OUT")
	}
	if len(o.Formats) == 0 {
		o.Formats = []string{"qcow2"}
	}
	for _, f := range o.Formats {
		if _, ok := Formats[f]; !ok {
			return inputErrorf("--format %s: want raw, qcow2, vmdk, vhd or vhdx", f)
		}
	}
	o.Formats = slices.Compact(o.Formats)
	if o.Compress && !slices.Contains(o.Formats, "qcow2") {
		return inputErrorf("--compress applies to qcow2, which --format does not include")
	}
	if o.Firmware == "" {
		o.Firmware = "bios"
	}
	if o.Firmware != "bios" && o.Firmware != "uefi" {
		return inputErrorf("--firmware %s: want bios or uefi", o.Firmware)
	}
	if o.Boot == "" {
		o.Boot = "direct"
	}
	if o.Boot != "direct" && o.Boot != "iso" && o.Boot != "pxe" {
		return inputErrorf("--boot %s: want direct, iso or pxe", o.Boot)
	}
	switch o.VHDSubformat {
	case "", "fixed", "dynamic":
	default:
		return inputErrorf("--vhd-subformat %s: want fixed or dynamic", o.VHDSubformat)
	}
	switch o.VMDKSubformat {
	case "", "streamOptimized", "monolithicSparse":
	default:
		return inputErrorf("--vmdk-subformat %s: want streamOptimized or monolithicSparse", o.VMDKSubformat)
	}
	if o.VerifyTimeout == 0 {
		o.VerifyTimeout = 10 * time.Minute
	}
	if o.DiskSize == 0 {
		o.DiskSize = 20 << 30
		if o.TDL != nil {
			o.DiskSize = o.TDL.DiskSize.Int64()
		}
	}
	if o.DiskSize < 64<<20 {
		return inputErrorf("--disk-size %d: an installed system needs at least 64 MiB", o.DiskSize)
	}
	// Whole MiB: what partitioning aligns to, and what Azure's fixed VHD
	// requires of the virtual size.
	o.DiskSize = (o.DiskSize + 1<<20 - 1) &^ (1<<20 - 1)
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 2048
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.Accel == "" {
		o.Accel = "auto"
	}
	if o.Preseed != nil {
		if err := b.checkDebian(); err != nil {
			return err
		}
		return b.checkOutputs()
	}
	// The source: the flags, else the TDL's install element.
	if o.ISO == "" && o.TreeURL == "" && o.TDL != nil {
		switch o.TDL.Install.Type {
		case "iso":
			o.ISO = o.TDL.Install.ISO
		case "url":
			o.TreeURL = o.TDL.Install.URL
		}
	}
	if (o.ISO == "") == (o.TreeURL == "") {
		return inputErrorf("name one installer source: --iso ISO|URL or --url TREE")
	}
	if o.TreeURL != "" && (o.Boot == "iso" || o.Boot == "pxe" || o.ISOOut != "") {
		return inputErrorf("--boot %s and --iso-out need an installer ISO, not an install tree (--url)", o.Boot)
	}
	if o.ISO != "" && !isURL(o.ISO) {
		if _, err := os.Stat(o.ISO); err != nil {
			return inputErrorf("--iso: %w", err)
		}
		// The plan's paths are absolute, or in the work directory.
		o.ISO, _ = filepath.Abs(o.ISO)
	}
	if o.FilesDir != "" {
		if st, err := os.Stat(o.FilesDir); err != nil || !st.IsDir() {
			return inputErrorf("--files %s: not a directory", o.FilesDir)
		}
	}
	// The kickstart the VM gets: the user's, or the TDL's, with the TDL's
	// customisations applied.
	if err := b.kickstart(); err != nil {
		return err
	}
	if err := b.checkSources(); err != nil {
		return err
	}
	if o.Boot == "pxe" {
		// The VM netboots with no CD attached: the ISO is served as an
		// install tree, which Anaconda's cdrom command cannot find.
		if cs := b.ks.Commands("cdrom"); len(cs) > 0 {
			l := cs[len(cs)-1].Line
			return inputErrorf("%s:%d: cdrom: --boot pxe attaches no CD; install from the served tree with no install-source command, or use url", l.File, l.Num)
		}
	}
	return b.checkOutputs()
}

// checkOutputs checks the outputs: none may exist unless --force, and
// their directory must exist.
func (b *builder) checkOutputs() error {
	o := &b.o
	for _, f := range o.Formats {
		b.outputs = append(b.outputs, o.imagePath(f))
	}
	b.outputs = append(b.outputs, o.Output+".manifest.json")
	if o.Preseed == nil {
		// No ICICLE for Debian: Oz writes none for it either.
		b.outputs = append(b.outputs, o.iciclePath())
	}
	if o.ISOOut != "" {
		b.outputs = append(b.outputs, o.ISOOut)
	}
	for _, p := range b.outputs {
		if _, err := os.Lstat(p); err == nil && !o.Force {
			return inputErrorf("%s exists; use --force to replace it", p)
		}
		if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
			return inputErrorf("%s: its directory does not exist", p)
		}
	}
	return nil
}

// checkDebian checks a Debian build's inputs.
func (b *builder) checkDebian() error {
	o := &b.o
	if o.ISO == "" && o.Netboot == "" && o.TDL != nil {
		switch o.TDL.Install.Type {
		case "iso":
			o.ISO = o.TDL.Install.ISO
		case "url":
			o.Netboot = netbootURLOf(o.TDL.Install.URL)
		}
	}
	if (o.ISO == "") == (o.Netboot == "") {
		return inputErrorf("name one installer source for --preseed: --netboot DIR|URL or --iso debian-*.iso")
	}
	if o.TreeURL != "" {
		return inputErrorf("--url names an Anaconda install tree; for d-i give --netboot DIR|URL")
	}
	if o.Boot != "direct" {
		return inputErrorf("--boot %s: a Debian build boots d-i's kernel and initrd directly (--boot direct)", o.Boot)
	}
	if o.ISOOut != "" {
		return inputErrorf("--iso-out: kiln remasters Anaconda installer ISOs; it does not yet remaster Debian's")
	}
	if o.ISO != "" && !isURL(o.ISO) {
		if _, err := openDebianISO(o.ISO); err != nil {
			return err
		}
		o.ISO, _ = filepath.Abs(o.ISO)
	}
	if o.Netboot != "" && !isURL(o.Netboot) {
		o.Netboot, _ = filepath.Abs(o.Netboot)
	}
	if o.Netboot != "" && !isURL(o.Netboot) {
		for _, f := range []string{netbootKernel, netbootInitrd} {
			if _, err := os.Stat(filepath.Join(o.Netboot, f)); err != nil {
				return inputErrorf("--netboot %s: no %s (Debian's debian-installer-12-netboot-amd64 installs them in %s)", o.Netboot, f, "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64")
			}
		}
	}
	if o.FilesDir != "" {
		if st, err := os.Stat(o.FilesDir); err != nil || !st.IsDir() {
			return inputErrorf("--files %s: not a directory", o.FilesDir)
		}
	}
	pre := o.Preseed
	if o.TDL != nil {
		// Oz's meanings: the TDL's packages are installed with the
		// rest (pkgsel/include).
		pre = o.Preseed.Clone()
		var names []string
		for _, p := range o.TDL.Packages {
			names = append(names, p.Name)
		}
		if len(names) > 0 {
			inc := strings.TrimSpace(pre.Value("pkgsel/include") + " " + strings.Join(names, " "))
			pre.Set("d-i", "pkgsel/include", "string", inc)
		}
		o.Preseed = pre
	}
	ups, name, err := preseed.Upstreams(pre, o.Mirrors)
	if err != nil {
		return &InputError{err}
	}
	if isURL(o.Netboot) {
		ups[netbootMirror] = strings.TrimSuffix(o.Netboot, "/") + "/"
	}
	b.upstreamsCache, b.debianName = ups, name
	return nil
}

// netbootURLOf is where d-i's amd64 kernel and initrd are under a Debian
// TDL's install URL: Oz's url is the netboot directory
// (".../images/netboot/"), and Oz falls back to
// debian-installer/ARCH/linux and initrd.gz there when its txt.cfg does
// not say (oz/Debian.py, _initrd_inject_preseed).
func netbootURLOf(u string) string {
	return strings.TrimSuffix(u, "/") + "/debian-installer/amd64/"
}

// checkEnvironment checks what the host must have for the build, apart
// from the user's inputs: kiln's own executable for the relay, QEMU's
// tools, and room for the outputs.
func (b *builder) checkEnvironment() error {
	o := &b.o
	if o.RelayExe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding kiln's own executable, which relays the VM's connections: %w", err)
		}
		o.RelayExe = exe
	}
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (Debian: apt-get install qemu-system-x86 qemu-utils): %w", tool, err)
		}
	}
	return checkSpace(filepath.Dir(o.Output), minFree(o))
}

// minFree is the least free space a build can succeed with: the
// installed data is unknown until the install ends, so this is a floor
// that catches a full disk early (256 MiB per output format).
func minFree(o *Options) int64 {
	return int64(len(o.Formats)+1) * 256 << 20
}

func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return inputErrorf("%s has %d MiB free; a build needs at least %d MiB", dir, free>>20, need>>20)
	}
	return nil
}

// kickstart makes the kickstart the build serves from the user's inputs.
func (b *builder) kickstart() error {
	o := b.o
	// The build edits its own copy: the caller's kickstart stays as it
	// was parsed, however often Plan or Run is called with it.
	var ks *kickstart.File
	if o.Kickstart != nil {
		ks = o.Kickstart.Clone()
	}
	b.original = o.Original
	if ks == nil {
		base, err := o.TDL.BaseKickstart()
		if err != nil {
			return &InputError{fmt.Errorf("%s: %w", o.TDLPath, err)}
		}
		ks = base
	}
	if o.TDL != nil {
		if err := o.TDL.Apply(ks); err != nil {
			return &InputError{fmt.Errorf("%s: %w", o.TDLPath, err)}
		}
		// The TDL's customisations are part of what the user asked for:
		// the installed system's original-ks.cfg and the install ISO get
		// them too.
		b.original = ks.Render()
	}
	if err := ks.Err(); err != nil {
		return &InputError{err}
	}
	b.ks = ks
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// publish fsyncs a finished file and renames it into place.
func publish(tmp, dst string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// errVM wraps a failed install with the end of the installer's log,
// then what to look at and how to reproduce it.
// errVM words a failed install, with the installer's last log lines and,
// for d-i, the dialog on its console.
func errVM(err error, debian bool) error {
	var ve *qemu.Error
	if !errors.As(err, &ve) {
		return err
	}
	excerpt := tailLines(ve.Result.AnacondaLog, 12)
	if excerpt == "" {
		excerpt = tailLines(ve.Result.SerialLog, 12)
	}
	if screen := debianScreen(ve.Result.SerialLog); debian && screen != "" {
		excerpt += "\nd-i's screen:\n" + screen
	}
	if excerpt != "" {
		return fmt.Errorf("the install failed: %w\nthe installer's last lines:\n%s", err, excerpt)
	}
	return fmt.Errorf("the install failed: %w", err)
}

// tailLines is the last n lines of a log file, indented.
func tailLines(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
