package anaconda

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestWriteGPT checks the table with sgdisk, which verifies both headers,
// their CRCs and the entry arrays.
func TestWriteGPT(t *testing.T) {
	testutil.RequireTool(t, "sgdisk")
	for _, size := range []int64{2 << 20, 64 << 20, 3<<30 + 512*7} {
		p := filepath.Join(t.TempDir(), "disk")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(size)
		first, last := UsableLBAs(size)
		if err := WriteGPT(f, size, []Partition{{Name: "root", Type: LinuxFilesystem, FirstLBA: 2048, LastLBA: last}}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if first != 34 {
			t.Errorf("first usable LBA %d, want 34", first)
		}
		out, err := exec.Command("sgdisk", "-v", p).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("%d bytes: sgdisk -v: %v\n%s", size, err, out)
		}
		out, _ = exec.Command("sgdisk", "-i", "1", p).CombinedOutput()
		if !strings.Contains(string(out), "0FC63DAF-8483-4772-8E79-3D69D8477DE4") || !strings.Contains(string(out), "First sector: 2048") ||
			!strings.Contains(string(out), "'root'") {
			t.Errorf("%d bytes: partition 1:\n%s", size, out)
		}
	}
}

func TestWriteGPTRefuses(t *testing.T) {
	dir := t.TempDir()
	f, _ := os.Create(filepath.Join(dir, "d"))
	defer f.Close()
	for _, tc := range []struct {
		size  int64
		parts []Partition
		want  string
	}{
		{16 << 10, nil, "too few for a GPT"},
		{1 << 20, []Partition{{Name: "x", FirstLBA: 10, LastLBA: 100}}, "outside"},
		{1 << 20, []Partition{{Name: "x", FirstLBA: 100, LastLBA: 5000}}, "outside"},
	} {
		err := WriteGPT(f, tc.size, tc.parts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d %v: %v, want %q", tc.size, tc.parts, err, tc.want)
		}
	}
}
