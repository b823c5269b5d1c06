package builder

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/preseed"
	"github.com/kiln-build/kiln/qemu"
)

// A Debian build runs Debian's own installer, d-i, with the user's
// preseed: the netboot kernel and initrd (from a directory, as Debian's
// debian-installer-12-netboot-amd64 installs them, or from a mirror URL)
// or a Debian installer ISO's install.amd/, with the served preseed
// appended to the initrd as /preseed.cfg, which d-i reads by itself
// (initrd-preseed). The rest is the Anaconda build's: the fenced VM, the
// caching proxy of the user's Debian mirror, the file server, the outputs,
// the manifest and the boot check.

// netbootMirror is the proxy's name for a netboot directory given by URL.
const netbootMirror = "netboot"

// The netboot files, and where a Debian ISO keeps its text installer.
const (
	netbootKernel = "linux"
	netbootInitrd = "initrd.gz"
	isoKernel     = "install.amd/vmlinuz"
	isoInitrd     = "install.amd/initrd.gz"
)

// debianArgs are d-i's boot arguments: preseeded answers need no
// questions at priority critical. QEMU's user network also answers IPv6
// router solicitations; with them netcfg takes the stateless address for
// the network being configured and asks for name servers, which DHCP
// would have given: d-i gets IPv4 alone. Those after "---" are also the
// installed system's: its console on the serial port kiln's boot check
// reads, as well as the screen. In preseed mode d-i runs its frontend on
// one console, which here is the serial port (its reopen-console finds no
// preferred one and takes the first): kiln reads the dialog of a failure
// from the serial log (debianScreen); d-i's log comes over kiln's log port
// (debianLogCommand).
var debianArgs = []string{"auto=true", "priority=critical", "ipv6.disable=1", "---", "console=ttyS0", "console=tty0"}

// debianLogCommand is prepended to preseed/early_command in the served
// copy: it sends d-i's syslog, from its start, to the virtio-serial port
// kiln reads as the installer log. The descriptors debconf holds open are
// closed, or d-i would wait for the tail to end.
// The port shows in sysfs, and its node in /dev, a moment after the
// module loads: the command waits up to 10 s for them.
const debianLogCommand = `modprobe virtio_console 2>/dev/null; ` +
	`for i in 1 2 3 4 5 6 7 8 9 10; do ls /dev/vport* >/dev/null 2>&1 && break; sleep 1; done; ` +
	`for p in /sys/class/virtio-ports/*; do ` +
	`if [ "$(cat $p/name 2>/dev/null)" = ` + qemu.AnacondaLogPort + ` ]; then ` +
	`(tail -n +1 -f /var/log/syslog > /dev/${p##*/} 2>/dev/null </dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &); fi; done`

// servePreseed makes the served copy of the preseed; the user's is not
// changed. d-i's mirror, and the security mirror when one is proxied, are
// kiln's proxy; URLs of configured upstreams and of --files in the early
// and late commands are the proxy's; d-i's syslog comes to kiln; the
// install ends in a poweroff; and a late command reports the installed
// packages, then gives the installed system the user's mirror URLs back.
func (b *builder) servePreseed(srv *ksserve.Server, guest string) []byte {
	p := b.o.Preseed.Clone()
	px := preseed.Proxy{HostPort: strings.TrimPrefix(guest, "http://"), MirrorDir: srv.MirrorPath(b.debianName), Prefixes: srv.Prefixes(guest)}
	if b.o.FilesDir != "" {
		px.Prefixes = append(px.Prefixes, kickstart.Prefix{Upstream: FilesPlaceholder + "/", Proxy: guest + srv.FilesPath()})
	}
	if sec := b.o.Preseed.Security(); sec != "" {
		for n, u := range b.upstreamsCache {
			if strings.TrimSuffix(u, "/")+"/" == sec {
				px.SecurityDir = srv.MirrorPath(n)
			}
		}
	}
	preseed.PrepareForProxy(p, px)
	for _, n := range debianNotices(b.o.Preseed) {
		p.Set("d-i", n.question, n.typ, n.value)
	}
	early := debianLogCommand
	if user := p.Value("preseed/early_command"); user != "" {
		early += "; " + user
	}
	p.Set("d-i", "preseed/early_command", "string", early)
	p.Set("d-i", "preseed/late_command", "string", p.Value("preseed/late_command")+" && "+debianReport(guest, srv.ReportPath("packages")))
	return p.Render()
}

// notice is a change the served preseed makes, and why; one with no text
// is the build VM's own business, not the user's.
type notice struct{ question, typ, value, text string }

