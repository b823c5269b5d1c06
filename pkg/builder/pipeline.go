package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/fileutil"
	"github.com/kiln-build/kiln/pkg/treeinfo"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/initrd"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/parttable"
	"github.com/kiln-build/kiln/pkg/verify"
	"github.com/kiln-build/kiln/qemu"
	"golang.org/x/sync/errgroup"
)

// guestHost is kiln's server as the build VM sees it. QEMU's user network
// runs with restrict=on, so the guest reaches nothing but guestfwd rules;
// a guestfwd may not take the host's own address (10.0.2.2), so kiln
// takes another of the user network's addresses.
const guestHost = "10.0.2.100"

// FilesPlaceholder, in a kickstart's scripts, becomes the URL the build VM
// reaches --files at: "curl -o /etc/app.conf @KILN_FILES@/app.conf". The
// installed system's anaconda-ks.cfg gets the placeholder back.
const FilesPlaceholder = "@KILN_FILES@"

// installMirror is the proxy's name for an install tree given by URL.
const installMirror = "tree"

// upstreams are what the build's proxy may fetch from: the kickstart's
// url and repo lines, --mirror, the install tree, and the servers the
// kickstart's scripts fetch from.
func (b *builder) upstreams() map[string]string {
	ups := kickstart.Upstreams(b.ks)
	for n, u := range b.o.Mirrors {
		ups[n] = u
	}
	if b.o.TreeURL != "" {
		ups[installMirror] = b.o.TreeURL
	}
	for n, u := range kickstart.ScriptUpstreams(b.ks, ups) {
		ups[n] = u
	}
	return ups
}

