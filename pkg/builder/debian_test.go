package builder

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/preseed"
	"github.com/kiln-build/kiln/pkg/tdl"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, name, got, *update)
}

const userPreseed = `# the user's own
d-i mirror/country string manual
d-i mirror/http/hostname string deb.example.org
d-i mirror/http/directory string /debian
d-i mirror/http/proxy string http://proxy.example:3128/
d-i passwd/root-password password s3cret
d-i passwd/root-password-again password s3cret
d-i preseed/late_command string \
  wget -O /target/etc/motd @KILN_FILES@/motd; \
  in-target wget -O /root/tool http://files.example/tools/tool
`

// TestServePreseed pins the preseed a Debian build serves: the proxy as
// d-i's mirror, the files and --mirror URLs rewritten in the late command,
// the log port, the report, the restore of apt's sources, and the
// poweroff; the user's preseed is not changed, and Debian's own reader
// accepts the result.
func TestServePreseed(t *testing.T) {
	p, err := preseed.Parse("user.cfg", []byte(userPreseed))
	if err != nil {
		t.Fatal(err)
	}
	netboot := t.TempDir()
	os.WriteFile(filepath.Join(netboot, "linux"), nil, 0o644)
	os.WriteFile(filepath.Join(netboot, "initrd.gz"), nil, 0o644)
	o := Options{Preseed: p, PreseedPath: "user.cfg", Netboot: netboot, Output: filepath.Join(t.TempDir(), "out"), FilesDir: t.TempDir(),
		Mirrors: map[string]string{"tools": "http://files.example/tools/"}}
	b := &builder{o: o, manifest: &Manifest{}}
	if err := b.checkInputs(); err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := ksserve.New(ksserve.Config{Mirrors: b.upstreamsCache, Token: "TOKEN", Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	served := b.servePreseed(srv, "http://10.0.2.100:8080")
	golden(t, "served-preseed.cfg", served)
	if got := string(p.Render()); got != userPreseed {
		t.Errorf("the user's preseed changed:\n%s", got)
	}
	var notices []string
	for _, n := range debianNotices(p) {
		if n.text != "" {
			notices = append(notices, n.text)
		}
	}
	if len(notices) != 2 {
		t.Errorf("notices %q, want the services and the poweroff", notices)
	}
	if _, err := preseed.Parse("served.cfg", served); err != nil {
		t.Errorf("kiln cannot read its own served preseed: %v", err)
	}
	if tool, err := exec.LookPath("debconf-set-selections"); err == nil {
		f := filepath.Join(t.TempDir(), "served.cfg")
		os.WriteFile(f, served, 0o600)
		if out, err := exec.Command(tool, "--checkonly", f).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("debconf-set-selections --checkonly refuses the served preseed: %v\n%s", err, out)
		}
	}
	if strings.Contains(string(served), "files.example/tools/tool") {
		t.Error("the late command still fetches from the upstream, not the proxy")
	}
}

// TestDebianScreen reads d-i's dialog back from a serial log it drew on
// (testdata/di-serial.log: d-i 12 asking whether to go on without a
// default route, as it did on QEMU's restricted user network before kiln
// answered it).
func TestDebianScreen(t *testing.T) {
	screen := debianScreen(filepath.Join("testdata", "di-serial.log"))
	for _, want := range []string{"[!!] Configure the network", "no default", "Continue without a default route?", "<Go Back>"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the screen has no %q:\n%s", want, screen)
		}
	}
	if strings.Contains(screen, "\x1b") {
		t.Errorf("escape sequences remain:\n%q", screen)
	}
}

