package iso

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
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
	if _, err := rw.WriteAt(appUse(sum, frags), pvdOff+appUseOffset); err != nil {
		return fmt.Errorf("writing the media checksum: %w", err)
	}
	return nil
}

// mediaTotal is how many bytes of the image the media checksum covers:
// the volume, less its last 15 sectors. isomd5sum takes the volume's size
// from the big-endian half (ECMA-119 7.3.3).
func mediaTotal(pvd []byte) (int64, error) {
	total := int64(binary.BigEndian.Uint32(pvd[84:88]))*SectorSize - md5SkipSectors*SectorSize
	if total <= 0 {
		return 0, fmt.Errorf("volume space size %d is too small to sum", binary.BigEndian.Uint32(pvd[84:88]))
	}
	return total, nil
}

// mediaMD5 sums the image as isomd5sum does.
func mediaMD5(r io.ReaderAt, pvd []byte) (sum, frags string, err error) {
	total, err := mediaTotal(pvd)
	if err != nil {
		return "", "", err
	}
	m := newMediaHash(total)
	buf := make([]byte, md5Chunk)
	for off := int64(0); off < total; {
		n := min(int64(len(buf)), total-off)
		k, err := r.ReadAt(buf[:n], off)
		m.Write(buf[:k])
		if err != nil && !(errors.Is(err, io.EOF) && int64(k) == n) {
			return "", "", fmt.Errorf("reading the image at byte %d: %w", off, err)
		}
		off += int64(k)
	}
	sum, frags = m.Sum()
	return sum, frags, nil
}

// mediaHash is isomd5sum's checksum of the first total bytes of an image,
// fed in order in pieces of any size. The fragment sums are taken where
// isomd5sum's 32 KiB reads end, so it counts its position in those.
type mediaHash struct {
	h          hash.Hash
	total, off int64
	prev       int64 // the fragment the last read began in
	frags      []byte
}

func newMediaHash(total int64) *mediaHash { return &mediaHash{h: md5.New(), total: total} }

// Write hashes p, the bytes that follow those written before; bytes past
// the total are not summed.
func (m *mediaHash) Write(p []byte) {
	for len(p) > 0 && m.off < m.total {
		start := m.off - m.off%md5Chunk // where isomd5sum's read began
		n := min(int64(len(p)), start+md5Chunk-m.off, m.total-m.off)
		m.h.Write(p[:n])
		m.off += n
		p = p[n:]
		if m.off%md5Chunk == 0 || m.off == m.total {
			if cur := start * (md5Fragments + 1) / m.total; cur != m.prev {
				d := m.h.Sum(nil)
				// isomd5sum prints each of the first bytes with %x and
				// keeps the first character: 0x0a gives "a".
				for i := 0; i < md5FragmentChars; i++ {
					m.frags = append(m.frags, fmt.Sprintf("%x", d[i])[0])
				}
				m.prev = cur
			}
		}
	}
}

// Sum returns the checksum and the fragment sums.
func (m *mediaHash) Sum() (sum, frags string) {
	return hex.EncodeToString(m.h.Sum(nil)), string(m.frags)
}

// appUse is the application use area that holds a media checksum, as
// implantisomd5 writes it.
func appUse(sum, frags string) []byte {
	app := fmt.Appendf(nil, "ISO MD5SUM = %s;SKIPSECTORS = %d;RHLISOSTATUS=0;FRAGMENT SUMS = %s;FRAGMENT COUNT = %d;THIS IS NOT THE SAME AS RUNNING MD5SUM ON THIS ISO!!",
		sum, md5SkipSectors, frags, md5Fragments)
	return append(app, bytes.Repeat([]byte{' '}, appUseSize-len(app))...)
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