// debianNotices are the served copy's answers that the build VM needs,
// for a build and its --dry-run alike.
func debianNotices(p *preseed.File) []notice {
	var out []notice
	if p.Security() == "" {
		if _, ok := p.Get("apt-setup/services-select"); !ok {
			// d-i's default adds Debian's security and updates
			// services, which the build VM cannot reach.
			out = append(out, notice{"apt-setup/services-select", "multiselect", "",
				"the preseed leaves apt-setup/services-select at d-i's default (security, updates), which the build VM cannot reach; the served copy selects none (give apt-setup/security_host and a --mirror to proxy one)"})
		}
	}
	// QEMU's restricted user network gives neither a router nor a name
	// server by DHCP: kiln is on the VM's own subnet, by address, and
	// nothing else is reachable. Unanswered, netcfg asks for both.
	if _, ok := p.Get("netcfg/no_default_route"); !ok {
		out = append(out, notice{"netcfg/no_default_route", "boolean", "true", ""})
	}
	if _, ok := p.Get("netcfg/get_nameservers"); !ok {
		out = append(out, notice{"netcfg/get_nameservers", "string", "", ""})
	}
	if v, ok := p.Get("debian-installer/exit/poweroff"); !ok || v.Value != "true" {
		out = append(out, notice{"debian-installer/exit/poweroff", "boolean", "true",
			"the preseed does not end the install with a poweroff (d-i debian-installer/exit/poweroff boolean true); the served copy does, so the build sees the install finish"})
	}
	return out
}

// debianReport lists the installed packages from the target's dpkg
// database and posts them to kiln with the tools d-i's busybox has: it has
// nc, and a wget that cannot post.
func debianReport(guest, reportPath string) string {
	u, _ := url.Parse(guest)
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
	}
	return `chroot /target dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\n' > /tmp/kiln-packages.tsv && ` +
		`{ printf 'POST ` + reportPath + ` HTTP/1.0\r\nHost: ` + u.Host + `\r\nContent-Length: %s\r\n\r\n' "$(wc -c < /tmp/kiln-packages.tsv)"; ` +
		`cat /tmp/kiln-packages.tsv; } | nc ` + host + ` ` + port + ` > /tmp/kiln-report.out && grep -q '^HTTP/1.[01] 204' /tmp/kiln-report.out`
}

// debianSource finds d-i's kernel and initrd: in a netboot directory, at
// a netboot URL (through the proxy), or in a Debian ISO.
func (b *builder) debianSource(ctx context.Context, srv *ksserve.Server) (*source, error) {
	o := b.o
	switch {
	case o.ISO != "":
		s, err := openDebianISO(o.ISO)
		if err != nil {
			return nil, err
		}
		return s, nil
	case isURL(o.Netboot):
		s := &source{kernel: netbootKernel, initrd: netbootInitrd, netbootURL: srv.MirrorPath(netbootMirror)}
		return s, nil
	default:
		return &source{kernel: filepath.Join(o.Netboot, netbootKernel), initrd: filepath.Join(o.Netboot, netbootInitrd), local: true}, nil
	}
}

