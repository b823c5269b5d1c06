package verify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/qemu"
)

// TestPartitionTypes reads the GPTs sgdisk writes, raw and through
// qemu-img for qcow2, and tells the firmware from them.
func TestPartitionTypes(t *testing.T) {
	testutil.RequireTool(t, "sgdisk")
	testutil.RequireTool(t, "qemu-img")
	for _, tc := range []struct {
		name string
		args []string
		want []qemu.FirmwareKind
	}{
		{"bios", []string{"-n1:2048:+1M", "-t1:ef02", "-n2:0:0", "-t2:8300"}, []qemu.FirmwareKind{qemu.BIOS}},
		{"uefi", []string{"-n1:2048:+100M", "-t1:ef00", "-n2:0:0", "-t2:8300"}, []qemu.FirmwareKind{qemu.UEFI}},
		{"both", []string{"-n1:2048:+1M", "-t1:ef02", "-n2:0:+100M", "-t2:ef00", "-n3:0:0"}, []qemu.FirmwareKind{qemu.BIOS, qemu.UEFI}},
		{"neither", []string{"-n1:2048:0", "-t1:8300"}, []qemu.FirmwareKind{qemu.BIOS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := filepath.Join(t.TempDir(), "disk.raw")
			if err := os.WriteFile(raw, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Truncate(raw, 256<<20)
			if out, err := exec.Command("sgdisk", append(tc.args, raw)...).CombinedOutput(); err != nil {
				t.Fatalf("sgdisk: %v\n%s", err, out)
			}
			qcow := raw + ".qcow2"
			if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img: %v\n%s", err, out)
			}
			for _, img := range []struct{ path, format string }{{raw, "raw"}, {qcow, "qcow2"}} {
				types, err := PartitionTypes(context.Background(), img.path, img.format)
				if err != nil {
					t.Fatal(err)
				}
				if len(types) != len(tc.args)/2 && tc.name != "both" {
					t.Errorf("%s: %d partition types %v", img.format, len(types), types)
				}
				if got := FirmwareOf(types); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s: firmware %v from %v, want %v", img.format, got, types, tc.want)
				}
			}
		})
	}
	// An MBR disk, or none at all, boots by BIOS.
	if got := FirmwareOf(nil); !reflect.DeepEqual(got, []qemu.FirmwareKind{qemu.BIOS}) {
		t.Errorf("no GPT: %v", got)
	}
}
