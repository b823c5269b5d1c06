package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// smallISO makes an installer-shaped ISO (a kernel and initrd where lorax
// puts them) with xorriso, enough for everything before the VM.
func smallISO(t *testing.T, label string) string {
	testutil.RequireTool(t, "xorriso")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "images/pxeboot"), 0o755)
	os.WriteFile(filepath.Join(tree, "images/pxeboot/vmlinuz"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(tree, "images/pxeboot/initrd.img"), []byte("initrd"), 0o644)
	iso := filepath.Join(dir, "in.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-o", iso, "-R", "-J", "-V", label, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso
}

// TestBuildInputs checks what kiln build refuses before any download or
// VM, with the exit code and a message naming the place.
func TestBuildInputs(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	testutil.RequireTool(t, "qemu-system-x86_64")
	iso := smallISO(t, "Rocky-9-5-x86_64-dvd")
	good := writeFile(t, "good.ks", "text\nurl --url=http://mirror.example/os/\nrootpw --lock\nautopart\npoweroff\n%packages\n@core\n%end\n")
	removed := writeFile(t, "removed.ks", "install\ntext\nrootpw --lock\nautopart\n")
	unreachable := func(line string) string {
		return writeFile(t, "unreachable.ks", "text\nrootpw --lock\nautopart\n"+line+"\n")
	}
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists")
	os.WriteFile(existing+".qcow2", []byte("keep me"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no output", []string{"build", "--ks", good, "--iso", iso}, 2, "-o OUT is required"},
		{"no input", []string{"build", "--iso", iso, "-o", filepath.Join(dir, "x")}, 2, "give --ks, --tdl or both"},
		{"removed command", []string{"build", "--ks", removed, "--iso", iso, "-o", filepath.Join(dir, "x")}, 3, "removed.ks:1:"},
		{"no source", []string{"build", "--ks", good, "-o", filepath.Join(dir, "x")}, 3, "--iso ISO|URL or --url TREE"},
		{"two sources", []string{"build", "--ks", good, "--iso", iso, "--url", "http://mirror.example/os/", "-o", filepath.Join(dir, "x")}, 3, "name one installer source"},
		{"missing ISO", []string{"build", "--ks", good, "--iso", "/nonexistent.iso", "-o", filepath.Join(dir, "x")}, 3, "/nonexistent.iso"},
		{"bad format", []string{"build", "--ks", good, "--iso", iso, "-o", filepath.Join(dir, "x"), "--format", "qcow3"}, 3, "--format qcow3"},
		{"compress without qcow2", []string{"build", "--ks", good, "--iso", iso, "-o", filepath.Join(dir, "x"), "--format", "raw", "--compress"}, 3, "--compress"},
		{"bad firmware", []string{"build", "--ks", good, "--iso", iso, "-o", filepath.Join(dir, "x"), "--firmware", "coreboot"}, 3, "--firmware coreboot"},
		{"bad memory", []string{"build", "--ks", good, "--iso", iso, "-o", filepath.Join(dir, "x"), "--memory", "lots"}, 2, "--memory"},
		{"iso boot from a tree", []string{"build", "--ks", good, "--url", "http://mirror.example/os/", "-o", filepath.Join(dir, "x"), "--boot", "iso"}, 3, "need an installer ISO"},
		{"existing output", []string{"build", "--ks", good, "--iso", iso, "-o", existing}, 3, "exists; use --force"},
		{"nfs source", []string{"build", "--ks", unreachable("nfs --server=nfs.example --dir=/os"), "--iso", iso, "-o", filepath.Join(dir, "x")}, 3, "unreachable.ks:4: nfs"},
		{"nfs repo", []string{"build", "--ks", unreachable("repo --name=r --baseurl=nfs://nfs.example/r"), "--iso", iso, "-o", filepath.Join(dir, "x")}, 3, "unreachable.ks:4: nfs nfs://nfs.example/r: NFS cannot be served"},
		{"ftp repo", []string{"build", "--ks", unreachable("repo --name=r --baseurl=ftp://ftp.example/r/"), "--iso", iso, "-o", filepath.Join(dir, "x")}, 3, "unreachable.ks:4: other ftp://ftp.example/r/: ftp URLs cannot"},
		{"container", []string{"build", "--ks", unreachable("ostreecontainer --url=quay.io/example/os:9"), "--iso", iso, "-o", filepath.Join(dir, "x")}, 3, "unreachable.ks:4: registry quay.io/example/os:9: a container registry"},
		{"bootc", []string{"build", "--ks", writeFile(t, "bootc.ks", "#version=RHEL10\ntext\nrootpw --lock\nautopart\nbootc --source-imgref=registry:quay.io/example/os:10\n"), "--iso", iso, "-o", filepath.Join(dir, "x")}, 3, "bootc.ks:5: registry registry:quay.io/example/os:10: a container registry"},
		{"unreachable include", []string{"build", "--ks", unreachable("%include http://127.0.0.1:1/part.ks"), "--iso", iso, "-o", filepath.Join(dir, "x")}, 3, "unreachable.ks:4"},
		{"mirrorlist offline", []string{"build", "--ks", unreachable("repo --name=r --mirrorlist=http://lists.example/r"), "--iso", iso, "-o", filepath.Join(dir, "x"), "--offline"}, 3, "unreachable.ks:4: mirrorlist http://lists.example/r: --offline"},
		{"no output directory", []string{"build", "--ks", good, "--iso", iso, "-o", "/nonexistent/dir/x"}, 3, "its directory does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := kiln(t, "", tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
	if b, _ := os.ReadFile(existing + ".qcow2"); string(b) != "keep me" {
		t.Errorf("an existing output was changed: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("refused builds left files behind: %v", entries)
	}
}

// TestBuildDryRun checks the plan a dry run prints: the QEMU command
// line a build would run, with the guest fenced in, and the notices.
func TestBuildDryRun(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	testutil.RequireTool(t, "qemu-system-x86_64")
	iso := smallISO(t, "Rocky 9 dvd")
	ks := writeFile(t, "k.ks", "text\nurl --url=http://mirror.example/os/\nrootpw --plaintext s3cret\nautopart\n%packages\n@core\n%end\n"+
		"%post\ncurl -o /etc/a http://files.example:8080/a\n%end\n")
	outDir := t.TempDir()
	code, out, errOut := kiln(t, "", "build", "--ks", ks, "--iso", iso, "-o", filepath.Join(outDir, "x"), "--format", "qcow2,raw", "--dry-run", "--accel", "tcg")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	exe, _ := os.Executable()
	testutil.Golden(t, "dry-run.txt", []byte(strings.NewReplacer(iso, "IN.iso", filepath.Dir(ks), "KSDIR", outDir, "OUTDIR", exe, "KILN").Replace(out)), *update)
	for _, want := range []string{
		`inst.stage2=hd:LABEL=Rocky\x209\x20dvd inst.ks=file:/ks.cfg`,
		"restrict=on", "guestfwd=tcp:10.0.2.100:PORT", "-accel tcg",
		"notice:   the kickstart has no poweroff",
		"install=http://mirror.example/os/", "script-files.example-8080=http://files.example:8080/",
		`k.ks:2: url http://mirror.example/os/: proxied as "install"`,
		".qcow2", ".raw", ".manifest.json",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the plan lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, "s3cret") {
		t.Errorf("the root password reached the output")
	}
	code, out, _ = kiln(t, "", "--json", "build", "--ks", ks, "--iso", iso, "-o", filepath.Join(t.TempDir(), "x"), "--dry-run")
	var ev struct {
		Event string
		Plan  struct{ Cmdline []string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &ev) != nil || ev.Event != "plan" || len(ev.Plan.Cmdline) == 0 {
		t.Errorf("--json --dry-run: exit %d\n%s", code, out)
	}
}

func TestOzInstallFlags(t *testing.T) {
	tdl := writeFile(t, "t.tdl", "<template><name>t</name><os><name>Rocky-9</name><version>9</version><arch>x86_64</arch><install type='url'><url>http://m.example/os/</url></install></os></template>")
	ks := writeFile(t, "k.ks", "text\n")
	cfg := writeFile(t, "oz.cfg", "[libvirt]\nimage_type = qed\n")
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"-u with a file", []string{"oz-install", "-d3", "-u", ks, tdl}, 2, "-u takes no file: it means customize. To use " + ks + " as the kickstart, pass -a"},
		{"-i without -g", []string{"oz-install", "-i", "/tmp/x.xml", tdl}, 3, "-i is only valid with -g"},
		{"relative -s", []string{"oz-install", "-s", "out.dsk", tdl}, 2, "must be an absolute path"},
		{"bad image_type", []string{"oz-install", "-c", cfg, tdl}, 3, "oz.cfg:2: image_type = qed"},
		{"no TDL", []string{"oz-install"}, 2, "name one TDL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := kiln(t, "", tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

// TestOzInstallDebian runs oz-install on an Oz Debian TDL: -a is the
// preseed, and the TDL's url is d-i's netboot directory, whose
// debian-installer/amd64/linux kiln fetches through its proxy, as Oz
// fetches it. The netboot server here has no kernel, so the build stops
// there, having asked for it at Oz's path.
func TestOzInstallDebian(t *testing.T) {
	testutil.RequireTool(t, "qemu-system-x86_64")
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		http.NotFound(w, r)
	}))
	defer srv.Close()
	netboot := srv.URL + "/debian/dists/bookworm/main/installer-amd64/current/images/netboot/"
	tdl := writeFile(t, "debian.tdl", "<template><name>deb12</name><os><name>Debian</name><version>12</version><arch>x86_64</arch>"+
		"<install type='url'><url>"+netboot+"</url></install></os><packages><package name='curl'/></packages></template>")
	pre := writeFile(t, "debian.cfg", "d-i mirror/http/hostname string "+strings.TrimPrefix(srv.URL, "http://")+"\nd-i mirror/http/directory string /debian\n")
	disk := filepath.Join(t.TempDir(), "deb12.dsk")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	code, out, errOut := kiln(t, "", "oz-install", "-a", pre, "-s", disk, tdl)
	if code == 0 {
		t.Fatalf("oz-install succeeded with no kernel to boot:\n%s%s", out, errOut)
	}
	want := "/debian/dists/bookworm/main/installer-amd64/current/images/netboot/debian-installer/amd64/linux"
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(asked, want) {
		t.Errorf("kiln asked for %q, not Oz's %s:\n%s", asked, want, errOut)
	}
	if !strings.Contains(errOut, "linux") {
		t.Errorf("the error does not name the kernel it could not fetch:\n%s", errOut)
	}
	if _, err := os.Stat(disk); err == nil {
		t.Error("a failed build left the disk")
	}
	code, _, errOut = kiln(t, "", "oz-install", "-s", disk, tdl)
	if code != 2 || !strings.Contains(errOut, "is a Debian TDL: give its preseed with -a") {
		t.Errorf("without -a: exit %d\n%s", code, errOut)
	}
}

func TestPreseedValidate(t *testing.T) {
	good := writeFile(t, "good.cfg", "d-i mirror/http/hostname string deb.example.org\nd-i a/b bool true\n")
	bad := writeFile(t, "bad.cfg", "d-i mirror/http/hostname string deb.example.org\nd-i broken\n")
	deb := writeFile(t, "d.tdl", "<template><name>d</name><os><name>Debian</name><version>12</version><arch>x86_64</arch><install type='url'><url>http://deb.example.org/netboot/</url></install></os></template>")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"preseed", "validate", good}, 0, good + ": valid preseed, 1 selections, mirror http://deb.example.org/debian/"},
		{[]string{"preseed", "validate", good}, 0, `good.cfg:2: unknown type "bool"; debconf skips the line`},
		{[]string{"preseed", "validate", bad, good}, 3, bad + ":2: parse error"},
		{[]string{"tdl", "validate", deb}, 0, deb + ": valid TDL for Debian 12 (d-i, with a preseed)"},
	} {
		code, out, errOut := kiln(t, "", tt.args...)
		if code != tt.code || !strings.Contains(out+errOut, tt.want) {
			t.Errorf("%v: exit %d, want %d; output lacks %q:\n%s%s", tt.args, code, tt.code, tt.want, out, errOut)
		}
	}
}
