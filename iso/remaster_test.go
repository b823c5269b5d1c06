package iso

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/fat"
)

const testKS = "text\nlang en_US.UTF-8\nrootpw --lock\nautopart\npoweroff\n"

func remasterFixture(t *testing.T, o Options) (string, *Report) {
	t.Helper()
	_, image := fixture(t)
	out := filepath.Join(t.TempDir(), "out.iso")
	if o.Time.IsZero() {
		o.Time = time.Unix(1700000000, 0)
	}
	rep, err := Remaster(image, out, o)
	if err != nil {
		t.Fatalf("Remaster: %v", err)
	}
	return out, rep
}

func TestRemaster(t *testing.T) {
	for _, tool := range []string{"isoinfo", "checkisomd5", "fsck.fat"} {
		testutil.RequireTool(t, tool)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	os.MkdirAll(filepath.Join(repo, "Packages"), 0o755)
	os.WriteFile(filepath.Join(repo, "Packages", "custom-package-1-1.0-1.x86_64.rpm"), bytes.Repeat([]byte("rpm"), 5000), 0o644)
	os.WriteFile(filepath.Join(repo, "repomd.xml"), []byte("<repomd/>"), 0o644)
	out, rep := remasterFixture(t, Options{Kickstart: []byte(testKS), Timeout: 5, AppendArgs: []string{"console=ttyS0"},
		Add: []AddFile{{Src: repo, Dest: "custom"}}})
	want := "inst.ks=hd:LABEL=Rocky-9-5-x86_64-dvd:/ks.cfg"
	if rep.KickstartArg != want || !rep.MD5 {
		t.Errorf("report %+v", rep)
	}
	r := open(t, out)
	ks, err := r.Stat("ks.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(ks.Open()); string(b) != testKS || ks.Mode.Perm() != 0o644 {
		t.Errorf("ks.cfg = %q mode %v", b, ks.Mode)
	}
	// Every view shows the new files.
	for _, args := range [][]string{{"-R"}, {"-J"}, {}} {
		list := run(t, "isoinfo", append([]string{"-l", "-i", out}, args...)...)
		for _, name := range []string{"ks.cfg", "custom", "custom-package-1-1.0-1.x86_64.rpm"} {
			if len(args) == 0 {
				name = strings.ToUpper(name)
				if name == "CUSTOM-PACKAGE-1-1.0-1.X86_64.RPM" {
					name = "CUSTOM_PACKAGE_1_1_0_1_X86.RPM;1"
				}
				if name == "KS.CFG" {
					name = "KS.CFG;1"
				}
			}
			if !strings.Contains(list, name) {
				t.Errorf("isoinfo -l %v does not list %s:\n%s", args, name, list)
			}
		}
	}
	for _, p := range []string{"/ks.cfg", "/custom/Packages/custom-package-1-1.0-1.x86_64.rpm", "/custom/repomd.xml"} {
		x := filepath.Join(t.TempDir(), "x")
		run(t, "xorriso", "-osirrox", "on", "-indev", out, "-extract", p, x)
		got, _ := os.ReadFile(x)
		var src []byte
		if p == "/ks.cfg" {
			src = []byte(testKS)
		} else {
			src, _ = os.ReadFile(filepath.Join(repo, strings.TrimPrefix(p, "/custom/")))
		}
		if !bytes.Equal(got, src) {
			t.Errorf("xorriso extracts %s as %d bytes, want %d", p, len(got), len(src))
		}
	}
	// The boot configurations, in the tree and in the EFI image.
	in, err := Inspect(mustOpen(t, out))
	if err != nil {
		t.Fatal(err)
	}
	if len(in.BootConfigs) != 3 {
		t.Fatalf("boot configs %+v", in.BootConfigs)
	}
	for _, c := range in.BootConfigs {
		for _, l := range c.Cmdlines {
			if !strings.Contains(l, want) || !strings.Contains(l, "console=ttyS0") || strings.Count(l, "inst.ks=") != 1 {
				t.Errorf("%s %s: %q", c.Image, c.Path, l)
			}
		}
	}
	// The EFI image is still a clean FAT file system.
	esp, _ := r.Stat("images/efiboot.img")
	espFile := filepath.Join(t.TempDir(), "efiboot.img")
	data, _ := io.ReadAll(esp.Open())
	os.WriteFile(espFile, data, 0o644)
	if outp, err := exec.Command("fsck.fat", "-n", espFile).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, outp)
	}
	if fsys, err := fat.NewReader(bytes.NewReader(data), int64(len(data))); err == nil {
		cfg, _ := fsys.ReadFile("EFI/BOOT/grub.cfg")
		if !strings.Contains(string(cfg), want) {
			t.Errorf("efiboot.img grub.cfg:\n%s", cfg)
		}
	}
	if outp, err := exec.Command("checkisomd5", out).CombinedOutput(); err != nil {
		t.Errorf("checkisomd5: %v\n%s", err, outp)
	}
	// El Torito is as it was; the system area only grew.
	_, image := fixture(t)
	before := run(t, "xorriso", "-indev", image, "-report_el_torito", "plain")
	after := run(t, "xorriso", "-indev", out, "-report_el_torito", "plain")
	if stripVolatile(before) != stripVolatile(after) {
		t.Errorf("El Torito report changed:\n%s\n---\n%s", before, after)
	}
	sa, _ := ReadSystemArea(mustOpen(t, out))
	if sa.GPT == nil || !sa.GPT.HeaderCRCOK || !sa.GPT.EntriesCRCOK {
		t.Errorf("GPT after remaster: %+v", sa.GPT)
	}
	// The source's own boot pieces are untouched: the boot loader and the
	// GPT's identities.
	src := open(t, image)
	for _, p := range []string{"isolinux/isolinux.bin"} {
		a, _ := src.Stat(p)
		b, _ := r.Stat(p)
		da, _ := io.ReadAll(a.Open())
		db, _ := io.ReadAll(b.Open())
		if !bytes.Equal(da, db) || a.Extents[0] != b.Extents[0] {
			t.Errorf("%s changed", p)
		}
	}
	saSrc, _ := ReadSystemArea(mustOpen(t, image))
	if saSrc.GPT.DiskGUID != sa.GPT.DiskGUID || len(saSrc.Partitions) != len(sa.Partitions) {
		t.Errorf("GPT identity changed: %s vs %s", saSrc.GPT.DiskGUID, sa.GPT.DiskGUID)
	}
	for i := range sa.Partitions {
		if sa.Partitions[i].GUID != saSrc.Partitions[i].GUID || sa.Partitions[i].TypeGUID != saSrc.Partitions[i].TypeGUID {
			t.Errorf("partition %d identity changed", i+1)
		}
	}
	rep2 := run(t, "xorriso", "-indev", out, "-report_system_area", "plain")
	if strings.Contains(rep2, "WARNING") || strings.Contains(rep2, "FAILURE") {
		t.Errorf("xorriso complains about the system area:\n%s", rep2)
	}
}

