package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

func TestISOInspect(t *testing.T) {
	xorriso := testutil.RequireTool(t, "xorriso")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "isolinux"), 0o755)
	os.WriteFile(filepath.Join(tree, ".treeinfo"), []byte("[release]\nname = AlmaLinux\nversion = 9.4\n[tree]\narch = x86_64\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "isolinux", "isolinux.cfg"), []byte("label linux\n  append initrd=initrd.img inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd quiet\n"), 0o644)
	img := filepath.Join(dir, "alma.iso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-o", img, "-V", "AlmaLinux-9-4-x86_64-dvd", "-R", "-J", tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v %s", err, out)
	}
	code, out, errOut := kiln(t, "", "iso", "inspect", img)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"volume id:   AlmaLinux-9-4-x86_64-dvd", "tree:        AlmaLinux 9.4 x86_64", "isolinux/isolinux.cfg\n    initrd=initrd.img inst.stage2=hd:LABEL=AlmaLinux-9-4-x86_64-dvd quiet"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = kiln(t, "", "--json", "iso", "inspect", img)
	var v struct {
		VolumeID string `json:"volume_id"`
		TreeInfo struct{ Family string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v.VolumeID != "AlmaLinux-9-4-x86_64-dvd" || v.TreeInfo.Family != "AlmaLinux" {
		t.Errorf("--json: %d %s", code, out)
	}
	notISO := filepath.Join(dir, "not.iso")
	os.WriteFile(notISO, make([]byte, 100000), 0o644)
	if code, _, errOut := kiln(t, "", "iso", "inspect", notISO); code != 3 || !strings.Contains(errOut, "not an ISO 9660 image") {
		t.Errorf("not an ISO: exit %d %s", code, errOut)
	}
}
