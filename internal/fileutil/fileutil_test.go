package fileutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCopyAndSHA256(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a")
	os.WriteFile(src, []byte("abc"), 0o644)
	dst := filepath.Join(dir, "b")
	if err := Copy(src, dst, os.O_EXCL, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Copy(src, dst, os.O_EXCL, 0o600); err == nil {
		t.Error("O_EXCL replaced an existing file")
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}
	// sha256("abc"), FIPS 180-2 appendix B.1.
	if sum, err := SHA256(dst); err != nil || sum != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("SHA256 = %s, %v", sum, err)
	}
	if _, err := SHA256(filepath.Join(dir, "missing")); err == nil {
		t.Error("hashing a missing file succeeded")
	}
}
