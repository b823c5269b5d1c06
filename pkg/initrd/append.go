package initrd

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Entry is a file to put in an archive.
type Entry struct {
	Name    string // path inside the archive, e.g. "ks.cfg" or "etc/x.conf"
	Mode    fs.FileMode
	Content io.Reader // for regular files
	Size    int64
	Target  string // for symlinks (Mode has fs.ModeSymlink)
}

// WriteArchive writes entries as one newc archive, adding the parent
// directories each needs, in a sorted and so reproducible order, with
// every timestamp set to mtime.
func WriteArchive(w io.Writer, entries []Entry, mtime int64) error {
	cw := NewWriter(w)
	dirs := map[string]bool{}
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, e := range sorted {
		name := strings.TrimPrefix(path.Clean("/"+e.Name), "/")
		if name == "" {
			return fmt.Errorf("initrd: invalid entry name %q", e.Name)
		}
		var parents []string
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := cw.WriteHeader(&Header{Name: parents[i], Mode: fs.ModeDir | 0o755, MTime: mtime}); err != nil {
				return err
			}
		}
		switch {
		case e.Mode.IsDir():
			dirs[name] = true
			if err := cw.WriteHeader(&Header{Name: name, Mode: e.Mode, MTime: mtime}); err != nil {
				return err
			}
		case e.Mode&fs.ModeSymlink != 0:
			if err := cw.WriteHeader(&Header{Name: name, Mode: fs.ModeSymlink | 0o777, MTime: mtime, Size: int64(len(e.Target))}); err != nil {
				return err
			}
			if _, err := cw.Write([]byte(e.Target)); err != nil {
				return err
			}
		default:
			if err := cw.WriteHeader(&Header{Name: name, Mode: e.Mode, MTime: mtime, Size: e.Size}); err != nil {
				return err
			}
			n, err := io.Copy(cw, io.LimitReader(e.Content, e.Size))
			if err != nil {
				return fmt.Errorf("initrd: %s: %w", name, err)
			}
			if n != e.Size {
				return fmt.Errorf("initrd: %s: content is %d bytes, want %d", name, n, e.Size)
			}
		}
	}
	return cw.Close()
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
	if p := pad4(n); p > 0 {
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
