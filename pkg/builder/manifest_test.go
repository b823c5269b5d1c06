package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/pkg/verify"
	"github.com/kiln-build/kiln/qemu"
)

// TestManifestGolden pins OUT.manifest.json and OUT.icicle.xml, the
// files other tools read, for a build with every field filled in.
func TestManifestGolden(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "rocky9")
	b := &builder{o: Options{Output: out}, manifest: &Manifest{
		KilnVersion: "v1.2.3", QEMUVersion: "7.2.15",
		Firmware: Firmware{Kind: "uefi", Path: "/usr/share/OVMF/OVMF_CODE_4M.fd", SHA256: strings.Repeat("ab", 32)},
		Accel:    qemu.AccelReport{Requested: "auto", Used: "tcg", Probed: true, Reason: "KVM did not answer within 2s", ProbeTime: 2 * time.Second},
		Inputs: []File{{Role: "kickstart", Path: "rocky9.ks", Size: 812, SHA256: strings.Repeat("01", 32)},
			{Role: "iso", Path: "/srv/iso/Rocky-9.5-x86_64-dvd.iso", Size: 11213471744, SHA256: strings.Repeat("02", 32)}},
		Sources:   []Source{{Where: "rocky9.ks:4", Kind: "url", URL: "http://mirror.example/rocky/9/BaseOS/x86_64/os/", How: `proxied as "install"`}},
		Phases:    []PhaseTime{{Phase: "validate", Seconds: 0.25}, {Phase: "install", Seconds: 600}, {Phase: "convert", Seconds: 4.5}},
		VMSeconds: 598.5,
		Packages: []Package{{Name: "bash", Version: "5.1.8", Release: "9.el9", Arch: "x86_64", SHA256: strings.Repeat("03", 32)},
			{Name: "shadow-utils", Epoch: "2", Version: "4.9", Release: "9.el9", Arch: "x86_64"}},
		UpstreamBytes: 734003200, CacheBytes: 0,
		Outputs: []File{{Role: "qcow2", Path: out + ".qcow2", Size: 1048576000, SHA256: strings.Repeat("04", 32)}},
		Verify:  []verify.Result{{Firmware: qemu.UEFI, OK: true, Signal: "login-prompt", Detail: "rocky9 login:", Duration: 41 * time.Second}},
	}}
	if err := b.writeManifest(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rocky9.manifest.json", "rocky9.icicle.xml"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name, []byte(strings.ReplaceAll(string(data), dir, "OUTDIR")))
	}
}
