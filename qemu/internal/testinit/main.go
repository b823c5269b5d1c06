// Command testinit is the /init of the initramfs that qemu's tests boot.
// It proves each thing the supervisor watches: it writes a marker to the
// serial console and to the Anaconda log port, writes to the virtio disk,
// and then ends as the kernel command line's kiln.test= says: ok (power
// off), reboot, fatal (an installer traceback, then a hang), hang, acpi (power
// off when the ACPI power button is pressed), prompt (a login prompt,
// then a hang), or panic.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/guest/initutil"
)

func main() {
	mount("proc", "/proc", "proc")
	mount("sysfs", "/sys", "sysfs")
	mount("devtmpfs", "/dev", "devtmpfs")
	initutil.LoadModules()
	mode := param("kiln.test")
	say("KILN-SERIAL-MARKER mode=%s", mode)

	port := initutil.WaitFor(func() string { return initutil.FindPort(initutil.AnacondaLogPort) }, 20*time.Second)
	if port == "" {
		fail("the Anaconda log port never appeared")
	}
	log, err := os.OpenFile(port, os.O_WRONLY, 0)
	if err != nil {
		fail("opening %s: %v", port, err)
	}
	fmt.Fprintf(log, "12:00:00,000 INFO anaconda: KILN-ANACONDA-MARKER mode=%s\n", mode)

	disk := initutil.WaitFor(initutil.Exists("/dev/vda"), 20*time.Second)
	if disk == "" {
		fail("/dev/vda never appeared")
	}
	writeDisk(disk)
	say("KILN-DISK-WRITTEN")

	switch mode {
	case "ok":
		poweroff()
	case "reboot":
		syscall.Sync()
		syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	case "fatal":
		fmt.Fprintln(log, "12:00:01,000 ERR anaconda: Traceback (most recent call last):")
		fmt.Fprintln(log, `  File "/usr/lib64/python3.9/site-packages/pyanaconda/core/threads.py", line 280, in run`)
		fmt.Fprintln(log, "pyanaconda.modules.common.errors.installation.PayloadInstallationError: KILN-TEST")
		hang()
	case "hang":
		hang()
	case "acpi":
		// As systemd-logind does: the ACPI power button powers off.
		waitPowerButton()
		say("KILN-ACPI-POWER-BUTTON")
		poweroff()
	case "prompt":
		// A login prompt, as getty writes it: no newline after it.
		fmt.Print("\nkiln-test login: ")
		hang()
	case "panic":
		os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0)
		hang()
	}
	fail("unknown kiln.test mode %q", mode)
}

func mount(src, dst, fstype string) {
	os.MkdirAll(dst, 0o755)
	if err := syscall.Mount(src, dst, fstype, 0, ""); err != nil {
		say("mount %s: %v", dst, err)
	}
}

func param(name string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

func writeDisk(dev string) {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		fail("opening %s: %v", dev, err)
	}
	block := bytes.Repeat([]byte("KILN"), 1<<18) // 1 MiB
	for i := 0; i < 4; i++ {
		if _, err := f.Write(block); err != nil {
			fail("writing %s: %v", dev, err)
		}
	}
	if err := f.Sync(); err != nil {
		fail("syncing %s: %v", dev, err)
	}
	f.Close()
}

// waitPowerButton blocks until the ACPI power button's input device
// reports a press of KEY_POWER (linux/input-event-codes.h).
func waitPowerButton() {
	var dev string
	initutil.WaitFor(func() string {
		names, _ := filepath.Glob("/sys/class/input/event*/device/name")
		for _, n := range names {
			if b, _ := os.ReadFile(n); strings.TrimSpace(string(b)) == "Power Button" {
				dev = "/dev/input/" + filepath.Base(filepath.Dir(filepath.Dir(n)))
			}
		}
		return dev
	}, 20*time.Second)
	if dev == "" {
		fail("no ACPI power button input device")
	}
	f, err := os.Open(dev)
	if err != nil {
		fail("opening %s: %v", dev, err)
	}
	say("KILN-ACPI-LISTENING %s", dev)
	// struct input_event on amd64: a 16-byte timeval, type, code, value.
	ev := make([]byte, 24)
	for {
		if _, err := io.ReadFull(f, ev); err != nil {
			fail("reading %s: %v", dev, err)
		}
		typ, code, value := binary.LittleEndian.Uint16(ev[16:]), binary.LittleEndian.Uint16(ev[18:]), int32(binary.LittleEndian.Uint32(ev[20:]))
		if typ == 1 && code == 116 && value == 1 { // EV_KEY, KEY_POWER, pressed
			return
		}
	}
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, format+"\n", args...)
}

func fail(format string, args ...any) {
	say("KILN-TESTINIT-FAILED: "+format, args...)
	hang()
}

func poweroff() {
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	hang()
}

// hang blocks forever. (An empty select would not do: with no other
// goroutine the runtime calls it a deadlock, and init would exit.)
func hang() {
	for {
		syscall.Pause()
	}
}
