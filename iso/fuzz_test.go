package iso

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// FuzzReader feeds the reader corrupted images: any input gives a Reader
// or an error, and walking, listing Joliet and reading files never panics
// or loops.
func FuzzReader(f *testing.F) {
	if _, err := exec.LookPath("xorriso"); err == nil {
		dir := f.TempDir()
		tree := filepath.Join(dir, "t")
		os.MkdirAll(filepath.Join(tree, "d1", "d2"), 0o755)
		os.WriteFile(filepath.Join(tree, "d1", "d2", "file.txt"), []byte("hello"), 0o644)
		os.WriteFile(filepath.Join(tree, ".treeinfo"), []byte("[general]\n"), 0o644)
		os.Symlink("d1/d2/file.txt", filepath.Join(tree, "link"))
		img := filepath.Join(dir, "seed.iso")
		if out, err := exec.Command("xorriso", "-as", "mkisofs", "-R", "-J", "-V", "SEED", "-o", img, tree).CombinedOutput(); err == nil {
			if data, err := os.ReadFile(img); err == nil {
				f.Add(data)
			}
		} else {
			f.Logf("xorriso: %v %s", err, out)
		}
	}
	f.Add(make([]byte, 20*SectorSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadSystemArea(bytes.NewReader(data), int64(len(data)))
		r, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		n := 0
		err = r.Walk(func(file *File) error {
			n++
			if n > 2000 {
				return errors.New("too many files")
			}
			if !file.IsDir() {
				io.Copy(io.Discard, io.LimitReader(file.Open(), 4096))
			}
			return nil
		})
		_ = err
		if r.Joliet != nil {
			r.JolietReadDir("")
		}
	})
}
