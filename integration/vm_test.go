// Package integration holds kiln's end-to-end tests: they boot the test
// installer (integration/testinstaller) in QEMU and check what it wrote.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/integration/fixtures"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/initrd"
	"github.com/kiln-build/kiln/qemu"
)

// The fixtures (the test installer's kernel and initramfs, the mirror and
// the install media) are built once, cached across runs, and shared by
// every boot.
var (
	setupOnce sync.Once
	setupErr  error
	fx        *fixtures.Set
	kernel    string
	installer string // the initramfs
	mirrorDir string
)

func setup(t testing.TB) {
	t.Helper()
	for _, tool := range append([]string{"qemu-system-x86_64", "debugfs", "sgdisk", "e2fsck", "xfs_repair", "fsck.vfat", "mdir"}, fixtures.Tools...) {
		testutil.RequireTool(t, tool)
	}
	for _, f := range append([]string{"/bin/busybox"}, fixtures.MediaFiles...) {
		testutil.RequireFile(t, f)
	}
	setupOnce.Do(func() {
		cache, err := fixtures.DefaultCache()
		if err != nil {
			setupErr = err
			return
		}
		if fx, setupErr = fixtures.Load(cache, "./testinstaller"); setupErr == nil {
			kernel, installer, mirrorDir = fx.Kernel, fx.Initrd, fx.Mirror
		}
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}
}

// servers are the test's loopback mirror, file server and kickstart
// server; the guest reaches them through QEMU's user network at 10.0.2.2.
type servers struct {
	mirror, files, ks string // guest-side base URLs
	kickstart         []byte
}

func serve(t *testing.T, handler http.Handler) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("http://10.0.2.2:%d", l.Addr().(*net.TCPAddr).Port)
}

const appConf = "# app.conf from the file server\nlisten = 8080\n"
const setupSh = "#!/bin/sh\necho configured\n"

func startServers(t *testing.T, ksTemplate string) *servers {
	s := &servers{}
	s.mirror = serve(t, http.FileServer(http.Dir(mirrorDir)))
	s.files = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/configs/app.conf":
			w.Write([]byte(appConf))
		case "/scripts/setup.sh":
			w.Write([]byte(setupSh))
		default:
			http.NotFound(w, r)
		}
	}))
	s.kickstart = []byte(strings.NewReplacer("MIRROR", s.mirror, "FILES", s.files).Replace(ksTemplate))
	s.ks = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(s.kickstart) }))
	return s
}

// boot runs the installer with cmdline against a fresh disk and returns
// the disk's path and the run's result.
func boot(t *testing.T, cmdline string) (string, *qemu.Result, error) {
	return bootWith(t, installer, cmdline, time.Minute)
}

func bootWith(t *testing.T, initrdPath, cmdline string, inactivity time.Duration, extra ...qemu.Option) (string, *qemu.Result, error) {
	disk := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 3<<30); err != nil {
		t.Fatal(err)
	}
	opts := append([]qemu.Option{qemu.WithMemory(1024), qemu.WithCPUs(1), qemu.WithAccel("tcg"),
		qemu.WithKernel(kernel, initrdPath, "console=ttyS0 panic=-1 inst.text "+cmdline),
		qemu.WithDisk(qemu.Disk{Path: disk, Format: "raw", Unsafe: true}),
		qemu.WithUserNet(qemu.UserNet{})}, extra...)
	cfg, err := qemu.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qemu.Run(context.Background(), cfg, qemu.RunOptions{TempDir: t.TempDir(), Keep: true, Timeout: 10 * time.Minute, Inactivity: inactivity})
	return disk, res, err
}

// inspect answers one request about the installed system on disk,
// whatever its layout and file systems: "cat PATH", "stat PATH" (the
// mode, as debugfs prints it) or "ls DIR".
func inspect(t *testing.T, disk, request string) string {
	t.Helper()
	im := openImage(t, disk)
	op, p, _ := strings.Cut(request, " ")
	switch op {
	case "cat":
		return im.read(p)
	case "stat":
		return fmt.Sprintf("Mode:  %04o", im.mode(p))
	case "ls":
		return strings.Join(im.ls(p), "\n")
	}
	t.Fatalf("inspect: unknown request %q", request)
	return ""
}

func TestInstallScenario(t *testing.T) {
	setup(t)
	tmpl, err := os.ReadFile("testdata/my-rocky9.ks")
	if err != nil {
		t.Fatal(err)
	}
	s := startServers(t, string(tmpl))
	disk, res, err := boot(t, "inst.ks="+s.ks+"/ks.cfg")
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(res))
	}
	t.Logf("installed in %v", res.Duration)
	checkScenario(t, disk)
}

