package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustNew(t *testing.T, opts ...Option) *Config {
	t.Helper()
	c, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	c.RunDir = "/run/kiln-x"
	return c
}

// has reports whether argv holds the flag followed by value.
func hasArg(argv []string, flag, value string) bool {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag && argv[i+1] == value {
			return true
		}
	}
	return false
}

func TestCmdline(t *testing.T) {
	ovmf := Firmware{Kind: UEFI, Code: "/fw/CODE.fd", Vars: "/fw/VARS.fd"}
	tests := []struct {
		name    string
		opts    []Option
		want    [][2]string // flag, value pairs that must appear
		absent  []string    // flags that must not appear
		wantErr string
	}{
		{
			name: "defaults",
			want: [][2]string{{"-machine", "q35"}, {"-accel", "tcg"}, {"-cpu", "max"}, {"-m", "2048"}, {"-smp", "2"},
				{"-display", "none"}, {"-device", "VGA"}, {"-device", "pvpanic"}, {"-action", "panic=pause,shutdown=pause"},
				{"-mon", "chardev=qmp,mode=control"}, {"-serial", "chardev:serial0"},
				{"-chardev", "socket,id=qmp,path=/run/kiln-x/qmp.sock"},
				{"-chardev", "socket,id=anaconda,path=/run/kiln-x/anaconda.sock"},
				{"-device", "virtserialport,bus=vser0.0,chardev=anaconda,name=org.fedoraproject.anaconda.log.0"}},
			absent: []string{"-kernel", "-netdev", "-bios"},
		},
		{
			name: "kvm direct boot",
			opts: []Option{WithAccel("kvm"), WithMemory(4096), WithCPUs(4), WithKernel("/k/vmlinuz", "/k/initrd.img", "inst.ks=file:/ks.cfg console=ttyS0")},
			want: [][2]string{{"-accel", "kvm"}, {"-cpu", "host"}, {"-m", "4096"}, {"-smp", "4"}, {"-kernel", "/k/vmlinuz"},
				{"-initrd", "/k/initrd.img"}, {"-append", "inst.ks=file:/ks.cfg console=ttyS0"}},
		},
		{
			name: "uefi cdrom usb disk",
			opts: []Option{WithFirmware(ovmf), WithCDROM("/iso/a,b.iso"), WithUSB("/img/stick.raw"),
				WithDisk(Disk{Path: "/img/disk.qcow2", Format: "qcow2", Unsafe: true}), WithBootOrder("usb", "cdrom", "disk")},
			want: [][2]string{
				{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd"},
				{"-drive", "if=pflash,format=raw,unit=1,file=/run/kiln-x/OVMF_VARS.fd"},
				{"-drive", "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=/iso/a,,b.iso"},
				{"-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=10"},
				{"-device", "qemu-xhci,id=xhci"},
				{"-device", "usb-storage,bus=xhci.0,drive=usb0,bootindex=0"},
				{"-drive", "if=none,id=disk0,format=qcow2,file=/img/disk.qcow2,cache=unsafe"},
				{"-device", "virtio-blk-pci,drive=disk0,id=vd0,bootindex=20"},
			},
		},
		{
			// A device the boot order leaves out still gets an index of
			// its own, after the ones named.
			name: "boot order naming only the cdrom",
			opts: []Option{WithCDROM("/iso/dvd.iso"), WithDisk(Disk{Path: "/d.raw", Format: "raw"}), WithBootOrder("cdrom")},
			want: [][2]string{{"-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=0"}, {"-device", "virtio-blk-pci,drive=disk0,id=vd0,bootindex=20"}},
		},
		{
			// The linuxboot option ROM of -kernel holds bootindex 0.
			name: "direct boot with a cdrom and a disk",
			opts: []Option{WithKernel("/k/vmlinuz", "/k/initrd.img", ""), WithCDROM("/iso/oemdrv.iso"), WithDisk(Disk{Path: "/d.raw", Format: "raw"})},
			want: [][2]string{{"-device", "ide-cd,drive=cd0,bus=ide.0,bootindex=1"}, {"-device", "virtio-blk-pci,drive=disk0,id=vd0,bootindex=21"}},
		},
		{
			name: "secure boot",
			opts: []Option{WithFirmware(Firmware{Kind: UEFI, Code: "c", Vars: "v", SecureBoot: true})},
			want: [][2]string{{"-machine", "q35,smm=on"}, {"-global", "driver=cfi.pflash01,property=secure,value=on"}},
		},
		{
			name: "restricted network",
			opts: []Option{WithUserNet(UserNet{Restrict: true, GuestFwd: []GuestFwd{{Addr: "10.0.2.100:80", Target: "tcp:127.0.0.1:8080"}}, HostFwd: []string{"tcp:127.0.0.1:2222-:22"}})},
			want: [][2]string{{"-netdev", "user,id=net0,restrict=on,guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:8080,hostfwd=tcp:127.0.0.1:2222-:22"},
				{"-device", "virtio-net-pci,netdev=net0"}},
		},
		{name: "bad accel", opts: []Option{WithAccel("hvf")}, wantErr: "want kvm or tcg"},
		{name: "tiny memory", opts: []Option{WithMemory(8)}, wantErr: "too small"},
		{name: "initrd without kernel", opts: []Option{WithKernel("", "/i", "")}, wantErr: "needs a kernel"},
		{name: "uefi without vars", opts: []Option{WithFirmware(Firmware{Kind: UEFI, Code: "c"})}, wantErr: "variable-store"},
		{name: "bad boot device", opts: []Option{WithBootOrder("floppy")}, wantErr: "boot device"},
		{name: "bad guestfwd", opts: []Option{WithUserNet(UserNet{GuestFwd: []GuestFwd{{Addr: "nope"}}})}, wantErr: "guestfwd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.RunDir = "/run/kiln-x"
			argv, err := c.Cmdline()
			if err != nil {
				t.Fatal(err)
			}
			if argv[0] != "qemu-system-x86_64" || !hasArg(argv, "-no-reboot", "-display") && !contains(argv, "-no-reboot") || !contains(argv, "-S") || !contains(argv, "-nodefaults") {
				t.Errorf("argv lacks the fixed arguments: %q", argv)
			}
			for _, w := range tt.want {
				if !hasArg(argv, w[0], w[1]) {
					t.Errorf("argv lacks %s %s:\n%s", w[0], w[1], ShellQuote(argv))
				}
			}
			for _, a := range tt.absent {
				if contains(argv, a) {
					t.Errorf("argv has %s", a)
				}
			}
			again, _ := c.Cmdline()
			if ShellQuote(again) != ShellQuote(argv) {
				t.Error("Cmdline is not deterministic")
			}
		})
	}
}

