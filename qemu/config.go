package qemu

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// AnacondaLogPort is the virtio-serial port Anaconda writes its log to.
const AnacondaLogPort = "org.fedoraproject.anaconda.log.0"

// FirmwareKind is how the VM boots.
type FirmwareKind string

// Firmware kinds.
const (
	BIOS FirmwareKind = "bios" // SeaBIOS, QEMU's default
	UEFI FirmwareKind = "uefi" // OVMF
)

// Firmware names the UEFI code and variable-store template; for BIOS both
// are empty.
type Firmware struct {
	Kind FirmwareKind
	Code string // read-only code image
	Vars string // variable store template, copied per run
	// SecureBoot needs q35's SMM.
	SecureBoot bool
}

// Disk is a virtio-blk disk.
type Disk struct {
	Path     string
	Format   string // raw, qcow2, ...
	Unsafe   bool   // cache=unsafe: fast and fine for a throw-away install
	ReadOnly bool
}

// GuestFwd forwards guest connections to Addr ("10.0.2.100:80") to
// Target, a QEMU chardev spec ("tcp:127.0.0.1:8080" or "cmd:...").
type GuestFwd struct {
	Addr   string
	Target string
}

// UserNet is QEMU's user-mode network.
type UserNet struct {
	// Restrict isolates the guest: it reaches only GuestFwd targets.
	Restrict bool
	GuestFwd []GuestFwd
	// HostFwd are QEMU hostfwd rules, "tcp:127.0.0.1:2222-:22".
	HostFwd []string
	// BootFile is the boot file the user network's DHCP server hands
	// out. The NIC's option ROM is iPXE (Debian's ipxe-qemu), which
	// fetches an http URL there itself: that is how a VM netboots as a
	// physical machine does, with "net" in the boot order.
	BootFile string
}

// Config is everything that decides the QEMU command line.
type Config struct {
	Binary    string // default qemu-system-x86_64
	Machine   string // default q35
	MemoryMiB int
	CPUs      int
	Accel     string // "kvm" or "tcg"; resolve "auto" first with ResolveAccel
	Firmware  Firmware
	Disks     []Disk
	CDROM     string   // an ISO, attached read-only
	USB       []string // raw images attached as USB sticks
	Kernel    string
	Initrd    string
	Append    string
	Net       *UserNet
	// BootOrder lists "cdrom", "disk", "usb", "net" in the order firmware
	// tries them; default: cdrom, usb, disk. The network is tried only
	// when listed.
	BootOrder []string
	// RunDir holds the sockets and the private firmware variables. Start
	// sets it; Cmdline needs it.
	RunDir string
	// Extra arguments, appended verbatim.
	Extra []string
}

// Option sets part of a Config.
type Option func(*Config) error

