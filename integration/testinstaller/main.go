// Command testinstaller is the /init of the test installer's initramfs:
// the VM half of kiln's stand-in for Anaconda. It reads Anaconda's boot
// options, fetches the kickstart, lays out the virtio disk as the
// kickstart's storage commands ask (GPT, xfs, ext4, vfat and swap, made
// by Debian's tools), mounts it at /mnt/sysimage with /mnt/sysroot the
// same tree, and hands the rest to package anaconda: packages,
// configuration, Anaconda's copies of the kickstart and %post. It
// installs GRUB from Debian's packages as the bootloader line asks. It logs to
// the console and to the virtio-serial port Anaconda uses, in Anaconda's
// line format, and ends as the kickstart says, or as Anaconda does on an
// error: an error line, then it stops and waits.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/integration/internal/anaconda"
	"github.com/kiln-build/kiln/internal/guest/initutil"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

const (
	// mediaWait is how long to wait for install media to appear; dracut
	// waits minutes, which only slows a failing test down.
	mediaWait = 15 * time.Second
	sysimage  = "/mnt/sysimage" // Anaconda's physical_root
	sysroot   = "/mnt/sysroot"  // Anaconda's system_root: the same tree here
	disk      = "/dev/vda"
)

// logw writes each line to the console and, once it is open, the log port.
type logw struct{ port io.Writer }

func (l *logw) Write(p []byte) (int, error) {
	os.Stdout.Write(p)
	if l.port != nil {
		l.port.Write(p)
	}
	return len(p), nil
}

var log = &logw{}

func logf(level, format string, args ...any) {
	fmt.Fprintf(log, "%s %s anaconda: %s\n", time.Now().UTC().Format("15:04:05,000"), level, fmt.Sprintf(format, args...))
}

