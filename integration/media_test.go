package integration

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/integration/fixtures"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/qemu"
)

// scenarioKickstart is testdata/my-rocky9.ks with each edit made: old
// text to new, each of which must apply.
func scenarioKickstart(t *testing.T, edits map[string]string) string {
	tmpl, err := os.ReadFile("testdata/my-rocky9.ks")
	if err != nil {
		t.Fatal(err)
	}
	ks := string(tmpl)
	for old, repl := range edits {
		if !strings.Contains(ks, old) {
			t.Fatalf("testdata/my-rocky9.ks has no %q", old)
		}
		ks = strings.Replace(ks, old, repl, 1)
	}
	return ks
}

// dvdKickstart is the scenario's kickstart installing from the DVD it
// boots from: cdrom instead of url, and no AppStream line, since
// Anaconda adds the DVD's variants from its .treeinfo. The custom repo
// stays on the mirror.
func dvdKickstart(t *testing.T) string {
	return scenarioKickstart(t, map[string]string{
		"url --url=MIRROR/rocky/9/BaseOS/x86_64/os/\n":                              "cdrom\n",
		"repo --name=\"AppStream\" --baseurl=MIRROR/rocky/9/AppStream/x86_64/os/\n": "",
	})
}

// TestMediaInstall boots the DVD fixtures with their own firmware, as a
// physical machine boots them: isolinux or GRUB from a CD under SeaBIOS,
// GRUB from a USB stick the image was dd'd to under OVMF. The kickstart
// is on the media (inst.ks=hd:LABEL=...), the packages come from the
// media's BaseOS and AppStream, and the custom repo from the mirror.
func TestMediaInstall(t *testing.T) {
	setup(t)
	ovmf, ovmfErr := qemu.FindOVMF(false)
	for _, tc := range []struct {
		name, layout, label, firmware, media string
	}{
		{"el9 BIOS CD", "el9", fixtures.DVDLabel, "bios", "cdrom"},
		{"el9 UEFI USB", "el9", fixtures.DVDLabel, "uefi", "usb"},
		{"el10 BIOS CD", "el10", fixtures.DVD10Label, "bios", "cdrom"},
		{"el10 UEFI USB", "el10", fixtures.DVD10Label, "uefi", "usb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServers(t, dvdKickstart(t))
			dir := t.TempDir()
			iso := filepath.Join(dir, tc.label+".iso")
			m := fixtures.Media{Layout: tc.layout, Label: tc.label, Release: "9.5", Kernel: kernel, Initrd: installer, Kickstart: s.kickstart,
				Repos: map[string]string{"BaseOS": filepath.Join(mirrorDir, "rocky/9/BaseOS/x86_64/os"), "AppStream": filepath.Join(mirrorDir, "rocky/9/AppStream/x86_64/os")}}
			if err := m.Build(filepath.Join(dir, "work"), iso); err != nil {
				t.Fatal(err)
			}
			disk := filepath.Join(dir, "disk.raw")
			if err := os.WriteFile(disk, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(disk, 3<<30); err != nil {
				t.Fatal(err)
			}
			opts := []qemu.Option{qemu.WithMemory(1024), qemu.WithCPUs(1), qemu.WithAccel("tcg"),
				qemu.WithDisk(qemu.Disk{Path: disk, Format: "raw", Unsafe: true}), qemu.WithUserNet(qemu.UserNet{})}
			if tc.firmware == "uefi" {
				if ovmfErr != nil {
					testutil.RequireFile(t, "/usr/share/OVMF/OVMF_CODE_4M.fd")
					t.Fatal(ovmfErr)
				}
				opts = append(opts, qemu.WithFirmware(ovmf))
			}
			if tc.media == "usb" {
				opts = append(opts, qemu.WithUSB(iso), qemu.WithBootOrder("usb"))
			} else {
				opts = append(opts, qemu.WithCDROM(iso), qemu.WithBootOrder("cdrom"))
			}
			cfg, err := qemu.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			res, err := qemu.Run(context.Background(), cfg, qemu.RunOptions{TempDir: t.TempDir(), Keep: true, Timeout: 10 * time.Minute, Inactivity: 2 * time.Minute})
			if err != nil {
				t.Fatalf("%v\n%s\nreproduce: %s", err, tail(res), cfg.Repro())
			}
			ana, _ := os.ReadFile(res.AnacondaLog)
			for _, want := range []string{"stage2: install media", "(" + tc.label + ")", "kickstart: parsing kickstart hd:LABEL=" + tc.label + ":/ks.cfg"} {
				if !strings.Contains(string(ana), want) {
					t.Errorf("the installer log lacks %q:\n%s", want, ana)
				}
			}
			t.Logf("booted and installed in %v", res.Duration.Round(time.Second))
			checkScenario(t, disk)
		})
	}
}

// TestInstallSources installs with no url line: the base repos come from
// inst.repo=cdrom (the DVD's BaseOS and AppStream through its .treeinfo),
// the custom repo through a plain mirror list whose first mirror is dead,
// and a %pre script's output reaches the target through %post --nochroot.
func TestInstallSources(t *testing.T) {
	setup(t)
	ks := scenarioKickstart(t, map[string]string{
		"url --url=MIRROR/rocky/9/BaseOS/x86_64/os/\n":                              "",
		"repo --name=\"AppStream\" --baseurl=MIRROR/rocky/9/AppStream/x86_64/os/\n": "",
		"repo --name=\"custom\" --baseurl=MIRROR/custom-rpms/\n":                    "repo --name=\"custom\" --mirrorlist=LIST/mirrors\n",
		"%post --log=/root/ks-post.log\n":                                           "%pre\necho from-pre > /tmp/pre-ran\n%end\n\n%post --nochroot\ncp /tmp/pre-ran $ANA_INSTALL_PATH/root/pre-ran\n%end\n\n%post --log=/root/ks-post.log\n",
	})
	s := startServers(t, ks)
	list := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("# mirrors for custom\nhttp://10.0.2.2:1/custom-rpms/\n" + s.mirror + "/custom-rpms/\n"))
	}))
	s.kickstart = []byte(strings.ReplaceAll(string(s.kickstart), "LIST", list))
	disk, res, err := bootWith(t, installer, "inst.stage2=hd:LABEL="+fixtures.DVDLabel+" inst.repo=cdrom inst.ks="+s.ks+"/ks.cfg", time.Minute, qemu.WithCDROM(fx.DVD))
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(res))
	}
	checkScenario(t, disk)
	if got := inspect(t, disk, "cat /root/pre-ran"); !strings.Contains(got, "from-pre") {
		t.Errorf("/root/pre-ran: %q", got)
	}
	ana, _ := os.ReadFile(res.AnacondaLog)
	for _, want := range []string{"Running kickstart %pre script(s)", "Installing httpd.noarch"} {
		if !strings.Contains(string(ana), want) {
			t.Errorf("the installer log lacks %q:\n%s", want, ana)
		}
	}
}
