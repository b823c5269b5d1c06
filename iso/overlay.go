package iso

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
)

// overlay is the remastered image while it is planned: the source image
// with the editor's writes laid over it. Nothing is written to the output
// until the plan is complete; then the output is written once, at the
// computed offsets, and can be hashed as it is written. Small writes
// (directories, descriptors, boot configurations) are kept as bytes;
// added files and moved partitions are kept as references to where their
// bytes are, so no file is held in memory.
type overlay struct {
	base     io.ReaderAt // the source image
	baseSize int64
	size     int64    // the image's size now
	extents  []extent // sorted by off, not overlapping
	// open is the file a path extent was last read from, kept open
	// because the output is read in order.
	open     *os.File
	openPath string
}

// extent is a run of the image that differs from the source: bytes, or
// n bytes read from src (or the file at path) at srcOff, or n zeros.
type extent struct {
	off    int64
	data   []byte
	src    io.ReaderAt
	path   string
	srcOff int64
	n      int64
}

func (x *extent) end() int64 { return x.off + x.n }

func newOverlay(base io.ReaderAt, size int64) *overlay {
	return &overlay{base: base, baseSize: size, size: size}
}

// WriteAt lays p over the image at off.
func (o *overlay) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("writing at negative offset %d", off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	o.put(extent{off: off, data: append([]byte(nil), p...), n: int64(len(p))})
	return len(p), nil
}

// refer lays the n bytes of the file at path, from srcOff, over the image
// at off, without reading them.
func (o *overlay) refer(off int64, path string, srcOff, n int64) {
	if n > 0 {
		o.put(extent{off: off, path: path, srcOff: srcOff, n: n})
	}
}

// move lays n bytes of the image as it is now, from src, over the image
// at dst: the source's own runs by reference, the overlay's by copy.
func (o *overlay) move(dst, src, n int64) error {
	var pieces []extent
	pos := src
	for _, x := range o.extents {
		if x.end() <= pos || x.off >= src+n {
			continue
		}
		if x.off > pos {
			pieces = append(pieces, extent{off: pos, src: o.base, srcOff: pos, n: x.off - pos})
			pos = x.off
		}
		end := min(x.end(), src+n)
		buf := make([]byte, end-pos)
		if _, err := o.ReadAt(buf, pos); err != nil {
			return err
		}
		pieces = append(pieces, extent{off: pos, data: buf, n: int64(len(buf))})
		pos = end
	}
	if pos < src+n {
		pieces = append(pieces, extent{off: pos, src: o.base, srcOff: pos, n: src + n - pos})
	}
	for _, x := range pieces {
		x.off += dst - src
		if x.src != nil && x.srcOff+x.n > o.baseSize {
			// Past the source's end, the image is zeros.
			if in := max(0, o.baseSize-x.srcOff); in > 0 {
				o.put(x.slice(x.off, x.off+in))
			}
			z := max(x.off, x.off+o.baseSize-x.srcOff)
			o.put(extent{off: z, n: x.end() - z})
			continue
		}
		o.put(x)
	}
	o.size = max(o.size, dst+n)
	return nil
}

// put inserts x, trimming what it covers of the extents already laid:
// only the first and the last it overlaps can keep a piece.
func (o *overlay) put(x extent) {
	i := sort.Search(len(o.extents), func(i int) bool { return o.extents[i].end() > x.off })
	j := i
	for j < len(o.extents) && o.extents[j].off < x.end() {
		j++
	}
	var mid []extent
	if i < j && o.extents[i].off < x.off {
		mid = append(mid, o.extents[i].slice(o.extents[i].off, x.off))
	}
	mid = append(mid, x)
	if i < j && o.extents[j-1].end() > x.end() {
		mid = append(mid, o.extents[j-1].slice(x.end(), o.extents[j-1].end()))
	}
	o.extents = append(o.extents[:i], append(mid, o.extents[j:]...)...)
	o.size = max(o.size, x.end())
}

// slice is the part of x from from to to, absolute offsets inside x.
func (x extent) slice(from, to int64) extent {
	y := x
	y.off, y.n = from, to-from
	if x.data != nil {
		y.data = x.data[from-x.off : to-x.off]
	} else {
		y.srcOff = x.srcOff + from - x.off
	}
	return y
}