// checkScenario checks a disk the reference scenario was installed on:
// a clean file system with what the kickstart's packages and %post put
// there.
func checkScenario(t *testing.T, disk string) {
	t.Helper()
	openImage(t, disk).fsck()
	for path, want := range map[string]string{
		"/etc/app.conf":             appConf,
		"/usr/local/bin/setup.sh":   setupSh,
		"/opt/custom/share/one.txt": "custom package one\n",
		"/etc/custom/two.conf":      "two = 2\n",
	} {
		if got := inspect(t, disk, "cat "+path); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", path, got, want)
		}
	}
	if st := inspect(t, disk, "stat /usr/local/bin/setup.sh"); !strings.Contains(st, "Mode:  0755") {
		t.Errorf("setup.sh is not 0755:\n%s", st)
	}
	if pw := inspect(t, disk, "cat /etc/passwd"); !strings.Contains(pw, "customuser:") {
		t.Errorf("no customuser in /etc/passwd:\n%s", pw)
	}
	if sh := inspect(t, disk, "cat /etc/shadow"); !regexp.MustCompile(`(?m)^root:\$6\$[^:]+\$[^:]{86}:`).MatchString(sh) {
		t.Errorf("no SHA-512 hash for root in /etc/shadow:\n%s", sh)
	}
	wants := inspect(t, disk, "ls /etc/systemd/system/multi-user.target.wants")
	for _, unit := range []string{"httpd.service", "nginx.service"} {
		if !strings.Contains(wants, unit) {
			t.Errorf("%s is not enabled:\n%s", unit, wants)
		}
	}
	if log := inspect(t, disk, "cat /root/ks-post.log"); strings.Contains(log, "File does not exist") {
		t.Errorf("no /root/ks-post.log:\n%s", log)
	}
	for _, p := range []string{"/root/anaconda-ks.cfg", "/root/original-ks.cfg"} {
		if got := inspect(t, disk, "cat "+p); !strings.Contains(got, "custom-package-1") {
			t.Errorf("%s:\n%s", p, got)
		}
	}
}

// tail is the end of a failed run's serial log, for the failure message.
func tail(res *qemu.Result) string {
	if res == nil {
		return ""
	}
	b, _ := os.ReadFile(res.SerialLog)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "serial log (end):\n" + string(b)
}

// TestInstallFailures boots each way an install fails, and checks that
// the installer's error line reaches the virtio-serial log and that kiln's
// supervisor ends the run on it, as it would with Anaconda.
func TestInstallFailures(t *testing.T) {
	setup(t)
	tmpl, err := os.ReadFile("testdata/my-rocky9.ks")
	if err != nil {
		t.Fatal(err)
	}
	base := string(tmpl)
	for _, tc := range []struct {
		name string
		ks   string
		want string // on the installer log
	}{
		{"missing package", strings.Replace(base, "custom-package-2\n", "custom-package-2\nno-such-package\n", 1),
			"packaging: Missed: NoSuchPackage: no-such-package"},
		{"unreachable repo", strings.Replace(base, "--baseurl=MIRROR/custom-rpms/", "--baseurl=http://10.0.2.2:1/custom-rpms/", 1),
			"Failed to set up repo custom"},
		{"bad partitioning", strings.Replace(base, "autopart\n", "", 1),
			"storage configuration failed"},
		{"post --erroronfail", strings.Replace(base, "%post --log=/root/ks-post.log", "%post --erroronfail\nexit 3\n%end\n%post --log=/root/ks-post.log", 1),
			"Error code exit status 3 running the kickstart script"},
		{"unparsable kickstart", strings.Replace(base, "text\n", "text\nnosuchcommand --now\n", 1),
			"The following error was found while parsing the kickstart configuration file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ks == base {
				t.Fatal("the test's edit did not apply")
			}
			s := startServers(t, tc.ks)
			_, res, err := boot(t, "inst.ks="+s.ks+"/ks.cfg")
			if err == nil {
				t.Fatalf("the install succeeded")
			}
			if res.Outcome != qemu.OutcomeInstallerError {
				t.Fatalf("outcome %s (%v), want %s\n%s", res.Outcome, err, qemu.OutcomeInstallerError, tail(res))
			}
			ana, _ := os.ReadFile(res.AnacondaLog)
			if !strings.Contains(string(ana), tc.want) {
				t.Errorf("the installer log lacks %q:\n%s", tc.want, ana)
			}
			t.Logf("stopped after %v on %q", res.Duration, res.Detail)
		})
	}
}