// stripVolatile drops the lines of an xorriso report that name the image.
func stripVolatile(s string) string {
	re := regexp.MustCompile(`(?m)^(xorriso|Drive current|Media|Boot record|Volume id|Drive type).*$`)
	return re.ReplaceAllString(s, "")
}

func mustOpen(t *testing.T, p string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	return f, st.Size()
}

func TestRemasterIsReproducible(t *testing.T) {
	o := Options{Kickstart: []byte(testKS), Timeout: -1, Time: time.Unix(1700000000, 0)}
	a, _ := remasterFixture(t, o)
	b, _ := remasterFixture(t, o)
	da, errA := os.ReadFile(a)
	db, errB := os.ReadFile(b)
	if errA != nil || errB != nil || len(da) < 32<<10 {
		t.Fatalf("the remasters were not read: %d bytes, %v, %v", len(da), errA, errB)
	}
	if !bytes.Equal(da, db) {
		t.Error("two remasters with the same inputs and time differ")
	}
	// And the time is what makes them so: another time, other bytes.
	o.Time = o.Time.Add(time.Hour)
	c, _ := remasterFixture(t, o)
	if dc, _ := os.ReadFile(c); bytes.Equal(da, dc) {
		t.Error("a remaster at another time has the same bytes: the test cannot tell")
	}
}

func TestRemasterVolumeID(t *testing.T) {
	out, rep := remasterFixture(t, Options{Kickstart: []byte(testKS), VolumeID: "KILN TEST", Timeout: -1})
	r := open(t, out)
	if r.PVD.VolumeID != "KILN TEST" || rep.KickstartArg != `inst.ks=hd:LABEL=KILN\x20TEST:/ks.cfg` {
		t.Errorf("volume %q, inst.ks %q", r.PVD.VolumeID, rep.KickstartArg)
	}
	in, _ := Inspect(mustOpen(t, out))
	for _, c := range in.BootConfigs {
		for _, l := range c.Cmdlines {
			if strings.Contains(l, "Rocky-9-5-x86_64-dvd") || !strings.Contains(l, `inst.stage2=hd:LABEL=KILN\x20TEST`) {
				t.Errorf("%s: %q", c.Path, l)
			}
		}
	}
}

