package iso

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

// longName is 200 characters: over Joliet's 103, within Rock Ridge's limits.
var longName = strings.Repeat("a-very-long-rpm-name-", 9) + "1.x86_64.rpm"

// longTarget is a symlink target that needs continued SL entries.
var longTarget = strings.Repeat("../some-directory", 20) + "/target"

// buildPlainTree lays out an installer-like tree with the awkward cases:
// a 200-character name, modes, deep directories, an empty file, 300
// files in one directory, and symlinks, one with a target long enough for
// continued SL entries.
func buildPlainTree(t testing.TB, root string) {
	t.Helper()
	w := func(p, content string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(full, mode)
	}
	w(".treeinfo", "[general]\nfamily = Rocky\nversion = 9.5\narch = x86_64\n", 0o644)
	w(".discinfo", "1700000000.0\nRocky 9.5\nx86_64\n", 0o644)
	w("isolinux/isolinux.cfg", "default linux\nlabel linux\n  kernel vmlinuz\n  append initrd=initrd.img inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd quiet\n", 0o644)
	w("EFI/BOOT/grub.cfg", "menuentry 'Install' {\n  linuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd quiet\n}\n", 0o644)
	w("BaseOS/Packages/"+longName, "rpm content", 0o644)
	w("secret/key", "private", 0o600)
	os.Chmod(filepath.Join(root, "secret"), 0o750)
	w("scripts/run.sh", "#!/bin/sh\necho run\n", 0o755)
	w("a/b/c/d/e/f/g/h/i/j/deep.txt", "deep", 0o644)
	w("empty", "", 0o644)
	for i := 0; i < 300; i++ {
		w("many/file-"+strconv.Itoa(i)+".rpm", strings.Repeat("x", i), 0o644)
	}
	os.Symlink(".treeinfo", filepath.Join(root, "link-to-treeinfo"))
	os.Symlink(longTarget, filepath.Join(root, "long-link"))
}

