package parttable

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

func TestGUIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		s    string
		disk [16]byte
	}{
		{"0FC63DAF-8483-4772-8E79-3D69D8477DE4", [16]byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}},
		{"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", [16]byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}},
	} {
		g, err := ParseGUID(tc.s)
		if err != nil || g != tc.disk || g.String() != tc.s {
			t.Errorf("ParseGUID(%s) = % x, %v; String %s", tc.s, g, err, g.String())
		}
	}
	for _, bad := range []string{"", "0FC63DAF-8483-4772-8E79-3D69D8477DE", "0FC63DAF-8483-4772-8E79x3D69D8477DE4", "ZFC63DAF-8483-4772-8E79-3D69D8477DE4"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
}

// TestWriteMatchesSgdisk writes a protective MBR and a GPT, has sgdisk
// check and list them, has sgdisk edit them, and reads sgdisk's table
// back.
func TestWriteMatchesSgdisk(t *testing.T) {
	sgdisk := testutil.RequireTool(t, "sgdisk")
	disk := filepath.Join(t.TempDir(), "disk.raw")
	const size = 64 << 20
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	sectors := uint64(size / SectorSize)
	g := New(sectors)
	root := Entry{Type: TypeGUIDLinuxFilesystem, Unique: NewGUID(), FirstLBA: 2048, LastLBA: sectors - 8192}
	root.SetName("root")
	g.SetEntry(0, Entry{Type: TypeGUIDBIOSBoot, Unique: NewGUID(), FirstLBA: 34, LastLBA: 2047})
	g.SetEntry(1, root)
	if err := Protective(sectors).Write(f); err != nil {
		t.Fatal(err)
	}
	if err := g.Write(f, sectors); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(sgdisk, "-v", disk).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
	out, _ = exec.Command(sgdisk, "-i", "2", disk).CombinedOutput()
	for _, want := range []string{"0FC63DAF-8483-4772-8E79-3D69D8477DE4", "First sector: 2048", "Partition name: 'root'"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sgdisk -i 2 lacks %q:\n%s", want, out)
		}
	}
	if out, err := exec.Command(sgdisk, "-n", "3:0:+1M", "-t", "3:EF00", "-c", "3:esp", disk).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk -n: %v\n%s", err, out)
	}
	f, _ = os.Open(disk)
	defer f.Close()
	got, err := ReadGPT(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if !got.HeaderCRCOK || !got.ArrayCRCOK {
		t.Errorf("sgdisk's table fails its CRCs: %+v", got.Header)
	}
	if e := got.Entry(1); e != root {
		t.Errorf("entry 2 = %+v, want %+v", e, root)
	}
	if e := got.Entry(2); e.Type != TypeGUIDESP || e.NameString() != "esp" {
		t.Errorf("sgdisk's entry 3 = %v %q", e.Type, e.NameString())
	}
	m, err := ReadMBR(f)
	if err != nil || !m.Signature || len(m.Partitions()) != 1 || m.Partition(0).Type != TypeProtective {
		t.Errorf("the protective MBR: %+v %v", m.Partitions(), err)
	}
}

func TestReadGPTRefuses(t *testing.T) {
	disk := make([]byte, 64*SectorSize)
	if _, err := ReadGPT(readerAt(disk), int64(len(disk))); err != ErrNoGPT {
		t.Errorf("a blank disk: %v", err)
	}
	copy(disk[SectorSize:], "EFI PART")
	disk[SectorSize+12] = 10 // header size
	if _, err := ReadGPT(readerAt(disk), int64(len(disk))); err == nil || !strings.Contains(err.Error(), "header size 10") {
		t.Errorf("a short header: %v", err)
	}
}

type readerAt []byte

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, os.ErrInvalid
	}
	return copy(p, r[off:]), nil
}

// FuzzReadGPT reads anything as a disk: it must not panic, and a table it
// accepts must re-encode to itself.
func FuzzReadGPT(f *testing.F) {
	const sectors = 80
	disk := make(writerAt, sectors*SectorSize)
	g := New(sectors)
	e := Entry{Type: TypeGUIDESP, Unique: NewGUID(), FirstLBA: 34, LastLBA: 40}
	e.SetName("EFI System")
	g.SetEntry(0, e)
	Protective(sectors).Write(disk)
	g.Write(disk, sectors)
	f.Add([]byte(disk))
	f.Add(make([]byte, 2*SectorSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := readerAt(data)
		m, err := ReadMBR(r)
		if err == nil {
			m.Partitions()
		}
		g, err := ReadGPT(r, int64(len(data)))
		if err != nil {
			return
		}
		for i := 0; i < int(g.Header.NumEntries); i++ {
			e := g.Entry(i)
			g.SetEntry(i, e)
			if g.Entry(i) != e {
				t.Fatalf("entry %d does not round-trip", i)
			}
			e.NameString()
		}
	})
}

type writerAt []byte

func (w writerAt) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(w)) {
		return 0, os.ErrInvalid
	}
	return copy(w[off:], p), nil
}