func TestRemasterErrors(t *testing.T) {
	_, image := fixture(t)
	dir := t.TempDir()
	existing := filepath.Join(dir, "exists.iso")
	os.WriteFile(existing, []byte("keep me"), 0o644)
	if _, err := Remaster(image, existing, Options{Kickstart: []byte(testKS)}); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("existing output: %v", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Error("the existing output was changed")
	}
	notISO := filepath.Join(dir, "not.iso")
	os.WriteFile(notISO, make([]byte, 100000), 0o644)
	if _, err := Remaster(notISO, filepath.Join(dir, "o1.iso"), Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("not an ISO: %v", err)
	}
	// A corrupt directory record deep in the tree.
	data, _ := os.ReadFile(image)
	rd := open(t, image)
	deep, _ := rd.Stat("a/b/c")
	off := int(deep.Extents[0].LBA) * SectorSize
	off += int(data[off])
	data[off] = 3 // a record length below the minimum
	corrupt := filepath.Join(dir, "corrupt.iso")
	os.WriteFile(corrupt, data, 0o644)
	if _, err := Remaster(corrupt, filepath.Join(dir, "o3.iso"), Options{Kickstart: []byte(testKS)}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "directory record at LBA") {
		t.Errorf("corrupt directory record: %v", err)
	}
	plain := filepath.Join(dir, "plain.iso")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "readme"), []byte("x"), 0o644)
	run(t, "xorriso", "-as", "mkisofs", "-R", "-o", plain, tree)
	if _, err := Remaster(plain, filepath.Join(dir, "o2.iso"), Options{}); !errors.Is(err, ErrNoBootConfig) {
		t.Errorf("no boot config: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*kiln*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestRemasterFullDisk(t *testing.T) {
	_, image := fixture(t)
	if os.Getuid() != 0 {
		if testutil.InCI() {
			t.Fatal("mounting a small tmpfs needs root")
		}
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "kiln-iso-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	out := filepath.Join(dir, "out.iso")
	_, err := Remaster(image, out, Options{Kickstart: []byte(testKS)})
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Remaster onto a full disk: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind on the full disk: %v", left)
	}
}

// TestRemasterNonInstaller: an ISO whose only boot configuration is
// isolinux.cfg at its root, as syslinux finds it, and which is no
// Anaconda installer (no .treeinfo, no inst.stage2=), is edited and warned
// about; the fixture, which is an installer, gets no warning.
func TestRemasterNonInstaller(t *testing.T) {
	testutil.RequireTool(t, "xorriso")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	os.WriteFile(filepath.Join(tree, "isolinux.cfg"), []byte("default rescue\nlabel rescue\n  kernel /vmlinuz\n  append initrd=/initrd.img quiet\n"), 0o644)
	img := filepath.Join(dir, "rescue.iso")
	run(t, "xorriso", "-as", "mkisofs", "-R", "-V", "RESCUE", "-o", img, tree)
	out := filepath.Join(dir, "out.iso")
	rep, err := Remaster(img, out, Options{Kickstart: []byte(testKS), NoMD5: true, Time: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.EditedConfigs) != 1 || rep.EditedConfigs[0] != "isolinux.cfg" {
		t.Errorf("edited %v, want the root isolinux.cfg", rep.EditedConfigs)
	}
	f, err := open(t, out).Stat("isolinux.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(f.Open()); !strings.Contains(string(b), "inst.ks=hd:LABEL=RESCUE:/ks.cfg") {
		t.Errorf("isolinux.cfg:\n%s", b)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "does not look like an Anaconda installer") {
		t.Errorf("warnings %q", rep.Warnings)
	}
	if _, rep := remasterFixture(t, Options{Kickstart: []byte(testKS), NoMD5: true}); len(rep.Warnings) != 0 {
		t.Errorf("the installer fixture got warnings: %q", rep.Warnings)
	}
}

// TestRemasterUpdatesAndReplace: mkksiso's -u and -R. The updates image
// lands at the root and every install entry names it, in the tree and in
// the EFI image; each replacement is made in every configuration.
func TestRemasterUpdatesAndReplace(t *testing.T) {
	upd := filepath.Join(t.TempDir(), "my-updates.img")
	os.WriteFile(upd, bytes.Repeat([]byte("u"), 3000), 0o644)
	out, _ := remasterFixture(t, Options{Kickstart: []byte(testKS), NoMD5: true, Updates: upd,
		Replace: [][2]string{{" quiet", " rd.plymouth=0"}}})
	r := open(t, out)
	f, err := r.Stat("my-updates.img")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(f.Open()); len(b) != 3000 {
		t.Errorf("my-updates.img is %d bytes", len(b))
	}
	in, err := Inspect(mustOpen(t, out))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range in.BootConfigs {
		n := 0
		for _, l := range c.Cmdlines {
			if strings.Contains(l, "inst.stage2=") {
				n++
				if !strings.Contains(l, "inst.updates=hd:LABEL=Rocky-9-5-x86_64-dvd:/my-updates.img") || strings.Count(l, "inst.updates=") != 1 || strings.Contains(l, "quiet") {
					t.Errorf("%s %s: %q", c.Image, c.Path, l)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s %s has no install entry: %q", c.Image, c.Path, c.Cmdlines)
		}
	}
	for _, p := range []string{"isolinux/isolinux.cfg", "EFI/BOOT/grub.cfg"} {
		f, err := r.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f.Open())
		if !strings.Contains(string(b), "rd.plymouth=0") || strings.Contains(string(b), "quiet") {
			t.Errorf("%s: the replacement was not made:\n%s", p, b)
		}
	}
}