func contains(argv []string, s string) bool {
	for _, a := range argv {
		if a == s {
			return true
		}
	}
	return false
}

func TestCmdlineNeedsRunDir(t *testing.T) {
	c, _ := New()
	if _, err := c.Cmdline(); err == nil {
		t.Error("Cmdline without a run directory succeeded")
	}
}

func TestRepro(t *testing.T) {
	c := mustNew(t, WithKernel("/k/vmlinuz", "/k/initrd", "console=ttyS0 inst.ks=hd:LABEL=Rocky\\x209:/ks.cfg"))
	r := c.Repro()
	for _, want := range []string{"-serial stdio", "-qmp unix:qmp.sock,server=on,wait=off", "file,id=anaconda,path=anaconda.log",
		`'console=ttyS0 inst.ks=hd:LABEL=Rocky\x209:/ks.cfg'`} {
		if !strings.Contains(r, want) {
			t.Errorf("repro lacks %q:\n%s", want, r)
		}
	}
	for _, bad := range []string{" -S", "serial.sock", "shutdown=pause"} {
		if strings.Contains(r, bad) {
			t.Errorf("repro has %q, which needs kiln:\n%s", bad, r)
		}
	}
}

func TestShellQuote(t *testing.T) {
	got := ShellQuote([]string{"a", "b c", "it's", "", "x=y,z"})
	if got != `a 'b c' 'it'\''s' '' x=y,z` {
		t.Errorf("ShellQuote = %s", got)
	}
}

func TestFindOVMF(t *testing.T) {
	dir := t.TempDir()
	code, vars := filepath.Join(dir, "CODE.fd"), filepath.Join(dir, "VARS.fd")
	os.WriteFile(code, nil, 0o644)
	os.WriteFile(vars, nil, 0o644)
	desc := `{"interface-types": ["uefi"], "mapping": {"device": "flash", "executable": {"filename": "` + code + `", "format": "raw"},
		"nvram-template": {"filename": "` + vars + `", "format": "raw"}}, "targets": [{"architecture": "x86_64", "machines": ["pc-q35-*"]}],
		"features": ["acpi-s3", "amd-sev"]}`
	descDir := filepath.Join(dir, "firmware")
	os.Mkdir(descDir, 0o755)
	os.WriteFile(filepath.Join(descDir, "50-test.json"), []byte(desc), 0o644)
	fw, err := findOVMF([]string{descDir}, nil, false)
	if err != nil || fw.Code != code || fw.Vars != vars || fw.Kind != UEFI {
		t.Errorf("findOVMF = %+v, %v", fw, err)
	}
	if _, err := findOVMF([]string{descDir}, nil, true); err == nil {
		t.Error("found secure-boot firmware where there is none")
	}
	fw, err = findOVMF([]string{filepath.Join(dir, "none")}, [][2]string{{code, vars}}, false)
	if err != nil || fw.Code != code {
		t.Errorf("fallback = %+v, %v", fw, err)
	}
	if _, err := findOVMF(nil, nil, false); err == nil {
		t.Error("found firmware in nothing")
	}
}

func TestFindOVMFOnThisHost(t *testing.T) {
	if _, err := os.Stat("/usr/share/qemu/firmware"); err != nil {
		skipOrFail(t, "ovmf")
	}
	fw, err := FindOVMF(false)
	if err != nil {
		t.Fatal(err)
	}
	// A code image and a variable store: flash images, each a UEFI
	// firmware volume ("_FVH" at offset 40 of its first), and no Secure
	// Boot unless asked for.
	for _, p := range []string{fw.Code, fw.Vars} {
		b, err := os.ReadFile(p)
		if err != nil || len(b) < 64<<10 || len(b)%4096 != 0 || string(b[40:44]) != "_FVH" {
			t.Errorf("firmware image %q (%d bytes, %v) is not a UEFI flash image", p, len(b), err)
		}
	}
	if fw.Kind != UEFI || fw.Code == fw.Vars || fw.SecureBoot {
		t.Errorf("OVMF = %+v", fw)
	}
	t.Logf("OVMF: %+v", fw)
}

func skipOrFail(t *testing.T, pkg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required (CI=true)", pkg)
	}
	t.Skipf("%s not installed", pkg)
}
