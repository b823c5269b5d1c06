package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/integration/fixtures"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/builder"
	"github.com/kiln-build/kiln/qemu"
)

// The kiln build tests run kiln as a user would, the real binary, in a
// network namespace of their own where the mirror and the file server
// answer at 10.0.2.2, the address a VM on QEMU's user network reaches the
// host's loopback by. So the same kickstart URLs work for kiln (in the
// namespace) and for a VM booted from the install ISO kiln wrote (outside
// it, where the test serves the same directories on 127.0.0.1).

func TestMain(m *testing.M) {
	if os.Getenv("KILN_NETNS_HELPER") != "" {
		os.Exit(netnsHelper())
	}
	os.Exit(m.Run())
}

// netnsHelper runs inside the namespace: loopback up with 10.0.2.2 on it,
// a file server per KILN_NETNS_SERVE entry (PORT=DIR), then the command
// in KILN_NETNS_RUN (a JSON array), whose exit code it returns.
func netnsHelper() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "netns helper:", err)
		return 125
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fail(err)
	}
	lo, err := unix.NewIfreq("lo")
	if err != nil {
		return fail(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, lo); err != nil {
		return fail(err)
	}
	lo.SetUint16(lo.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, lo); err != nil {
		return fail(fmt.Errorf("bringing lo up: %w", err))
	}
	alias, err := unix.NewIfreq("lo:1")
	if err != nil {
		return fail(err)
	}
	if err := alias.SetInet4Addr(net.IPv4(10, 0, 2, 2).To4()); err != nil {
		return fail(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFADDR, alias); err != nil {
		return fail(fmt.Errorf("adding 10.0.2.2: %w", err))
	}
	for _, s := range strings.Fields(os.Getenv("KILN_NETNS_SERVE")) {
		port, dir, _ := strings.Cut(s, "=")
		// On 127.0.0.1 too: a VM kiln starts with QEMU's NAT (the
		// install ISO's, under --verify) reaches 10.0.2.2 as the
		// namespace's loopback.
		for _, host := range []string{"10.0.2.2", "127.0.0.1"} {
			l, err := net.Listen("tcp", host+":"+port)
			if err != nil {
				return fail(err)
			}
			go http.Serve(l, http.FileServer(http.Dir(dir)))
		}
	}
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv("KILN_NETNS_RUN")), &argv); err != nil {
		return fail(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return fail(err)
	}
	return 0
}

var (
	kilnOnce sync.Once
	kilnBin  string
	kilnErr  error
)

// kiln builds the kiln binary once per test run.
func kiln(t testing.TB) string {
	kilnOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kiln-bin-")
		if err != nil {
			kilnErr = err
			return
		}
		kilnBin = filepath.Join(dir, "kiln")
		if out, err := exec.Command("go", "build", "-o", kilnBin, "../cmd/kiln").CombinedOutput(); err != nil {
			kilnErr = fmt.Errorf("go build ../cmd/kiln: %v\n%s", err, out)
		}
	})
	if kilnErr != nil {
		t.Fatal(kilnErr)
	}
	return kilnBin
}

// buildEnv is one test's world: the mirror and a file server, reachable
// at the same URLs from kiln's namespace and from a VM outside it.
type buildEnv struct {
	mirrorPort, filesPort int
	filesDir              string
	dir                   string // outputs
	cache                 string
	extra                 map[int]string // more directories served in the namespace, by port
}

func (b *buildEnv) mirror() string { return fmt.Sprintf("http://10.0.2.2:%d", b.mirrorPort) }
func (b *buildEnv) files() string  { return fmt.Sprintf("http://10.0.2.2:%d", b.filesPort) }

func newBuildEnv(t *testing.T) *buildEnv {
	testutil.RequireTool(t, "unshare")
	testutil.RequireTool(t, "qemu-img")
	b := &buildEnv{dir: t.TempDir(), filesDir: t.TempDir()}
	b.cache = filepath.Join(b.dir, "cache")
	os.MkdirAll(filepath.Join(b.filesDir, "configs"), 0o755)
	os.MkdirAll(filepath.Join(b.filesDir, "scripts"), 0o755)
	os.WriteFile(filepath.Join(b.filesDir, "configs/app.conf"), []byte(appConf), 0o644)
	os.WriteFile(filepath.Join(b.filesDir, "scripts/setup.sh"), []byte(setupSh), 0o644)
	// The host side, for VMs booted outside the namespace.
	for _, s := range []struct {
		port *int
		dir  string
	}{{&b.mirrorPort, mirrorDir}, {&b.filesPort, b.filesDir}} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir(s.dir))}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		*s.port = l.Addr().(*net.TCPAddr).Port
	}
	return b
}

