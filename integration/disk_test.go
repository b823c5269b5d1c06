package integration

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/masahiro331/go-xfs-filesystem/xfs"
)

// image reads an installed disk image as the machine would see it: its
// GPT (read by sgdisk), the file systems on it, and the mount points
// /etc/fstab gives them. Files are read without mounting: ext2/3/4 with
// debugfs, XFS with go-xfs-filesystem.
type image struct {
	t      *testing.T
	path   string
	parts  []partition
	mounts map[string]*partition // mount point -> partition
}

type partition struct {
	num         int
	start, size int64  // bytes
	code        string // sgdisk's type code: EF02, EF00, 8200, 8300
	fstype      string // ext4, xfs, vfat, swap, or ""
	uuid        string
}

var sgdiskLine = regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+([0-9A-F]{4})`)

// openImage reads disk's partitions and its root's /etc/fstab.
func openImage(t *testing.T, disk string) *image {
	t.Helper()
	out, err := exec.Command("sgdisk", "-p", disk).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -p %s: %v\n%s", disk, err, out)
	}
	im := &image{t: t, path: disk, mounts: map[string]*partition{}}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, m := range sgdiskLine.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[1])
		first, _ := strconv.ParseInt(m[2], 10, 64)
		last, _ := strconv.ParseInt(m[3], 10, 64)
		p := partition{num: n, start: first * 512, size: (last - first + 1) * 512, code: m[4]}
		p.fstype, p.uuid = probe(f, p.start)
		im.parts = append(im.parts, p)
	}
	if len(im.parts) == 0 {
		t.Fatalf("%s has no partitions:\n%s", disk, out)
	}
	var fstab string
	for i := range im.parts {
		p := &im.parts[i]
		if p.fstype != "ext4" && p.fstype != "xfs" {
			continue
		}
		if b, err := im.readFrom(p, "/etc/fstab"); err == nil {
			im.mounts["/"] = p
			fstab = string(b)
			break
		}
	}
	if fstab == "" {
		t.Fatalf("%s: no partition holds /etc/fstab:\n%s", disk, out)
	}
	for _, line := range strings.Split(fstab, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 3 || !strings.HasPrefix(fields[0], "UUID=") || !strings.HasPrefix(fields[1], "/") {
			continue
		}
		for i := range im.parts {
			if strings.EqualFold(im.parts[i].uuid, strings.TrimPrefix(fields[0], "UUID=")) {
				im.mounts[fields[1]] = &im.parts[i]
			}
		}
		if im.mounts[fields[1]] == nil {
			t.Errorf("%s: fstab names %s for %s, which no partition has", disk, fields[0], fields[1])
		}
	}
	return im
}

// probe reads a file system's type and UUID from its superblock, as
// blkid does.
func probe(r io.ReaderAt, off int64) (fstype, uuid string) {
	sb := make([]byte, 4096)
	if _, err := r.ReadAt(sb, off); err != nil {
		return "", ""
	}
	hex := func(b []byte) string {
		return strings.Join([]string{x(b[0:4]), x(b[4:6]), x(b[6:8]), x(b[8:10]), x(b[10:16])}, "-")
	}
	switch {
	case bytes.Equal(sb[0:4], []byte("XFSB")):
		return "xfs", hex(sb[32:48])
	case sb[1024+0x38] == 0x53 && sb[1024+0x39] == 0xef:
		return "ext4", hex(sb[1024+0x68 : 1024+0x78])
	case bytes.Equal(sb[82:87], []byte("FAT32")):
		// The FAT32 extended boot record: the serial at offset 67.
		serial := binary.LittleEndian.Uint32(sb[67:71])
		return "vfat", fmt.Sprintf("%04X-%04X", serial>>16, serial&0xffff)
	case bytes.Equal(sb[54:59], []byte("FAT16")) || bytes.Equal(sb[54:59], []byte("FAT12")):
		// FAT12/16's: at offset 39. mkfs.fat picks FAT16 below 512 MiB.
		serial := binary.LittleEndian.Uint32(sb[39:43])
		return "vfat", fmt.Sprintf("%04X-%04X", serial>>16, serial&0xffff)
	case bytes.Equal(sb[4086:4096], []byte("SWAPSPACE2")):
		return "swap", hex(sb[1024+12 : 1024+28])
	}
	return "", ""
}

func x(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}

// where finds the partition and the path inside it for an absolute path
// of the installed system.
func (im *image) where(p string) (*partition, string) {
	best := "/"
	for m := range im.mounts {
		if (p == m || strings.HasPrefix(p, strings.TrimSuffix(m, "/")+"/")) && len(m) > len(best) {
			best = m
		}
	}
	rel := strings.TrimPrefix(p, strings.TrimSuffix(best, "/"))
	if rel == "" {
		rel = "/"
	}
	return im.mounts[best], rel
}

// read returns a file of the installed system; a missing file fails the
// test.
func (im *image) read(p string) string {
	im.t.Helper()
	part, rel := im.where(p)
	b, err := im.readFrom(part, rel)
	if err != nil {
		im.t.Fatalf("reading %s from %s: %v", p, im.path, err)
	}
	return string(b)
}

// exists reports whether the installed system has p.
func (im *image) exists(p string) bool {
	part, rel := im.where(p)
	_, err := im.readFrom(part, rel)
	return err == nil
}

func (im *image) readFrom(part *partition, rel string) ([]byte, error) {
	switch part.fstype {
	case "ext4":
		out, err := exec.Command("debugfs", "-R", "cat "+rel, im.path+"?offset="+strconv.FormatInt(part.start, 10)).Output()
		if err != nil {
			return nil, err
		}
		// debugfs prints nothing and exits 0 for a missing file; its
		// complaint goes to stderr.
		if len(out) == 0 {
			if _, err := im.statFrom(part, rel); err != nil {
				return nil, err
			}
		}
		return out, nil
	case "xfs":
		fsys, closer, err := im.xfs(part)
		if err != nil {
			return nil, err
		}
		defer closer()
		// Not fs.ReadFile: the library's ReadFile is unimplemented.
		f, err := fsys.Open(strings.TrimPrefix(rel, "/"))
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	}
	return nil, errors.New("no readable file system on partition " + strconv.Itoa(part.num))
}

func (im *image) xfs(part *partition) (fs.FS, func(), error) {
	f, err := os.Open(im.path)
	if err != nil {
		return nil, nil, err
	}
	fsys, err := xfs.NewFS(*io.NewSectionReader(f, part.start, part.size), nil)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return fsys, func() { f.Close() }, nil
}

// mode returns a file's permission bits.
func (im *image) mode(p string) fs.FileMode {
	im.t.Helper()
	part, rel := im.where(p)
	m, err := im.statFrom(part, rel)
	if err != nil {
		im.t.Fatalf("stat %s in %s: %v", p, im.path, err)
	}
	return m
}

var debugfsMode = regexp.MustCompile(`Mode:\s+0?([0-7]{3,4})`)

func (im *image) statFrom(part *partition, rel string) (fs.FileMode, error) {
	switch part.fstype {
	case "ext4":
		out, _ := exec.Command("debugfs", "-R", "stat "+rel, im.path+"?offset="+strconv.FormatInt(part.start, 10)).CombinedOutput()
		m := debugfsMode.FindStringSubmatch(string(out))
		if m == nil {
			return 0, errors.New(strings.TrimSpace(string(out)))
		}
		n, _ := strconv.ParseUint(m[1], 8, 32)
		return fs.FileMode(n).Perm(), nil
	case "xfs":
		fsys, closer, err := im.xfs(part)
		if err != nil {
			return 0, err
		}
		defer closer()
		fi, err := fs.Stat(fsys, strings.TrimPrefix(rel, "/"))
		if err != nil {
			return 0, err
		}
		return fi.Mode().Perm(), nil
	}
	return 0, errors.New("no readable file system")
}

// ls lists a directory of the installed system.
func (im *image) ls(dir string) []string {
	im.t.Helper()
	part, rel := im.where(dir)
	switch part.fstype {
	case "ext4":
		out, err := exec.Command("debugfs", "-R", "ls -p "+rel, im.path+"?offset="+strconv.FormatInt(part.start, 10)).Output()
		if err != nil {
			im.t.Fatalf("debugfs ls %s: %v", dir, err)
		}
		var names []string
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, "/")
			if len(f) > 5 && f[5] != "." && f[5] != ".." {
				names = append(names, f[5])
			}
		}
		return names
	case "xfs":
		fsys, closer, err := im.xfs(part)
		if err != nil {
			im.t.Fatal(err)
		}
		defer closer()
		ents, err := fs.ReadDir(fsys, strings.TrimPrefix(rel, "/"))
		if err != nil {
			im.t.Fatalf("listing %s: %v", dir, err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	return nil
}

// fsck checks the GPT with sgdisk -v and every file system with its own
// checker, read-only: e2fsck -n, xfs_repair -n, fsck.vfat -n.
func (im *image) fsck() {
	im.t.Helper()
	if out, err := exec.Command("sgdisk", "-v", im.path).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		im.t.Errorf("sgdisk -v %s: %v\n%s", im.path, err, out)
	}
	for i := range im.parts {
		p := &im.parts[i]
		var out []byte
		var err error
		switch p.fstype {
		case "ext4":
			out, err = exec.Command("e2fsck", "-f", "-n", im.path+"?offset="+strconv.FormatInt(p.start, 10)).CombinedOutput()
		case "xfs", "vfat":
			tmp := filepath.Join(im.t.TempDir(), "part"+strconv.Itoa(p.num))
			if err := extract(im.path, p.start, p.size, tmp); err != nil {
				im.t.Fatal(err)
			}
			if p.fstype == "xfs" {
				out, err = exec.Command("xfs_repair", "-n", "-f", tmp).CombinedOutput()
			} else {
				out, err = exec.Command("fsck.vfat", "-n", tmp).CombinedOutput()
			}
			os.Remove(tmp)
		default:
			continue
		}
		if err != nil {
			im.t.Errorf("checking partition %d (%s) of %s: %v\n%s", p.num, p.fstype, im.path, err, out)
		}
	}
}

// extract copies a partition to its own sparse file, for checkers that
// take no offset.
func extract(disk string, off, size int64, out string) error {
	in, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer in.Close()
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	defer o.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for done := int64(0); done < size; {
		n, err := in.ReadAt(buf[:min(int64(len(buf)), size-done)], off+done)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := o.WriteAt(buf[:n], done); err != nil {
				return err
			}
		}
		done += int64(n)
		if err != nil {
			if err == io.EOF {
				break
			}
			return err
		}
	}
	return o.Truncate(size)
}

// partitionCodes lists the sgdisk type codes, in disk order.
func (im *image) partitionCodes() []string {
	var out []string
	for _, p := range im.parts {
		out = append(out, p.code)
	}
	return out
}

// grep returns the installed system's regular files that contain needle,
// across every mounted file system.
func (im *image) grep(needle string) []string {
	im.t.Helper()
	var hits []string
	for mount, part := range im.mounts {
		prefix := strings.TrimSuffix(mount, "/")
		check := func(p string, b []byte) {
			full := prefix + "/" + strings.TrimPrefix(p, "/")
			// A file of a nested mount point's directory belongs to that
			// mount, which is searched on its own.
			if owner, _ := im.where(full); owner == part && bytes.Contains(b, []byte(needle)) {
				hits = append(hits, full)
			}
		}
		switch part.fstype {
		case "xfs":
			fsys, closer, err := im.xfs(part)
			if err != nil {
				im.t.Fatal(err)
			}
			err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				f, err := fsys.Open(p)
				if err != nil {
					return nil
				}
				b, _ := io.ReadAll(f)
				f.Close()
				check(p, b)
				return nil
			})
			closer()
			if err != nil {
				im.t.Fatal(err)
			}
		case "ext4":
			dir := im.t.TempDir()
			if out, err := exec.Command("debugfs", "-R", "rdump / "+dir, im.path+"?offset="+strconv.FormatInt(part.start, 10)).CombinedOutput(); err != nil {
				im.t.Fatalf("debugfs rdump: %v\n%s", err, out)
			}
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return nil
				}
				b, _ := os.ReadFile(p)
				check(strings.TrimPrefix(p, dir), b)
				return nil
			})
		}
	}
	return hits
}
