// Package initrd reads and writes initramfs archives in the "newc" cpio
// format the Linux kernel unpacks (Documentation/driver-api/early-userspace/
// buffer-format.rst), and appends files to an existing initrd.
//
// The kernel unpacks concatenated archives, compressed or not, in order, so
// kiln adds a kickstart to a vendor initrd by appending an uncompressed
// archive after it rather than rewriting it.
package initrd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/internal/unixmode"
)

// magic starts every newc header.
const magic = "070701"

// headerLen is the size of a newc header: the magic and 13 8-digit hex fields.
const headerLen = 6 + 13*8

// trailer names the record that ends an archive.
const trailer = "TRAILER!!!"

// Header is one newc record header (buffer-format.rst, "cpio_file" fields).
type Header struct {
	Name      string      // path inside the archive, without a leading slash
	Mode      fs.FileMode // permission bits and type
	UID, GID  uint32
	NLink     uint32
	MTime     int64  // seconds since the epoch
	Size      int64  // length of the file data; symlinks store their target
	DevMajor  uint32 // device holding the file (unused by the kernel)
	DevMinor  uint32
	RDevMajor uint32 // for character and block devices
	RDevMinor uint32
	Ino       uint32
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// Writer writes a newc archive. Errors are sticky: after one, every call
// returns it.
type Writer struct {
	w       io.Writer
	n       int64 // bytes written so far
	remain  int64 // data bytes the current record still expects
	padding int64
	ino     uint32
	err     error
	closed  bool
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 1} }

func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(p)
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("initrd: writing at offset %d: %w", w.n, err)
	}
	return w.err
}

func (w *Writer) finishRecord() error {
	if w.remain > 0 {
		w.err = fmt.Errorf("initrd: record is %d bytes short", w.remain)
		return w.err
	}
	if w.padding > 0 {
		w.write(make([]byte, w.padding))
		w.padding = 0
	}
	return w.err
}

// WriteHeader starts a record; its Size bytes of data follow through Write.
func (w *Writer) WriteHeader(h *Header) error {
	if w.closed {
		return errors.New("initrd: write after close")
	}
	if err := w.finishRecord(); err != nil {
		return err
	}
	if h.Name == "" || strings.ContainsRune(h.Name, 0) {
		w.err = fmt.Errorf("initrd: invalid record name %q", h.Name)
		return w.err
	}
	if h.Size < 0 || h.Size > 0xffffffff {
		w.err = fmt.Errorf("initrd: %s: size %d does not fit a newc record", h.Name, h.Size)
		return w.err
	}
	ino := h.Ino
	if ino == 0 {
		ino = w.ino
		w.ino++
	}
	nlink := h.NLink
	if nlink == 0 {
		nlink = 1
		if h.Mode.IsDir() {
			nlink = 2
		}
	}
	fields := []uint32{ino, unixmode.Mode(h.Mode), h.UID, h.GID, nlink, uint32(h.MTime), uint32(h.Size),
		h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor, uint32(len(h.Name) + 1), 0}
	var sb strings.Builder
	sb.WriteString(magic)
	for _, f := range fields {
		fmt.Fprintf(&sb, "%08x", f)
	}
	sb.WriteString(h.Name)
	sb.WriteByte(0)
	hdr := sb.String()
	if err := w.write([]byte(hdr)); err != nil {
		return err
	}
	w.write(make([]byte, pad4(int64(len(hdr)))))
	w.remain = h.Size
	w.padding = pad4(h.Size)
	return w.err
}

// Write writes data for the current record.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.remain {
		w.err = fmt.Errorf("initrd: %d bytes more than the record's size", int64(len(p))-w.remain)
		return 0, w.err
	}
	if err := w.write(p); err != nil {
		return 0, err
	}
	w.remain -= int64(len(p))
	return len(p), nil
}

// Dir adds a directory.
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	return w.WriteHeader(&Header{Name: name, Mode: fs.ModeDir | perm.Perm()})
}

// File adds a regular file of size bytes read from r.
func (w *Writer) File(name string, perm fs.FileMode, r io.Reader, size int64) error {
	if err := w.WriteHeader(&Header{Name: name, Mode: perm & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), Size: size}); err != nil {
		return err
	}
	n, err := io.Copy(w, io.LimitReader(r, size))
	if err != nil {
		if w.err == nil {
			w.err = fmt.Errorf("initrd: %s: reading content: %w", name, err)
		}
		return w.err
	}
	if n != size {
		w.err = fmt.Errorf("initrd: %s: content is %d bytes, header says %d", name, n, size)
	}
	return w.err
}