func (b *builder) run(ctx context.Context) (*Manifest, error) {
	o := b.o
	m := b.manifest
	m.Inputs = b.inputs()

	b.enter("source")
	mc, client, err := b.openCache()
	if err != nil {
		return nil, err
	}
	defer mc.Close()
	// The KVM probe runs while the source and the boot files are
	// prepared, and its verdict is kept for the host's boot.
	probe := &qemu.KVMProbe{CacheFile: filepath.Join(mc.Dir(), "kvm-probe.json")}
	if o.Accel == "auto" || o.Accel == "" {
		go probe.Err(ctx)
	}
	debian := o.Preseed != nil
	var upstreams map[string]string
	var lists []ksserve.MirrorList
	var expected map[string]string
	if debian {
		upstreams = b.upstreamsCache
		m.Sources = b.debianSources()
	} else {
		upstreams = b.upstreams()
		expected = b.ks.ExpectedSums()
		// The VM could not reach a list's mirrors: kiln chooses one and
		// proxies it.
		lists, err = ksserve.ResolveLists(ctx, client, b.ks.NetworkSources())
		if err != nil {
			return nil, fmt.Errorf("resolving the kickstart's mirror lists: %w", err)
		}
		m.Sources = b.sources(lists)
	}
	// Loopback only: the guest reaches it through QEMU's user network,
	// and nothing else on the host or the network can.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the build VM: %w", err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	guest := fmt.Sprintf("http://%s:%d", guestHost, port)
	var src *source
	if o.ISO != "" {
		if src, err = b.isoSource(ctx, mc); err != nil {
			return nil, err
		}
		m.Inputs = append(m.Inputs, b.input("iso", src.iso))
	}
	scfg := ksserve.Config{Mirrors: upstreams, Lists: lists, Expected: expected, FilesDir: o.FilesDir, Cache: mc,
		Offline: o.Offline, Log: b.log, Reports: true}
	if o.Boot == "pxe" {
		// The VM netboots as a machine on the network would: iPXE
		// fetches the boot script, kernel and initrd from the ISO kiln
		// serves as an install tree.
		tree, err := ksserve.OpenISO(src.iso)
		if err != nil {
			return nil, &InputError{err}
		}
		defer tree.Close()
		scfg.ISOs = []*ksserve.ISO{tree}
		scfg.Boot = &ksserve.Boot{Append: strings.Join(consoleArgs, " ")}
	}
	srv, err := ksserve.New(scfg)
	if err != nil {
		return nil, &InputError{fmt.Errorf("serving the build: %w", err)}
	}
	defer srv.Close()
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ksserve.Serve(sctx, srv, l, 5*time.Second) }()
	serveEnded := false // set when the watcher below took Serve's result
	defer func() {
		stop()
		if !serveEnded {
			<-served
		}
	}()

	switch {
	case debian && src == nil:
		if src, err = b.debianSource(ctx, srv); err != nil {
			return nil, err
		}
	case src == nil:
		if src, err = b.treeSource(ctx, srv); err != nil {
			return nil, err
		}
	}

	b.enter("prepare")
	var served2 []byte
	if debian {
		served2 = b.servePreseed(srv, guest)
	} else {
		served2 = b.serveKickstart(srv, guest)
	}
	var isoOutTmp string
	var isoOutFile File
	// The install ISO for physical machines carries the user's own
	// kickstart; it is written while the VM boots and runs. If it fails,
	// the group's context stops the VM at once: a remaster that fails in
	// seconds fails the build in seconds, not after the install.
	g, gctx := errgroup.WithContext(ctx)
	if o.ISOOut != "" {
		isoOutTmp = filepath.Join(filepath.Dir(o.ISOOut), "."+filepath.Base(o.ISOOut)+".kiln-tmp")
		defer os.Remove(isoOutTmp)
		g.Go(func() error {
			_, err := iso.Remaster(src.iso, isoOutTmp, iso.Options{Kickstart: b.original, Timeout: 5, Time: o.Time, Force: true})
			if err == nil {
				isoOutFile, err = hashAsync("iso", isoOutTmp, o.ISOOut).wait()
			}
			if err != nil {
				return fmt.Errorf("writing %s: %w", o.ISOOut, err)
			}
			return nil
		})
	}
	var res *qemu.Result
	var accel qemu.AccelReport
	installed := make(chan struct{})
	g.Go(func() error {
		defer close(installed)
		var err error
		res, accel, err = b.install(gctx, srv, src, guest, served2, buildDisk(b), port, l, probe)
		return err
	})
	// The VM gets everything from kiln's server: if it stops, so does
	// the build, with the server's error rather than a watchdog's.
	g.Go(func() error {
		select {
		case err := <-served:
			serveEnded = true
			return fmt.Errorf("kiln's server for the build VM stopped during the install: %v", err)
		case <-installed:
			return nil
		}
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	disk := buildDisk(b)
	report, ok := srv.Report("packages")
	if !ok {
		return nil, fmt.Errorf("%w\nserial log: %s\ninstaller log: %s\nreproduce with: %s", errNoReport, res.SerialLog, res.AnacondaLog, res.Repro)
	}
	if err := checkPartitionTable(disk); err != nil {
		return nil, err
	}
	st := srv.Stats()
	m.UpstreamBytes, m.CacheBytes = st.UpstreamBytes, st.CacheBytes
	if debian {
		m.Packages = debianPackages(report, st, src.iso)
	} else {
		m.Packages = packages(report, st, src.iso)
	}

	if o.Verify {
		// Before any output exists: a disk that does not boot is not
		// published.
		b.enter("verify")
		fw := qemu.BIOS
		if o.Firmware == "uefi" {
			fw = qemu.UEFI
		}
		vr, err := verify.Boot(ctx, verify.Options{Image: disk, Format: "raw", Firmware: fw, Accel: accel.Used,
			MemoryMiB: o.MemoryMiB, Timeout: o.VerifyTimeout, TempDir: b.work, Log: b.log})
		if vr != nil {
			m.Verify = append(m.Verify, *vr)
		}
		if err != nil {
			return nil, err
		}
		b.log.Info("the image boots", "firmware", vr.Firmware, "signal", vr.Signal, "detail", vr.Detail, "seconds", vr.Duration.Seconds())
		if o.ISOOut != "" {
			if err := b.verifyISO(ctx, isoOutTmp, accel); err != nil {
				return nil, err
			}
		}
	}

	b.enter("convert")
	if err := b.convert(ctx, disk); err != nil {
		return nil, err
	}
	if o.ISOOut != "" {
		if err := publish(isoOutTmp, o.ISOOut); err != nil {
			return nil, err
		}
		m.Outputs = append(m.Outputs, isoOutFile)
	}

	b.enter("manifest")
	if err := b.writeManifest(); err != nil {
		return nil, err
	}
	b.enter("")
	total := time.Since(b.start).Seconds()
	b.emit(Event{Event: "result", Message: "built " + strings.Join(b.outputNames(), ", "), Seconds: total})
	return m, nil
}

// openCache opens the mirror cache and the client it fetches with.
func (b *builder) openCache() (*cache.Cache, *http.Client, error) {
	dir := b.o.CacheDir
	if dir == "" {
		d, err := cache.DefaultDir()
		if err != nil {
			return nil, nil, fmt.Errorf("finding the cache directory: %w (use --cache-dir)", err)
		}
		dir = d
	}
	client, err := ksserve.NewUpstreamClient(b.o.CA)
	if err != nil {
		return nil, nil, &InputError{err}
	}
	c, err := cache.Open(dir, client)
	return c, client, err
}

// isoSource finds the installer ISO: a local one, or one downloaded into
// the cache, where a second build finds it.
func (b *builder) isoSource(ctx context.Context, mc *cache.Cache) (*source, error) {
	o := b.o
	p := o.ISO
	if isURL(p) {
		if o.Offline {
			return nil, &InputError{fmt.Errorf("--offline: the ISO %s is a URL", cache.Redact(p))}
		}
		want := ""
		if o.TDL != nil && o.TDL.Install.SHA256Sum != "" {
			client, err := ksserve.NewUpstreamClient(o.CA)
			if err != nil {
				return nil, &InputError{err}
			}
			if want, err = checksumFor(ctx, client, o.TDL.Install.SHA256Sum, path.Base(p)); err != nil {
				return nil, err
			}
		}
		last := time.Now()
		var err error
		if p, err = mc.File(ctx, o.ISO, want, func(done, total int64) {
			if time.Since(last) > time.Second {
				last = time.Now()
				b.emit(Event{Event: "progress", Phase: "source", Message: "downloading the ISO", Done: int(done >> 20), Total: int(total >> 20)})
			}
		}); err != nil {
			return nil, err
		}
	}
	if o.Preseed != nil {
		return openDebianISO(p)
	}
	return openISO(p)
}

// treeSource reads an install tree's .treeinfo, which names the kernel
// and initrd, through the proxy.
func (b *builder) treeSource(ctx context.Context, srv *ksserve.Server) (*source, error) {
	o := b.o
	var data strings.Builder
	if err := srv.Fetch(ctx, srv.MirrorPath(installMirror)+".treeinfo", &data); err != nil {
		return nil, fmt.Errorf("reading the install tree %s: %w", o.TreeURL, err)
	}
	ti := treeinfo.Parse(data.String())
	s := &source{tree: ti, kernel: ti.Kernel, initrd: ti.Initrd}
	if s.kernel == "" || s.initrd == "" {
		return nil, &InputError{fmt.Errorf("%s.treeinfo names no kernel and initrd for %s", o.TreeURL, ti.Arch)}
	}
	return s, nil
}

// writeFile creates dst and has fill write it.
func writeFile(dst string, fill func(io.Writer) error) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serveKickstart makes the served copy of the kickstart: it powers off
// at the end, its mirror URLs point at the proxy (the installed system
// gets the user's back), and a last %post reports the installed packages.
// The user's file, and the plan's copy, are never changed; the plan has
// the notice of the poweroff.
func (b *builder) serveKickstart(srv *ksserve.Server, guest string) []byte {
	ks := b.ks.Clone()
	if action, _ := ks.Shutdown(); action != "poweroff" && action != "shutdown" {
		ks.SetShutdown("poweroff")
	}
	ps := srv.Prefixes(guest)
	if b.o.FilesDir != "" {
		// As a mirror's URL is: rewritten in the served copy, and put
		// back in the installed system's copy of the kickstart.
		ps = append(ps, kickstart.Prefix{Upstream: FilesPlaceholder + "/", Proxy: guest + srv.FilesPath()})
	}
	kickstart.PrepareForProxy(ks, b.original, ps)
	ks.AppendScript(kickstart.Script{Kind: kickstart.SectionPost, NoChroot: true, Body: reportScript(guest + srv.ReportPath("packages"))})
	data := ks.Render()
	srv.SetKickstart(data)
	return data
}

// reportScript is the %post --nochroot that tells kiln what the installed
// system holds, from its own rpm database.
func reportScript(url string) string {
	return `# Added by kiln to the served copy only: report the installed packages to the build.
sysroot=/mnt/sysroot
[ -d "$sysroot/root" ] || sysroot=/mnt/sysimage
chroot "$sysroot" rpm -qa --qf '%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n' > /tmp/kiln-packages.tsv
if command -v curl >/dev/null 2>&1; then
  curl -fsS -X POST --data-binary @/tmp/kiln-packages.tsv '` + url + `'
else
  wget -q -O /dev/null --post-file=/tmp/kiln-packages.tsv '` + url + `'
fi
`
}

// prepareBoot writes the boot files the build VM boots with the served
// kickstart: the installer's kernel and initrd with the kickstart
// appended (direct), or the remastered ISO booted by firmware (iso).
func (b *builder) prepareBoot(ctx context.Context, srv *ksserve.Server, src *source, served []byte) error {
	o := b.o
	switch o.Boot {
	case "pxe":
		return nil
	case "iso":
		remastered := filepath.Join(b.work, "boot.iso")
		if _, err := iso.Remaster(src.iso, remastered, iso.Options{Kickstart: served, AppendArgs: []string{"console=ttyS0", "inst.text"},
			RemoveArgs: []string{"quiet", "rd.live.check"}, Timeout: 1, NoMD5: true, Time: o.Time}); err != nil {
			return fmt.Errorf("remastering %s for the build VM: %w", src.iso, err)
		}
		return nil
	}
	kernel := filepath.Join(b.work, "vmlinuz")
	base := filepath.Join(b.work, "initrd.orig")
	files := map[string]string{src.kernel: kernel, src.initrd: base}
	if src.iso != "" {
		if err := extract(src.iso, files); err != nil {
			return err
		}
	} else {
		tree := srv.MirrorPath(installMirror)
		for name, dst := range files {
			if err := writeFile(dst, func(w io.Writer) error { return srv.Fetch(ctx, tree+name, w) }); err != nil {
				return fmt.Errorf("fetching %s from the install tree: %w", name, err)
			}
		}
	}
	if err := appendKickstart(base, filepath.Join(b.work, "initrd.img"), served, b.o.Time); err != nil {
		return err
	}
	return os.Remove(base)
}

// installArgs is the build VM's kernel command line: where the installer
// finds its stage2 and repository, then the kickstart in the initrd.
func installArgs(source ...string) string {
	return strings.Join(append(append(source, "inst.ks=file:/ks.cfg"), consoleArgs...), " ")
}

// consoleArgs put the installer in text mode on the serial console kiln
// reads.
var consoleArgs = []string{"inst.text", "console=ttyS0"}

// fencedNet is the build VM's network: QEMU's user network with
// restrict=on, whose only way out is guestAddr, relayed to kiln's server at
// hostAddr by running relay for each connection. bootFile, if set, is
// the DHCP boot file iPXE fetches through that way out.
func fencedNet(guestAddr, hostAddr, relay, bootFile string) qemu.Option {
	return qemu.WithUserNet(qemu.UserNet{Restrict: true, GuestFwd: []qemu.GuestFwd{qemu.RelayFwd(guestAddr, hostAddr, relay)}, BootFile: bootFile})
}

// bootFile is script, the boot script a --boot pxe VM's iPXE fetches;
// "" for the other boots, whose VMs boot no network.
func bootFile(boot, script string) string {
	if boot != "pxe" {
		return ""
	}
	return script
}

// appendKickstart writes a copy of the initrd at src with ks.cfg appended
// as a second cpio archive, which the kernel unpacks over the first.
func appendKickstart(src, dst string, ks []byte, t time.Time) error {
	return appendFile(src, dst, "ks.cfg", ks, t)
}

// appendFile writes a copy of the initrd at src with one file appended at
// the root, as a second cpio archive.
func appendFile(src, dst, name string, data []byte, t time.Time) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	var mtime int64
	if !t.IsZero() {
		mtime = t.Unix()
	}
	entry := initrd.Entry{Name: name, Mode: 0o600, Content: bytes.NewReader(data), Size: int64(len(data))}
	if _, err := initrd.Append(out, in, []initrd.Entry{entry}, mtime); err != nil {
		out.Close()
		return fmt.Errorf("appending %s to the initrd %s: %w", name, src, err)
	}
	return out.Close()
}

