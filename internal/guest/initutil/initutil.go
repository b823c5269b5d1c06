// Package initutil is what the /init programs of kiln's test initramfs
// images share: loading the modules guest.Initramfs packed, and finding
// devices the kernel probes asynchronously, with no udev to announce them.
package initutil

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// AnacondaLogPort is the virtio-serial port Anaconda logs to.
const AnacondaLogPort = "org.fedoraproject.anaconda.log.0"

// LoadModules loads /modules/*.ko in the order /modules/order lists them,
// dependencies first, and reports failures on stdout (the console).
func LoadModules() {
	order, err := os.ReadFile("/modules/order")
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(order)) {
		f, err := os.Open(filepath.Join("/modules", name))
		if err != nil {
			fmt.Printf("module %s: %v\n", name, err)
			continue
		}
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			fmt.Printf("loading %s: %v\n", name, err)
		}
		f.Close()
	}
}

// FindPort returns the device of the virtio-serial port called name,
// found in sysfs as udev would, or "".
func FindPort(name string) string {
	names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, n := range names {
		b, _ := os.ReadFile(n)
		if string(bytes.TrimSpace(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(n))
		}
	}
	return ""
}

// WaitFor calls f until it returns something other than "" or limit has
// passed. Polling is the only way: there is no udev to send an event.
func WaitFor(f func() string, limit time.Duration) string {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := f(); s != "" {
			return s
		}
	}
	return f()
}

// Exists returns a WaitFor function that reports path once it exists.
func Exists(path string) func() string {
	return func() string {
		if _, err := os.Stat(path); err == nil {
			return path
		}
		return ""
	}
}