// TestDebianTDL: with a Debian TDL, as oz-install -u gives it, the TDL's
// url is the netboot directory and its packages join pkgsel/include; the
// caller's preseed is not changed.
func TestDebianTDL(t *testing.T) {
	p, err := preseed.Parse("user.cfg", []byte("d-i mirror/http/hostname string deb.example.org\nd-i pkgsel/include string openssh-server\n"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := tdl.Parse([]byte("<template><name>d</name><os><name>Debian</name><version>12</version><arch>x86_64</arch>" +
		"<install type='url'><url>http://deb.example.org/debian/dists/bookworm/main/installer-amd64/current/images/netboot/</url></install></os>" +
		"<packages><package name='curl'/><package name='vim'/></packages></template>"))
	if err != nil {
		t.Fatal(err)
	}
	b := &builder{o: Options{Preseed: p, TDL: tmpl, Output: filepath.Join(t.TempDir(), "out")}, manifest: &Manifest{}}
	if err := b.checkInputs(); err != nil {
		t.Fatal(err)
	}
	if want := "http://deb.example.org/debian/dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/"; b.o.Netboot != want {
		t.Errorf("netboot %q, want %q", b.o.Netboot, want)
	}
	if got := b.o.Preseed.Value("pkgsel/include"); got != "openssh-server curl vim" {
		t.Errorf("pkgsel/include = %q", got)
	}
	if got := p.Value("pkgsel/include"); got != "openssh-server" {
		t.Errorf("the caller's preseed changed: %q", got)
	}
	if b.upstreamsCache[netbootMirror] != b.o.Netboot {
		t.Errorf("the netboot URL is not an upstream: %v", b.upstreamsCache)
	}
}

// TestPlanGolden pins what --dry-run prints for a build from an install
// tree and for a Debian build: the plan and its QEMU command line.
func TestPlanGolden(t *testing.T) {
	netboot := t.TempDir()
	os.WriteFile(filepath.Join(netboot, "linux"), nil, 0o644)
	os.WriteFile(filepath.Join(netboot, "initrd.gz"), nil, 0o644)
	out := filepath.Join(t.TempDir(), "out")
	p, err := preseed.Parse("user.cfg", []byte(userPreseed))
	if err != nil {
		t.Fatal(err)
	}
	ks := kickstart.Parse("k.ks", []byte("text\nrootpw --lock\nautopart\n"), kickstart.Options{Version: kickstart.RHEL9})
	const rocky = "http://mirror.example/rocky/9/isos/x86_64/Rocky-9.5-x86_64-dvd.iso"
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"plan-tree.json", Options{Kickstart: ks, TreeURL: "http://mirror.example/rocky/9/BaseOS/x86_64/os/", Output: out}},
		{"plan-debian.json", Options{Preseed: p, PreseedPath: "user.cfg", Netboot: "http://deb.example.org/debian/dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/", Output: out}},
		// The boot modes from an ISO: its kernel booted directly, the ISO
		// remastered and booted as a CD, and iPXE from kiln's server.
		{"plan-iso.json", Options{Kickstart: ks, ISO: rocky, Output: out}},
		{"plan-boot-iso.json", Options{Kickstart: ks, ISO: rocky, Boot: "iso", Output: out}},
		{"plan-boot-pxe.json", Options{Kickstart: ks, ISO: rocky, Boot: "pxe", Output: out, Formats: []string{"raw", "vhd"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.RelayExe, tc.o.Accel = "/usr/bin/kiln", "tcg"
			plan, err := Plan(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			js, _ := json.MarshalIndent(plan, "", "  ")
			golden(t, tc.name, []byte(strings.ReplaceAll(string(js), filepath.Dir(out), "OUTDIR")+"\n"))
		})
	}
}

// TestDebianPackages joins the target's dpkg-query report with the .debs
// the proxy served: the pool's file name has the version without its
// epoch.
func TestDebianPackages(t *testing.T) {
	st := ksserve.Stats{Objects: []ksserve.ObjectRecord{
		{Path: "pool/main/a/apt/apt_2.6.1_amd64.deb", SHA256: strings.Repeat("a", 64)},
		{Path: "pool/main/a/attr/libattr1_2.5.1-4_amd64.deb", SHA256: strings.Repeat("b", 64)},
		{Path: "pool/main/b/base-files/base-files_12.4+deb12u11_amd64.udeb", SHA256: strings.Repeat("c", 64)},
	}}
	report := "libattr1\t1:2.5.1-4\tamd64\napt\t2.6.1\tamd64\nbase-files\t12.4+deb12u11\tamd64\nbroken line\n"
	got := debianPackages([]byte(report), st, "")
	want := []Package{
		{Name: "apt", Version: "2.6.1", Arch: "amd64", SHA256: strings.Repeat("a", 64)},
		{Name: "base-files", Version: "12.4+deb12u11", Arch: "amd64"},
		{Name: "libattr1", Version: "1:2.5.1-4", Arch: "amd64", SHA256: strings.Repeat("b", 64)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("package %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
