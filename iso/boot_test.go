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
	bootMu  sync.Mutex
	bootISO = map[string]string{}
)

// grubModules are what the test's GRUB needs to find the media and boot
// Linux from a CD, a USB disk or the ESP alone.
var grubModules = []string{"part_gpt", "part_msdos", "fat", "iso9660", "normal", "configfile", "linux", "search",
	"search_label", "search_fs_file", "echo", "test", "boot", "serial", "terminal", "ls", "all_video", "gzio"}

// bootFixture builds an ISO that really boots, in one of two layouts:
// "el9" (isolinux for BIOS, GRUB in images/efiboot.img for UEFI, isohybrid
// MBR and GPT) or "el10" (GRUB2 for BIOS with grub2-boot-info, the EFI
// image appended as a GPT partition, a partition offset of 16 blocks).
// Both carry Debian's kernel and an initrd whose init prints the kernel
// command line and powers off.
func bootFixture(t *testing.T, layout string) string {
	t.Helper()
	for _, tool := range []string{"xorriso", "mkfs.fat", "mmd", "mcopy", "grub-mkimage", "qemu-system-x86_64", "go"} {
		testutil.RequireTool(t, tool)
	}
	testutil.RequireFile(t, "/usr/lib/syslinux/modules/bios/ldlinux.c32")
	testutil.RequireFile(t, "/usr/lib/grub/x86_64-efi/linux.mod")
	testutil.RequireFile(t, "/usr/lib/grub/i386-pc/boot_hybrid.img")
	bootMu.Lock()
	defer bootMu.Unlock()
	if p := bootISO[layout]; p != "" {
		return p
	}
	p, err := buildBootFixture(t, layout)
	if err != nil {
		t.Fatal(err)
	}
	bootISO[layout] = p
	return p
}

func buildBootFixture(t *testing.T, layout string) (string, error) {
	kernel, _, err := guest.Kernel()
	if err != nil {
		return "", err
	}
	if fixtureDir == "" {
		if fixtureDir, err = os.MkdirTemp("", "kiln-iso-test-"); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(fixtureDir, "boot-"+layout)
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"isolinux", "images/pxeboot", "EFI/BOOT", "boot/grub2"} {
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
	// loglevel=4 keeps the kernel's late info messages (clocksource
	// calibration, say) from interleaving with the init's report lines.
	args := "inst.stage2=hd:LABEL=KILN-TEST console=ttyS0 panic=-1 loglevel=4"
	os.WriteFile(filepath.Join(tree, "isolinux/isolinux.cfg"), []byte("default linux\nprompt 0\ntimeout 600\nlabel linux\n  kernel /images/pxeboot/vmlinuz\n  append initrd=/images/pxeboot/initrd.img "+args+"\n"), 0o644)
	// The two GRUB configurations say where they are, so the test sees
	// which one firmware used: booting the ESP partition reads the one in
	// efiboot.img, booting El Torito the one in the tree.
	grubCfg := func(src string) []byte {
		return []byte("set default=\"0\"\nset timeout=60\nsearch --no-floppy --set=root -l 'KILN-TEST'\nmenuentry 'Install' {\n\tlinux /images/pxeboot/vmlinuz " + args + " kiln.cfg=" + src + "\n\tinitrd /images/pxeboot/initrd.img\n}\n")
	}
	os.WriteFile(filepath.Join(tree, "EFI/BOOT/grub.cfg"), grubCfg("tree"), 0o644)
	os.WriteFile(filepath.Join(dir, "esp-grub.cfg"), grubCfg("esp"), 0o644)
	if layout == "el10" {
		os.RemoveAll(filepath.Join(tree, "isolinux"))
		os.WriteFile(filepath.Join(tree, "boot/grub2/grub.cfg"), grubCfg("bios"), 0o644)
		bios := append([]string{"-O", "i386-pc-eltorito", "-d", "/usr/lib/grub/i386-pc", "-p", "/boot/grub2", "-o", filepath.Join(tree, "images/eltorito.img"),
			"iso9660", "biosdisk"}, "part_gpt", "part_msdos", "normal", "configfile", "linux", "search", "search_label", "echo", "test", "serial", "terminal", "ls", "gzio")
		if out, err := exec.Command("grub-mkimage", bios...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("grub-mkimage i386-pc: %v %s", err, out)
		}
	}
	efi := filepath.Join(tree, "EFI/BOOT/BOOTX64.EFI")
	mk := append([]string{"-O", "x86_64-efi", "-d", "/usr/lib/grub/x86_64-efi", "-p", "/EFI/BOOT", "-o", efi}, grubModules...)
	if out, err := exec.Command("grub-mkimage", mk...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("grub-mkimage: %v %s", err, out)
	}
	esp := filepath.Join(tree, "images/efiboot.img")
	if layout == "el10" {
		esp = filepath.Join(dir, "efiboot.img") // appended, not in the tree
	}
	image := filepath.Join(dir, layout+"-boot.iso")
	mkiso := []string{"xorriso", "-as", "mkisofs", "-o", image, "-isohybrid-mbr", "/usr/lib/ISOLINUX/isohdpfx.bin",
		"-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat", "-boot-load-size", "4", "-boot-info-table", "-no-emul-boot",
		"-eltorito-alt-boot", "-e", "images/efiboot.img", "-no-emul-boot", "-isohybrid-gpt-basdat", "-R", "-J", "-V", "KILN-TEST", tree}
	if layout == "el10" {
		mkiso = []string{"xorriso", "-as", "mkisofs", "-o", image, "-R", "-J", "-V", "KILN-TEST",
			"--grub2-mbr", "/usr/lib/grub/i386-pc/boot_hybrid.img", "-partition_offset", "16", "-appended_part_as_gpt",
			"-append_partition", "2", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", esp,
			"-iso_mbr_part_type", "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "-c", "boot.cat", "--boot-catalog-hide",
			"-b", "images/eltorito.img", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table", "--grub2-boot-info",
			"-eltorito-alt-boot", "-e", "--interval:appended_partition_2:all::", "-no-emul-boot", tree}
	}
	for _, c := range [][]string{
		{"mkfs.fat", "-C", "-n", "ANACONDA", esp, "4096"},
		{"mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", esp, efi, "::/EFI/BOOT/BOOTX64.EFI"},
		{"mcopy", "-i", esp, filepath.Join(dir, "esp-grub.cfg"), "::/EFI/BOOT/grub.cfg"},
		mkiso,
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%v: %v %s", c, err, out)
		}
	}
	return image, nil
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
		t.Skip("boots ten VMs")
	}
	for _, layout := range []string{"el9", "el10"} {
		t.Run(layout, func(t *testing.T) { testBootModes(t, layout) })
	}
}