func makeSparse(p string, size int64) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("making the %d-byte build disk: %w", size, err)
	}
	return f.Close()
}

// progressLine is Anaconda's package progress in its log.
var progressLine = regexp.MustCompile(`Installing (\S+) \((\d+)/(\d+)\)`)

// onLine follows the installer's logs for progress.
func (b *builder) onLine(src, line string) {
	b.log.Debug(line, "log", src)
	if m := progressLine.FindStringSubmatch(line); m != nil {
		done, _ := strconv.Atoi(m[2])
		total, _ := strconv.Atoi(m[3])
		b.emit(Event{Event: "progress", Phase: "install", Package: m[1], Done: done, Total: total})
	}
}

// checkPartitionTable checks that the installer left a partition table:
// a GPT, or an MBR with partitions.
func checkPartitionTable(disk string) error {
	f, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	m, err := parttable.ReadMBR(f)
	if err != nil {
		return fmt.Errorf("reading the installed disk: %w", err)
	}
	if !m.Signature {
		return fmt.Errorf("the installed disk has no partition table (no MBR signature at byte 510)")
	}
	if _, err := parttable.ReadGPT(f, st.Size()); err == nil || len(m.Partitions()) > 0 {
		return nil
	}
	return fmt.Errorf("the installed disk's partition table is empty")
}