// kickstart writes the scenario's kickstart with the env's URLs.
func (b *buildEnv) kickstart(t *testing.T, edit func(string) string) string {
	tmpl, err := os.ReadFile("testdata/my-rocky9.ks")
	if err != nil {
		t.Fatal(err)
	}
	ks := strings.NewReplacer("MIRROR", b.mirror(), "FILES", b.files()).Replace(string(tmpl))
	if edit != nil {
		ks = edit(ks)
	}
	p := filepath.Join(b.dir, fmt.Sprintf("ks-%d.ks", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte(ks), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs kiln with args in the namespace and returns its stdout.
func (b *buildEnv) run(t *testing.T, args ...string) (string, error) {
	argv, _ := json.Marshal(append([]string{kiln(t)}, args...))
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--net", os.Args[0], "-test.run=^$")
	serve := fmt.Sprintf("%d=%s %d=%s", b.mirrorPort, mirrorDir, b.filesPort, b.filesDir)
	for port, dir := range b.extra {
		serve += fmt.Sprintf(" %d=%s", port, dir)
	}
	cmd.Env = append(os.Environ(), "KILN_NETNS_HELPER=1", "KILN_NETNS_RUN="+string(argv), "KILN_NETNS_SERVE="+serve)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("kiln %s: %v in %v\n%s", strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), stderr.String())
	if err != nil {
		return stdout.String(), fmt.Errorf("kiln %s: %w\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// runInTerminal is run with kiln's stderr a real terminal: tmux's, 150
// columns wide. It returns every distinct screen tmux showed while kiln
// ran, read with capture-pane each time the pane had output (tmux's
// pipe-pane copies it to a FIFO this reads), and kiln's exit status.
func (b *buildEnv) runInTerminal(t *testing.T, args ...string) (screens []string, err error) {
	t.Helper()
	tmux := testutil.RequireTool(t, "tmux")
	argv, _ := json.Marshal(append([]string{kiln(t)}, args...))
	serve := fmt.Sprintf("%d=%s %d=%s", b.mirrorPort, mirrorDir, b.filesPort, b.filesDir)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pane")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := "kiln-" + filepath.Base(dir)
	tm := func(a ...string) ([]byte, error) {
		return exec.Command(tmux, append([]string{"-L", sock, "-f", "/dev/null"}, a...)...).CombinedOutput()
	}
	script := fmt.Sprintf("tmux -L %s wait-for start\nexport KILN_NETNS_HELPER=1 KILN_NETNS_RUN=%s KILN_NETNS_SERVE=%s\n"+
		"unshare --user --map-root-user --net %s -test.run='^$' >%s\necho KILN-EXIT=$?\ntmux -L %s wait-for end\n",
		sock, shellQuote(string(argv)), shellQuote(serve), shellQuote(os.Args[0]), shellQuote(filepath.Join(dir, "stdout")), sock)
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o755)
	if out, err := tm("new-session", "-d", "-s", "kiln", "-x", "150", "-y", "12", "sh "+filepath.Join(dir, "run.sh")); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	defer tm("kill-server")
	if out, err := tm("pipe-pane", "-o", "-t", "kiln", "cat > "+fifo); err != nil {
		t.Fatalf("tmux pipe-pane: %v\n%s", err, out)
	}
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tm("wait-for", "-S", "start")
	buf := make([]byte, 64<<10)
	var tail string
	seen := map[string]bool{}
	for {
		n, rerr := f.Read(buf)
		tail += string(buf[:n])
		if len(tail) > 256 {
			tail = tail[len(tail)-256:]
		}
		screen, err := tm("capture-pane", "-p", "-t", "kiln")
		if err != nil {
			return screens, fmt.Errorf("tmux capture-pane: %w", err)
		}
		if s := string(screen); !seen[s] {
			seen[s] = true
			screens = append(screens, s)
		}
		if m := regexp.MustCompile(`KILN-EXIT=(\d+)`).FindStringSubmatch(tail); m != nil {
			tm("wait-for", "-S", "end")
			if m[1] != "0" {
				return screens, fmt.Errorf("kiln %s: exit %s\n%s", strings.Join(args, " "), m[1], screens[len(screens)-1])
			}
			return screens, nil
		}
		if rerr != nil {
			return screens, fmt.Errorf("the pane's output ended before kiln did: %v", rerr)
		}
	}
}

// barLine is the install's bar as kiln draws it on a terminal: the step
// or package, the proxy's bytes, the bar, n/N, and the elapsed time with
// an estimate of what is left.
var barLine = regexp.MustCompile(`install: \S.* · mirror [0-9.]+ [KMGT]?i?B · cache [0-9.]+ [KMGT]?i?B +\d+% \|.*\| \(\d+/\d+\) \[[0-9hms.]+:[0-9hms.]+\]`)

// checkBar wants a screen that shows the bar with a count under way, and
// a last screen with no bar left on it and kiln's summary.
func checkBar(t *testing.T, screens []string) {
	t.Helper()
	var bars int
	for _, s := range screens {
		for _, line := range strings.Split(s, "\n") {
			if barLine.MatchString(line) {
				bars++
			}
		}
	}
	if bars == 0 {
		t.Errorf("no screen showed the install's bar; %d screens, the last:\n%s", len(screens), screens[len(screens)-1])
	}
	last := screens[len(screens)-1]
	if strings.Contains(last, "· mirror") {
		t.Errorf("the bar is still on the last screen:\n%s", last)
	}
	if !strings.Contains(last, "kiln: manifest") {
		t.Errorf("the last screen lacks the last phase:\n%s", last)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func readManifest(t testing.TB, p string) *builder.Manifest {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m builder.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return &m
}

func hasPackage(m *builder.Manifest, name string) bool {
	for _, p := range m.Packages {
		if p.Name == name && p.SHA256 != "" && p.EVR() != "" {
			return true
		}
	}
	return false
}

// TestBuildScenario is the reference scenario end to end: kiln build from
// the DVD to qcow2 and raw images and an install ISO; the images hold
// what the kickstart installs; the manifest lists the packages; a repeat
// build fetches nothing from the mirror; and the install ISO, dd'd to a
// USB stick, installs the same on a fresh machine under OVMF by itself.
func TestBuildScenario(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	ks := b.kickstart(t, nil)
	out := filepath.Join(b.dir, "rocky9")
	isoOut := filepath.Join(b.dir, "rocky9-install.iso")
	common := []string{"--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache,
		"--mirror", "files=" + b.files() + "/", "--inactivity", "2m"}
	stdout, err := b.run(t, append([]string{"--json", "build", "--ks", ks, "--iso", fx.DVD, "-o", out, "--format", "qcow2,raw", "--iso-out", isoOut, "--verify"}, common...)...)
	if err != nil {
		t.Fatal(err)
	}
	// The events: every phase, the installer's progress, the result.
	var phases []string
	progress := 0
	result := false
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var ev builder.Event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Event {
		case "phase":
			phases = append(phases, ev.Phase)
		case "progress":
			if ev.Total > 0 && ev.Package != "" {
				progress++
			}
		case "result":
			result = true
		}
	}
	if got := strings.Join(phases, ","); got != "validate,source,prepare,accel,install,verify,convert,manifest" || progress == 0 || !result {
		t.Errorf("events: phases %s, %d progress events, result %v\n%s", got, progress, result, stdout)
	}
	if o, err := exec.Command("qemu-img", "check", out+".qcow2").CombinedOutput(); err != nil {
		t.Errorf("qemu-img check: %v\n%s", err, o)
	}
	if o, err := exec.Command("qemu-img", "info", "--output=json", out+".qcow2").CombinedOutput(); err != nil || !strings.Contains(string(o), `"format": "qcow2"`) {
		t.Errorf("qemu-img info: %v\n%s", err, o)
	}
	checkScenario(t, out+".raw")
	m := readManifest(t, out+".manifest.json")
	for _, name := range []string{"bash", "httpd", "nginx", "custom-package-1", "custom-package-2"} {
		if !hasPackage(m, name) {
			t.Errorf("the manifest lacks %s (with EVR and sha256): %+v", name, m.Packages)
		}
	}
	if m.UpstreamBytes == 0 || len(m.Outputs) != 3 || m.QEMUVersion == "" || m.Accel.Used != "tcg" {
		t.Errorf("manifest: upstream %d, outputs %+v, qemu %q, accel %+v", m.UpstreamBytes, m.Outputs, m.QEMUVersion, m.Accel)
	}
	t.Logf("kiln's overhead %.2fs, phases %+v", m.OverheadSeconds, m.Phases)
	// --verify booted the image, then installed from the install ISO as
	// a USB stick under OVMF and as a CD under SeaBIOS and booted those.
	var verified []string
	for _, v := range m.Verify {
		if v.OK {
			verified = append(verified, fmt.Sprintf("%s/%s", v.Media, v.Firmware))
		}
		t.Logf("verify %s/%s: %s %q in %v", v.Media, v.Firmware, v.Signal, v.Detail, v.Duration)
	}
	if got := strings.Join(verified, ","); got != "/bios,usb/uefi,cdrom/bios" {
		t.Errorf("verified %s, want the image under BIOS and the ISO's installs by USB under UEFI and by CD under BIOS: %+v", got, m.Verify)
	}
	if ic, err := os.ReadFile(out + ".icicle.xml"); err != nil || !strings.Contains(string(ic), `<package name="custom-package-1-1.0-1.noarch">`) {
		t.Errorf("icicle: %v\n%s", err, ic)
	}
	// The installed system keeps the user's kickstart and URLs.
	if got := inspect(t, out+".raw", "cat /root/original-ks.cfg"); !strings.Contains(got, b.mirror()+"/custom-rpms/") || strings.Contains(got, "10.0.2.100") {
		t.Errorf("/root/original-ks.cfg is not the user's:\n%s", got)
	}

	t.Run("repeat build", func(t *testing.T) {
		again := filepath.Join(b.dir, "again")
		if _, err := b.run(t, append([]string{"build", "--ks", ks, "--iso", fx.DVD, "-o", again}, common...)...); err != nil {
			t.Fatal(err)
		}
		if m := readManifest(t, again+".manifest.json"); m.UpstreamBytes != 0 || m.CacheBytes == 0 {
			t.Errorf("a repeat build fetched %d bytes from the mirror (%d from the cache)", m.UpstreamBytes, m.CacheBytes)
		}
		// Outputs are never replaced without --force.
		if _, err := b.run(t, append([]string{"build", "--ks", ks, "--iso", fx.DVD, "-o", again}, common...)...); err == nil || !strings.Contains(err.Error(), "exists; use --force") {
			t.Errorf("a build over existing outputs: %v", err)
		}
	})

	t.Run("install ISO on a USB stick under OVMF", func(t *testing.T) {
		ovmf, err := qemu.FindOVMF(false)
		if err != nil {
			testutil.RequireFile(t, "/usr/share/OVMF/OVMF_CODE_4M.fd")
			t.Fatal(err)
		}
		disk := filepath.Join(t.TempDir(), "disk.raw")
		os.WriteFile(disk, nil, 0o644)
		os.Truncate(disk, 3<<30)
		cfg, err := qemu.New(qemu.WithMemory(1024), qemu.WithCPUs(1), qemu.WithAccel("tcg"), qemu.WithFirmware(ovmf),
			qemu.WithUSB(isoOut), qemu.WithBootOrder("usb"), qemu.WithDisk(qemu.Disk{Path: disk, Format: "raw", Unsafe: true}),
			qemu.WithUserNet(qemu.UserNet{}))
		if err != nil {
			t.Fatal(err)
		}
		res, err := qemu.Run(context.Background(), cfg, qemu.RunOptions{TempDir: t.TempDir(), Keep: true, Timeout: 10 * time.Minute, Inactivity: 2 * time.Minute})
		if err != nil {
			t.Fatalf("%v\n%s", err, tail(res))
		}
		checkScenario(t, disk)
	})
}

// TestOzInstall is the same scenario through kiln's oz-install front door,
// the way the user ran Oz: the TDL names the mirror's BaseOS tree, so the
// installer boots from the tree's kernel and initrd through the proxy,
// and the kickstart, which has no poweroff, gets one in the served copy.
func TestOzInstall(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	ks := b.kickstart(t, func(s string) string { return strings.Replace(s, "poweroff\n", "", 1) })
	tdl := filepath.Join(b.dir, "rocky9.tdl")
	os.WriteFile(tdl, []byte(`<template>
  <name>rocky9-custom</name>
  <os>
    <name>Rocky-9</name>
    <version>9</version>
    <arch>x86_64</arch>
    <install type='url'>
      <url>`+b.mirror()+`/rocky/9/BaseOS/x86_64/os/</url>
    </install>
  </os>
  <description>Rocky Linux 9 Custom Image for Physical Deployment</description>
</template>
`), 0o644)
	cfg := filepath.Join(b.dir, "oz.cfg")
	os.WriteFile(cfg, []byte("[libvirt]\nmemory = 1024\ncpus = 1\nimage_type = raw\n[timeouts]\ninstall = 600\ninactivity = 120\n"), 0o644)
	disk := filepath.Join(b.dir, "rocky9-custom.dsk")
	xmlOut := filepath.Join(b.dir, "rocky9-custom.xml")
	// -u with a kickstart after it is Oz's usage mistake; kiln says how.
	if _, err := b.run(t, "oz-install", "-d3", "-u", ks, tdl); err == nil || !strings.Contains(err.Error(), "pass -a") {
		t.Errorf("oz-install -u FILE.ks: %v", err)
	}
	if _, err := b.run(t, "oz-install", "-d3", "-u", "-a", ks, "-c", cfg, "-s", disk, "-x", xmlOut, tdl); err != nil {
		t.Fatal(err)
	}
	checkScenario(t, disk)
	m := readManifest(t, strings.TrimSuffix(disk, ".dsk")+".manifest.json")
	if !hasPackage(m, "custom-package-1") {
		t.Errorf("the manifest lacks custom-package-1: %+v", m.Packages)
	}
	x, err := os.ReadFile(xmlOut)
	if err != nil || !strings.Contains(string(x), "<source file=\""+disk+"\">") || !strings.Contains(string(x), `type="raw"`) {
		t.Errorf("libvirt XML: %v\n%s", err, x)
	}
	// The user's kickstart, without poweroff, is what the system keeps.
	if got := inspect(t, disk, "cat /root/original-ks.cfg"); strings.Contains(got, "poweroff") || !strings.Contains(got, "custom-package-1") {
		t.Errorf("/root/original-ks.cfg:\n%s", got)
	}
}

// TestBuildTDLOnly builds from a TDL alone: the base kickstart from the
// TDL's install tree, with its repository, packages, files and commands,
// one of which fetches from --files through @KILN_FILES@.
func TestBuildTDLOnly(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	tdl := filepath.Join(b.dir, "custom.tdl")
	os.WriteFile(tdl, []byte(`<template>
  <name>tdl-only</name>
  <os>
    <name>RHEL-9</name>
    <version>9</version>
    <arch>x86_64</arch>
    <rootpw>tdl-secret</rootpw>
    <install type='url'>
      <url>`+b.mirror()+`/rocky/9/BaseOS/x86_64/os/</url>
    </install>
  </os>
  <repositories>
    <repository name='custom'>
      <url>`+b.mirror()+`/custom-rpms/</url>
    </repository>
  </repositories>
  <packages>
    <package name='custom-package-1'/>
  </packages>
  <files>
    <file name='/etc/tdl-file.conf'>from = tdl</file>
  </files>
  <commands>
    <command name='marker'>echo commanded > /root/tdl-command</command>
    <command name='files'>curl -o /root/from-files.conf @KILN_FILES@/configs/app.conf</command>
  </commands>
</template>
`), 0o644)
	out := filepath.Join(b.dir, "tdl-only")
	// On a terminal, as a user at a shell runs it: the install's bar.
	screens, err := b.runInTerminal(t, "build", "--tdl", tdl, "-o", out, "--format", "raw", "--accel", "tcg", "--memory", "1G", "--cpus", "1",
		"--disk-size", "3G", "--cache-dir", b.cache, "--inactivity", "2m", "--files", b.filesDir)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(screens, "\n")
	if strings.Contains(all, "tdl-secret") {
		t.Errorf("the root password reached kiln's output")
	}
	checkBar(t, screens)
	for path, want := range map[string]string{
		"/etc/tdl-file.conf":        "from = tdl",
		"/root/tdl-command":         "commanded",
		"/root/from-files.conf":     appConf,
		"/opt/custom/share/one.txt": "custom package one",
		"/etc/custom/two.conf":      "two = 2",
	} {
		if got := inspect(t, out+".raw", "cat "+path); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if ks := inspect(t, out+".raw", "cat /root/anaconda-ks.cfg"); !strings.Contains(ks, "@KILN_FILES@/configs/app.conf") || strings.Contains(ks, "/files/configs") {
		t.Errorf("anaconda-ks.cfg does not have @KILN_FILES@ back:\n%s", ks)
	}
	if sh := inspect(t, out+".raw", "cat /etc/shadow"); !strings.Contains(sh, "root:$6$") {
		t.Errorf("the TDL's rootpw is not set:\n%s", sh)
	}
}

// TestBuildISOBoot builds with --boot iso under UEFI: the VM boots a
// remastered copy of the DVD with OVMF and GRUB, as a physical machine
// would, instead of the ISO's kernel directly.
func TestBuildISOBoot(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	ks := b.kickstart(t, nil)
	out := filepath.Join(b.dir, "isoboot")
	if _, err := b.run(t, "build", "--ks", ks, "--iso", fx.DVD, "-o", out, "--format", "raw", "--boot", "iso", "--firmware", "uefi",
		"--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache, "--inactivity", "2m"); err != nil {
		t.Fatal(err)
	}
	checkScenario(t, out+".raw")
	if m := readManifest(t, out+".manifest.json"); m.Firmware.Kind != "uefi" || m.Firmware.SHA256 == "" {
		t.Errorf("manifest firmware: %+v", m.Firmware)
	}
}

// TestBuildFails checks a build whose install fails: kiln exits 1 within
// seconds of the installer's error line, quotes the installer's last
// lines, keeps the logs and says how to reproduce the VM, and writes no
// output at all.
func TestBuildFails(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	ks := b.kickstart(t, func(s string) string {
		return strings.Replace(s, "custom-package-2\n", "custom-package-2\nno-such-package\n", 1)
	})
	out := filepath.Join(b.dir, "broken")
	_, err := b.run(t, "build", "--ks", ks, "--iso", fx.DVD, "-o", out, "--format", "qcow2,raw", "--iso-out", out+"-install.iso",
		"--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache, "--inactivity", "2m")
	if err == nil {
		t.Fatal("a build with a missing package succeeded")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want 1", err)
	}
	msg := err.Error()
	for _, want := range []string{"vm installer-error", "Missed: NoSuchPackage: no-such-package", "the installer's last lines:", "installer log: ", "reproduce with: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failure lacks %q:\n%s", want, msg)
		}
	}
	log := regexp.MustCompile(`installer log: (\S+)`).FindStringSubmatch(msg)
	if log == nil {
		t.Fatal("no installer log path")
	}
	if _, err := os.Stat(log[1]); err != nil {
		t.Errorf("the installer log is gone: %v", err)
	}
	for _, p := range []string{out + ".qcow2", out + ".raw", out + ".manifest.json", out + ".icicle.xml", out + "-install.iso"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed build left %s", p)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(b.dir, ".*kiln-tmp"))
	disks, _ := filepath.Glob(filepath.Join(b.dir, ".kiln-build-*", "disk.raw"))
	if len(leftovers)+len(disks) != 0 {
		t.Errorf("a failed build left %v %v", leftovers, disks)
	}
}

// TestParallelBuilds runs two builds of the same kickstart at once on one
// cache: they must not collide on ports, sockets, work files or cache
// entries, and between them must fetch each object from the mirror once,
// as many bytes as one build alone on a cold cache fetches.
func TestParallelBuilds(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	ks := b.kickstart(t, nil)
	buildOnce := func(out, cache string) *builder.Manifest {
		if _, err := b.run(t, "build", "--ks", ks, "--iso", fx.DVD, "-o", out, "--format", "qcow2", "--accel", "tcg", "--memory", "1G",
			"--cpus", "1", "--disk-size", "3G", "--cache-dir", cache, "--inactivity", "3m"); err != nil {
			t.Error(err)
			return nil
		}
		return readManifest(t, out+".manifest.json")
	}
	var wg sync.WaitGroup
	ms := make([]*builder.Manifest, 2)
	for i := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms[i] = buildOnce(filepath.Join(b.dir, fmt.Sprintf("parallel-%d", i)), b.cache)
		}()
	}
	wg.Wait()
	if ms[0] == nil || ms[1] == nil {
		t.FailNow()
	}
	alone := buildOnce(filepath.Join(b.dir, "alone"), filepath.Join(b.dir, "cache-alone"))
	if alone == nil {
		t.FailNow()
	}
	if got := ms[0].UpstreamBytes + ms[1].UpstreamBytes; got != alone.UpstreamBytes {
		t.Errorf("two parallel builds fetched %d+%d bytes from the mirror; one build fetches %d", ms[0].UpstreamBytes, ms[1].UpstreamBytes, alone.UpstreamBytes)
	}
	for i, m := range ms {
		if !hasPackage(m, "custom-package-1") {
			t.Errorf("build %d: the manifest lacks custom-package-1", i)
		}
	}
}

// TestBuildFromISOURL builds from a TDL whose install is an ISO by URL
// with a sha256 checksum file, as Oz TDLs name them: kiln downloads the
// ISO into its cache, checks it, and installs from it.
func TestBuildFromISOURL(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	isoDir := t.TempDir()
	if err := os.Symlink(fx.DVD, filepath.Join(isoDir, "Rocky-9.5-x86_64-dvd.iso")); err != nil {
		t.Fatal(err)
	}
	sum, err := exec.Command("sha256sum", fx.DVD).Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(isoDir, "CHECKSUM"), []byte(strings.Fields(string(sum))[0]+"  Rocky-9.5-x86_64-dvd.iso\n"), 0o644)
	b.extra = map[int]string{b.mirrorPort + 1000: isoDir}
	isoURL := fmt.Sprintf("http://10.0.2.2:%d", b.mirrorPort+1000)
	tdl := filepath.Join(b.dir, "iso.tdl")
	os.WriteFile(tdl, []byte(`<template>
  <name>from-iso</name>
  <os>
    <name>Rocky</name>
    <version>9</version>
    <arch>x86_64</arch>
    <install type='iso'>
      <iso>`+isoURL+`/Rocky-9.5-x86_64-dvd.iso</iso>
      <sha256sum>`+isoURL+`/CHECKSUM</sha256sum>
    </install>
  </os>
</template>
`), 0o644)
	ks := b.kickstart(t, nil)
	out := filepath.Join(b.dir, "from-iso")
	if _, err := b.run(t, "build", "--tdl", tdl, "--ks", ks, "-o", out, "--format", "raw", "--accel", "tcg", "--memory", "1G", "--cpus", "1",
		"--disk-size", "3G", "--cache-dir", b.cache, "--inactivity", "2m"); err != nil {
		t.Fatal(err)
	}
	checkScenario(t, out+".raw")
	m := readManifest(t, out+".manifest.json")
	var isoIn *builder.File
	for i := range m.Inputs {
		if m.Inputs[i].Role == "iso" {
			isoIn = &m.Inputs[i]
		}
	}
	// The ISO is in the one cache, with the mirror's objects.
	if isoIn == nil || isoIn.SHA256 != strings.Fields(string(sum))[0] || !strings.HasPrefix(isoIn.Path, filepath.Join(b.cache, "files")+"/") {
		t.Errorf("the manifest's ISO input: %+v", isoIn)
	}
	if parts, _ := filepath.Glob(filepath.Join(b.cache, "files", "*.part")); len(parts) != 0 {
		t.Errorf("partial downloads left: %v", parts)
	}
}

// TestBuildCancel: Ctrl-C during the install stops the build with
// "cancelled" and exit 130, and leaves no work directory; a work directory
// whose build died is removed by the next build, one whose build is alive
// is not.
func TestBuildCancel(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	tmpl, _ := os.ReadFile("testdata/my-rocky9.ks")
	ks := filepath.Join(b.dir, "cancel.ks")
	os.WriteFile(ks, []byte(strings.NewReplacer("MIRROR", fmt.Sprintf("http://127.0.0.1:%d", b.mirrorPort), "FILES", fmt.Sprintf("http://127.0.0.1:%d", b.filesPort)).Replace(string(tmpl))), 0o644)
	outDir := filepath.Join(b.dir, "out")
	os.MkdirAll(outDir, 0o755)
	// A dead build's directory: a lock file nobody holds, and a disk.
	dead := filepath.Join(outDir, ".kiln-build-dead")
	os.MkdirAll(dead, 0o755)
	os.WriteFile(filepath.Join(dead, "lock"), nil, 0o600)
	os.WriteFile(filepath.Join(dead, "disk.raw"), []byte("partial"), 0o644)
	// A live one: its lock is held, by this test.
	live := filepath.Join(outDir, ".kiln-build-live")
	os.MkdirAll(live, 0o755)
	lf, err := os.OpenFile(filepath.Join(live, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(kiln(t), "--json", "build", "--ks", ks, "--iso", fx.DVD, "-o", filepath.Join(outDir, "c"), "--format", "raw",
		"--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache)
	stdout, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	installing := false
	for sc.Scan() {
		var ev builder.Event
		// The installer's first package: the VM is well under way.
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Event == "progress" && ev.Done > 0 {
			installing = true
			break
		}
	}
	if !installing {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the build never reached the install:\n%s", stderr.String())
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead build's work directory is still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live build's work directory was removed: %v", err)
	}
	cmd.Process.Signal(os.Interrupt)
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("kiln build after Ctrl-C: %v, want exit 130", err)
	}
	if !strings.Contains(stderr.String(), "kiln: cancelled") || strings.Contains(stderr.String(), "the install failed") {
		t.Errorf("kiln's last words after Ctrl-C:\n%s", stderr.String())
	}
	left, _ := filepath.Glob(filepath.Join(outDir, ".kiln-build-*"))
	if len(left) != 1 || left[0] != live {
		t.Errorf("work directories after the cancel: %v, want only the live one", left)
	}
	if _, err := os.Stat(filepath.Join(outDir, "c.raw")); err == nil {
		t.Errorf("a cancelled build wrote its image")
	}
}

// TestBuildISOOutFailsFast: an --iso-out that cannot be written (the ISO
// has no boot configuration to edit, though its kernel boots the build
// VM directly) fails the build before the install, with the remaster's
// error, and leaves no output.
func TestBuildISOOutFailsFast(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	tree := filepath.Join(t.TempDir(), "tree")
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", fx.BootISO, "-extract", "/", tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract: %v\n%s", err, out)
	}
	exec.Command("chmod", "-R", "u+w", tree).Run()
	for _, d := range []string{"isolinux", "EFI", "boot"} {
		os.RemoveAll(filepath.Join(tree, d))
	}
	noBoot := filepath.Join(b.dir, "no-boot-config.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-R", "-V", fixtures.DVDLabel, "-o", noBoot, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	ks := b.kickstart(t, nil)
	out := filepath.Join(b.dir, "fast")
	_, err := b.run(t, "build", "--ks", ks, "--iso", noBoot, "-o", out, "--format", "raw", "--iso-out", out+".iso",
		"--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache)
	if err == nil || !strings.Contains(err.Error(), "writing "+out+".iso") || !strings.Contains(err.Error(), "no isolinux, syslinux or GRUB configuration") {
		t.Fatalf("a build whose --iso-out cannot be written: %v", err)
	}
	// It stopped before the installer got anywhere.
	if strings.Contains(err.Error(), "kiln: install 1/") || strings.Contains(err.Error(), "the install failed") {
		t.Errorf("the build went on with the install:\n%v", err)
	}
	for _, p := range []string{out + ".raw", out + ".iso", out + ".manifest.json"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed build left %s", p)
		}
	}
}
