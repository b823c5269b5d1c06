package fat

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

func mkfat(t *testing.T, kib, fatBits string) string {
	t.Helper()
	testutil.RequireTool(t, "mkfs.fat")
	testutil.RequireTool(t, "mcopy")
	dir := t.TempDir()
	img := filepath.Join(dir, "efiboot.img")
	args := []string{"-C", img, kib}
	if fatBits != "" {
		args = append([]string{"-F", fatBits}, args...)
	}
	if out, err := exec.Command("mkfs.fat", args...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.fat: %v %s", err, out)
	}
	cfg := filepath.Join(dir, "grub.cfg")
	os.WriteFile(cfg, grubCfg, 0o644)
	long := filepath.Join(dir, "a-long-file-name.conf")
	os.WriteFile(long, []byte("long name"), 0o644)
	for _, c := range [][]string{
		{"mmd", "-i", img, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", img, cfg, "::/EFI/BOOT/grub.cfg"},
		{"mcopy", "-i", img, long, "::/EFI/BOOT/a-long-file-name.conf"},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	return img
}

// grubCfg is what mkfat puts in EFI/BOOT/grub.cfg.
var grubCfg = []byte(strings.Repeat("menuentry 'Install Rocky Linux 9' { linuxefi /images/pxeboot/vmlinuz quiet }\n", 100))

var update = flag.Bool("update", false, "rewrite the committed images in testdata/ with mkfs.fat and mtools")

// fatSizes are the committed images: FAT12, FAT16 and FAT32 as mkfs.fat
// makes them, each holding mkfat's two files.
var fatSizes = []struct{ kib, bits string }{{"2048", ""}, {"20480", "16"}, {"40960", "32"}}

func committedName(bits string) string {
	if bits == "" {
		bits = "12"
	}
	return filepath.Join("testdata", "fat"+bits+".img.gz")
}

// committed returns a committed image's bytes: tests that read FAT need
// no outside tool. -update makes them again.
func committed(t *testing.T, kib, bits string) []byte {
	t.Helper()
	if *update {
		data, err := os.ReadFile(mkfat(t, kib, bits))
		if err != nil {
			t.Fatal(err)
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(data)
		zw.Close()
		if err := os.WriteFile(committedName(bits), gz.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return testutil.ReadGzip(t, committedName(bits))
}

func checkRead(t *testing.T, data []byte, bits string) {
	t.Helper()
	f, err := NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ReadFile("/efi/boot/GRUB.CFG")
	if err != nil || !bytes.Equal(got, grubCfg) {
		t.Errorf("FAT%d: grub.cfg = %d bytes, %v", f.Type, len(got), err)
	}
	if got, err := f.ReadFile("EFI/BOOT/a-long-file-name.conf"); err != nil || string(got) != "long name" {
		t.Errorf("FAT%d: long name: %q, %v", f.Type, got, err)
	}
	if _, err := f.ReadFile("EFI/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FAT%d: missing file: %v", f.Type, err)
	}
	wantType := map[string]int{"": 12, "16": 16, "32": 32}[bits]
	if f.Type != wantType {
		t.Errorf("type FAT%d, want FAT%d", f.Type, wantType)
	}
}

// TestReadFile reads the committed images, made by mkfs.fat and mtools.
func TestReadFile(t *testing.T) {
	for _, tc := range fatSizes {
		checkRead(t, committed(t, tc.kib, tc.bits), tc.bits)
	}
}

// TestReadFreshImages reads images this host's mkfs.fat makes now.
func TestReadFreshImages(t *testing.T) {
	for _, tc := range fatSizes {
		data, err := os.ReadFile(mkfat(t, tc.kib, tc.bits))
		if err != nil {
			t.Fatal(err)
		}
		checkRead(t, data, tc.bits)
	}
}

func TestNotFAT(t *testing.T) {
	if _, err := NewReader(bytes.NewReader(make([]byte, 4096)), 4096); !errors.Is(err, ErrFormat) {
		t.Errorf("zeros: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(make([]byte, 1024))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		fsys.ReadFile("EFI/BOOT/grub.cfg")
	})
}

func TestWriteFile(t *testing.T) {
	fsck := testutil.RequireTool(t, "fsck.fat")
	for _, tc := range []struct{ kib, bits string }{{"2048", ""}, {"20480", "16"}, {"40960", "32"}} {
		img := mkfat(t, tc.kib, tc.bits)
		for _, content := range []string{
			strings.Repeat("grown ", 5000), // more clusters
			"shrunk to a line\n",           // fewer clusters
			strings.Repeat("x", 2048*3+1),  // an exact odd size
		} {
			fh, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := fh.Stat()
			f, err := NewReader(fh, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			if err := f.WriteFile(fh, "EFI/BOOT/grub.cfg", []byte(content)); err != nil {
				t.Fatal(err)
			}
			got, err := f.ReadFile("EFI/BOOT/grub.cfg")
			fh.Close()
			if err != nil || string(got) != content {
				t.Errorf("FAT%d: read back %d bytes, %v", f.Type, len(got), err)
			}
			if out, err := exec.Command(fsck, "-n", img).CombinedOutput(); err != nil {
				t.Errorf("FAT%d: fsck.fat -n: %v\n%s", f.Type, err, out)
			}
			cmd := exec.Command("mtype", "-i", img, "::/EFI/BOOT/grub.cfg")
			cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
			if out, err := cmd.Output(); err != nil || string(out) != content {
				t.Errorf("FAT%d: mtype reads %d bytes, %v", f.Type, len(out), err)
			}
		}
	}
}
