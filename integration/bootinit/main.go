// Command bootinit is the /init of the initramfs in the fixtures' kernel
// package: what dracut's initramfs does for an installed Rocky system,
// cut down to the test equipment's needs. It loads the virtio and file
// system modules, finds the root file system named by root=UUID= on the
// kernel command line (ext2/3/4 or xfs), mounts it read-only and hands
// over to its /sbin/init. With no such root it exits, and the kernel
// panics, as a system whose root is gone does.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/internal/guest/initutil"
)

func main() {
	for _, m := range []struct{ src, dst, fs string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		os.MkdirAll(m.dst, 0o755)
		syscall.Mount(m.src, m.dst, m.fs, 0, "")
	}
	initutil.LoadModules()
	cmdline, _ := os.ReadFile("/proc/cmdline")
	uuid := ""
	for _, a := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(a, "root=UUID="); ok {
			uuid = strings.ToLower(v)
		}
	}
	if uuid == "" {
		fmt.Println("bootinit: no root=UUID= on the kernel command line")
		os.Exit(1)
	}
	var dev, fstype string
	initutil.WaitFor(func() string {
		dev, fstype = find(uuid)
		return dev
	}, 30*time.Second)
	if dev == "" {
		fmt.Printf("bootinit: /dev/disk/by-uuid/%s does not exist\n", uuid)
		os.Exit(1)
	}
	fmt.Printf("bootinit: mounting %s (%s, UUID=%s) on /sysroot\n", dev, fstype, uuid)
	os.MkdirAll("/sysroot", 0o755)
	if err := syscall.Mount(dev, "/sysroot", fstype, syscall.MS_RDONLY, ""); err != nil {
		fmt.Printf("bootinit: mounting %s: %v\n", dev, err)
		os.Exit(1)
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		syscall.Mount(d, "/sysroot"+d, "", syscall.MS_MOVE, "")
	}
	// switch_root: the new root takes the place of the initramfs.
	if err := os.Chdir("/sysroot"); err == nil {
		err = syscall.Mount(".", "/", "", syscall.MS_MOVE, "")
		if err == nil {
			err = syscall.Chroot(".")
		}
		if err != nil {
			fmt.Printf("bootinit: switching root: %v\n", err)
			os.Exit(1)
		}
	}
	os.Chdir("/")
	err := syscall.Exec("/sbin/init", []string{"/sbin/init"}, []string{"PATH=/usr/bin:/usr/sbin:/bin:/sbin", "TERM=vt100"})
	fmt.Printf("bootinit: running /sbin/init: %v\n", err)
	os.Exit(1)
}

// find returns the block device holding a file system with uuid, read
// from the superblocks as blkid reads them.
func find(uuid string) (dev, fstype string) {
	names, _ := filepath.Glob("/sys/class/block/*")
	for _, n := range names {
		d := "/dev/" + filepath.Base(n)
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		sb := make([]byte, 2048)
		_, err = f.ReadAt(sb, 0)
		f.Close()
		if err != nil {
			continue
		}
		switch {
		case bytes.Equal(sb[0:4], []byte("XFSB")):
			if text(sb[32:48]) == uuid {
				return d, "xfs"
			}
		case sb[1024+0x38] == 0x53 && sb[1024+0x39] == 0xef:
			if text(sb[1024+0x68:1024+0x78]) == uuid {
				return d, "ext4"
			}
		}
	}
	return "", ""
}

func text(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
