package main

import (
	"encoding/json"
	"flag"
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

func TestISORemaster(t *testing.T) {
	xorriso := testutil.RequireTool(t, "xorriso")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "isolinux"), 0o755)
	os.WriteFile(filepath.Join(tree, "isolinux", "isolinux.cfg"), []byte("timeout 600\nlabel linux\n  kernel vmlinuz\n  append initrd=initrd.img inst.stage2=hd:LABEL=TEST quiet\n"), 0o644)
	in := filepath.Join(dir, "in.iso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-o", in, "-V", "TEST", "-R", "-J", tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v %s", err, out)
	}
	good := writeFile(t, "good.ks", "text\nlang en_US.UTF-8\nrootpw --lock\nautopart\npoweroff\n")
	bad := writeFile(t, "bad.ks", "install\ntext\n")
	out := filepath.Join(dir, "out.iso")
	code, _, errOut := kiln(t, "", "iso", "--ks", bad, in, out)
	if code != 3 || !strings.Contains(errOut, "bad.ks:1: install has been removed") {
		t.Errorf("invalid kickstart: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output was written for an invalid kickstart")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	code, stdout, errOut := kiln(t, "", "iso", "--ks", good, "--cmdline", "console=ttyS0", in, out)
	if code != 0 || !strings.Contains(stdout, "boots with inst.ks=hd:LABEL=TEST:/ks.cfg") {
		t.Fatalf("remaster: exit %d, %s %s", code, stdout, errOut)
	}
	_, insp, _ := kiln(t, "", "iso", "inspect", out)
	if !strings.Contains(insp, "inst.stage2=hd:LABEL=TEST inst.ks=hd:LABEL=TEST:/ks.cfg console=ttyS0") && !strings.Contains(insp, "console=ttyS0 inst.ks=hd:LABEL=TEST:/ks.cfg") {
		t.Errorf("inspect after remaster:\n%s", insp)
	}
	if code, _, _ := kiln(t, "", "iso", "--ks", good, in, out); code != 3 {
		t.Errorf("an existing output without --force: exit %d", code)
	}
	again := filepath.Join(dir, "again.iso")
	if code, _, _ := kiln(t, "", "iso", "--ks", good, "--cmdline", "console=ttyS0", in, again); code != 0 {
		t.Fatal("second remaster failed")
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(again)
	if string(a) != string(b) {
		t.Error("SOURCE_DATE_EPOCH did not make the output reproducible")
	}
	if code, _, _ := kiln(t, "", "iso", in, out); code != 2 {
		t.Errorf("missing --ks: exit %d", code)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestISOInspectGolden pins kiln iso inspect's text and JSON for the
// committed image, which has a .treeinfo, a GRUB configuration and both
// name views; it needs no outside tool.
func TestISOInspectGolden(t *testing.T) {
	img := filepath.Join(t.TempDir(), "plain.iso")
	if err := os.WriteFile(img, testutil.ReadGzip(t, "../../iso/testdata/plain.iso.gz"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"inspect-plain.txt", []string{"iso", "inspect", img}},
		{"inspect-plain.json", []string{"--json", "iso", "inspect", img}},
	} {
		code, out, errOut := kiln(t, "", tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		testutil.Golden(t, tc.golden, []byte(strings.ReplaceAll(out, img, "plain.iso")), *update)
	}
}
