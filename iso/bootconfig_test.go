package iso

import (
	"strings"
	"testing"
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

func TestUdevEscape(t *testing.T) {
	for in, want := range map[string]string{"Rocky-9-5-x86_64-dvd": "Rocky-9-5-x86_64-dvd", "My Media": `My\x20Media`, "a/b": `a\x2fb`} {
		if got := UdevEscape(in); got != want {
			t.Errorf("UdevEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEditIsolinux(t *testing.T) {
	e := ConfigEdit{Append: []string{`inst.ks=hd:LABEL=Rocky-9-5-x86_64-dvd:/ks.cfg`, "console=ttyS0"}, Remove: []string{"quiet"}, Timeout: 5, Unattend: true}
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
