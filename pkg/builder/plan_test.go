package builder

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/preseed"
	"github.com/kiln-build/kiln/pkg/tdl"
)

// TestPlanLeavesInputsAlone: Plan works on its own copy of the
// kickstart. Twice on one Options gives the same plan, and the user's
// kickstart, with a TDL applied to the build's copy, renders as it was
// read.
func TestPlanLeavesInputsAlone(t *testing.T) {
	testutil.RequireTool(t, "qemu-system-x86_64")
	testutil.RequireTool(t, "qemu-img")
	orig := []byte("text\nrootpw --lock\nautopart\n%packages\n@core\n%end\n")
	ks := kickstart.Parse("k.ks", orig, kickstart.Options{Version: kickstart.RHEL9})
	tpl, err := tdl.Parse([]byte(`<template><name>t</name><os><name>Rocky-9</name><version>9</version><arch>x86_64</arch>
<install type='url'><url>http://mirror.example/rocky/9/BaseOS/x86_64/os/</url></install></os>
<commands><command name='marker'>echo hi > /root/marker</command></commands></template>`))
	if err != nil {
		t.Fatal(err)
	}
	var events []Event
	o := Options{Kickstart: ks, Original: orig, TDL: tpl, TDLPath: "t.tdl", Output: filepath.Join(t.TempDir(), "out"), Formats: []string{"raw"}, DiskSize: 1 << 30,
		Events: func(ev Event) { events = append(events, ev) }}
	first, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	// The build's event stream starts with the plan's phase; its notices
	// are the run's to emit.
	if len(events) != 1 || events[0].Event != "phase" || events[0].Phase != "validate" {
		t.Errorf("Plan's events: %+v", events)
	}
	second, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first.boot, second.boot) || !reflect.DeepEqual(first.Cmdline, second.Cmdline) || !reflect.DeepEqual(first.Notices, second.Notices) {
		t.Errorf("two plans of one Options differ:\n%+v\n%+v", first, second)
	}
	if got := string(ks.Render()); got != string(orig) {
		t.Errorf("the caller's kickstart changed:\n%s", got)
	}
	if strings.Count(string(ks.Render()), "%post") != 0 {
		t.Errorf("the TDL's %%post reached the caller's kickstart")
	}
}

// TestCheckInputs runs the input checks with an empty PATH: none of them
// needs QEMU or any other tool.
func TestCheckInputs(t *testing.T) {
	t.Setenv("PATH", "")
	ks := func(text string) *kickstart.File {
		return kickstart.Parse("k.ks", []byte(text), kickstart.Options{Version: kickstart.RHEL9})
	}
	good := "text\nrootpw --lock\nautopart\n"
	out := filepath.Join(t.TempDir(), "out")
	isoPath := filepath.Join(t.TempDir(), "x.iso")
	os.WriteFile(isoPath, nil, 0o644)
	pre := func(text string) *preseed.File {
		f, err := preseed.Parse("p.cfg", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	mirrored := "d-i mirror/http/hostname string deb.example\n"
	netboot := t.TempDir()
	os.WriteFile(filepath.Join(netboot, "linux"), nil, 0o644)
	os.WriteFile(filepath.Join(netboot, "initrd.gz"), nil, 0o644)
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no input", Options{Output: out}, "no kickstart, preseed or TDL"},
		{"no output", Options{Kickstart: ks(good)}, "no output"},
		{"format", Options{Kickstart: ks(good), Output: out, Formats: []string{"iso"}}, "--format iso"},
		{"compress", Options{Kickstart: ks(good), Output: out, Formats: []string{"raw"}, Compress: true}, "--compress applies to qcow2"},
		{"firmware", Options{Kickstart: ks(good), Output: out, Firmware: "coreboot"}, "--firmware coreboot"},
		{"boot", Options{Kickstart: ks(good), Output: out, Boot: "floppy"}, "--boot floppy"},
		{"vhd", Options{Kickstart: ks(good), Output: out, VHDSubformat: "sparse"}, "--vhd-subformat sparse"},
		{"vmdk", Options{Kickstart: ks(good), Output: out, VMDKSubformat: "twoGbMaxExtentSparse"}, "--vmdk-subformat"},
		{"small disk", Options{Kickstart: ks(good), Output: out, DiskSize: 1 << 20}, "at least 64 MiB"},
		{"two sources", Options{Kickstart: ks(good), Output: out, ISO: "a.iso", TreeURL: "http://m/os/"}, "name one installer source"},
		{"missing ISO", Options{Kickstart: ks(good), Output: out, ISO: "/nonexistent.iso"}, "/nonexistent.iso"},
		{"pxe and cdrom", Options{Kickstart: ks(good + "cdrom\n"), Output: out, ISO: isoPath, Boot: "pxe"}, "k.ks:4: cdrom: --boot pxe attaches no CD"},
		{"preseed and kickstart", Options{Kickstart: ks(good), Preseed: pre(mirrored), Output: out}, "--preseed and --ks"},
		{"preseed without source", Options{Preseed: pre(mirrored), Output: out}, "--netboot DIR|URL or --iso"},
		{"preseed with a tree", Options{Preseed: pre(mirrored), Output: out, Netboot: netboot, TreeURL: "http://m/os/"}, "--url names an Anaconda install tree"},
		{"preseed and pxe", Options{Preseed: pre(mirrored), Output: out, Netboot: netboot, Boot: "pxe"}, "--boot pxe: a Debian build"},
		{"preseed and iso-out", Options{Preseed: pre(mirrored), Output: out, Netboot: netboot, ISOOut: out + ".iso"}, "--iso-out"},
		{"netboot without initrd", Options{Preseed: pre(mirrored), Output: out, Netboot: t.TempDir()}, "no linux"},
		{"preseed without mirror", Options{Preseed: pre("d-i netcfg/get_domain string\n"), Output: out, Netboot: netboot}, "p.cfg names no mirror"},
		{"debian iso that is not", Options{Preseed: pre(mirrored), Output: out, ISO: isoPath}, "x.iso"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &builder{o: tc.o, manifest: &Manifest{}}
			err := b.checkInputs()
			if err == nil {
				t.Fatalf("checkInputs passed %+v", tc.o)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "not installed") {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}
