package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/integration/fixtures"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/qemu"
)

// The Debian tests run Debian's real installer, d-i from Debian's
// debian-installer-12-netboot-amd64, through kiln build --preseed, against
// a Debian mirror on loopback: the archive's own signed Release and
// Packages indices, so d-i checks Debian's signature with its own keyring
// and nothing here is marked unauthenticated, and only the pool files an
// install needs (fixtures.LoadDebian).

// debianPreseed is a minimal preseed for an unattended install: the
// mirror, no questions, the base system, the kernel, GRUB and
// openssh-server, and a late command that fetches a file from --files
// and adds a user.
func debianPreseed(mirrorHostPort string) string {
	return `# kiln's Debian integration test
d-i debian-installer/locale string en_US.UTF-8
d-i keyboard-configuration/xkb-keymap select us
d-i netcfg/choose_interface select auto
d-i netcfg/get_hostname string kiln-debian
d-i netcfg/get_domain string
d-i mirror/country string manual
d-i mirror/http/hostname string ` + mirrorHostPort + `
d-i mirror/http/directory string /debian
d-i mirror/http/proxy string
d-i mirror/suite string bookworm
d-i passwd/root-login boolean true
d-i passwd/root-password password r00tme
d-i passwd/root-password-again password r00tme
d-i passwd/make-user boolean false
d-i clock-setup/utc boolean true
d-i time/zone string UTC
d-i clock-setup/ntp boolean false
d-i partman-auto/method string regular
d-i partman-auto/choose_recipe select atomic
d-i partman-partitioning/confirm_write_new_label boolean true
d-i partman/choose_partition select finish
d-i partman/confirm boolean true
d-i partman/confirm_nooverwrite boolean true
d-i base-installer/install-recommends boolean false
d-i base-installer/initramfs-tools/driver-policy select dep
d-i apt-setup/services-select multiselect
tasksel tasksel/first multiselect
d-i pkgsel/include string openssh-server
d-i pkgsel/upgrade select none
popularity-contest popularity-contest/participate boolean false
d-i grub-installer/only_debian boolean true
d-i grub-installer/bootdev string default
d-i finish-install/reboot_in_progress note
d-i debian-installer/exit/poweroff boolean true
d-i preseed/late_command string \
  wget -q -O /target/etc/kiln-motd @KILN_FILES@/motd; \
  in-target useradd -m -s /bin/bash kiln
`
}

// debianMirror serves the fixture mirror on loopback as the user's
// mirror, counting the body bytes of every successful response.
type debianMirror struct {
	*httptest.Server
	mu    sync.Mutex
	bytes int64
	paths []string
	// udeb is closed at the first request for an installer component:
	// d-i has then checked the mirror, its Release and its index.
	udeb     chan struct{}
	udebOnce sync.Once
}

func newDebianMirror(t *testing.T, root string) *debianMirror {
	m := &debianMirror{udeb: make(chan struct{})}
	fs := http.StripPrefix("/debian", http.FileServer(http.Dir(root)))
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &okCounter{ResponseWriter: w}
		fs.ServeHTTP(cw, r)
		if strings.HasSuffix(r.URL.Path, ".udeb") {
			m.udebOnce.Do(func() { close(m.udeb) })
		}
		m.mu.Lock()
		m.paths = append(m.paths, r.URL.Path+" "+http.StatusText(cw.status()))
		if cw.status() == http.StatusOK || cw.status() == http.StatusPartialContent {
			m.bytes += cw.n
		}
		m.mu.Unlock()
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *debianMirror) taken() (int64, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes, append([]string(nil), m.paths...)
}

type okCounter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (c *okCounter) WriteHeader(code int) { c.code = code; c.ResponseWriter.WriteHeader(code) }
func (c *okCounter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}
func (c *okCounter) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}