func main() {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"}, {"tmpfs", "/run", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := syscall.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			fmt.Printf("mounting %s: %v\n", m.dst, err)
		}
	}
	initutil.LoadModules()
	if port := initutil.WaitFor(func() string { return initutil.FindPort(initutil.AnacondaLogPort) }, 10*time.Second); port != "" {
		if f, err := os.OpenFile(port, os.O_WRONLY, 0); err == nil {
			log.port = f
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	opts := anaconda.ParseBootOptions(string(cmdline))
	logf("INFO", "anaconda 34.25.4.9-1 (kiln test installer) for Rocky Linux 9 started.")
	err := install(context.Background(), opts, string(cmdline))
	if err != nil {
		// Anaconda shows the error and waits for the user; to kiln that is
		// the fatal line its monitor knows, then silence.
		var f *anaconda.Fatal
		if errors.As(err, &f) {
			logf("ERR", "%s", f.Msg)
			// In cmdline mode, which is what an unattended kickstart
			// install amounts to, Anaconda then says it stopped.
			logf("ERR", "The installation was stopped due to an error which occurred while running in non-interactive cmdline mode.")
		} else {
			logf("ERR", "Traceback (most recent call last):")
			fmt.Fprintf(log, "  File \"/usr/lib64/python3.9/site-packages/pyanaconda/installation.py\", line 1, in run\n")
			fmt.Fprintf(log, "pyanaconda.modules.common.errors.installation.InstallationError: %v\n", err)
		}
		hang()
	}
	finish()
}

// The end the kickstart asked for; "" is none.
var ending string

func install(ctx context.Context, opts anaconda.BootOptions, cmdline string) (err error) {
	media := ""
	stage2 := opts.Stage2
	if stage2 == "" && (strings.HasPrefix(opts.Repo, "http://") || strings.HasPrefix(opts.Repo, "https://")) {
		// Without inst.stage2=, dracut's anaconda module takes the
		// runtime image from the inst.repo= tree (a network install's
		// one argument).
		stage2 = opts.Repo
	}
	if stage2 != "" {
		// dracut waits for the install media before anything else; with
		// no such label it never finds its root, and gives up.
		st, err := anaconda.ParseLocation(stage2)
		if err != nil {
			return &anaconda.Fatal{Msg: "inst.stage2: " + err.Error()}
		}
		if st.Kind == "hd" && st.Label != "" {
			dev := byLabel(st.Label, mediaWait)
			if dev == "" {
				emergency("/dev/disk/by-label/" + st.Label + " does not exist")
			}
			logf("INFO", "stage2: install media %s (%s)", dev, st.Label)
			if err := mountMedia(dev); err != nil {
				emergency(err.Error())
			}
			// dracut's anaconda module finds the runtime image through
			// .treeinfo's [stage2] mainimage, else images/install.img.
			img := stage2Image(anaconda.MediaRepo)
			if fi, err := os.Stat(filepath.Join(anaconda.MediaRepo, img)); err != nil || fi.Size() == 0 {
				emergency(fmt.Sprintf("anaconda: failed to find the stage2 image %s on %s", img, dev))
			}
			media = anaconda.MediaRepo
		}
		if st.Kind == "http" {
			// dracut fetches the runtime image over the network.
			if err := network(); err != nil {
				return err
			}
			base := strings.TrimSuffix(st.URL, "/")
			ti, _ := anaconda.Fetch(ctx, http.DefaultClient, base+"/.treeinfo")
			img := treeinfoStage2(string(ti))
			if b, err := anaconda.Fetch(ctx, http.DefaultClient, base+"/"+img); err != nil || len(b) == 0 {
				emergency(fmt.Sprintf("anaconda: failed to fetch the stage2 image %s/%s: %v", base, img, err))
			}
			logf("INFO", "stage2: fetched %s/%s", base, img)
		}
	}
	instRepo := ""
	if opts.Repo != "" {
		if instRepo, err = repoSource(opts.Repo, &media); err != nil {
			return err
		}
	}
	if opts.KS == "" {
		// The OEMDRV rule: a volume so labelled carrying ks.cfg.
		if dev := byLabel("OEMDRV", 3*time.Second); dev != "" {
			opts.KS = "hd:" + dev + ":/ks.cfg"
		} else {
			return &anaconda.Fatal{Msg: "kickstart: no inst.ks= was given and no OEMDRV volume carries ks.cfg"}
		}
	}
	loc, err := anaconda.ParseLocation(opts.KS)
	if err != nil {
		return &anaconda.Fatal{Msg: "kickstart: " + err.Error()}
	}
	client := anaconda.NewClient("", 2*time.Minute)
	var text []byte
	switch loc.Kind {
	case "file":
		if text, err = os.ReadFile(loc.Path); err != nil {
			return &anaconda.Fatal{Msg: fmt.Sprintf("kickstart: the kickstart file %s is missing: %v", loc.Path, err)}
		}
	case "http":
		if err := network(); err != nil {
			return err
		}
		logf("INFO", "kickstart: fetching %s", loc.URL)
		if text, err = anaconda.Fetch(ctx, client, loc.URL); err != nil {
			return &anaconda.Fatal{Msg: fmt.Sprintf("kickstart: failed to fetch kickstart from %s: %v", loc.URL, err)}
		}
	case "hd", "cdrom":
		var dev string
		switch {
		case loc.Kind == "cdrom":
			dev = firstCDROM(mediaWait)
		case loc.Label != "":
			dev = byLabel(loc.Label, mediaWait)
		case loc.Dev != "":
			dev = initutil.WaitFor(initutil.Exists("/dev/"+loc.Dev), mediaWait)
		default:
			return &anaconda.Fatal{Msg: fmt.Sprintf("kickstart: %s: the test installer does not find devices by UUID", opts.KS)}
		}
		if dev == "" {
			return &anaconda.Fatal{Msg: fmt.Sprintf("kickstart: %s: no such device", opts.KS)}
		}
		if text, err = readFrom(dev, loc.Path); err != nil {
			return &anaconda.Fatal{Msg: fmt.Sprintf("kickstart: the kickstart file %s on %s is missing: %v", loc.Path, dev, err)}
		}
	default:
		return &anaconda.Fatal{Msg: fmt.Sprintf("kickstart: %s: the test installer does not read kickstarts from %s", opts.KS, loc.Kind)}
	}
	logf("INFO", "kickstart: parsing kickstart %s", opts.KS)
	ks := kickstart.Parse("ks.cfg", text, kickstart.Options{Version: kickstart.RHEL9})
	if err := ks.Err(); err != nil {
		// Anaconda's message for an unparsable kickstart.
		return &anaconda.Fatal{Msg: "The following error was found while parsing the kickstart configuration file: " + err.Error()}
	}
	for _, c := range ks.Commands("poweroff", "shutdown", "halt", "reboot") {
		ending = c.Name
	}
	if loc.Kind != "http" {
		// Anaconda's default is ip=dhcp; the repos and %post want it.
		if err := network(); err != nil {
			return err
		}
	}
	var layout *anaconda.Layout
	in := &anaconda.Installer{KS: ks, Original: text, Root: sysimage, SystemRoot: sysroot, Client: client, Log: log, Proxy: opts.Proxy, InstRepo: instRepo, Media: media}
	for _, step := range []func() error{
		func() error { return in.PreScripts(ctx) },
		func() (err error) { layout, err = partition(ks); return err },
		func() error { return in.Packages(ctx) },
		// As Anaconda's installation queue runs them (installation.py):
		// the boot loader right after the payload, then the system's
		// configuration, the kickstart copies and %post.
		func() error { return installBootloader(ks, layout, cmdline) },
		in.Configure,
		func() error { return anaconda.WriteFstab(sysimage, layout) },
		in.SaveKickstarts,
		func() error { return in.PostScripts(ctx) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	logf("INFO", "Installation complete")
	syscall.Sync()
	if err := syscall.Unmount(sysroot, syscall.MNT_DETACH); err != nil {
		logf("WARNING", "unmounting %s: %v", sysroot, err)
	}
	for i := len(mounted) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounted[i], 0); err != nil {
			logf("WARNING", "unmounting %s: %v", mounted[i], err)
		}
	}
	syscall.Sync()
	return nil
}

// finish ends the install as the kickstart asked.
func finish() {
	switch ending {
	case "poweroff", "shutdown":
		logf("INFO", "Powering off")
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	case "halt":
		logf("INFO", "Halting")
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_HALT)
	case "reboot":
		logf("INFO", "Rebooting")
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	}
	// No ending: Anaconda waits for Enter on its last screen.
	logf("INFO", "Installation complete. Press ENTER to quit:")
	hang()
}

