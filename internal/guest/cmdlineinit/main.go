// Command cmdlineinit is the /init of the initrd that boot-media tests
// put on their ISOs: it prints the kernel command line and the firmware
// kind to the console, which the test reads from the serial log, and
// powers off.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

func main() {
	os.MkdirAll("/proc", 0o755)
	os.MkdirAll("/sys", 0o755)
	syscall.Mount("proc", "/proc", "proc", 0, "")
	syscall.Mount("sysfs", "/sys", "sysfs", 0, "")
	b, _ := os.ReadFile("/proc/cmdline")
	fmt.Printf("KILN-CMDLINE: %s\n", strings.TrimSpace(string(b)))
	fw := "BIOS"
	if _, err := os.Stat("/sys/firmware/efi"); err == nil {
		fw = "UEFI"
	}
	fmt.Printf("KILN-FIRMWARE: %s\n", fw)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		syscall.Pause()
	}
}
