package iso

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/guest"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/qemu"
)

var (
	bootOnce sync.Once
	bootISO  string
	bootErr  error
)

// grubModules are what the test's GRUB needs to find the media and boot
// Linux from a CD, a USB disk or the ESP alone.
var grubModules = []string{"part_gpt", "part_msdos", "fat", "iso9660", "normal", "configfile", "linux", "search",
	"search_label", "search_fs_file", "echo", "test", "boot", "serial", "terminal", "ls", "all_video", "gzio"}

// bootFixture builds an EL9-layout ISO that really boots: isolinux for
// BIOS, GRUB in images/efiboot.img for UEFI, Debian's kernel, and an
// initrd whose init prints the kernel command line and powers off.
func bootFixture(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"xorriso", "mkfs.fat", "mmd", "mcopy", "grub-mkimage", "qemu-system-x86_64", "go"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, "/usr/lib/syslinux/modules/bios/ldlinux.c32")
	testutil.RequireFile(t, "/usr/lib/grub/x86_64-efi/linux.mod")
	bootOnce.Do(func() { bootISO, bootErr = buildBootFixture(t) })
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	return bootISO
}

func buildBootFixture(t *testing.T) (string, error) {
	kernel, _, err := guest.Kernel()
	if err != nil {
		return "", err
	}
	if fixtureDir == "" {
		if fixtureDir, err = os.MkdirTemp("", "kiln-iso-test-"); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(fixtureDir, "boot")
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"isolinux", "images/pxeboot", "EFI/BOOT"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	init := filepath.Join(dir, "init")
	if err := guest.BuildGo("../internal/guest/cmdlineinit", init); err != nil {
		return "", err
	}
	if err := guest.Initramfs(filepath.Join(tree, "images/pxeboot/initrd.img"), init, nil, nil); err != nil {
		return "", err
	}
	cp := func(src, dst string) error {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tree, dst), b, 0o644)
	}
	for src, dst := range map[string]string{kernel: "images/pxeboot/vmlinuz", "/usr/lib/ISOLINUX/isolinux.bin": "isolinux/isolinux.bin",
		"/usr/lib/syslinux/modules/bios/ldlinux.c32": "isolinux/ldlinux.c32"} {
		if err := cp(src, dst); err != nil {
			return "", err
		}
	}
	args := "inst.stage2=hd:LABEL=KILN-TEST console=ttyS0 panic=-1"
	os.WriteFile(filepath.Join(tree, "isolinux/isolinux.cfg"), []byte("default linux\nprompt 0\ntimeout 600\nlabel linux\n  kernel /images/pxeboot/vmlinuz\n  append initrd=/images/pxeboot/initrd.img "+args+"\n"), 0o644)
	// The two GRUB configurations say where they are, so the test sees
	// which one firmware used: booting the ESP partition reads the one in
	// efiboot.img, booting El Torito the one in the tree.
	grubCfg := func(src string) []byte {
		return []byte("set default=\"0\"\nset timeout=60\nsearch --no-floppy --set=root -l 'KILN-TEST'\nmenuentry 'Install' {\n\tlinux /images/pxeboot/vmlinuz " + args + " kiln.cfg=" + src + "\n\tinitrd /images/pxeboot/initrd.img\n}\n")
	}
	os.WriteFile(filepath.Join(tree, "EFI/BOOT/grub.cfg"), grubCfg("tree"), 0o644)
	os.WriteFile(filepath.Join(dir, "esp-grub.cfg"), grubCfg("esp"), 0o644)
	efi := filepath.Join(tree, "EFI/BOOT/BOOTX64.EFI")
	mk := append([]string{"-O", "x86_64-efi", "-d", "/usr/lib/grub/x86_64-efi", "-p", "/EFI/BOOT", "-o", efi}, grubModules...)
	if out, err := exec.Command("grub-mkimage", mk...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("grub-mkimage: %v %s", err, out)
	}
	esp := filepath.Join(tree, "images/efiboot.img")
	for _, c := range [][]string{
		{"mkfs.fat", "-C", "-n", "ANACONDA", esp, "4096"},
		{"mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI"},
		{"mcopy", "-i", esp, filepath.Join(dir, "esp-grub.cfg"), "::/EFI/BOOT/grub.cfg"},
		{"xorriso", "-as", "mkisofs", "-o", filepath.Join(dir, "el9-boot.iso"), "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
			"-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-boot-load-size", "4", "-boot-info-table", "-no-emul-boot",
			"-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot", "-isohybrid-gpt-basdat", "-R", "-J", "-V", "KILN-TEST", tree},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v: %v %s", c, err, out)
		}
	}
	return filepath.Join(dir, "el9-boot.iso"), nil
}

