// Command testinstaller is the /init of the test installer's initramfs:
// the VM half of kiln's stand-in for Anaconda. It reads Anaconda's boot
// options, fetches the kickstart, partitions the virtio disk, makes and
// mounts an ext4 root, and hands the rest to package anaconda: packages,
// configuration, Anaconda's copies of the kickstart and %post. It logs to
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

	"github.com/kiln-build/kiln/integration/anaconda"
	"github.com/kiln-build/kiln/internal/guest/initutil"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

const (
	// mediaWait is how long to wait for install media to appear; dracut
	// waits minutes, which only slows a failing test down.
	mediaWait = 15 * time.Second
	sysroot   = "/mnt/sysroot"
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
	err := install(context.Background(), opts)
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

func install(ctx context.Context, opts anaconda.BootOptions) (err error) {
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
	in := &anaconda.Installer{KS: ks, Original: text, Root: sysroot, Client: client, Log: log, Proxy: opts.Proxy, InstRepo: instRepo, Media: media}
	for _, step := range []func() error{
		func() error { return in.PreScripts(ctx) },
		func() error { return partition(ks) },
		func() error { return in.Packages(ctx) },
		in.Configure,
		in.SaveKickstarts,
		func() error { return in.PostScripts(ctx) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	logf("INFO", "Installation complete")
	syscall.Sync()
	if err := syscall.Unmount(sysroot, 0); err != nil {
		logf("WARNING", "unmounting %s: %v", sysroot, err)
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

// partition carries out clearpart/autopart/part as one GPT partition
// holding an ext4 root, mounted at sysroot.
func partition(ks *kickstart.File) error {
	if len(ks.Commands("autopart", "part", "partition")) == 0 {
		return &anaconda.Fatal{Msg: "storage configuration failed: the kickstart has no autopart or part lines"}
	}
	dev := initutil.WaitFor(initutil.Exists(disk), 20*time.Second)
	if dev == "" {
		return &anaconda.Fatal{Msg: "storage configuration failed: no disks found (" + disk + ")"}
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return err
	}
	_, last := anaconda.UsableLBAs(size)
	logf("INFO", "storage: creating a GPT on %s (%d MiB)", dev, size>>20)
	if err := anaconda.WriteGPT(f, size, []anaconda.Partition{{Name: "root", Type: anaconda.LinuxFilesystem, FirstLBA: 2048, LastLBA: last}}); err != nil {
		f.Close()
		return &anaconda.Fatal{Msg: "storage configuration failed: " + err.Error()}
	}
	f.Sync()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil {
		f.Close()
		return fmt.Errorf("rereading the partition table of %s: %w", dev, err)
	}
	f.Close()
	part := dev + "1"
	if initutil.WaitFor(initutil.Exists(part), 10*time.Second) == "" {
		return &anaconda.Fatal{Msg: "storage configuration failed: " + part + " never appeared"}
	}
	logf("INFO", "storage: making an ext4 file system on %s", part)
	if out, err := exec.Command("/usr/sbin/mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", part).CombinedOutput(); err != nil {
		return &anaconda.Fatal{Msg: fmt.Sprintf("storage configuration failed: mke2fs %s: %v: %s", part, err, bytes.TrimSpace(out))}
	}
	os.MkdirAll(sysroot, 0o755)
	if err := syscall.Mount(part, sysroot, "ext4", 0, ""); err != nil {
		return &anaconda.Fatal{Msg: fmt.Sprintf("storage configuration failed: mounting %s: %v", part, err)}
	}
	return nil
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
