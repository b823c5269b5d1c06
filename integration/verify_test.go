package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/qemu"
)

// The tests of disks that boot: kiln build --verify under each firmware,
// on a layout given by part lines, and kiln verify's negative controls,
// so that the check cannot pass by accident.

// verifyKS is the scenario with its own layout: /boot and a growing /,
// the platform's boot partition by reqpart, and a %post --nochroot that
// writes where Anaconda's documentation says the target is.
func verifyKS(ks string) string {
	ks = strings.Replace(ks, "autopart\n", "reqpart\npart /boot --size=1024 --fstype=xfs\npart / --size=1024 --grow\n", 1)
	return ks + "\n%post --nochroot\necho written-through-sysimage > /mnt/sysimage/root/nochroot-marker\n%end\n"
}

func TestBuildVerify(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		firmware string
		codes    string // sgdisk's type codes, in disk order
		loader   string // a file the boot loader installed
	}{
		{"bios", "EF02,8300,8300", "/boot/grub/i386-pc/core.img"},
		{"uefi", "EF00,8300,8300", ""},
	} {
		t.Run(tc.firmware, func(t *testing.T) {
			b := newBuildEnv(t)
			ks := b.kickstart(t, verifyKS)
			out := filepath.Join(b.dir, "verified")
			if _, err := b.run(t, "build", "--ks", ks, "--iso", fx.DVD, "-o", out, "--format", "raw", "--firmware", tc.firmware,
				"--verify", "--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache, "--inactivity", "2m"); err != nil {
				t.Fatal(err)
			}
			m := readManifest(t, out+".manifest.json")
			if len(m.Verify) != 1 || !m.Verify[0].OK || string(m.Verify[0].Firmware) != tc.firmware || m.Verify[0].Signal == "" {
				t.Fatalf("manifest verify: %+v", m.Verify)
			}
			t.Logf("--verify under %s: %s %q in %v", tc.firmware, m.Verify[0].Signal, m.Verify[0].Detail, m.Verify[0].Duration)
			im := openImage(t, out+".raw")
			if got := strings.Join(im.partitionCodes(), ","); got != tc.codes {
				t.Errorf("partition types %s, want %s", got, tc.codes)
			}
			im.fsck()
			if got := im.read("/root/nochroot-marker"); got != "written-through-sysimage\n" {
				t.Errorf("%%post --nochroot into /mnt/sysimage: %q", got)
			}
			if tc.loader != "" && !im.exists(tc.loader) {
				t.Errorf("no %s", tc.loader)
			}
			if tc.firmware == "uefi" {
				esp := im.mounts["/boot/efi"]
				if esp == nil {
					t.Fatal("no /boot/efi in fstab")
				}
				// The removable-media path, which any UEFI machine boots.
				if o, err := exec.Command("mdir", "-b", "-i", out+".raw@@"+strconv.FormatInt(esp.start, 10), "::/EFI/BOOT").CombinedOutput(); err != nil || !strings.Contains(strings.ToUpper(string(o)), "BOOTX64.EFI") {
					t.Errorf("mdir ::/EFI/BOOT: %v\n%s", err, o)
				}
			}
			checkNoBuildTraces(t, im)
			if tc.firmware == "bios" {
				t.Run("broken boot loader", func(t *testing.T) { brokenBootLoader(t, out+".raw") })
			}
		})
	}
}

// checkNoBuildTraces checks that the build's machinery stayed out of the
// image: no guest address and no token in the kickstart copies, the repo
// files or anywhere else outside Anaconda's own logs.
func checkNoBuildTraces(t *testing.T, im *image) {
	t.Helper()
	ks := im.read("/root/anaconda-ks.cfg")
	if strings.Contains(ks, "Added by kiln") || strings.Contains(ks, "10.0.2.100") {
		t.Errorf("/root/anaconda-ks.cfg carries kiln's sections:\n%s", ks)
	}
	if !strings.Contains(ks, "useradd -m -s /bin/bash customuser") {
		t.Errorf("/root/anaconda-ks.cfg lost the user's %%post:\n%s", ks)
	}
	for _, hit := range im.grep("10.0.2.100") {
		if !strings.HasPrefix(hit, "/var/log/anaconda/") {
			t.Errorf("%s carries the build VM's guest address 10.0.2.100", hit)
		}
	}
}