// convert writes each requested image format beside the output, then
// renames them into place; raw is the build disk itself, renamed last.
// Hashing the outputs for the manifest runs alongside the conversions:
// a raw image is hashed whole, holes included, at about 2 GB/s.
func (b *builder) convert(ctx context.Context, disk string) error {
	o := b.o
	var hashes []*hashing
	if slices.Contains(o.Formats, "raw") {
		hashes = append(hashes, hashAsync("raw", disk, o.imagePath("raw")))
	}
	for _, f := range o.Formats {
		if f == "raw" {
			continue
		}
		dst := o.imagePath(f)
		tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".kiln-tmp")
		args := []string{"convert", "-f", "raw", "-O", Formats[f].QEMU}
		if f == "qcow2" && o.Compress {
			args = append(args, "-c")
		}
		args = append(append(args, convertOptions(f, o)...), disk, tmp)
		cmd := exec.CommandContext(ctx, "qemu-img", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		if err := publish(tmp, dst); err != nil {
			os.Remove(tmp)
			return err
		}
		hashes = append(hashes, hashAsync(f, dst, dst))
	}
	var outs []File
	for _, h := range hashes {
		f, err := h.wait()
		if err != nil {
			return err
		}
		outs = append(outs, f)
	}
	if slices.Contains(o.Formats, "raw") {
		dst := o.imagePath("raw")
		if err := publish(disk, dst); err != nil {
			// The work directory is on another file system: copy,
			// keeping holes.
			tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".kiln-tmp")
			if out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-f", "raw", "-O", "raw", disk, tmp).CombinedOutput(); err != nil {
				os.Remove(tmp)
				return fmt.Errorf("qemu-img convert to raw: %v: %s", err, bytes.TrimSpace(out))
			}
			if err := publish(tmp, dst); err != nil {
				os.Remove(tmp)
				return err
			}
		}
	}
	b.manifest.Outputs = append(b.manifest.Outputs, outs...)
	return nil
}