// Truncate sets the image's size.
func (o *overlay) Truncate(size int64) error {
	if size < o.size {
		for i := len(o.extents) - 1; i >= 0 && o.extents[i].end() > size; i-- {
			if o.extents[i].off >= size {
				o.extents = o.extents[:i]
			} else {
				o.extents[i] = o.extents[i].slice(o.extents[i].off, size)
			}
		}
	}
	o.size = size
	// Grown again later, the image is zeros there, not the source.
	o.baseSize = min(o.baseSize, size)
	return nil
}

// ReadAt reads the image as it is now.
func (o *overlay) ReadAt(p []byte, off int64) (int, error) {
	if off >= o.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > o.size-off {
		p = p[:o.size-off]
	}
	clear(p)
	if off < o.baseSize {
		n := min(int64(len(p)), o.baseSize-off)
		if k, err := o.base.ReadAt(p[:n], off); err != nil && int64(k) < n {
			return 0, fmt.Errorf("reading the source image at byte %d: %w", off+int64(k), err)
		}
	}
	end := off + int64(len(p))
	i := sort.Search(len(o.extents), func(i int) bool { return o.extents[i].end() > off })
	for ; i < len(o.extents) && o.extents[i].off < end; i++ {
		x := o.extents[i]
		from, to := max(x.off, off), min(x.end(), end)
		dst := p[from-off : to-off]
		switch {
		case x.data != nil:
			copy(dst, x.data[from-x.off:])
		default:
			r := x.src
			if r == nil && x.path == "" {
				clear(dst)
				continue
			}
			if x.path != "" {
				f, err := o.file(x.path)
				if err != nil {
					return 0, err
				}
				r = f
			}
			if k, err := r.ReadAt(dst, x.srcOff+from-x.off); err != nil && k < len(dst) {
				return 0, fmt.Errorf("reading %s at byte %d: %w", x.path, x.srcOff+from-x.off+int64(k), err)
			}
		}
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

func (o *overlay) file(path string) (*os.File, error) {
	if o.openPath == path {
		return o.open, nil
	}
	o.Close()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	o.open, o.openPath = f, path
	return f, nil
}

// Close closes the file a path extent was read from.
func (o *overlay) Close() error {
	if o.open == nil {
		return nil
	}
	err := o.open.Close()
	o.open, o.openPath = nil, ""
	return err
}

// apply writes the image's changes to out, which holds a copy of the
// source, and sets out's size.
func (o *overlay) apply(out *os.File) error {
	// What is left of the source, if the image was cut shorter.
	if err := out.Truncate(o.baseSize); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, x := range o.extents {
		if x.data == nil && x.src == nil && x.path == "" {
			x.data = make([]byte, x.n)
		}
		if x.data != nil {
			if _, err := out.WriteAt(x.data, x.off); err != nil {
				return err
			}
			continue
		}
		for off := x.off; off < x.end(); {
			n := min(int64(len(buf)), x.end()-off)
			if _, err := o.ReadAt(buf[:n], off); err != nil && err != io.EOF {
				return err
			}
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return err
			}
			off += n
		}
	}
	return out.Truncate(o.size)
}

// mediaSum is the media checksum of the image as planned, with the
// application use area blank. It reads the image once, in order.
func (o *overlay) mediaSum() (sum, frags string, err error) {
	pvdOff := int64(16 * SectorSize)
	pvd := make([]byte, SectorSize)
	if _, err := o.ReadAt(pvd, pvdOff); err != nil {
		return "", "", fmt.Errorf("reading the primary volume descriptor: %w", err)
	}
	if pvd[0] != vdPrimary || string(pvd[1:6]) != "CD001" {
		return "", "", fmt.Errorf("%w: no primary volume descriptor at LBA 16", ErrFormat)
	}
	if !bytes.Equal(pvd[appUseOffset:appUseOffset+appUseSize], bytes.Repeat([]byte{' '}, appUseSize)) {
		return "", "", fmt.Errorf("summing the image: its application use area is not blank")
	}
	return mediaMD5(o, pvd)
}