// extractESP copies the EFI system partition out of an image, as firmware
// that boots the ESP partition sees it: the MBR partition of type 0xEF, or
// the GPT one with the ESP type.
func extractESP(t *testing.T, image string) string {
	f, size := mustOpen(t, image)
	sa, err := ReadSystemArea(f, size)
	if err != nil {
		t.Fatal(err)
	}
	var start, n int64
	for _, p := range sa.Partitions {
		if p.TypeGUID == GUIDESP {
			start, n = int64(p.FirstLBA), int64(p.LastLBA-p.FirstLBA+1)
		}
	}
	for _, p := range sa.MBR {
		if n == 0 && p.Type == 0xEF {
			start, n = int64(p.StartLBA), int64(p.Sectors)
		}
	}
	if n == 0 {
		t.Fatalf("no EFI system partition in %s: %+v", image, sa)
	}
	out := filepath.Join(t.TempDir(), "esp.img")
	w, _ := os.Create(out)
	defer w.Close()
	if _, err := io.Copy(w, io.NewSectionReader(f, start*512, n*512)); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRemasteredMediaBoot boots a remastered ISO with real firmware in the
// five ways physical media boot, and checks that the kernel got the
// kickstart argument each time.
func TestRemasteredMediaBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots five VMs")
	}
	src := bootFixture(t)
	out := filepath.Join(t.TempDir(), "ks.iso")
	if _, err := Remaster(src, out, Options{Kickstart: []byte(testKS), Timeout: 1, Time: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	ovmf, ovmfErr := qemu.FindOVMF(false)
	want := "inst.ks=hd:LABEL=KILN-TEST:/ks.cfg"
	for _, mode := range []string{"bios-cd", "bios-usb", "uefi-cd", "uefi-usb", "uefi-esp"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			opts := []qemu.Option{qemu.WithMemory(512), qemu.WithCPUs(1), qemu.WithAccel("tcg")}
			if strings.HasPrefix(mode, "uefi") {
				if ovmfErr != nil {
					testutil.RequireFile(t, "/usr/share/OVMF/OVMF_CODE_4M.fd")
				}
				opts = append(opts, qemu.WithFirmware(ovmf))
			}
			switch mode {
			case "bios-cd", "uefi-cd":
				opts = append(opts, qemu.WithCDROM(out), qemu.WithBootOrder("cdrom"))
			case "bios-usb", "uefi-usb":
				stick := filepath.Join(t.TempDir(), "stick.img")
				data, _ := os.ReadFile(out)
				os.WriteFile(stick, data, 0o644) // as if dd'd to a stick
				opts = append(opts, qemu.WithUSB(stick), qemu.WithBootOrder("usb"))
			case "uefi-esp":
				opts = append(opts, qemu.WithUSB(extractESP(t, out)), qemu.WithCDROM(out), qemu.WithBootOrder("usb", "cdrom"))
			}
			cfg, err := qemu.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			serial := filepath.Join(t.TempDir(), "serial.log")
			res, err := qemu.Run(context.Background(), cfg, qemu.RunOptions{Timeout: 4 * time.Minute, SerialLog: serial})
			log, _ := os.ReadFile(serial)
			if err != nil {
				t.Fatalf("%s: %v\n%s", mode, err, tail(log))
			}
			var cmdline, fw string
			for _, l := range strings.Split(string(log), "\n") {
				if c, ok := strings.CutPrefix(strings.TrimSpace(l), "KILN-CMDLINE: "); ok {
					cmdline = c
				}
				if c, ok := strings.CutPrefix(strings.TrimSpace(l), "KILN-FIRMWARE: "); ok {
					fw = c
				}
			}
			if !strings.Contains(cmdline, want) {
				t.Errorf("%s: kernel command line %q lacks %s", mode, cmdline, want)
			}
			if wantFW := strings.ToUpper(strings.Split(mode, "-")[0]); fw != wantFW {
				t.Errorf("%s: booted under %q", mode, fw)
			}
			// Only a firmware booting the ESP partition reads efiboot.img's
			// grub.cfg: this mode is what catches a stale one.
			if mode == "uefi-esp" && !strings.Contains(cmdline, "kiln.cfg=esp") {
				t.Errorf("%s: the EFI image's grub.cfg was not the one used: %q", mode, cmdline)
			}
			t.Logf("%s: booted in %v: %s", mode, res.Duration.Round(time.Second), cmdline)
		})
	}
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
