package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-build/kiln/integration/internal/anaconda"
	"github.com/kiln-build/kiln/internal/guest/initutil"
	"github.com/kiln-build/kiln/pkg/treeinfo"
)

// label reads the file system label of a block device as blkid would, for
// the three file systems install media and OEMDRV volumes use.
func label(dev string) string {
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 34*1024)
	n, _ := f.ReadAt(buf, 0)
	buf = buf[:n]
	// ISO 9660: the primary volume descriptor at sector 16; its volume
	// identifier at byte 40, 32 bytes (ECMA-119 8.4.6).
	if len(buf) >= 32768+72 && buf[32768] == 1 && string(buf[32769:32774]) == "CD001" {
		return strings.TrimRight(string(buf[32768+40:32768+72]), " ")
	}
	// ext2/3/4: the superblock at byte 1024, magic at 56, label at 120.
	if len(buf) >= 1024+136 && binary.LittleEndian.Uint16(buf[1024+56:]) == 0xef53 {
		return string(bytes.TrimRight(buf[1024+120:1024+136], "\x00"))
	}
	// FAT: the boot sector's volume label, at 0x47 for FAT32, else 0x2b.
	if len(buf) >= 512 && buf[510] == 0x55 && buf[511] == 0xaa {
		if string(buf[0x52:0x57]) == "FAT32" {
			return strings.TrimRight(string(buf[0x47:0x52]), " ")
		}
		if string(buf[0x36:0x39]) == "FAT" {
			return strings.TrimRight(string(buf[0x2b:0x36]), " ")
		}
	}
	return ""
}

// blockDevices lists /dev paths of the disks and partitions the kernel has
// found, CD drives first.
func blockDevices() []string {
	names, _ := filepath.Glob("/sys/class/block/*")
	var cds, others []string
	for _, n := range names {
		d := "/dev/" + filepath.Base(n)
		if strings.HasPrefix(filepath.Base(n), "sr") {
			cds = append(cds, d)
		} else {
			others = append(others, d)
		}
	}
	return append(cds, others...)
}

// byLabel waits up to limit for a device labelled l, as dracut waits for
// /dev/disk/by-label/<l>.
func byLabel(l string, limit time.Duration) string {
	return initutil.WaitFor(func() string {
		for _, d := range blockDevices() {
			if label(d) == l {
				return d
			}
		}
		return ""
	}, limit)
}

// firstCDROM waits for the first CD drive holding a disc.
func firstCDROM(limit time.Duration) string {
	return initutil.WaitFor(func() string {
		for _, d := range blockDevices() {
			if strings.HasPrefix(filepath.Base(d), "sr") && label(d) != "" {
				return d
			}
		}
		return ""
	}, limit)
}

// readFrom mounts dev read-only, reads path from it and unmounts it.
func readFrom(dev, path string) ([]byte, error) {
	mnt, err := os.MkdirTemp("/run", "media-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(mnt)
	if err := mount(dev, mnt); err != nil {
		return nil, err
	}
	defer syscall.Unmount(mnt, 0)
	return os.ReadFile(filepath.Join(mnt, path))
}

// mount mounts dev read-only at dir with the first file system that fits.
func mount(dev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var err error
	for _, fs := range []string{"iso9660", "vfat", "ext4"} {
		if err = syscall.Mount(dev, dir, fs, syscall.MS_RDONLY, ""); err == nil {
			return nil
		}
	}
	return fmt.Errorf("mounting %s: %w", dev, err)
}

// mountMedia mounts the install media where Anaconda has it.
func mountMedia(dev string) error {
	return mount(dev, anaconda.MediaRepo)
}

// stage2Image is the runtime image's path on the media: .treeinfo's
// [stage2] mainimage, else images/install.img.
func stage2Image(media string) string {
	b, _ := os.ReadFile(filepath.Join(media, ".treeinfo"))
	return treeinfoStage2(string(b))
}

// treeinfoStage2 reads [stage2] mainimage from a .treeinfo, else names
// images/install.img, where lorax puts it.
func treeinfoStage2(ti string) string {
	if img := treeinfo.Parse(ti).Stage2; img != "" {
		return img
	}
	return "images/install.img"
}

// repoSource turns inst.repo= into a URL the installer's client reads,
// mounting the media it names; *media is the mounted install media, set
// when inst.repo= is what mounts it.
func repoSource(opt string, media *string) (string, error) {
	if strings.HasPrefix(opt, "ftp://") || strings.HasPrefix(opt, "file://") {
		return opt, nil
	}
	loc, err := anaconda.ParseLocation(opt)
	if err != nil {
		return "", &anaconda.Fatal{Msg: "inst.repo: " + err.Error()}
	}
	var dev string
	switch {
	case loc.Kind == "http":
		return loc.URL, nil
	case loc.Kind == "cdrom":
		dev = firstCDROM(mediaWait)
	case loc.Kind == "hd" && loc.Label != "":
		dev = byLabel(loc.Label, mediaWait)
	case loc.Kind == "hd" && loc.Dev != "":
		dev = initutil.WaitFor(initutil.Exists("/dev/"+loc.Dev), mediaWait)
	default:
		return "", &anaconda.Fatal{Msg: "inst.repo=" + opt + ": the test installer does not read repositories from there"}
	}
	if dev == "" {
		emergency("inst.repo=" + opt + ": no such device")
	}
	dir := anaconda.MediaRepo
	if *media != "" {
		// The boot media is already there; Anaconda mounts another
		// source under /run/install/sources.
		dir = "/run/install/sources/mount-0000-" + filepath.Base(dev)
	}
	if err := mount(dev, dir); err != nil {
		return "", &anaconda.Fatal{Msg: "inst.repo=" + opt + ": " + err.Error()}
	}
	if *media == "" {
		*media = dir
	}
	return "file://" + filepath.Join(dir, loc.Path), nil
}
