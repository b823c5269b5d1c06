package iso

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// Trimmed from lorax's templates for RHEL 9 media.
const rockyIsolinux = `default vesamenu.c32
timeout 600

menu title Rocky Linux 9.5

label linux
  menu label ^Install Rocky Linux 9.5
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd quiet

label check
  menu label Test this ^media & install Rocky Linux 9.5
  menu default
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd rd.live.check quiet

label memtest
  menu label Run a ^memory test
  kernel memtest
`

const rockyGrub = `set default="1"

function load_video {
  insmod all_video
}

set timeout=60
search --no-floppy --set=root -l 'Rocky-9-5-x86_64-dvd'

menuentry 'Install Rocky Linux 9.5' --class fedora --class gnu-linux --class gnu --class os {
	linuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd quiet
	initrdefi /images/pxeboot/initrd.img
}
menuentry 'Test this media & install Rocky Linux 9.5' --class fedora --class gnu-linux --class gnu --class os {
	linuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd rd.live.check quiet
	initrdefi /images/pxeboot/initrd.img
}
`

// udevLabels are labels and the names udev gives them, as blkid -p -o
// udev reports ID_FS_LABEL_ENC for an ext4 image with each label
// (util-linux 2.38.1, Debian 12); TestUdevEscapeAgainstBlkid asks blkid
// again where it is installed.
var udevLabels = map[string]string{
	"Rocky-9-5-x86_64-dvd": "Rocky-9-5-x86_64-dvd",
	"RHEL(9)":              `RHEL\x289\x29`,
	"Rocky 9 dvd":          `Rocky\x209\x20dvd`,
	"Ünï-co":               "Ünï-co",
	`a\b/c`:                `a\x5cb\x2fc`,
	"x#+-.:=@_y":           "x#+-.:=@_y",
	"tab\tx":               `tab\x09x`,
	"\xff\xfeab":           `\xff\xfeab`,
}

func TestUdevEscape(t *testing.T) {
	for in, want := range udevLabels {
		if got := UdevEscape(in); got != want {
			t.Errorf("UdevEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUdevEscapeAgainstBlkid makes blkid the oracle: an ext4 image with
// each label, and the ID_FS_LABEL_ENC blkid gives it.
func TestUdevEscapeAgainstBlkid(t *testing.T) {
	blkid := testutil.RequireTool(t, "blkid")
	mke2fs := testutil.RequireTool(t, "mke2fs")
	labels := []string{"ab(c)d", "m [x] y", "ĳ~`'\"", "%$&*!?", "é\x80z", "日本語", "a,b;c|d"}
	for l := range udevLabels {
		labels = append(labels, l)
	}
	for _, l := range labels {
		if len(l) > 16 {
			continue // more than an ext4 label holds
		}
		img := filepath.Join(t.TempDir(), "l.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(img, 4<<20)
		if out, err := exec.Command(mke2fs, "-q", "-F", "-L", l, img).CombinedOutput(); err != nil {
			t.Fatalf("mke2fs -L %q: %v %s", l, err, out)
		}
		out, err := exec.Command(blkid, "-p", "-o", "udev", img).Output()
		if err != nil {
			t.Fatalf("blkid: %v", err)
		}
		want := ""
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "ID_FS_LABEL_ENC="); ok {
				want = v
			}
		}
		if got := UdevEscape(l); got != want {
			t.Errorf("UdevEscape(%q) = %q, blkid says %q", l, got, want)
		}
	}
}

func TestEditIsolinux(t *testing.T) {
	e := ConfigEdit{Append: []string{`inst.ks=hd:LABEL=Rocky-9-5-x86_64-dvd:/ks.cfg`, "console=ttyS0"}, Remove: []string{"quiet", "inst.ks"}, Timeout: 5, Unattend: true}
	got := EditIsolinux(rockyIsolinux, e)
	for _, want := range []string{
		"timeout 50\n",
		"  append initrd=initrd.img inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd inst.ks=hd:LABEL=Rocky-9-5-x86_64-dvd:/ks.cfg console=ttyS0\n",
		"  append initrd=initrd.img inst.stage2=hd:LABEL=Rocky-9-5-x86_64-dvd rd.live.check inst.ks=hd:LABEL=Rocky-9-5-x86_64-dvd:/ks.cfg console=ttyS0\n",
		"label linux\n  menu default\n",
		"label memtest\n  menu label Run a ^memory test\n  kernel memtest\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("edited isolinux.cfg lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "menu default") != 1 {
		t.Errorf("menu default appears %d times:\n%s", strings.Count(got, "menu default"), got)
	}
	// Editing twice does not duplicate inst.ks.
	again := EditIsolinux(got, e)
	if strings.Count(again, "inst.ks=") != 2 {
		t.Errorf("a second edit duplicated inst.ks:\n%s", again)
	}
}

func TestEditGrub(t *testing.T) {
	e := ConfigEdit{Append: []string{`inst.ks=hd:LABEL=NEW\x20LABEL:/ks.cfg`}, OldLabel: "Rocky-9-5-x86_64-dvd", NewLabel: "NEW LABEL", Timeout: 5, Unattend: true}
	got := EditGrub(rockyGrub, e)
	for _, want := range []string{
		`set default="0"`, "set timeout=5\n", "-l 'NEW LABEL'",
		"\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=NEW\\x20LABEL quiet inst.ks=hd:LABEL=NEW\\x20LABEL:/ks.cfg\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("edited grub.cfg lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Rocky-9-5-x86_64-dvd") {
		t.Errorf("the old label survived:\n%s", got)
	}
}