// brokenBootLoader: the same disk with its MBR boot code wiped does not
// boot, and kiln verify says so with the screendump.
func brokenBootLoader(t *testing.T, good string) {
	disk := filepath.Join(t.TempDir(), "broken.raw")
	if o, err := exec.Command("cp", "--sparse=always", good, disk).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, o)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The boot code area of the MBR; the partition table after it stays.
	if _, err := f.WriteAt(make([]byte, 440), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	expectNoBoot(t, disk, "bios", "")
}

// expectNoBoot runs kiln verify on a disk that must not pass, and checks
// that the failure says where to look.
func expectNoBoot(t *testing.T, disk, firmware, want string) {
	t.Helper()
	cmd := exec.Command(kiln(t), "verify", "--accel", "tcg", "--firmware", firmware, "--timeout", "40s", disk)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("kiln verify passed a disk that cannot boot:\n%s", out)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("kiln verify: %v, want exit 1", err)
	}
	for _, w := range []string{"did not boot under " + firmware, "serial log:", "reproduce with:", want} {
		if !strings.Contains(string(out), w) {
			t.Errorf("kiln verify's failure lacks %q:\n%s", w, out)
		}
	}
	if want == "" && !strings.Contains(string(out), "screendump:") {
		t.Errorf("kiln verify's failure has no screendump:\n%s", out)
	}
}

// TestVerifyNegative: a build with bootloader --location=none gives a
// disk verify refuses, and a build whose kernel cannot find its root
// panics, which --verify catches and which fails the build, with no image
// left behind.
func TestVerifyNegative(t *testing.T) {
	setup(t)
	b := newBuildEnv(t)
	common := []string{"--format", "raw", "--accel", "tcg", "--memory", "1G", "--cpus", "1", "--disk-size", "3G", "--cache-dir", b.cache, "--inactivity", "2m"}
	t.Run("no boot loader", func(t *testing.T) {
		ks := b.kickstart(t, func(s string) string {
			return strings.Replace(s, "bootloader --location=mbr", "bootloader --location=none", 1)
		})
		out := filepath.Join(b.dir, "noloader")
		if _, err := b.run(t, append([]string{"build", "--ks", ks, "--iso", fx.DVD, "-o", out}, common...)...); err != nil {
			t.Fatal(err)
		}
		if im := openImage(t, out+".raw"); im.exists("/boot/grub/grub.cfg") {
			t.Errorf("bootloader --location=none wrote a grub.cfg")
		}
		expectNoBoot(t, out+".raw", "bios", "")
	})
	t.Run("kernel panic", func(t *testing.T) {
		ks := b.kickstart(t, func(s string) string {
			return strings.Replace(s, "bootloader --location=mbr", `bootloader --location=mbr --append="root=UUID=00000000-0000-4000-8000-000000000000"`, 1)
		})
		out := filepath.Join(b.dir, "panics")
		_, err := b.run(t, append([]string{"build", "--ks", ks, "--iso", fx.DVD, "-o", out, "--verify", "--verify-timeout", "3m"}, common...)...)
		if err == nil || !strings.Contains(err.Error(), string(qemu.OutcomeCrash)) || !strings.Contains(err.Error(), "Kernel panic") {
			t.Fatalf("a build whose kernel panics passed --verify, or failed otherwise: %v", err)
		}
		if _, err := os.Stat(out + ".raw"); err == nil {
			t.Errorf("a build that failed --verify left %s.raw", out)
		}
	})
}
