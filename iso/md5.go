package iso

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// The media checksum that Anaconda's media check (checkisomd5,
// rd.live.check) verifies is kept in the primary volume descriptor's
// application use area, in the format of isomd5sum's implantisomd5: an MD5
// of the image (with that area blank and the last 15 sectors left out),
// and 20 "fragment sums" that let the check stop early.
const (
	appUseOffset     = 883 // in the PVD (ECMA-119 8.4.32)
	appUseSize       = 512
	md5SkipSectors   = 15
	md5Fragments     = 20
	md5FragmentChars = 3
	md5Chunk         = 16 * SectorSize // isomd5sum reads, and sums fragments, in these
)

// readerWriterAt is an image that can be patched in place.
type readerWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// ImplantMD5 computes the media checksum of the image and writes it into
// the primary volume descriptor, as implantisomd5 --force does.
func ImplantMD5(rw readerWriterAt) error {
	pvdOff := int64(16 * SectorSize)
	pvd := make([]byte, SectorSize)
	if _, err := rw.ReadAt(pvd, pvdOff); err != nil {
		return fmt.Errorf("reading the primary volume descriptor: %w", err)
	}
	if pvd[0] != vdPrimary || string(pvd[1:6]) != "CD001" {
		return fmt.Errorf("%w: no primary volume descriptor at LBA 16", ErrFormat)
	}
	blank := bytes.Repeat([]byte{' '}, appUseSize)
	if _, err := rw.WriteAt(blank, pvdOff+appUseOffset); err != nil {
		return fmt.Errorf("clearing the application use area: %w", err)
	}
	sum, frags, err := mediaMD5(rw, pvd)
	if err != nil {
		return err
	}
	var app bytes.Buffer
	fmt.Fprintf(&app, "ISO MD5SUM = %s;SKIPSECTORS = %d;RHLISOSTATUS=0;FRAGMENT SUMS = %s;FRAGMENT COUNT = %d;THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!",
		sum, md5SkipSectors, frags, md5Fragments)
	data := append(app.Bytes(), blank[app.Len():]...)
	if _, err := rw.WriteAt(data, pvdOff+appUseOffset); err != nil {
		return fmt.Errorf("writing the media checksum: %w", err)
	}
	return nil
}

// mediaMD5 sums the image as isomd5sum does. The fragment boundaries
// depend on its 32 KiB reads, so they are kept.
func mediaMD5(r io.ReaderAt, pvd []byte) (sum, frags string, err error) {
	// isomd5sum takes the size from the big-endian half (ECMA-119 7.3.3).
	total := int64(binary.BigEndian.Uint32(pvd[84:88]))*SectorSize - md5SkipSectors*SectorSize
	if total <= 0 {
		return "", "", fmt.Errorf("volume space size %d is too small to sum", binary.BigEndian.Uint32(pvd[84:88]))
	}
	h := md5.New()
	buf := make([]byte, md5Chunk)
	var fragSums []byte
	prev := int64(0)
	for off := int64(0); off < total; {
		n := int64(len(buf))
		if total-off < n {
			n = total - off
		}
		k, err := r.ReadAt(buf[:n], off)
		if k > 0 {
			h.Write(buf[:k])
		}
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) == n) {
			return "", "", fmt.Errorf("reading the image at byte %d: %w", off, err)
		}
		cur := off * (md5Fragments + 1) / total
		if cur != prev {
			d := h.Sum(nil)
			for i := 0; i < md5FragmentChars; i++ {
				fragSums = append(fragSums, fmt.Sprintf("%x", d[i])[0])
			}
			prev = cur
		}
		off += int64(k)
	}
	return hex.EncodeToString(h.Sum(nil)), string(fragSums), nil
}

// CheckMD5 verifies an implanted media checksum. It returns false with no
// error when none is implanted.
func CheckMD5(r io.ReaderAt) (bool, error) {
	pvd := make([]byte, SectorSize)
	if _, err := r.ReadAt(pvd, 16*SectorSize); err != nil {
		return false, fmt.Errorf("reading the primary volume descriptor: %w", err)
	}
	app := pvd[appUseOffset : appUseOffset+appUseSize]
	i := bytes.Index(app, []byte("ISO MD5SUM = "))
	if i < 0 || i+13+32 > len(app) {
		return false, nil
	}
	want := string(app[i+13 : i+13+32])
	blanked := &blankedPVD{r: r, app: int64(16*SectorSize + appUseOffset)}
	sum, _, err := mediaMD5(blanked, pvd)
	if err != nil {
		return false, err
	}
	if sum != want {
		return false, fmt.Errorf("media checksum is %s, the image says %s", sum, want)
	}
	return true, nil
}

// blankedPVD reads an image as if its application use area were blank,
// which is how the checksum was computed.
type blankedPVD struct {
	r   io.ReaderAt
	app int64
}

func (b *blankedPVD) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.r.ReadAt(p, off)
	for i := 0; i < n; i++ {
		if pos := off + int64(i); pos >= b.app && pos < b.app+appUseSize {
			p[i] = ' '
		}
	}
	return n, err
}
