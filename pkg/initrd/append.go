// Package initrd writes initramfs archives in the "newc" cpio format the
// Linux kernel unpacks (Documentation/driver-api/early-userspace/
// buffer-format.rst), and appends files to an existing initrd.
//
// The kernel unpacks concatenated archives, compressed or not, in order, so
// kiln adds a kickstart or a preseed to a vendor initrd by appending an
// uncompressed archive after it rather than rewriting it.
//
// The records are written by u-root's pkg/cpio. Two of its behaviours are
// guarded here: its newc writer silently drops a second record with a
// name it has written (a DedupWriter), so a duplicate entry is an error
// instead; and WriteRecordsAndDirs adds parent directories with mode
// 0777, which the kernel's unpacker would apply to the base initrd's / and
// /etc when appending, so parents are written here, 0755, in order.
package initrd

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// Entry is a file to put in an archive.
type Entry struct {
	Name    string // path inside the archive, e.g. "ks.cfg" or "etc/x.conf"
	Mode    fs.FileMode
	Content io.ReaderAt // for regular files: read as it is written, never held
	Size    int64
	Target  string // for symlinks (Mode has fs.ModeSymlink)
	// Major and Minor number a character device (Mode has
	// fs.ModeCharDevice), such as dev/console, 5:1.
	Major, Minor uint64
}

// WriteArchive writes entries as one newc archive, adding the parent
// directories each needs, in a sorted and so reproducible order, with
// every timestamp set to mtime.
func WriteArchive(w io.Writer, entries []Entry, mtime int64) error {
	sorted := append([]Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	dirs := map[string]bool{}
	names := map[string]bool{}
	var recs []cpio.Record
	for _, e := range sorted {
		name := strings.TrimPrefix(path.Clean("/"+e.Name), "/")
		if name == "" {
			return fmt.Errorf("initrd: invalid entry name %q", e.Name)
		}
		if names[name] || (dirs[name] && !e.Mode.IsDir()) {
			return fmt.Errorf("initrd: %s: two entries with one name", name)
		}
		names[name] = true
		var parents []string
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			names[parents[i]] = true
			recs = append(recs, cpio.Directory(parents[i], 0o755))
		}
		perm := uint64(e.Mode.Perm())
		switch {
		case e.Mode.IsDir():
			if dirs[name] {
				continue // already written as a parent
			}
			dirs[name] = true
			recs = append(recs, cpio.Directory(name, perm))
		case e.Mode&fs.ModeSymlink != 0:
			recs = append(recs, cpio.Symlink(name, e.Target))
		case e.Mode&fs.ModeCharDevice != 0:
			recs = append(recs, cpio.CharDev(name, perm, e.Major, e.Minor))
		default:
			if e.Size < 0 || (e.Size > 0 && e.Content == nil) {
				return fmt.Errorf("initrd: %s: no content for %d bytes", name, e.Size)
			}
			rec := cpio.Record{Info: cpio.Info{Name: name, Mode: cpio.S_IFREG | perm, FileSize: uint64(e.Size)}}
			if e.Size > 0 {
				rec.ReaderAt = io.NewSectionReader(e.Content, 0, e.Size)
			}
			recs = append(recs, rec)
		}
	}
	for i := range recs {
		// Reproducible: no owner, one time, and inode numbers by order,
		// so that no two records look like hard links.
		recs[i].Info.UID, recs[i].Info.GID, recs[i].Info.MTime = 0, 0, uint64(mtime)
		recs[i].Info.Ino, recs[i].Info.NLink = uint64(i+1), 1
		if recs[i].Info.Mode&cpio.S_IFMT == cpio.S_IFDIR {
			recs[i].Info.NLink = 2
		}
	}
	rw := cpio.Newc.Writer(w)
	if err := cpio.WriteRecords(rw, recs); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	return nil
}

// Append copies the initrd in src to dst and appends entries as a second,
// uncompressed archive, which the kernel unpacks over the first. It
// returns the bytes written.
func Append(dst io.Writer, src io.Reader, entries []Entry, mtime int64) (int64, error) {
	n, err := io.Copy(dst, src)
	if err != nil {
		return n, fmt.Errorf("initrd: copying the original initrd: %w", err)
	}
	// The appended archive must start on a 4-byte boundary.
	if p := (4 - n%4) % 4; p > 0 {
		m, err := dst.Write(make([]byte, p))
		n += int64(m)
		if err != nil {
			return n, fmt.Errorf("initrd: padding: %w", err)
		}
	}
	cw := &countWriter{w: dst}
	err = WriteArchive(cw, entries, mtime)
	return n + cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