// partition lays the disk out as the kickstart's storage commands ask
// (anaconda.PlanStorage), makes each file system with the tool Anaconda's
// blivet runs, and mounts the tree at /mnt/sysimage, with /mnt/sysroot
// the same tree, as in a non-ostree Anaconda install.
func partition(ks *kickstart.File) (*anaconda.Layout, error) {
	dev := initutil.WaitFor(initutil.Exists(disk), 20*time.Second)
	if dev == "" {
		return nil, &anaconda.Fatal{Msg: "storage configuration failed: no disks found (" + disk + ")"}
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	_, uefi := os.Stat("/sys/firmware/efi")
	m := anaconda.Machine{Disk: filepath.Base(disk), Size: size, UEFI: uefi == nil, RAMMiB: memMiB()}
	l, err := anaconda.PlanStorage(ks, m)
	if err != nil {
		return nil, err
	}
	firmware := "BIOS"
	if m.UEFI {
		firmware = "UEFI"
	}
	logf("INFO", "storage: creating a GPT on %s (%d MiB, %s) with %d partitions", dev, size>>20, firmware, len(l.Volumes))
	if err := anaconda.WriteGPT(f, size, l.Partitions()); err != nil {
		return nil, &anaconda.Fatal{Msg: "storage configuration failed: " + err.Error()}
	}
	f.Sync()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil {
		return nil, fmt.Errorf("rereading the partition table of %s: %w", dev, err)
	}
	for i, v := range l.Volumes {
		part := fmt.Sprintf("%s%d", dev, i+1)
		if initutil.WaitFor(initutil.Exists(part), 10*time.Second) == "" {
			return nil, &anaconda.Fatal{Msg: "storage configuration failed: " + part + " never appeared"}
		}
		if err := mkfs(v, part); err != nil {
			return nil, err
		}
	}
	for _, v := range l.Mounts() {
		target := filepath.Join(sysimage, v.Mount)
		os.MkdirAll(target, 0o755)
		if err := syscall.Mount(partOf(l, v), target, v.FSType, 0, ""); err != nil {
			return nil, &anaconda.Fatal{Msg: fmt.Sprintf("storage configuration failed: mounting %s at %s: %v", partOf(l, v), target, err)}
		}
		mounted = append(mounted, target)
	}
	os.MkdirAll(sysroot, 0o755)
	if err := syscall.Mount(sysimage, sysroot, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return nil, &anaconda.Fatal{Msg: fmt.Sprintf("storage configuration failed: binding %s at %s: %v", sysimage, sysroot, err)}
	}
	return l, nil
}

// mounted are the target's mounts, in the order they were made.
var mounted []string

// partOf is the device node of a volume.
func partOf(l *anaconda.Layout, v *anaconda.Volume) string {
	for i, w := range l.Volumes {
		if w == v {
			return fmt.Sprintf("%s%d", disk, i+1)
		}
	}
	return ""
}

// mkfs makes a volume's file system, with the UUID the plan chose.
func mkfs(v *anaconda.Volume, part string) error {
	var argv []string
	switch v.FSType {
	case "biosboot":
		return nil
	case "xfs":
		argv = []string{"/usr/sbin/mkfs.xfs", "-q", "-f", "-m", "uuid=" + v.UUID}
	case "ext2", "ext3", "ext4":
		argv = []string{"/usr/sbin/mke2fs", "-q", "-F", "-t", v.FSType, "-U", v.UUID}
	case "vfat":
		argv = []string{"/usr/sbin/mkfs.vfat", "-i", strings.ReplaceAll(v.UUID, "-", "")}
	case "swap":
		argv = []string{"/usr/sbin/mkswap", "-U", v.UUID}
	}
	if v.Label != "" {
		argv = append(argv, map[bool]string{true: "-n", false: "-L"}[v.FSType == "vfat"], v.Label)
	}
	argv = append(argv, part)
	logf("INFO", "storage: making %s on %s for %s (%d MiB)", v.FSType, part, orSwap(v.Mount), (v.LastLBA+1-v.FirstLBA)/2048)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return &anaconda.Fatal{Msg: fmt.Sprintf("storage configuration failed: %s %s: %v: %s", filepath.Base(argv[0]), part, err, bytes.TrimSpace(out))}
	}
	return nil
}