// convertOptions are qemu-img's -o options for a format's subformat:
// a fixed VHD keeps the disk's exact size (force_size), where the dynamic
// one rounds it up to a CHS geometry, which Azure refuses; a vmdk is
// streamOptimized for vSphere and OVA imports or monolithicSparse for
// Workstation.
func convertOptions(format string, o Options) []string {
	switch format {
	case "vhd":
		if o.VHDSubformat == "dynamic" {
			return []string{"-o", "subformat=dynamic"}
		}
		return []string{"-o", "subformat=fixed,force_size=on"}
	case "vmdk":
		sub := o.VMDKSubformat
		if sub == "" {
			sub = "streamOptimized"
		}
		return []string{"-o", "subformat=" + sub}
	}
	return nil
}

// hashing is an output's sha256 being computed.
type hashing struct {
	done chan struct{}
	f    File
	err  error
}

// hashAsync hashes the file at src, recorded in the manifest as path.
func hashAsync(role, src, path string) *hashing {
	h := &hashing{done: make(chan struct{}), f: File{Role: role, Path: path}}
	go func() {
		defer close(h.done)
		st, err := os.Stat(src)
		if err != nil {
			h.err = err
			return
		}
		h.f.Size = st.Size()
		h.f.SHA256, h.err = fileutil.SHA256(src)
	}()
	return h
}