// Symlink adds a symbolic link.
func (w *Writer) Symlink(name, target string) error {
	if err := w.WriteHeader(&Header{Name: name, Mode: fs.ModeSymlink | 0o777, Size: int64(len(target))}); err != nil {
		return err
	}
	_, err := w.Write([]byte(target))
	return err
}

// CharDev adds a character device node.
func (w *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return w.WriteHeader(&Header{Name: name, Mode: fs.ModeDevice | fs.ModeCharDevice | perm.Perm(), RDevMajor: major, RDevMinor: minor})
}

// Close writes the trailer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if err := w.WriteHeader(&Header{Name: trailer, Ino: 0xffffffff, NLink: 1}); err != nil {
		return err
	}
	w.closed = true
	return w.err
}

// Reader reads the records of newc archives, including several archives
// concatenated with zero padding between them. It does not decompress.
type Reader struct {
	r      io.Reader
	off    int64
	remain int64
	pad    int64
	err    error
}

// NewReader returns a Reader for r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

func (r *Reader) read(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	return err
}

func (r *Reader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, r.r, n)
	r.off += m
	return err
}

// Next advances to the next record, skipping any unread data. It returns
// io.EOF after the last trailer when the input ends.
func (r *Reader) Next() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.skip(r.remain + r.pad); err != nil {
		r.err = fmt.Errorf("initrd: skipping data at offset %d: %w", r.off, unexpected(err))
		return nil, r.err
	}
	r.remain, r.pad = 0, 0
	for {
		var hdr [headerLen]byte
		start := r.off
		if err := r.read(hdr[:4]); err != nil {
			if errors.Is(err, io.EOF) {
				r.err = io.EOF
				return nil, io.EOF
			}
			r.err = fmt.Errorf("initrd: reading header at offset %d: %w", start, unexpected(err))
			return nil, r.err
		}
		if hdr[0] == 0 && hdr[1] == 0 && hdr[2] == 0 && hdr[3] == 0 {
			// Zero padding between concatenated archives.
			continue
		}
		if err := r.read(hdr[4:6]); err != nil {
			r.err = fmt.Errorf("initrd: reading header at offset %d: %w", start, unexpected(err))
			return nil, r.err
		}
		if string(hdr[:6]) != magic {
			r.err = fmt.Errorf("initrd: offset %d: not a newc header (magic %q)", start, hdr[:6])
			return nil, r.err
		}
		if err := r.read(hdr[6:]); err != nil {
			r.err = fmt.Errorf("initrd: reading header at offset %d: %w", start, unexpected(err))
			return nil, r.err
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(hdr[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				r.err = fmt.Errorf("initrd: offset %d: header field %d is not hex: %q", start, i, hdr[6+8*i:14+8*i])
				return nil, r.err
			}
			f[i] = uint32(v)
		}
		namesize := int64(f[11])
		if namesize == 0 || namesize > 4096 {
			r.err = fmt.Errorf("initrd: offset %d: name size %d out of range", start, namesize)
			return nil, r.err
		}
		name := make([]byte, namesize)
		if err := r.read(name); err != nil {
			r.err = fmt.Errorf("initrd: reading name at offset %d: %w", start, unexpected(err))
			return nil, r.err
		}
		if name[namesize-1] != 0 {
			r.err = fmt.Errorf("initrd: offset %d: name is not NUL-terminated", start)
			return nil, r.err
		}
		if err := r.skip(pad4(headerLen + namesize)); err != nil {
			r.err = fmt.Errorf("initrd: offset %d: %w", start, unexpected(err))
			return nil, r.err
		}
		h := &Header{Name: string(name[:namesize-1]), Ino: f[0], Mode: unixmode.FileMode(f[1]), UID: f[2], GID: f[3], NLink: f[4],
			MTime: int64(f[5]), Size: int64(f[6]), DevMajor: f[7], DevMinor: f[8], RDevMajor: f[9], RDevMinor: f[10]}
		r.remain, r.pad = h.Size, pad4(h.Size)
		return h, nil
	}
}

// Read reads the current record's data.
func (r *Reader) Read(p []byte) (int, error) {
	if r.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	r.off += int64(n)
	r.remain -= int64(n)
	if err == io.EOF && r.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// IsTrailer reports whether h ends an archive.
func (h *Header) IsTrailer() bool { return h.Name == trailer }