func orSwap(mount string) string {
	if mount == "" {
		return "(no mount point)"
	}
	return mount
}

// memMiB is the machine's memory, for blivet's swap suggestion.
func memMiB() uint64 {
	b, _ := os.ReadFile("/proc/meminfo")
	var kib uint64
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			fmt.Sscan(rest, &kib)
		}
	}
	return kib / 1024
}

// installBootloader carries out the bootloader line after the packages,
// as Anaconda does: GRUB 2 from Debian's grub-pc-bin to the disk under
// BIOS, or Debian's grub-efi-amd64-bin to the ESP's removable-media path
// (EFI/BOOT/BOOTX64.EFI) under UEFI, and a grub.cfg for the kernels in
// /boot.
func installBootloader(ks *kickstart.File, l *anaconda.Layout, cmdline string) error {
	b := anaconda.BootloaderOf(ks)
	if b.Location == "none" {
		logf("INFO", "bootloader: --location=none, so no boot loader is installed")
		return nil
	}
	kernels := anaconda.Kernels(sysimage)
	if len(kernels) == 0 {
		logf("WARNING", "bootloader: no kernel packages were installed on the system; the boot loader configuration will not be changed")
		return nil
	}
	boot := filepath.Join(sysimage, "boot")
	var argv []string
	if l.Find("/boot/efi") != nil && isUEFI() {
		argv = []string{"/usr/sbin/grub-install", "--target=x86_64-efi", "--efi-directory=" + filepath.Join(sysimage, "boot/efi"),
			"--boot-directory=" + boot, "--removable", "--no-nvram"}
	} else {
		target := disk
		if b.Location == "partition" || b.Location == "boot" {
			v := l.Find("/boot")
			if v == nil {
				v = l.Find("/")
			}
			target = partOf(l, v)
			argv = append(argv, "--force")
		}
		argv = append([]string{"/usr/sbin/grub-install", "--target=i386-pc", "--boot-directory=" + boot}, append(argv, target)...)
	}
	mods := grubModules
	if !strings.Contains(argv[1], "efi") {
		mods += " biosdisk"
	}
	argv = append(argv[:1], append([]string{"--locales=", "--fonts=", "--themes=", "--install-modules=" + mods}, argv[1:]...)...)
	logf("INFO", "bootloader: installing GRUB (%s)", strings.Join(argv, " "))
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return &anaconda.Fatal{Msg: fmt.Sprintf("bootloader: failed to install the boot loader: %v: %s", err, bytes.TrimSpace(out))}
	}
	args := anaconda.KernelArgs(l, anaconda.ConsoleArgs(cmdline), b)
	cfg := anaconda.GRUBConfig(l, kernels, args, b)
	if err := os.WriteFile(filepath.Join(boot, "grub/grub.cfg"), []byte(cfg), 0o644); err != nil {
		return &anaconda.Fatal{Msg: fmt.Sprintf("bootloader: failed to write the boot loader configuration: %v", err)}
	}
	logf("INFO", "bootloader: kernel %s, arguments %s", kernels[len(kernels)-1], args)
	return nil
}