// TestKickstartInInitrd installs from a kickstart appended to the initrd
// as a cpio, the way kiln delivers one without a server, and checks that
// without poweroff the installer waits as Anaconda does: kiln sees a hang.
func TestKickstartInInitrd(t *testing.T) {
	setup(t)
	tmpl, err := os.ReadFile("testdata/my-rocky9.ks")
	if err != nil {
		t.Fatal(err)
	}
	s := startServers(t, strings.Replace(string(tmpl), "poweroff\n", "", 1))
	src, err := os.Open(installer)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	withKS := filepath.Join(t.TempDir(), "initrd.img")
	dst, err := os.Create(withKS)
	if err != nil {
		t.Fatal(err)
	}
	ks := initrd.Entry{Name: "ks.cfg", Mode: 0o644, Content: bytes.NewReader(s.kickstart), Size: int64(len(s.kickstart))}
	if _, err := initrd.Append(dst, src, []initrd.Entry{ks}, 0); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	disk, res, err := bootWith(t, withKS, "inst.ks=file:/ks.cfg", 15*time.Second)
	if err == nil || res.Outcome != qemu.OutcomeInactivity {
		t.Fatalf("outcome %s (%v), want %s: with no poweroff the installer must wait\n%s", res.Outcome, err, qemu.OutcomeInactivity, tail(res))
	}
	ana, _ := os.ReadFile(res.AnacondaLog)
	if !strings.Contains(string(ana), "Press ENTER to quit") {
		t.Errorf("the installer log lacks the final prompt:\n%s", ana)
	}
	if got := inspect(t, disk, "cat /etc/app.conf"); !strings.Contains(got, appConf) {
		t.Errorf("/etc/app.conf: %q", got)
	}
}

// mediaISO makes install media labelled label that carry the kickstart
// as /ks.cfg, with no repositories: the boot ISO's content.
func mediaISO(t *testing.T, label string, ks []byte) string {
	dir := t.TempDir()
	iso := filepath.Join(dir, label+".iso")
	m := fixtures.Media{Layout: "el9", Label: label, Release: "9.5", Kernel: kernel, Initrd: installer, Kickstart: ks}
	if err := m.Build(filepath.Join(dir, "work"), iso); err != nil {
		t.Fatal(err)
	}
	return iso
}

// TestKickstartOnMedia finds the kickstart on a CD: by label, as
// inst.ks=hd:LABEL= with inst.stage2= naming the same media; by the
// OEMDRV rule with no inst.ks at all; and a stage2 label that no device
// has stops in dracut's emergency mode, a hang to kiln.
func TestKickstartOnMedia(t *testing.T) {
	setup(t)
	tmpl, err := os.ReadFile("testdata/my-rocky9.ks")
	if err != nil {
		t.Fatal(err)
	}
	const dvd = "Rocky-9-5-x86_64-dvd"
	for _, tc := range []struct {
		name, label, cmdline string
	}{
		{"hd label", dvd, "inst.stage2=hd:LABEL=" + dvd + " inst.ks=hd:LABEL=" + strings.ReplaceAll(dvd, "-", "\\x2d") + ":/ks.cfg"},
		{"cdrom", dvd, "inst.stage2=hd:LABEL=" + dvd + " inst.ks=cdrom:/ks.cfg"},
		{"OEMDRV", "OEMDRV", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServers(t, string(tmpl))
			iso := mediaISO(t, tc.label, s.kickstart)
			disk, res, err := bootWith(t, installer, tc.cmdline, time.Minute, qemu.WithCDROM(iso))
			if err != nil {
				t.Fatalf("%v\n%s", err, tail(res))
			}
			if got := inspect(t, disk, "cat /etc/app.conf"); !strings.Contains(got, appConf) {
				t.Errorf("/etc/app.conf: %q", got)
			}
		})
	}
	t.Run("no such label", func(t *testing.T) {
		s := startServers(t, string(tmpl))
		iso := mediaISO(t, dvd, s.kickstart)
		_, res, err := bootWith(t, installer, "inst.stage2=hd:LABEL=Rocky-9-4-x86_64-dvd inst.ks=cdrom:/ks.cfg", 30*time.Second, qemu.WithCDROM(iso))
		if err == nil || res.Outcome != qemu.OutcomeInactivity {
			t.Fatalf("outcome %s (%v), want %s\n%s", res.Outcome, err, qemu.OutcomeInactivity, tail(res))
		}
		ana, _ := os.ReadFile(res.AnacondaLog)
		if !strings.Contains(string(ana), "/dev/disk/by-label/Rocky-9-4-x86_64-dvd does not exist") {
			t.Errorf("the log lacks dracut's warning:\n%s", ana)
		}
	})
}