// buildTree lays out an installer-like tree with the awkward cases and
// the boot files.
func buildTree(t testing.TB, root string) {
	t.Helper()
	buildPlainTree(t, root)
	w := func(p, content string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("/usr/lib/ISOLINUX/isolinux.bin")
	if err != nil {
		t.Fatal(err)
	}
	w("isolinux/isolinux.bin", string(b), 0o644)
	// A small FAT ESP image, as lorax's images/efiboot.img.
	os.MkdirAll(filepath.Join(root, "images"), 0o755)
	esp := filepath.Join(root, "images", "efiboot.img")
	run(t, "mkfs.fat", "-C", esp, "2048")
	run(t, "mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
	run(t, "mcopy", "-i", esp, filepath.Join(root, "EFI/BOOT/grub.cfg"), "::/EFI/BOOT/grub.cfg")
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// fixture builds (once) the tree and an EL9-like hybrid ISO of it with
// xorriso: isolinux BIOS entry with a boot info table, EFI entry on
// images/efiboot.img, isohybrid MBR and GPT, Rock Ridge and Joliet.
func fixture(t testing.TB) (tree, image string) {
	t.Helper()
	for _, tool := range []string{"xorriso", "mkfs.fat", "mmd", "mcopy"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, "/usr/lib/ISOLINUX/isolinux.bin")
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "kiln-iso-test-")
		if fixtureErr != nil {
			return
		}
		tree := filepath.Join(fixtureDir, "tree")
		buildTree(t, tree)
		run(t, "xorriso", "-as", "mkisofs", "-o", filepath.Join(fixtureDir, "el9.iso"), "-V", "Rocky-9-5-x86_64-dvd",
			"-R", "-J", "-joliet-long", "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-no-emul-boot",
			"-boot-load-size", "4", "-boot-info-table", "-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot",
			"-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin", "-isohybrid-gpt-basdat", tree)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return filepath.Join(fixtureDir, "tree"), filepath.Join(fixtureDir, "el9.iso")
}

func open(t testing.TB, image string) *Reader {
	t.Helper()
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	r, err := NewReader(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReadMatchesTree(t *testing.T) {
	tree, image := fixture(t)
	r := open(t, image)
	if r.PVD.VolumeID != "Rocky-9-5-x86_64-dvd" || !r.RockRidge || r.Joliet == nil {
		t.Fatalf("volume %q, rock ridge %v, joliet %v", r.PVD.VolumeID, r.RockRidge, r.Joliet != nil)
	}
	got := map[string]*File{}
	if err := r.Walk(func(f *File) error { got[f.Path] = f; return nil }); err != nil {
		t.Fatal(err)
	}
	want := 0
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(tree, p)
		if rel == "." {
			return nil
		}
		want++
		f := got[filepath.ToSlash(rel)]
		if f == nil {
			t.Errorf("%s: missing from the image", rel)
			return nil
		}
		info, _ := os.Lstat(p)
		if f.Mode.Type() != info.Mode().Type() || f.Mode.Perm() != info.Mode().Perm() {
			t.Errorf("%s: mode %v, want %v", rel, f.Mode, info.Mode())
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			if f.Target != target {
				t.Errorf("%s: target %q, want %q", rel, f.Target, target)
			}
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			content, err := io.ReadAll(f.Open())
			if rel == "isolinux/isolinux.bin" && len(content) == len(data) {
				// xorriso writes the boot info table into bytes 8-63.
				copy(content[8:64], data[8:64])
			}
			if err != nil || !bytes.Equal(content, data) || f.Size != int64(len(data)) {
				t.Errorf("%s: content differs (%d bytes, %v)", rel, len(content), err)
			}
		}
		return nil
	})
	// boot.cat is xorriso's own addition.
	if len(got) != want+1 || got["isolinux/boot.cat"] == nil {
		t.Errorf("image has %d files, tree %d (+ boot.cat)", len(got), want)
	}
	f, err := r.Stat(".treeinfo")
	if err != nil || f.Size == 0 {
		t.Errorf("Stat(.treeinfo) = %v, %v", f, err)
	}
	if _, err := r.Stat("nope/nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing file: %v", err)
	}
}

func TestJoliet(t *testing.T) {
	_, image := fixture(t)
	r := open(t, image)
	files, err := r.JolietReadDir("BaseOS/Packages")
	if err != nil {
		t.Fatal(err)
	}
	// xorriso shortens long Joliet names, keeping the extension.
	if n := files[0].Name; len(files) != 1 || len(n) > 110 || !strings.HasSuffix(n, ".rpm") || n[:90] != longName[:90] {
		t.Errorf("Joliet name = %q (%d chars), want a shortened %q", n, len(n), longName)
	}
	root, _ := r.JolietReadDir("")
	names := map[string]bool{}
	for _, f := range root {
		names[f.Name] = true
	}
	if !names[".treeinfo"] || !names["isolinux"] {
		t.Errorf("Joliet root: %v", names)
	}
}

func TestElTorito(t *testing.T) {
	_, image := fixture(t)
	r := open(t, image)
	if r.Boot == nil || r.Boot.LBA != 17 || r.Catalog == nil || len(r.Catalog.Entries) != 2 {
		t.Fatalf("boot record %+v, catalog %+v", r.Boot, r.Catalog)
	}
	bios, efi := r.Catalog.Entries[0], r.Catalog.Entries[1]
	isolinux, _ := r.Stat("isolinux/isolinux.bin")
	esp, _ := r.Stat("images/efiboot.img")
	if bios.Platform != PlatformX86 || !bios.Bootable || bios.Media != 0 || bios.SectorCount != 4 || bios.LoadRBA != isolinux.Extents[0].LBA {
		t.Errorf("BIOS entry %+v (isolinux.bin at %d)", bios, isolinux.Extents[0].LBA)
	}
	if efi.Platform != PlatformEFI || efi.LoadRBA != esp.Extents[0].LBA {
		t.Errorf("EFI entry %+v (efiboot.img at %d)", efi, esp.Extents[0].LBA)
	}
	// xorriso, the oracle, agrees on the load addresses.
	rep := run(t, "xorriso", "-indev", image, "-report_el_torito", "plain")
	re := regexp.MustCompile(`(?m)^El Torito boot img :\s+(\d)\s+(BIOS|UEFI)\s+y\s+none\s+0x0000\s+0x00\s+(\d+)\s+(\d+)`)
	m := re.FindAllStringSubmatch(rep, -1)
	if len(m) != 2 {
		t.Fatalf("xorriso report:\n%s", rep)
	}
	for i, e := range []BootEntry{bios, efi} {
		if m[i][2] != PlatformName(e.Platform) || m[i][3] != strconv.Itoa(int(e.SectorCount)) || m[i][4] != strconv.Itoa(int(e.LoadRBA)) {
			t.Errorf("entry %d: kiln %s %d %d, xorriso %v", i, PlatformName(e.Platform), e.SectorCount, e.LoadRBA, m[i][1:])
		}
	}
	if f, err := r.FileAt(efi.LoadRBA); err != nil || f.Path != "images/efiboot.img" {
		t.Errorf("FileAt(EFI image) = %v, %v", f, err)
	}
}

func TestBadImages(t *testing.T) {
	_, image := fixture(t)
	data, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	r := open(t, image)
	rootLBA := r.PVD.Root.Extent
	corrupt := append([]byte(nil), data...)
	// The third record of the root directory: give it a length that
	// overruns its sector.
	off := int(rootLBA) * SectorSize
	off += int(corrupt[off])
	off += int(corrupt[off])
	corrupt[off] = 250
	corrupt[off+32] = 240
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not an ISO", bytes.Repeat([]byte("kiln"), 20000), "not an ISO 9660 image"},
		{"too small", data[:1000], "too small"},
		{"truncated", data[:18*SectorSize], "no volume descriptor set terminator"},
		{"truncated tree", data[:int(rootLBA)*SectorSize], "runs past the end"},
		{"corrupt directory record", corrupt, "directory record at LBA " + strconv.Itoa(int(rootLBA))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tt.data), int64(len(tt.data)))
			if err == nil {
				err = r.Walk(func(*File) error { return nil })
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestMultiExtent reads a file over 4 GiB, which ISO 9660 stores as
// several extents. The file is sparse on disk; the image is not.
func TestMultiExtent(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 4 GiB image")
	}
	testutil.RequireTool(t, "xorriso")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "LiveOS"), 0o755)
	big := filepath.Join(tree, "LiveOS", "squashfs.img")
	const size = 4<<30 + 12345
	f, _ := os.Create(big)
	f.Truncate(size)
	f.WriteAt([]byte("END"), size-3)
	f.Close()
	image := filepath.Join(dir, "big.iso")
	run(t, "xorriso", "-as", "mkisofs", "-iso-level", "3", "-R", "-o", image, tree)
	r := open(t, image)
	sq, err := r.Stat("LiveOS/squashfs.img")
	if err != nil {
		t.Fatal(err)
	}
	if sq.Size != size || len(sq.Extents) < 2 {
		t.Fatalf("size %d in %d extents", sq.Size, len(sq.Extents))
	}
	rd := sq.Open()
	n, err := io.CopyN(io.Discard, rd, size-3)
	tail := make([]byte, 3)
	if _, err2 := io.ReadFull(rd, tail); err != nil || err2 != nil || n != size-3 {
		t.Fatalf("reading: %d, %v %v", n, err, err2)
	}
	if string(tail) != "END" {
		t.Errorf("the last bytes are %q", tail)
	}
}