func testBootModes(t *testing.T, layout string) {
	src := bootFixture(t, layout)
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
					// The word alone: a kernel message may still share
					// the line.
					fw, _, _ = strings.Cut(c, "[")
					fw = strings.TrimSpace(fw)
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

// TestRemasterPartitionTree checks the second tree of an image with a
// partition offset: mounted from the partition, it shows the new files
// and edited configurations too.
func TestRemasterPartitionTree(t *testing.T) {
	src := bootFixture(t, "el10")
	out := filepath.Join(t.TempDir(), "ks.iso")
	if _, err := Remaster(src, out, Options{Kickstart: []byte(testKS), Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	f, size := mustOpen(t, out)
	sa, err := ReadSystemArea(f, size)
	if err != nil || len(sa.Partitions) < 2 || sa.Partitions[0].FirstLBA != 64 {
		t.Fatalf("system area %+v, %v", sa, err)
	}
	p := sa.Partitions[0]
	part := io.NewSectionReader(f, int64(p.FirstLBA)*512, int64(p.LastLBA-p.FirstLBA+1)*512)
	r, err := NewReader(part, part.Size())
	if err != nil {
		t.Fatalf("the partition's tree: %v", err)
	}
	ks, err := r.Stat("ks.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(ks.Open()); string(b) != testKS {
		t.Errorf("ks.cfg through the partition = %q", b)
	}
	jf, err := r.JolietReadDir("")
	found := false
	for _, j := range jf {
		found = found || j.Name == "ks.cfg"
	}
	if err != nil || !found {
		t.Errorf("the partition's Joliet tree lacks ks.cfg: %v", err)
	}
	cfg, _ := r.Stat("boot/grub2/grub.cfg")
	if b, _ := io.ReadAll(cfg.Open()); !strings.Contains(string(b), "inst.ks=hd:LABEL=KILN-TEST:/ks.cfg") {
		t.Errorf("boot/grub2/grub.cfg through the partition:\n%s", b)
	}
	// The ESP partition moved after the new files and did not overlap the
	// ISO partition.
	if esp := sa.Partitions[1]; esp.TypeGUID != GUIDESP || esp.FirstLBA <= p.LastLBA {
		t.Errorf("ESP %+v overlaps the ISO partition %+v", esp, p)
	}
	if outp, err := exec.Command("checkisomd5", out).CombinedOutput(); err != nil {
		t.Errorf("checkisomd5: %v %s", err, outp)
	}
	rep := run(t, "xorriso", "-indev", out, "-report_system_area", "plain")
	if strings.Contains(rep, "WARNING") || strings.Contains(rep, "FAILURE") {
		t.Errorf("xorriso:\n%s", rep)
	}
}

// TestRemasterGPTFitsUsable: after a remaster grows the image, every
// partition the table places in the usable range still ends inside it,
// before the backup entry array. OVMF ignores an entry past the last
// usable LBA, so an EL10 image's appended ESP would not boot from a stick.
func TestRemasterGPTFitsUsable(t *testing.T) {
	for _, layout := range []string{"el9", "el10"} {
		out := filepath.Join(t.TempDir(), "ks.iso")
		if _, err := Remaster(bootFixture(t, layout), out, Options{Kickstart: []byte(testKS), Time: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		f, size := mustOpen(t, out)
		defer f.Close()
		sa, err := ReadSystemArea(f, size)
		if err != nil || sa.GPT == nil {
			t.Fatalf("%s: %v", layout, err)
		}
		g := sa.GPT
		backupArray := g.BackupLBA - (uint64(g.NumEntries)*uint64(g.EntrySize)+511)/512
		if g.LastUsable >= backupArray || g.BackupLBA != uint64(size/512-1) {
			t.Errorf("%s: last usable LBA %d, backup array at %d, backup header at %d of %d sectors", layout, g.LastUsable, backupArray, g.BackupLBA, size/512)
		}
		for _, p := range sa.Partitions {
			if p.FirstLBA >= g.FirstUsable && p.LastLBA > g.LastUsable {
				t.Errorf("%s: partition %d (%s) ends at %d, past the last usable LBA %d", layout, p.Index, p.Name, p.LastLBA, g.LastUsable)
			}
		}
	}
}