// TestDebianInstall builds Debian 12 with d-i through kiln, twice on one
// cache: from the netboot directory, then from an ISO holding the same
// kernel and initrd in install.amd/. On a mirror that lacks installer components d-i needs, as the
// archive this machine reaches does (it serves every .deb of bookworm but
// only some of its .udebs), the build must fail fast with d-i's own
// error, a screendump and no image, and the second attempt must take no
// byte from the mirror. On a complete mirror the build must succeed and
// boot (--verify), with the manifest's packages equal to the image's
// dpkg database.
func TestDebianInstall(t *testing.T) {
	testutil.RequireTool(t, "qemu-system-x86_64")
	testutil.RequireTool(t, "apt-get")
	d, mirror := debianFixture(t)
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	os.MkdirAll(files, 0o755)
	os.WriteFile(filepath.Join(files, "motd"), []byte("built by kiln\n"), 0o644)
	pre := filepath.Join(dir, "debian.cfg")
	host := strings.TrimPrefix(mirror.URL, "http://")
	if err := os.WriteFile(pre, []byte(debianPreseed(host)), 0o600); err != nil {
		t.Fatal(err)
	}
	kilnCache := filepath.Join(dir, "cache")
	complete := !needsMissing(d.MissingUdebs)
	var firstBytes int64
	// The second round boots the same d-i from an ISO, read without
	// mounting it, as a Debian installer ISO's install.amd/ is.
	debISO := filepath.Join(dir, "debian-12-netinst.iso")
	tree := filepath.Join(dir, "iso-tree")
	os.MkdirAll(filepath.Join(tree, "install.amd"), 0o755)
	for from, to := range map[string]string{"linux": "vmlinuz", "initrd.gz": "initrd.gz"} {
		if err := os.Symlink(filepath.Join(fixtures.Netboot, from), filepath.Join(tree, "install.amd", to)); err != nil {
			t.Fatal(err)
		}
	}
	xorriso := testutil.RequireTool(t, "xorriso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-quiet", "-follow-links", "-R", "-J", "-V", "Debian 12 amd64 n", "-o", debISO, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	for round := 0; round < 2; round++ {
		out := filepath.Join(dir, "debian12-"+string(rune('a'+round)))
		source := []string{"--netboot", fixtures.Netboot}
		if round == 1 {
			source = []string{"--iso", debISO}
		}
		args := append([]string{"--json", "build", "--preseed", pre}, source...)
		args = append(args, "--files", files,
			"--cache-dir", kilnCache, "--accel", "tcg", "--memory", "1G", "--disk-size", "4G", "--format", "raw", "-o", out,
			"--inactivity", "3m", "--timeout", "60m")
		if complete {
			args = append(args, "--verify")
		}
		before, _ := mirror.taken()
		cmd := exec.Command(kiln(t), args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		after, paths := mirror.taken()
		took := after - before
		t.Logf("round %d: %d bytes from the mirror, %d requests", round, took, len(paths))
		if round == 0 {
			firstBytes = took
			requireServed(t, paths, "/debian/dists/bookworm/Release OK", "/debian/dists/bookworm/Release.gpg OK",
				"/debian/dists/bookworm/main/debian-installer/binary-amd64/Packages.xz OK")
		} else if took != 0 {
			t.Errorf("round %d took %d bytes from the mirror, want 0 (the first took %d)", round, took, firstBytes)
		}
		if !complete {
			if err == nil {
				t.Fatalf("round %d: the build succeeded on a mirror without %v", round, d.MissingUdebs)
			}
			checkDebianFailure(t, out, stdout.String(), stderr.String())
			continue
		}
		if err != nil {
			t.Fatalf("round %d: kiln build: %v\n%s\n%s", round, err, stdout.String(), stderr.String())
		}
		checkDebianImage(t, out)
	}
	if firstBytes == 0 {
		t.Error("the first build took nothing from the mirror")
	}
}

// debianFixture is the Debian mirror fixture, served on loopback as the
// user's mirror, and d-i's netboot files, which every Debian test boots.
func debianFixture(t *testing.T) (*fixtures.DebianMirror, *debianMirror) {
	t.Helper()
	testutil.RequireFile(t, filepath.Join(fixtures.Netboot, "initrd.gz"))
	cache, err := fixtures.DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	d, err := fixtures.LoadDebian(cache)
	if err != nil {
		t.Fatal(err)
	}
	return d, newDebianMirror(t, d.Root)
}

// debianNeeded are installer components a netboot install cannot do
// without that its initrd does not carry.
var debianNeeded = []string{"partman-ext3", "partman-target", "grub-installer", "finish-install", "apt-setup-udeb", "user-setup-udeb"}

func needsMissing(missing []string) bool {
	for _, m := range missing {
		for _, n := range debianNeeded {
			if m == n {
				return true
			}
		}
	}
	return false
}

func requireServed(t *testing.T, paths []string, want ...string) {
	t.Helper()
	for _, w := range want {
		found := false
		for _, p := range paths {
			found = found || p == w
		}
		if !found {
			t.Errorf("the mirror never served %q; it served %q", w, paths)
		}
	}
}

// checkDebianFailure checks a build that d-i could not finish: exit 1,
// d-i's own error line, a screendump, the reproduction command, no image,
// and the log showing that d-i verified Debian's signature on the
// Release kiln passed through.
func checkDebianFailure(t *testing.T, out, stdout, stderr string) {
	t.Helper()
	if !strings.Contains(stderr, "package retrieval failed") && !strings.Contains(stderr, "failed with error code") {
		t.Errorf("the error does not give d-i's failure:\n%s", stderr)
	}
	for _, want := range []string{"screendump: ", "reproduce with: ", "installer log: "} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the error has no %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(out + ".raw"); err == nil {
		t.Errorf("a failed build left %s.raw", out)
	}
	log := fieldAfter(stderr, "installer log: ")
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("reading the installer log: %v", err)
	}
	for _, want := range []string{"preseed: successfully loaded preseed file from file:///preseed.cfg",
		"net-retriever: gpgv: Good signature from \"Debian Archive Automatic Signing Key (12/bookworm)",
		"Menu item 'choose-mirror' selected", "Menu item 'download-installer' selected"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("d-i's log (%s) has no %q", log, want)
		}
	}
	if bytes.Contains(data, []byte("r00tme")) {
		t.Error("d-i's log, as kiln keeps it, holds the root password")
	}
	var sawStep bool
	for _, line := range strings.Split(stdout, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["event"] == "progress" && strings.Contains(ev["message"].(string), "Download installer components") {
			sawStep = true
		}
	}
	if !sawStep {
		t.Errorf("no progress event named d-i's step; stdout:\n%s", stdout)
	}
	if dump := fieldAfter(stderr, "screendump: "); dump != "" {
		if st, err := os.Stat(dump); err != nil || st.Size() == 0 {
			t.Errorf("screendump %s: %v", dump, err)
		}
	}
}