func TestSystemArea(t *testing.T) {
	_, image := fixture(t)
	f, _ := os.Open(image)
	defer f.Close()
	st, _ := f.Stat()
	sa, err := ReadSystemArea(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if sa.Kind != "isohybrid" || sa.GPT == nil || !sa.GPT.HeaderCRCOK || !sa.GPT.EntriesCRCOK {
		t.Fatalf("system area %+v", sa)
	}
	rep := run(t, "xorriso", "-indev", image, "-report_system_area", "plain")
	// xorriso lists each GPT partition as "GPT start and size : N START BLOCKS".
	re := regexp.MustCompile(`(?m)^GPT start and size :\s+(\d+)\s+(\d+)\s+(\d+)`)
	m := re.FindAllStringSubmatch(rep, -1)
	if len(m) != len(sa.Partitions) || len(m) == 0 {
		t.Fatalf("kiln found %d GPT partitions, xorriso %d:\n%s", len(sa.Partitions), len(m), rep)
	}
	for i, p := range sa.Partitions {
		if m[i][1] != strconv.Itoa(p.Index) || m[i][2] != strconv.FormatUint(p.FirstLBA, 10) || m[i][3] != strconv.FormatUint(p.LastLBA-p.FirstLBA+1, 10) {
			t.Errorf("partition %d: kiln %+v, xorriso %v", i, p, m[i][1:])
		}
	}
	// -isohybrid-gpt-basdat: the second partition is efiboot.img, typed
	// basic data, as on RHEL 9 media.
	r := open(t, image)
	esp, _ := r.Stat("images/efiboot.img")
	if p := sa.Partitions[1]; p.FirstLBA != uint64(esp.Extents[0].LBA)*4 || p.TypeGUID != GUIDBasicData {
		t.Errorf("partition 2 = %+v, efiboot.img at ISO LBA %d", p, esp.Extents[0].LBA)
	}
}

func TestInspect(t *testing.T) {
	_, image := fixture(t)
	f, _ := os.Open(image)
	defer f.Close()
	st, _ := f.Stat()
	in, err := Inspect(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if in.VolumeID != "Rocky-9-5-x86_64-dvd" || in.MD5Implanted || in.TreeInfo == nil || in.TreeInfo.Family != "Rocky" || in.TreeInfo.Version != "9.5" || in.TreeInfo.Arch != "x86_64" {
		t.Errorf("inspection %+v, treeinfo %+v", in, in.TreeInfo)
	}
	if len(in.ElTorito) != 2 || in.ElTorito[0].File != "isolinux/isolinux.bin" || in.ElTorito[1].File != "images/efiboot.img" || in.ElTorito[1].Platform != "UEFI" {
		t.Errorf("El Torito %+v", in.ElTorito)
	}
	paths := []string{}
	for _, c := range in.BootConfigs {
		paths = append(paths, c.Image+":"+c.Path)
		if len(c.Cmdlines) == 0 || !strings.Contains(c.Cmdlines[0], "inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd") {
			t.Errorf("%s: command lines %q", c.Path, c.Cmdlines)
		}
	}
	if strings.Join(paths, ",") != ":isolinux/isolinux.cfg,:EFI/BOOT/grub.cfg,images/efiboot.img:EFI/BOOT/grub.cfg" {
		t.Errorf("boot configs %v", paths)
	}
	// After implantisomd5, the checksum is seen.
	if _, err := exec.LookPath("implantisomd5"); err == nil {
		cp := filepath.Join(t.TempDir(), "md5.iso")
		data, _ := os.ReadFile(image)
		os.WriteFile(cp, data, 0o644)
		run(t, "implantisomd5", cp)
		g, _ := os.Open(cp)
		defer g.Close()
		in2, err := Inspect(g, int64(len(data)))
		if err != nil || !in2.MD5Implanted {
			t.Errorf("after implantisomd5: %v, %v", in2.MD5Implanted, err)
		}
	}
}

func TestKernelCmdlines(t *testing.T) {
	got := KernelCmdlines("label a\n  append initrd=i.img inst.ks=x quiet\nmenuentry 'x' {\n\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=A\\x20B quiet\n\tinitrdefi /i\n}\n  linux /vmlinuz\n")
	want := []string{"initrd=i.img inst.ks=x quiet", `inst.stage2=hd:LABEL=A\x20B quiet`, ""}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("KernelCmdlines = %q", got)
	}
}

func TestImplantMD5MatchesIsomd5sum(t *testing.T) {
	_, image := fixture(t)
	implant := testutil.RequireTool(t, "implantisomd5")
	check := testutil.RequireTool(t, "checkisomd5")
	data, _ := os.ReadFile(image)
	dir := t.TempDir()
	ours, theirs := filepath.Join(dir, "kiln.iso"), filepath.Join(dir, "isomd5sum.iso")
	os.WriteFile(ours, data, 0o644)
	os.WriteFile(theirs, data, 0o644)
	f, err := os.OpenFile(ours, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := ImplantMD5(f); err != nil {
		t.Fatal(err)
	}
	ok, err := CheckMD5(f)
	f.Close()
	if !ok || err != nil {
		t.Errorf("CheckMD5 after ImplantMD5 = %v, %v", ok, err)
	}
	run(t, implant, "--force", theirs)
	a, _ := os.ReadFile(ours)
	b, _ := os.ReadFile(theirs)
	if !bytes.Equal(a, b) {
		off := 16*SectorSize + appUseOffset
		t.Errorf("kiln's implant differs from implantisomd5's:\nkiln: %q\nthem: %q", a[off:off+200], b[off:off+200])
	}
	if out, err := exec.Command(check, "--verbose", ours).CombinedOutput(); err != nil {
		t.Errorf("checkisomd5 rejects kiln's implant: %v\n%s", err, out)
	}
	// A damaged image fails the check.
	a[len(a)-20*SectorSize] ^= 0xff
	if ok, err := CheckMD5(bytes.NewReader(a)); ok || err == nil {
		t.Error("a damaged image passed")
	}
}

var updateImage = flag.Bool("update", false, "rewrite testdata/plain.iso.gz and its listing with xorriso")

// TestCommittedImage reads a committed image (testdata/plain.iso.gz, 60
// KiB: the awkward tree above, Rock Ridge and Joliet, made by xorriso)
// against its committed listing, so that the reader's cases are tested
// on a host without xorriso. -update makes both again.
func TestCommittedImage(t *testing.T) {
	img := filepath.Join("testdata", "plain.iso.gz")
	listing := filepath.Join("testdata", "plain.iso.list")
	if *updateImage {
		testutil.RequireTool(t, "xorriso")
		tree := filepath.Join(t.TempDir(), "tree")
		buildPlainTree(t, tree)
		out := filepath.Join(t.TempDir(), "plain.iso")
		run(t, "xorriso", "-as", "mkisofs", "-quiet", "-o", out, "-V", "PLAIN", "-R", "-J", "-joliet-long", tree)
		data, _ := os.ReadFile(out)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(data)
		zw.Close()
		os.WriteFile(img, gz.Bytes(), 0o644)
	}
	data := testutil.ReadGzip(t, img)
	r, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	if err := r.Walk(func(f *File) error {
		line := fmt.Sprintf("%s %v %d", f.Path, f.Mode, f.Size)
		switch {
		case f.Mode&fs.ModeSymlink != 0:
			line += " -> " + f.Target
		case f.Mode.IsRegular():
			sum := sha256.New()
			io.Copy(sum, f.Open())
			line += " " + hex.EncodeToString(sum.Sum(nil))[:16]
		}
		lines = append(lines, line)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	got := strings.Join(lines, "\n") + "\n"
	if *updateImage {
		os.WriteFile(listing, []byte(got), 0o644)
	}
	want, err := os.ReadFile(listing)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the committed image reads differently from %s:\n%s", listing, got)
	}
	if len(lines) < 300 || !strings.Contains(got, longName) || !strings.Contains(got, "-> "+longTarget) {
		t.Errorf("the listing lacks the awkward cases: %d lines", len(lines))
	}
	files, err := r.JolietReadDir("BaseOS/Packages")
	if err != nil || len(files) != 1 || !strings.HasSuffix(files[0].Name, ".rpm") {
		t.Errorf("Joliet: %v, %v", files, err)
	}
}
