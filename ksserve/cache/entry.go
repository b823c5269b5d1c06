package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// An entry is one file, objects/XX/KEY: a header of HeaderSize bytes that
// holds the object's Meta, then the object's bytes. One file, not a file
// and a metadata file beside it, because creating a file is most of what
// a small object's miss costs (measured: 213 us a file on this host's
// ext4, against 25 us on tmpfs), and the header's fixed size keeps the
// bytes page-aligned for sendfile(2).
//
//	offset 0   "KILNOBJ1"
//	offset 8   uint32, big-endian: the length of the JSON that follows
//	offset 12  the Meta as JSON, then zeros to HeaderSize
//	HeaderSize the object's bytes, Meta.Size of them
const (
	HeaderSize  = 4096
	entryMagic  = "KILNOBJ1"
	maxMetaJSON = HeaderSize - 12
	maxMetaURL  = 2048
)

// header encodes m as an entry's header.
func header(m Meta) ([]byte, error) {
	if len(m.URL) > maxMetaURL {
		m.URL = m.URL[:maxMetaURL] // informational only
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(j) > maxMetaJSON {
		return nil, fmt.Errorf("metadata of %d bytes does not fit an entry's header", len(j))
	}
	h := make([]byte, HeaderSize)
	copy(h, entryMagic)
	binary.BigEndian.PutUint32(h[8:], uint32(len(j)))
	copy(h[12:], j)
	return h, nil
}

var errNotEntry = errors.New("not a kiln cache entry")

// readHeader reads an entry's Meta from its first HeaderSize bytes.
func readHeader(r io.ReaderAt) (*Meta, error) {
	h := make([]byte, HeaderSize)
	if _, err := r.ReadAt(h, 0); err != nil {
		return nil, fmt.Errorf("reading the header: %w", err)
	}
	return parseHeader(h)
}

func parseHeader(h []byte) (*Meta, error) {
	if len(h) < HeaderSize || !bytes.Equal(h[:8], []byte(entryMagic)) {
		return nil, errNotEntry
	}
	n := binary.BigEndian.Uint32(h[8:])
	if n > maxMetaJSON {
		return nil, errNotEntry
	}
	m := &Meta{}
	if err := json.Unmarshal(h[12:12+n], m); err != nil {
		return nil, fmt.Errorf("bad metadata: %w", err)
	}
	return m, nil
}

// seekBody positions f at the object's first byte, so that a copy from f
// sends the object (by sendfile(2) when f goes to a socket).
func seekBody(f *os.File) error {
	_, err := f.Seek(HeaderSize, io.SeekStart)
	return err
}

// createTemp makes the file a download is written to: an unnamed one
// (O_TMPFILE), which costs a third of a named one to create here and
// which the kernel removes should the process die, else a named one in
// tmp/, locked for as long as this process lives (removeDeadTemps).
func (c *Cache) createTemp() (f *os.File, named bool, err error) {
	dir := filepath.Join(c.dir, "tmp")
	if !c.noTmpfile {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(dir, "(download)")), false, nil
		}
	}
	f, err = os.CreateTemp(dir, "fetch-")
	if err != nil {
		return nil, false, err
	}
	lockWhole(f)
	return f, true, nil
}

// linkTemp gives an unnamed temporary file the name dst, which must not
// exist (an entry is only published under its object's lock; a damaged
// one in the way is removed).
func linkTemp(f *os.File, dst string) error {
	src := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		os.Remove(dst)
		err = unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: "(download)", New: dst, Err: err}
	}
	return nil
}
