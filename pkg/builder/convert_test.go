package builder

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestConvertSubformats converts a 1 GiB disk to each subformat the
// targets need and reads the result back with qemu-img info.
func TestConvertSubformats(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	for _, tc := range []struct {
		name      string
		o         Options
		format    string
		createTyp string // vmdk's create-type
		exactSize bool   // the virtual size is the disk's to the byte
		fixed     bool   // the file holds the whole disk (a fixed VHD)
	}{
		{"vhd fixed (default)", Options{}, "vhd", "", true, true},
		{"vhd dynamic", Options{VHDSubformat: "dynamic"}, "vhd", "", false, false},
		{"vmdk streamOptimized (default)", Options{}, "vmdk", "streamOptimized", true, false},
		{"vmdk monolithicSparse", Options{VMDKSubformat: "monolithicSparse"}, "vmdk", "monolithicSparse", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			disk := filepath.Join(dir, "disk.raw")
			if err := makeSparse(disk, 1<<30); err != nil {
				t.Fatal(err)
			}
			o := tc.o
			o.Output, o.Formats = filepath.Join(dir, "out"), []string{tc.format}
			b := &builder{o: o, manifest: &Manifest{}}
			if err := b.convert(context.Background(), disk); err != nil {
				t.Fatal(err)
			}
			out := o.imagePath(tc.format)
			// -f: a fixed VHD has only a footer, and would probe as raw.
			raw, err := exec.Command("qemu-img", "info", "-f", Formats[tc.format].QEMU, "--output=json", out).Output()
			if err != nil {
				t.Fatal(err)
			}
			var info struct {
				VirtualSize    int64  `json:"virtual-size"`
				Format         string `json:"format"`
				FormatSpecific struct {
					Data struct {
						CreateType string `json:"create-type"`
					} `json:"data"`
				} `json:"format-specific"`
			}
			if err := json.Unmarshal(raw, &info); err != nil {
				t.Fatal(err)
			}
			if tc.exactSize != (info.VirtualSize == 1<<30) {
				t.Errorf("virtual size %d (exact wanted: %v)", info.VirtualSize, tc.exactSize)
			}
			if info.FormatSpecific.Data.CreateType != tc.createTyp {
				t.Errorf("create-type %q, want %q", info.FormatSpecific.Data.CreateType, tc.createTyp)
			}
			st, _ := os.Stat(out)
			if fixed := st.Size() >= 1<<30; fixed != tc.fixed {
				t.Errorf("file size %d: fixed %v, want %v", st.Size(), fixed, tc.fixed)
			}
		})
	}
}