// New returns a Config with kiln's defaults, then applies opts.
func New(opts ...Option) (*Config, error) {
	c := &Config{Binary: "qemu-system-x86_64", Machine: "q35", MemoryMiB: 2048, CPUs: 2, Accel: "tcg", Firmware: Firmware{Kind: BIOS}}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// WithBinary sets the QEMU binary.
func WithBinary(path string) Option {
	return func(c *Config) error { c.Binary = path; return nil }
}

// WithMemory sets the guest memory in MiB.
func WithMemory(mib int) Option {
	return func(c *Config) error {
		if mib < 64 {
			return fmt.Errorf("qemu: memory %d MiB is too small", mib)
		}
		c.MemoryMiB = mib
		return nil
	}
}

// WithCPUs sets the number of virtual CPUs.
func WithCPUs(n int) Option {
	return func(c *Config) error {
		if n < 1 || n > 255 {
			return fmt.Errorf("qemu: %d CPUs is out of range 1-255", n)
		}
		c.CPUs = n
		return nil
	}
}

// WithAccel sets "kvm" or "tcg".
func WithAccel(a string) Option {
	return func(c *Config) error {
		if a != "kvm" && a != "tcg" {
			return fmt.Errorf("qemu: accelerator %q: want kvm or tcg (resolve auto with ResolveAccel)", a)
		}
		c.Accel = a
		return nil
	}
}

// WithFirmware sets the firmware.
func WithFirmware(f Firmware) Option {
	return func(c *Config) error {
		if f.Kind == UEFI && (f.Code == "" || f.Vars == "") {
			return errors.New("qemu: UEFI firmware needs a code and a variable-store image")
		}
		c.Firmware = f
		return nil
	}
}

// WithDisk adds a virtio-blk disk.
func WithDisk(d Disk) Option {
	return func(c *Config) error {
		if d.Path == "" {
			return errors.New("qemu: disk without a path")
		}
		if d.Format == "" {
			d.Format = "raw"
		}
		c.Disks = append(c.Disks, d)
		return nil
	}
}

// WithCDROM attaches an ISO as a read-only CD-ROM.
func WithCDROM(iso string) Option {
	return func(c *Config) error { c.CDROM = iso; return nil }
}

// WithUSB attaches a raw image as a USB stick.
func WithUSB(image string) Option {
	return func(c *Config) error { c.USB = append(c.USB, image); return nil }
}

// WithKernel boots a kernel directly.
func WithKernel(kernel, initrd, cmdline string) Option {
	return func(c *Config) error {
		if kernel == "" && (initrd != "" || cmdline != "") {
			return errors.New("qemu: an initrd or kernel command line needs a kernel")
		}
		c.Kernel, c.Initrd, c.Append = kernel, initrd, cmdline
		return nil
	}
}

// WithUserNet adds user-mode networking.
func WithUserNet(n UserNet) Option {
	return func(c *Config) error {
		for _, g := range n.GuestFwd {
			if !strings.Contains(g.Addr, ":") || g.Target == "" {
				return fmt.Errorf("qemu: guestfwd %q -> %q: want ADDR:PORT and a target", g.Addr, g.Target)
			}
		}
		c.Net = &n
		return nil
	}
}

// WithBootOrder sets the order firmware tries the devices in.
func WithBootOrder(order ...string) Option {
	return func(c *Config) error {
		for _, o := range order {
			if o != "cdrom" && o != "disk" && o != "usb" && o != "net" {
				return fmt.Errorf("qemu: boot device %q: want cdrom, disk, usb or net", o)
			}
		}
		c.BootOrder = order
		return nil
	}
}

// WithExtra appends raw arguments.
func WithExtra(args ...string) Option {
	return func(c *Config) error { c.Extra = append(c.Extra, args...); return nil }
}

// Paths of the per-run files in RunDir.
func (c *Config) qmpSocket() string      { return filepath.Join(c.RunDir, "qmp.sock") }
func (c *Config) serialSocket() string   { return filepath.Join(c.RunDir, "serial.sock") }
func (c *Config) anacondaSocket() string { return filepath.Join(c.RunDir, "anaconda.sock") }

// VarsPath is the private copy of the UEFI variable store.
func (c *Config) VarsPath() string { return filepath.Join(c.RunDir, "OVMF_VARS.fd") }

// escapeOpt escapes a value for QEMU's option syntax, where commas double.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Cmdline returns the argv kiln runs: the logs and QMP go to sockets in
// RunDir that kiln listens on, and the VM starts paused.
func (c *Config) Cmdline() ([]string, error) {
	return c.cmdline(false)
}

// Repro returns a command line that reproduces the VM without kiln: the
// console goes to the terminal, the Anaconda log to a file, and QMP to a
// socket QEMU listens on itself. It is shell-quoted, ready to paste.
func (c *Config) Repro() string {
	argv, err := c.cmdline(true)
	if err != nil {
		return "(no command line: " + err.Error() + ")"
	}
	return ShellQuote(argv)
}

func (c *Config) cmdline(repro bool) ([]string, error) {
	if c.RunDir == "" {
		return nil, errors.New("qemu: the run directory is not set")
	}
	bin := c.Binary
	if bin == "" {
		bin = "qemu-system-x86_64"
	}
	machine := c.Machine
	if machine == "" {
		machine = "q35"
	}
	if c.Firmware.SecureBoot {
		machine += ",smm=on"
	}
	a := []string{bin, "-nodefaults", "-no-user-config", "-machine", machine}
	switch c.Accel {
	case "kvm":
		a = append(a, "-accel", "kvm", "-cpu", "host")
	case "tcg", "":
		// max gives the guest x86-64-v2 and later, which RHEL 9 kernels need.
		a = append(a, "-accel", "tcg", "-cpu", "max")
	default:
		return nil, fmt.Errorf("qemu: accelerator %q: want kvm or tcg", c.Accel)
	}
	a = append(a, "-m", strconv.Itoa(c.MemoryMiB), "-smp", strconv.Itoa(c.CPUs))
	a = append(a, "-no-reboot", "-display", "none", "-device", "VGA")
	// A guest panic pauses the VM so the screen can be captured. Under
	// kiln a guest shutdown pauses too, so the final disk statistics can be
	// read before kiln quits QEMU.
	if repro {
		a = append(a, "-device", "pvpanic", "-action", "panic=pause")
	} else {
		a = append(a, "-device", "pvpanic", "-action", "panic=pause,shutdown=pause")
	}
	if c.Firmware.Kind == UEFI {
		if c.Firmware.SecureBoot {
			a = append(a, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escapeOpt(c.Firmware.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+escapeOpt(c.VarsPath()))
	}
	// Devices the order leaves out come after it, in the default order:
	// each needs a bootindex of its own.
	order := append([]string(nil), c.BootOrder...)
	for _, o := range []string{"cdrom", "usb", "disk"} {
		if !slices.Contains(order, o) {
			order = append(order, o)
		}
	}
	// With -kernel, QEMU's linuxboot option ROM takes bootindex 0, and a
	// device asking for it too makes QEMU refuse to start.
	first := 0
	if c.Kernel != "" {
		first = 1
	}
	bootIndex := map[string]int{}
	for i, o := range order {
		bootIndex[o] = first + i*10
	}
	if c.CDROM != "" {
		a = append(a,
			"-drive", "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file="+escapeOpt(c.CDROM),
			"-device", "ide-cd,drive=cd0,bus=ide.0,bootindex="+strconv.Itoa(bootIndex["cdrom"]))
	}
	if len(c.USB) > 0 {
		a = append(a, "-device", "qemu-xhci,id=xhci")
		for i, u := range c.USB {
			id := "usb" + strconv.Itoa(i)
			a = append(a,
				"-drive", "if=none,id="+id+",format=raw,file="+escapeOpt(u),
				"-device", "usb-storage,bus=xhci.0,drive="+id+",bootindex="+strconv.Itoa(bootIndex["usb"]+i))
		}
	}
	for i, d := range c.Disks {
		id := "disk" + strconv.Itoa(i)
		spec := "if=none,id=" + id + ",format=" + d.Format + ",file=" + escapeOpt(d.Path)
		if d.Unsafe {
			spec += ",cache=unsafe"
		}
		if d.ReadOnly {
			spec += ",readonly=on"
		}
		a = append(a, "-drive", spec,
			"-device", "virtio-blk-pci,drive="+id+",id=vd"+strconv.Itoa(i)+",bootindex="+strconv.Itoa(bootIndex["disk"]+i))
	}
	if c.Kernel != "" {
		a = append(a, "-kernel", c.Kernel)
		if c.Initrd != "" {
			a = append(a, "-initrd", c.Initrd)
		}
		if c.Append != "" {
			a = append(a, "-append", c.Append)
		}
	}
	if c.Net != nil {
		spec := "user,id=net0"
		if c.Net.Restrict {
			spec += ",restrict=on"
		}
		for _, g := range c.Net.GuestFwd {
			spec += ",guestfwd=tcp:" + g.Addr + "-" + escapeOpt(g.Target)
		}
		for _, h := range c.Net.HostFwd {
			spec += ",hostfwd=" + h
		}
		if c.Net.BootFile != "" {
			spec += ",bootfile=" + escapeOpt(c.Net.BootFile)
		}
		nic := "virtio-net-pci,netdev=net0"
		if i, ok := bootIndex["net"]; ok {
			nic += ",bootindex=" + strconv.Itoa(i)
		}
		a = append(a, "-netdev", spec, "-device", nic)
	}
	// The installer's log port and the serial console.
	a = append(a, "-device", "virtio-serial-pci,id=vser0")
	if repro {
		a = append(a,
			"-chardev", "file,id=anaconda,path=anaconda.log",
			"-device", "virtserialport,bus=vser0.0,chardev=anaconda,name="+AnacondaLogPort,
			"-serial", "stdio",
			"-qmp", "unix:qmp.sock,server=on,wait=off")
	} else {
		a = append(a,
			"-chardev", "socket,id=anaconda,path="+escapeOpt(c.anacondaSocket()),
			"-device", "virtserialport,bus=vser0.0,chardev=anaconda,name="+AnacondaLogPort,
			"-chardev", "socket,id=serial0,path="+escapeOpt(c.serialSocket()),
			"-serial", "chardev:serial0",
			"-chardev", "socket,id=qmp,path="+escapeOpt(c.qmpSocket()),
			"-mon", "chardev=qmp,mode=control",
			// Paused until kiln has connected everything and sends cont.
			"-S")
	}
	a = append(a, c.Extra...)
	return a, nil
}

// ShellQuote joins argv into one line a POSIX shell reads back as argv.
func ShellQuote(argv []string) string {
	var parts []string
	for _, s := range argv {
		parts = append(parts, shellQuote(s))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