func (h *hashing) wait() (File, error) {
	<-h.done
	return h.f, h.err
}

func (b *builder) outputNames() []string {
	var out []string
	for _, o := range b.manifest.Outputs {
		out = append(out, o.Path)
	}
	return append(out, b.o.Output+".manifest.json")
}

// verifyISO installs from the install ISO as the physical machines will
// boot it, a USB stick under UEFI and a CD under BIOS, each onto a blank
// disk, and proves that each installed disk boots. The ISO carries the
// user's own kickstart, so these installs reach the user's mirrors
// themselves, as a machine on the network would: their VMs have QEMU's
// user-mode NAT, not the build VM's fence.
func (b *builder) verifyISO(ctx context.Context, isoPath string, accel qemu.AccelReport) error {
	o := b.o
	if action, _ := b.ks.Shutdown(); action == "" {
		b.warn("the kickstart has no poweroff or reboot, so an install from the install ISO would wait at its end; --verify checks the built image only, not the ISO")
		return nil
	}
	for _, c := range []struct {
		fw    qemu.FirmwareKind
		media string
	}{{qemu.UEFI, "usb"}, {qemu.BIOS, "cdrom"}} {
		what := fmt.Sprintf("the install ISO as a %s under %s", map[string]string{"usb": "USB stick", "cdrom": "CD"}[c.media], c.fw)
		b.log.Info("installing from " + what)
		disk := filepath.Join(b.work, "iso-"+c.media+".raw")
		if err := makeSparse(disk, o.DiskSize); err != nil {
			return err
		}
		opts := []qemu.Option{qemu.WithMemory(o.MemoryMiB), qemu.WithCPUs(o.CPUs), qemu.WithAccel(accel.Used),
			qemu.WithDisk(qemu.Disk{Path: disk, Format: "raw", Unsafe: true}), qemu.WithUserNet(qemu.UserNet{})}
		if c.media == "usb" {
			opts = append(opts, qemu.WithUSB(isoPath))
		} else {
			opts = append(opts, qemu.WithCDROM(isoPath))
		}
		if c.fw == qemu.UEFI {
			fw, err := qemu.FindOVMF(false)
			if err != nil {
				return err
			}
			opts = append(opts, qemu.WithFirmware(fw))
		}
		cfg, err := qemu.New(opts...)
		if err != nil {
			return err
		}
		res, err := qemu.Run(ctx, cfg, qemu.RunOptions{TempDir: b.work, Timeout: o.Timeout, Inactivity: o.Inactivity, Accel: accel, Log: b.log})
		// A kickstart that reboots ends the VM in a reset (-no-reboot).
		if err != nil && (res == nil || res.Outcome != qemu.OutcomeReset) {
			return fmt.Errorf("--verify: installing from %s: %w", what, err)
		}
		vr, err := verify.Boot(ctx, verify.Options{Image: disk, Format: "raw", Firmware: c.fw, Accel: accel.Used,
			MemoryMiB: o.MemoryMiB, Timeout: o.VerifyTimeout, TempDir: b.work, Log: b.log})
		if vr != nil {
			vr.Media = c.media
			b.manifest.Verify = append(b.manifest.Verify, *vr)
		}
		os.Remove(disk)
		if err != nil {
			return fmt.Errorf("--verify: the disk installed from %s: %w", what, err)
		}
		b.log.Info("the disk installed from "+what+" boots", "signal", vr.Signal, "seconds", vr.Duration.Seconds())
	}
	return nil
}