// checkDebianImage checks a finished Debian image: file systems clean,
// the late command's results, and the manifest against the image.
func checkDebianImage(t *testing.T, out string) {
	t.Helper()
	im := openImage(t, out+".raw")
	im.fsck()
	if got := im.read("/etc/kiln-motd"); got != "built by kiln\n" {
		t.Errorf("/etc/kiln-motd = %q", got)
	}
	if !strings.Contains(im.read("/etc/passwd"), "\nkiln:") {
		t.Error("the late command's user is not in /etc/passwd")
	}
	if src := im.read("/etc/apt/sources.list"); strings.Contains(src, "10.0.2.100") {
		t.Errorf("sources.list names the build proxy:\n%s", src)
	}
	m := readManifest(t, out+".manifest.json")
	status := im.read("/var/lib/dpkg/status")
	var installed []string
	for _, stanza := range strings.Split(status, "\n\n") {
		var name, ver, arch, st string
		for _, line := range strings.Split(stanza, "\n") {
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "Package":
				name = v
			case "Version":
				ver = v
			case "Architecture":
				arch = v
			case "Status":
				st = v
			}
		}
		if name != "" && strings.HasSuffix(st, " installed") {
			installed = append(installed, name+" "+ver+" "+arch)
		}
	}
	var listed []string
	for _, p := range m.Packages {
		listed = append(listed, p.Name+" "+p.Version+" "+p.Arch)
		if p.SHA256 == "" {
			t.Errorf("the manifest gives no sha256 for %s", p.Name)
		}
	}
	if strings.Join(sortedCopy(installed), "\n") != strings.Join(sortedCopy(listed), "\n") {
		t.Errorf("the manifest's packages differ from the image's dpkg status:\nmanifest %d, image %d", len(listed), len(installed))
	}
	if len(m.Verify) == 0 || !m.Verify[0].OK {
		t.Errorf("--verify did not pass: %+v", m.Verify)
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c
}

// fieldAfter is the rest of the first line in s that starts with prefix.
func fieldAfter(s, prefix string) string {
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, prefix); i >= 0 {
			return strings.TrimSpace(line[i+len(prefix):])
		}
	}
	return ""
}

