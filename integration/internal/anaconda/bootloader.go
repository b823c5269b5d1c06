package anaconda

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/pkg/kickstart"
)

// Bootloader is what the kickstart's bootloader line asks for.
type Bootloader struct {
	Location string // mbr (the default), partition, boot or none
	Append   string // --append, for the installed kernel's command line
	Timeout  int    // --timeout, in seconds; Anaconda's default is 5
}

// BootloaderOf reads the last bootloader line; with none, Anaconda still
// installs the boot loader with its defaults.
func BootloaderOf(ks *kickstart.File) Bootloader {
	b := Bootloader{Location: "mbr", Timeout: 5}
	cmds := ks.Commands("bootloader")
	if len(cmds) == 0 {
		return b
	}
	c := cmds[len(cmds)-1]
	if v, ok := c.Value("--location"); ok {
		b.Location = v
	}
	if c.Has("--disabled") {
		b.Location = "none"
	}
	b.Append, _ = c.Value("--append")
	if v, ok := c.Value("--timeout"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			b.Timeout = n
		}
	}
	return b
}

// Kernels returns the versions of the kernels installed under root's
// /boot, newest name last.
func Kernels(root string) []string {
	m, _ := filepath.Glob(filepath.Join(root, "boot/vmlinuz-*"))
	var out []string
	for _, p := range m {
		v := strings.TrimPrefix(filepath.Base(p), "vmlinuz-")
		if !strings.Contains(v, "rescue") {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// KernelArgs is the installed kernel's command line: the root by UUID,
// the installer's consoles (Anaconda preserves every console= of its own
// command line, in order), and --append.
func KernelArgs(l *Layout, installerConsoles []string, b Bootloader) string {
	args := []string{"root=UUID=" + l.Find("/").UUID, "ro"}
	for _, c := range installerConsoles {
		args = append(args, "console="+c)
	}
	if b.Append != "" {
		args = append(args, b.Append)
	}
	return strings.Join(args, " ")
}

// GRUBConfig is the installed system's grub.cfg: one entry per kernel,
// the newest the default, found by the UUID of the file system holding
// /boot. A serial console in args gets GRUB's serial terminal too, as
// Anaconda sets it up.
func GRUBConfig(l *Layout, kernels []string, args string, b Bootloader) string {
	boot, prefix := l.Find("/boot"), ""
	if boot == nil {
		boot, prefix = l.Find("/"), "/boot"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "# written by the kiln test installer for bootloader --location=%s\n", b.Location)
	fmt.Fprintf(&sb, "set timeout=%d\nset default=0\n", b.Timeout)
	if unit, speed, ok := serialConsole(args); ok {
		fmt.Fprintf(&sb, "serial --unit=%d --speed=%s\nterminal_input serial console\nterminal_output serial console\n", unit, speed)
	}
	for i := len(kernels) - 1; i >= 0; i-- {
		k := kernels[i]
		fmt.Fprintf(&sb, "menuentry 'Rocky Linux (%s) 9.5 (Blue Onyx)' {\n", k)
		fmt.Fprintf(&sb, "\tsearch --no-floppy --fs-uuid --set=root %s\n", boot.UUID)
		fmt.Fprintf(&sb, "\tlinux %s/vmlinuz-%s %s\n", prefix, k, args)
		fmt.Fprintf(&sb, "\tinitrd %s/initramfs-%s.img\n}\n", prefix, k)
	}
	return sb.String()
}

// serialConsole finds console=ttySN[,SPEED] among args.
func serialConsole(args string) (unit int, speed string, ok bool) {
	for _, a := range strings.Fields(args) {
		v, found := strings.CutPrefix(a, "console=ttyS")
		if !found {
			continue
		}
		dev, sp, _ := strings.Cut(v, ",")
		n, err := strconv.Atoi(dev)
		if err != nil {
			continue
		}
		unit, speed, ok = n, "115200", true
		if sp != "" {
			speed = strings.TrimRight(sp, "n8r")
		}
	}
	return unit, speed, ok
}

// ConsoleArgs returns the console= values of a kernel command line.
func ConsoleArgs(cmdline string) []string {
	var c []string
	for _, a := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(a, "console="); ok {
			c = append(c, v)
		}
	}
	return c
}

// WriteFstab writes the layout's /etc/fstab into root.
func WriteFstab(root string, l *Layout) error {
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "etc/fstab"), []byte(l.Fstab()), 0o644)
}