// openDebianISO checks that an ISO holds d-i's text installer.
func openDebianISO(p string) (*source, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, &InputError{fmt.Errorf("--iso: %w", err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &InputError{fmt.Errorf("--iso: %w", err)}
	}
	r, err := iso.NewReader(f, st.Size())
	if err != nil {
		return nil, &InputError{fmt.Errorf("--iso %s: %w", p, err)}
	}
	for _, name := range []string{isoKernel, isoInitrd} {
		if _, err := r.Stat(name); err != nil {
			return nil, &InputError{fmt.Errorf("--iso %s: no %s: not a Debian installer ISO for amd64", p, name)}
		}
	}
	return &source{iso: p, kernel: isoKernel, initrd: isoInitrd}, nil
}

// prepareDebianBoot writes d-i's kernel and its initrd with the served
// preseed appended, in the work directory; a local netboot directory's
// kernel is booted where it is.
func (b *builder) prepareDebianBoot(ctx context.Context, srv *ksserve.Server, src *source, served []byte) error {
	kernel := filepath.Join(b.work, "vmlinuz")
	base := filepath.Join(b.work, "initrd.orig")
	switch {
	case src.iso != "":
		if err := extract(src.iso, map[string]string{src.kernel: kernel, src.initrd: base}); err != nil {
			return err
		}
	case src.netbootURL != "":
		for name, dst := range map[string]string{src.kernel: kernel, src.initrd: base} {
			if err := writeFile(dst, func(w io.Writer) error { return srv.Fetch(ctx, src.netbootURL+name, w) }); err != nil {
				return fmt.Errorf("fetching %s from %s: %w", name, b.o.Netboot, err)
			}
		}
	default:
		base = src.initrd
	}
	if err := appendFile(base, filepath.Join(b.work, "initrd.img"), "preseed.cfg", served, b.o.Time); err != nil {
		return err
	}
	if !src.local {
		return os.Remove(base)
	}
	return nil
}

// d-i's log lines, as its syslog has them.
var (
	debianStep     = regexp.MustCompile(`main-menu\[\d+\]: INFO: Menu item '([^']+)' selected`)
	debianUnpack   = regexp.MustCompile(`(?:in-target|debootstrap): (?:I: )?Unpacking (\S+?)(?: \(|\.\.\.|$)`)
	debianFatal    = regexp.MustCompile(`WARNING \*\*: (package retrieval failed|Configuring '[^']+' failed with error code \d+)`)
	debianKilnFail = regexp.MustCompile(regexp.QuoteMeta(preseed.CommandFailed))
)

// debianSteps names d-i's main-menu items as its menu shows them.
var debianSteps = map[string]string{
	"localechooser": "Choose language", "netcfg": "Configure the network", "choose-mirror": "Choose a mirror of the Debian archive",
	"download-installer": "Download installer components", "user-setup-udeb": "Set up users and passwords",
	"clock-setup": "Configure the clock", "disk-detect": "Detect disks", "partman-base": "Partition disks",
	"bootstrap-base": "Install the base system", "apt-setup-udeb": "Configure the package manager",
	"pkgsel": "Select and install software", "grub-installer": "Install the GRUB boot loader",
	"finish-install": "Finish the installation",
}

// debianLine follows d-i's log for progress.
func (b *builder) debianLine(src, line string) {
	b.log.Debug(line, "log", src)
	if src != "anaconda" {
		return // d-i's console is its dialogs; its log is the syslog
	}
	if m := debianStep.FindStringSubmatch(line); m != nil {
		step := m[1]
		if name, ok := debianSteps[step]; ok {
			step = name + " (" + m[1] + ")"
		}
		b.debianDone = 0
		b.emit(Event{Event: "progress", Phase: "install", Message: step})
		return
	}
	if m := debianUnpack.FindStringSubmatch(line); m != nil {
		b.debianDone++
		b.emit(Event{Event: "progress", Phase: "install", Package: m[1], Done: b.debianDone})
	}
}

// debianFatalLine reports d-i's failures: a component it could not
// fetch, a step that failed (the "Installation step failed" dialog), or a
// user's preseed command that failed.
func debianFatalLine(src, line string) bool {
	return src == "anaconda" && (debianFatal.MatchString(line) || debianKilnFail.MatchString(line))
}

// debianSources says how the build reaches each upstream.
func (b *builder) debianSources() []Source {
	var out []Source
	names := make([]string, 0, len(b.upstreamsCache))
	for n := range b.upstreamsCache {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		where := "--mirror " + n
		switch {
		case n == b.debianName:
			where = b.o.PreseedPath + ": mirror/http"
		case n == netbootMirror:
			where = "--netboot"
		case n == "security":
			where = b.o.PreseedPath + ": apt-setup/security_host"
		}
		out = append(out, Source{Where: where, Kind: "mirror", Name: n, URL: cache.Redact(b.upstreamsCache[n]), How: fmt.Sprintf("proxied as %q", n)})
	}
	return out
}

// debianPackages is the manifest's package list from the target's
// dpkg-query report, with the sha256 of each .deb the proxy served, or
// the installer ISO holds.
func debianPackages(report []byte, st ksserve.Stats, isoPath string) []Package {
	return joinReport(report, st, isoPath, ".deb", 3, func(f []string) (Package, string) {
		p := Package{Name: f[0], Version: f[1], Arch: f[2]}
		// The pool's file name has the version without its epoch.
		v := f[1]
		if i := strings.IndexByte(v, ':'); i >= 0 {
			if _, err := strconv.Atoi(v[:i]); err == nil {
				v = v[i+1:]
			}
		}
		return p, p.Name + "_" + v + "_" + p.Arch + ".deb"
	})
}

// debianScreen is the text d-i last drew on its console, the serial port
// (in preseed mode d-i runs on one console, and picks the serial one): its
// dialog, read from the end of the serial log with the terminal's escape
// sequences removed.
func debianScreen(serialLog string) string {
	f, err := os.Open(serialLog)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	const tail = 8 << 10
	off := st.Size() - tail
	if off < 0 {
		off = 0
	}
	buf := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(buf, off)
	text := ansiEscape.ReplaceAllString(string(buf[:n]), "\n")
	// The newt frontend draws the screen once and then redraws its
	// status line; the last drawing of the dialog is what matters.
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, l)
		// The status line at the bottom: the consoles, and a clock.
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "*installer)") && !statusClock.MatchString(l) {
			lines = append(lines, l)
		}
	}
	if len(lines) > 24 {
		lines = lines[len(lines)-24:] // a screen
	}
	if len(lines) == 0 {
		return ""
	}
	return "  " + strings.Join(lines, "\n  ")
}

var statusClock = regexp.MustCompile(`^\[ \w{3} \d\d \d\d:\d\d \]$`)

// ansiEscape matches a terminal's control sequences: CSI, character set
// designations, and other two-byte escapes.
var ansiEscape = regexp.MustCompile("\x1b(\\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[^\\[()])")
