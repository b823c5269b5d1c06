package anaconda

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/kickstart"
)

// layoutText is a plan in one line per volume: "mount fstype MiB".
func layoutText(l *Layout) string {
	var parts []string
	for _, v := range l.Volumes {
		m := v.Mount
		if m == "" {
			m = "-"
		}
		parts = append(parts, fmt.Sprintf("%s %s %d", m, v.FSType, (v.LastLBA+1-v.FirstLBA)/2048))
	}
	return strings.Join(parts, ", ")
}

func TestPlanStorage(t *testing.T) {
	const gib = 1 << 30
	bios := Machine{Disk: "vda", Size: 4 * gib, RAMMiB: 1024}
	uefi := Machine{Disk: "vda", Size: 4 * gib, RAMMiB: 1024, UEFI: true}
	for _, tc := range []struct {
		name string
		ks   string
		m    Machine
		want string // the layout, or the error's text
	}{
		// Anaconda's autopart on Rocky 9, plain: the platform's boot
		// partition, /boot 1 GiB, / growing, swap a tenth of the disk.
		{"autopart bios", "autopart", bios, "- biosboot 1, /boot xfs 1024, / xfs 2660, - swap 409"},
		{"autopart uefi", "autopart --type=plain", uefi, "/boot/efi vfat 435, /boot xfs 1024, / xfs 2226, - swap 409"},
		{"autopart ext4 noswap", "autopart --fstype=ext4 --noswap", bios, "- biosboot 1, /boot ext4 1024, / ext4 3069"},
		{"autopart lvm as plain", "autopart --type=lvm --nohome", bios, "- biosboot 1, /boot xfs 1024, / xfs 2660, - swap 409"},
		{"part boot and grow", "part biosboot --fstype=biosboot --size=1\npart /boot --size=512 --fstype=ext4\npart / --grow --size=1024", bios,
			"- biosboot 1, /boot ext4 512, / xfs 3581"},
		{"part maxsize", "reqpart\npart / --size=1024 --grow --maxsize=2048\npart swap --size=256", uefi,
			"/boot/efi vfat 600, / xfs 2048, - swap 256"},
		{"reqpart add-boot", "reqpart --add-boot\npart / --size=1024 --grow", bios, "- biosboot 1, /boot xfs 1024, / xfs 3069"},
		{"two growers share by size", "reqpart\npart / --size=1000 --grow\npart /var --size=3000 --grow --fstype=ext4", bios,
			"- biosboot 1, / xfs 1024, /var ext4 3069"},
		{"logvol as partition", "reqpart\npart pv.01 --grow\nvolgroup vg pv.01\nlogvol / --vgname=vg --name=root --size=2000 --grow\nlogvol swap --vgname=vg --name=swap --recommended", bios,
			"- biosboot 1, / xfs 3684, - swap 409"},
		{"ondisk", "reqpart\npart / --size=1024 --ondisk=vda", bios, "- biosboot 1, / xfs 1024"},
		{"no storage", "rootpw x", bios, "no autopart or part lines"},
		{"no root", "reqpart\npart /boot --size=500", bios, "you have not defined a root partition"},
		{"bios needs biosboot", "part / --size=1024", bios, "needs a special partition to boot from a GPT disk"},
		{"uefi needs ESP", "part / --size=1024", uefi, "you must include an EFI System Partition"},
		{"location none needs neither", "bootloader --location=none\npart / --size=1024", uefi, "/ xfs 1024"},
		{"too small", "autopart", Machine{Disk: "vda", Size: 1 * gib, RAMMiB: 1024}, "not enough space"},
		{"other disk", "reqpart\npart / --size=1024 --ondisk=sdb", bios, `disk "sdb" given in part command does not exist`},
		{"only-use elsewhere", "ignoredisk --only-use=sda\nautopart", bios, "leaves no disks"},
		{"raid", "reqpart\npart raid.01 --size=1000\npart raid.02 --size=1000\nraid / --level=1 --device=md0 raid.01 raid.02", bios, "does not make"},
		{"unknown fstype", "reqpart\npart / --size=1024 --fstype=zfs", bios, "cannot make zfs"},
		{"twice", "reqpart\npart / --size=1024\npart / --size=1024", bios, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks := kickstart.Parse("ks.cfg", []byte(tc.ks+"\n"), kickstart.Options{Version: kickstart.RHEL9})
			l, err := PlanStorage(ks, tc.m)
			if err != nil {
				var f *Fatal
				if !errors.As(err, &f) {
					t.Fatalf("error %v is not an installer Fatal", err)
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %q, want it to say %q", err, tc.want)
				}
				return
			}
			if got := layoutText(l); got != tc.want {
				t.Fatalf("layout %q, want %q", got, tc.want)
			}
			// The plan fits the disk, in order, 1 MiB aligned.
			_, last := UsableLBAs(tc.m.Size)
			prev := uint64(2047)
			for _, v := range l.Volumes {
				if v.FirstLBA%2048 != 0 || v.FirstLBA <= prev || v.LastLBA > last {
					t.Errorf("volume %s at %d-%d: misplaced after %d (last usable %d)", v.Mount, v.FirstLBA, v.LastLBA, prev, last)
				}
				prev = v.LastLBA
				if v.UUID == "" {
					t.Errorf("volume %s has no UUID", v.Mount)
				}
			}
		})
	}
}

func TestSwapSuggestion(t *testing.T) {
	for _, tc := range []struct{ ram, disk, want uint64 }{
		{1024, 0, 2048}, {4096, 0, 4096}, {16384, 0, 8192}, {131072, 0, 4096}, {1024, 4096, 409},
	} {
		if got := SwapSuggestion(tc.ram, tc.disk); got != tc.want {
			t.Errorf("SwapSuggestion(%d, %d) = %d, want %d", tc.ram, tc.disk, got, tc.want)
		}
	}
}

func TestGRUBConfig(t *testing.T) {
	ks := kickstart.Parse("ks.cfg", []byte("autopart\nbootloader --append=\"net.ifnames=0\" --timeout=2\n"), kickstart.Options{Version: kickstart.RHEL9})
	l, err := PlanStorage(ks, Machine{Disk: "vda", Size: 4 << 30, RAMMiB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	b := BootloaderOf(ks)
	args := KernelArgs(l, ConsoleArgs("inst.ks=x console=tty0 console=ttyS0,115200n8"), b)
	if want := "root=UUID=" + l.Find("/").UUID + " ro console=tty0 console=ttyS0,115200n8 net.ifnames=0"; args != want {
		t.Errorf("args %q, want %q", args, want)
	}
	cfg := GRUBConfig(l, []string{"6.1.0-1-amd64"}, args, b)
	for _, want := range []string{"set timeout=2", "serial --unit=0 --speed=115200", "search --no-floppy --fs-uuid --set=root " + l.Find("/boot").UUID,
		"linux /vmlinuz-6.1.0-1-amd64 " + args, "initrd /initramfs-6.1.0-1-amd64.img"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("grub.cfg lacks %q:\n%s", want, cfg)
		}
	}
	if fstab := l.Fstab(); !strings.Contains(fstab, "UUID="+l.Find("/").UUID) || !strings.Contains(fstab, "swap") {
		t.Errorf("fstab:\n%s", fstab)
	}
}