// TestDebianPreseedRefused checks that a preseed debconf would refuse
// stops the build before anything boots: exit 3, file:line.
func TestDebianPreseedRefused(t *testing.T) {
	dir := t.TempDir()
	pre := filepath.Join(dir, "bad.cfg")
	os.WriteFile(pre, []byte("d-i mirror/http/hostname string deb.example\nd-i mirror/http/directory\n"), 0o600)
	cmd := exec.Command(kiln(t), "build", "--preseed", pre, "--netboot", dir, "-o", filepath.Join(dir, "out"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("kiln build: %v, want exit 3\n%s", err, out)
	}
	if !strings.Contains(string(out), pre+":2: parse error") {
		t.Errorf("the error does not name %s:2:\n%s", pre, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the refused build left files: %v", entries)
	}
}

// TestServePreseedToDI boots Debian's d-i on QEMU's NAT network, as a
// machine on the network boots, with url= naming kiln serve --preseed: d-i
// fetches the preseed from kiln, which points its mirror at kiln's proxy,
// and goes on through the mirror check (Release, Release.gpg, the udeb
// index) to the installer components, all through kiln.
func TestServePreseedToDI(t *testing.T) {
	testutil.RequireTool(t, "qemu-system-x86_64")
	_, mirror := debianFixture(t)
	dir := t.TempDir()
	pre := filepath.Join(dir, "debian.cfg")
	os.WriteFile(pre, []byte(debianPreseed(strings.TrimPrefix(mirror.URL, "http://"))), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ev struct {
		Event   string `json:"event"`
		Preseed string `json:"preseed_url"`
		Cmdline string `json:"kernel_cmdline"`
	}
	stderr := startServe(t, ctx, &ev, "--preseed", pre, "--cache-dir", filepath.Join(dir, "cache"), "--allow", "127.0.0.0/8")
	if ev.Preseed == "" || !strings.Contains(ev.Cmdline, "url="+ev.Preseed) {
		t.Fatalf("no serving event with the preseed's URL: %+v\n%s", ev, stderr.String())
	}
	// The VM reaches the host's loopback at 10.0.2.2.
	u, _ := url.Parse(ev.Preseed)
	u.Host = "10.0.2.2:" + u.Port()
	args := strings.Replace(ev.Cmdline, ev.Preseed, u.String(), 1) + " console=ttyS0 ipv6.disable=1"
	cfg, err := qemu.New(qemu.WithMemory(1024), qemu.WithCPUs(1), qemu.WithAccel("tcg"), qemu.WithUserNet(qemu.UserNet{}),
		qemu.WithKernel(filepath.Join(fixtures.Netboot, "linux"), filepath.Join(fixtures.Netboot, "initrd.gz"), args))
	if err != nil {
		t.Fatal(err)
	}
	vmctx, stopVM := context.WithCancel(ctx)
	defer stopVM()
	go func() {
		select {
		case <-mirror.udeb:
		case <-vmctx.Done():
		}
		stopVM()
	}()
	// No inactivity watchdog: this VM has no disk, and without kiln's
	// log port (a build's served preseed adds it; kiln serve's does not)
	// nothing moves while d-i detects hardware and fetches the preseed.
	res, err := qemu.Run(vmctx, cfg, qemu.RunOptions{TempDir: t.TempDir(), Keep: true, Timeout: 20 * time.Minute})
	select {
	case <-mirror.udeb:
	default:
		t.Fatalf("d-i never asked kiln's proxy for an installer component: %v\n%s\nkiln serve:\n%s", err, tail(res), stderr.String())
	}
	_, paths := mirror.taken()
	requireServed(t, paths, "/debian/dists/bookworm/Release OK", "/debian/dists/bookworm/Release.gpg OK",
		"/debian/dists/bookworm/main/debian-installer/binary-amd64/Packages.xz OK")
	cancel()
	log := stderr.String()
	if !strings.Contains(log, `"msg":"preseed fetched","client":"127.0.0.1:`) {
		t.Errorf("kiln serve did not log the machine that fetched its preseed:\n%s", log)
	}
	if strings.Contains(log, "r00tme") {
		t.Error("the preseed's password reached kiln serve's log")
	}
}