// buildDisk is where the install writes, in the work directory.
func buildDisk(b *builder) string { return filepath.Join(b.work, "disk.raw") }

// install boots the installer with the served kickstart onto a new build
// disk and supervises it to the end.
func (b *builder) install(ctx context.Context, srv *ksserve.Server, src *source, guest string, served []byte, disk string, port int, l net.Listener, probe *qemu.KVMProbe) (*qemu.Result, qemu.AccelReport, error) {
	o, m := b.o, b.manifest
	var accel qemu.AccelReport
	var err error
	onLine, fatal := b.onLine, (func(string, string) bool)(nil)
	if o.Preseed != nil {
		err = b.prepareDebianBoot(ctx, srv, src, served)
		onLine, fatal = b.debianLine, debianFatalLine
	} else {
		err = b.prepareBoot(ctx, srv, src, served)
	}
	if err != nil {
		return nil, accel, err
	}
	// The plan's boot, now that the source and the server are known.
	vmOpts, err := b.vmOptions(b.bootPlan(src, guest+srv.MirrorPath(installMirror)), b.work, strconv.Itoa(port), guest+srv.BootPath("boot.ipxe"))
	if err != nil {
		return nil, accel, err
	}
	if err := makeSparse(disk, o.DiskSize); err != nil {
		return nil, accel, err
	}
	if o.Firmware == "uefi" {
		fw, err := qemu.FindOVMF(false)
		if err != nil {
			return nil, accel, err
		}
		m.Firmware = firmwareInfo("uefi", fw.Code)
	} else {
		m.Firmware = firmwareInfo("bios", "")
	}
	// KVM is tried with a probe guest first: on hosts where it hangs
	// (nested virtualisation) the probe's timeout is the cost of asking.
	b.enter("accel")
	accel, err = qemu.ResolveAccel(ctx, o.Accel, probe)
	if err != nil {
		return nil, accel, &InputError{fmt.Errorf("--accel: %w", err)}
	}
	if accel.Reason != "" {
		b.warn(accel.Reason + "; falling back to TCG, which is much slower")
	}
	m.Accel = accel
	b.enter("install")
	cfg, err := qemu.New(append(vmOpts, qemu.WithAccel(accel.Used))...)
	if err != nil {
		return nil, accel, err
	}
	// The proxy's byte counts, for the progress display, while the VM
	// runs.
	statsDone := make(chan struct{})
	defer close(statsDone)
	go func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		var last ksserve.Stats
		for {
			select {
			case <-statsDone:
				return
			case <-tick.C:
				st := srv.Totals()
				if st.UpstreamBytes != last.UpstreamBytes || st.CacheBytes != last.CacheBytes {
					last = st
					b.emit(Event{Event: "stats", Phase: "install", UpstreamBytes: st.UpstreamBytes, CacheBytes: st.CacheBytes})
				}
			}
		}
	}()
	res, err := qemu.Run(ctx, cfg, qemu.RunOptions{
		TempDir: b.work, Keep: o.Keep, Timeout: o.Timeout, Inactivity: o.Inactivity,
		Activity: srv.Activity, Accel: accel, Log: b.log, OnLine: onLine, Fatal: fatal,
	})
	if res != nil {
		m.QEMUVersion = res.QEMUVersion
		m.VMSeconds = res.Duration.Seconds()
	}
	if err != nil {
		return res, accel, errVM(err, o.Preseed != nil)
	}
	return res, accel, nil
}