// grubModules are the GRUB modules installed to the disk: what the
// config and the layouts need. grub-install adds their dependencies.
const grubModules = "normal linux search search_fs_uuid configfile echo test serial terminal part_gpt part_msdos xfs ext2 fat gzio"

func isUEFI() bool {
	_, err := os.Stat("/sys/firmware/efi")
	return err == nil
}

// emergency is dracut giving up on the install media: its warnings, then
// the emergency shell, which waits; to kiln a hang.
func emergency(why string) {
	fmt.Fprintf(log, "dracut-initqueue: Warning: dracut-initqueue: timeout, still waiting for following initqueue hooks:\n")
	fmt.Fprintf(log, "dracut-initqueue: Warning: %s\n", why)
	fmt.Fprintf(log, "Warning: /dev/root does not exist\n")
	fmt.Fprintf(log, "Entering emergency mode. Exit the shell to continue.\n")
	hang()
}

func hang() {
	for {
		syscall.Pause()
	}
}

var networkUp bool

// network brings up eth0 with DHCP, as Anaconda's ip=dhcp default does.
func network() error {
	if networkUp {
		return nil
	}
	if initutil.WaitFor(initutil.Exists("/sys/class/net/eth0"), 10*time.Second) == "" {
		return &anaconda.Fatal{Msg: "network: no network device (eth0) appeared"}
	}
	script := "#!/bin/sh\n[ \"$1\" = deconfig ] && /bin/busybox ifconfig \"$interface\" 0.0.0.0 up\n[ \"$1\" = bound ] || exit 0\n/bin/busybox ifconfig \"$interface\" \"$ip\" netmask \"$subnet\" up\n" +
		"[ -n \"$router\" ] && /bin/busybox route add default gw \"${router%% *}\" dev \"$interface\"\nexit 0\n"
	if err := os.WriteFile("/tmp/dhcp.sh", []byte(script), 0o755); err != nil {
		return err
	}
	logf("INFO", "network: asking for a DHCP lease on eth0")
	// As patient as dracut's DHCP (rd.net.timeout.dhcp): a guest under
	// TCG on a loaded host can miss the first offers.
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "20", "-T", "3", "-s", "/tmp/dhcp.sh")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Run(); err != nil {
		return &anaconda.Fatal{Msg: fmt.Sprintf("network: DHCP on eth0 failed: %v", err)}
	}
	logf("INFO", "network: eth0 is up")
	networkUp = true
	return nil
}
