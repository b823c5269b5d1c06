package iso

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/kiln-build/kiln/internal/unixmode"
)

// Reader reads an ISO 9660 image.
type Reader struct {
	r    io.ReaderAt
	size int64

	PVD     *VolumeDescriptor
	Joliet  *VolumeDescriptor // nil without Joliet
	Boot    *BootRecord       // nil without El Torito
	Catalog *BootCatalog      // nil without El Torito

	// RockRidge is set when the primary tree carries Rock Ridge (its root
	// "." record starts with a SUSP SP entry).
	RockRidge bool
	suspSkip  int
}

// Extent is one contiguous part of a file's data.
type Extent struct {
	LBA  uint32
	Size uint32
}

// File is a file or directory as the Rock Ridge (or plain ISO 9660, or
// Joliet) view names it.
type File struct {
	Name    string
	Path    string // slash-separated, without a leading slash
	Mode    fs.FileMode
	Size    int64
	ModTime time.Time
	UID     uint32
	GID     uint32
	Target  string   // a symlink's target
	Extents []Extent // several for a file over 4 GiB (ECMA-119 6.5.1)
	// RecordLBA and RecordOffset locate the first directory record of the
	// file, for an editor that patches it in place.
	RecordLBA    uint32
	RecordOffset int
	Record       *DirectoryRecord

	r *Reader
}

// IsDir reports whether f is a directory.
func (f *File) IsDir() bool { return f.Mode.IsDir() }

// Open returns the file's content (nothing for a symlink or directory).
func (f *File) Open() io.Reader {
	if len(f.Extents) == 0 || f.IsDir() {
		return strings.NewReader("")
	}
	if len(f.Extents) == 1 {
		return f.SectionReader()
	}
	var rs []io.Reader
	for _, e := range f.Extents {
		rs = append(rs, io.NewSectionReader(f.r.r, int64(e.LBA)*SectorSize, int64(e.Size)))
	}
	return io.MultiReader(rs...)
}

// SectionReader returns the content of a file in one extent as an
// io.SectionReader; for a multi-extent file, only the first extent.
func (f *File) SectionReader() *io.SectionReader {
	e := f.Extents[0]
	return io.NewSectionReader(f.r.r, int64(e.LBA)*SectorSize, int64(e.Size))
}

// NewReader reads the volume descriptors, the root of the primary tree
// and the boot catalog.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	if size < 17*SectorSize {
		return nil, fmt.Errorf("%w: %d bytes is too small", ErrFormat, size)
	}
	pvd, joliet, boot, err := readVolumeDescriptors(r, size)
	if err != nil {
		return nil, err
	}
	ir := &Reader{r: r, size: size, PVD: pvd, Joliet: joliet, Boot: boot}
	if err := ir.checkExtent("root directory", pvd.Root.Extent, pvd.Root.Size); err != nil {
		return nil, err
	}
	// The root's "." record says whether Rock Ridge is in use (SUSP 5.3).
	first := make([]byte, SectorSize)
	if _, err := r.ReadAt(first, int64(pvd.Root.Extent)*SectorSize); err != nil {
		return nil, fmt.Errorf("reading root directory at LBA %d: %w", pvd.Root.Extent, err)
	}
	dot, err := parseDirectoryRecord(first)
	if err != nil {
		return nil, fmt.Errorf("root directory record at LBA %d offset 0: %w", pvd.Root.Extent, err)
	}
	if su := dot.SystemUse; len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[4] == 0xBE && su[5] == 0xEF {
		ir.RockRidge = true
		ir.suspSkip = int(su[6])
	}
	if boot != nil {
		cat, err := readBootCatalog(r, size, boot.CatalogLBA)
		if err != nil {
			return nil, err
		}
		ir.Catalog = cat
	}
	return ir, nil
}

func (r *Reader) checkExtent(what string, lba, size uint32) error {
	if int64(lba)*SectorSize+int64(size) > r.size {
		return fmt.Errorf("%s at LBA %d with %d bytes runs past the end of the %d-byte image", what, lba, size, r.size)
	}
	return nil
}

// maxDirSize bounds one directory's extent; a corrupt length must not make
// the reader allocate gigabytes.
const maxDirSize = 64 << 20

// readDirBytes reads a directory's extent, whole sectors.
func readDirBytes(r io.ReaderAt, lba, size uint32) ([]byte, error) {
	if size > maxDirSize {
		return nil, fmt.Errorf("directory at LBA %d: %d bytes is too large", lba, size)
	}
	buf := make([]byte, (int(size)+SectorSize-1)/SectorSize*SectorSize)
	if _, err := r.ReadAt(buf, int64(lba)*SectorSize); err != nil {
		return nil, fmt.Errorf("reading directory at LBA %d: %w", lba, err)
	}
	return buf, nil
}

// forEachRecord calls fn with each record of a directory's bytes, its raw
// bytes and where it is. No record crosses a sector boundary (ECMA-119
// 6.8.1.1): a zero length byte means the rest of the sector is empty.
func forEachRecord(buf []byte, size, lba uint32, fn func(rec *DirectoryRecord, raw []byte, recLBA uint32, recOff int) error) error {
	for off := 0; off < int(size) && off < len(buf); {
		if buf[off] == 0 {
			off = (off/SectorSize + 1) * SectorSize
			continue
		}
		end := (off/SectorSize + 1) * SectorSize
		rec, err := parseDirectoryRecord(buf[off:end])
		recLBA, recOff := lba+uint32(off/SectorSize), off%SectorSize
		if err != nil {
			return fmt.Errorf("directory record at LBA %d offset %d: %w", recLBA, recOff, err)
		}
		if err := fn(rec, buf[off:off+int(rec.Length)], recLBA, recOff); err != nil {
			return err
		}
		off += int(rec.Length)
	}
	return nil
}

// readDir reads the records of the directory at lba. view selects the
// names: "rr" (Rock Ridge, falling back to ISO 9660), "joliet" or "iso".
func (r *Reader) readDir(dir string, lba, size uint32, view string) ([]*File, error) {
	if size > maxDirSize {
		return nil, fmt.Errorf("directory %q at LBA %d: %d bytes is too large", dir, lba, size)
	}
	if err := r.checkExtent(fmt.Sprintf("directory %q", dir), lba, size); err != nil {
		return nil, err
	}
	buf, err := readDirBytes(r.r, lba, size)
	if err != nil {
		return nil, fmt.Errorf("directory %q: %w", dir, err)
	}
	var files []*File
	var last *File
	var lastFlags byte
	err = forEachRecord(buf, size, lba, func(rec *DirectoryRecord, _ []byte, recLBA uint32, recOff int) error {
		if rec.isDot() {
			return nil
		}
		f, hide, err := r.fileOf(dir, rec, view)
		if err != nil {
			return fmt.Errorf("directory record at LBA %d offset %d: %w", recLBA, recOff, err)
		}
		if hide {
			return nil
		}
		f.RecordLBA, f.RecordOffset = recLBA, recOff
		if err := r.checkExtent(fmt.Sprintf("file %q", f.Path), rec.Extent, rec.Size); err != nil && !f.IsDir() {
			return err
		}
		// The extents of a multi-extent file are consecutive records of
		// one name, all but the last flagged (ECMA-119 9.1.6).
		if last != nil && lastFlags&flagMultiExtent != 0 && last.Name == f.Name {
			last.Extents = append(last.Extents, Extent{rec.Extent, rec.Size})
			last.Size += int64(rec.Size)
			lastFlags = rec.Flags
			return nil
		}
		files = append(files, f)
		last, lastFlags = f, rec.Flags
		return nil
	})
	return files, err
}

// fileOf makes a File of a record, and says whether to hide it (a Rock
// Ridge relocated directory's stand-in).
func (r *Reader) fileOf(dir string, rec *DirectoryRecord, view string) (*File, bool, error) {
	f := &File{r: r, ModTime: rec.Recorded, Size: int64(rec.Size), Extents: []Extent{{rec.Extent, rec.Size}}, Record: rec}
	switch view {
	case "joliet":
		f.Name = jolietName(rec.Name)
	default:
		f.Name = isoName(rec.Name, rec.IsDir())
	}
	if rec.IsDir() {
		f.Mode = fs.ModeDir | 0o555
	} else {
		f.Mode = 0o444
	}
	if view == "rr" && r.RockRidge {
		entries, err := parseSUSP(r.r, r.size, rec.SystemUse, 0)
		if err != nil {
			return nil, false, err
		}
		rr, err := rockRidgeOf(entries)
		if err != nil {
			return nil, false, err
		}
		if rr.relocated {
			return f, true, nil
		}
		if rr.hasName {
			f.Name = rr.name
		}
		if rr.hasMode {
			f.Mode = unixmode.FileMode(rr.mode)
			f.UID, f.GID = rr.uid, rr.gid
		}
		if rr.isSymlink {
			f.Mode = fs.ModeSymlink | (f.Mode & fs.ModePerm)
			f.Target = rr.symlink
			f.Size = int64(len(rr.symlink))
			f.Extents = nil
		}
		if rr.hasChild {
			// A directory moved to keep the ISO 9660 tree shallow
			// (RRIP 4.1.5): its content is at the child link.
			f.Mode = fs.ModeDir | (f.Mode & fs.ModePerm)
			first := make([]byte, SectorSize)
			if _, err := r.r.ReadAt(first, int64(rr.childLink)*SectorSize); err != nil {
				return nil, false, fmt.Errorf("reading relocated directory at LBA %d: %w", rr.childLink, err)
			}
			dot, err := parseDirectoryRecord(first)
			if err != nil {
				return nil, false, fmt.Errorf("relocated directory at LBA %d: %w", rr.childLink, err)
			}
			f.Extents = []Extent{{rr.childLink, dot.Size}}
			f.Size = int64(dot.Size)
		}
	}
	if f.Name == "" || f.Name == "." || f.Name == ".." || strings.ContainsAny(f.Name, "/\x00") {
		return nil, false, fmt.Errorf("invalid file name %q", f.Name)
	}
	f.Path = path.Join(dir, f.Name)
	return f, false, nil
}

// isoName turns an ISO 9660 identifier into a name: "FILE.TXT;1" is
// "FILE.TXT", "README.;1" is "README".
func isoName(b []byte, dir bool) string {
	s := string(b)
	if dir {
		return s
	}
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, ".")
}

// jolietName decodes a Joliet UCS-2 big-endian identifier.
func jolietName(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	s := string(utf16.Decode(u))
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return s
}

// ReadDir lists a directory of the Rock Ridge view ("" is the root).
func (r *Reader) ReadDir(dir string) ([]*File, error) {
	return r.readDirView(dir, "rr")
}

// JolietReadDir lists a directory of the Joliet view.
func (r *Reader) JolietReadDir(dir string) ([]*File, error) {
	if r.Joliet == nil {
		return nil, fmt.Errorf("iso: the image has no Joliet tree")
	}
	return r.readDirView(dir, "joliet")
}

func (r *Reader) readDirView(dir, view string) ([]*File, error) {
	root := r.PVD.Root
	if view == "joliet" {
		root = r.Joliet.Root
	}
	dir = strings.Trim(dir, "/")
	lba, size := root.Extent, root.Size
	cur := ""
	if dir != "" {
		for _, part := range strings.Split(dir, "/") {
			files, err := r.readDir(cur, lba, size, view)
			if err != nil {
				return nil, err
			}
			var next *File
			for _, f := range files {
				if f.Name == part {
					next = f
					break
				}
			}
			if next == nil || !next.IsDir() {
				return nil, fmt.Errorf("iso: %s: %w", path.Join(cur, part), fs.ErrNotExist)
			}
			cur = next.Path
			lba, size = next.Extents[0].LBA, next.Extents[0].Size
		}
	}
	return r.readDir(cur, lba, size, view)
}

// Stat returns the file at name in the Rock Ridge view.
func (r *Reader) Stat(name string) (*File, error) {
	name = strings.Trim(name, "/")
	files, err := r.ReadDir(path.Dir(name))
	if path.Dir(name) == "." {
		files, err = r.ReadDir("")
	}
	if err != nil {
		return nil, err
	}
	base := path.Base(name)
	for _, f := range files {
		if f.Name == base {
			return f, nil
		}
	}
	return nil, fmt.Errorf("iso: %s: %w", name, fs.ErrNotExist)
}

// maxDepth bounds the walk; a corrupt image could loop.
const maxDepth = 64

// Walk calls fn for every file of the Rock Ridge view, parents first.
func (r *Reader) Walk(fn func(*File) error) error {
	return r.walk("", r.PVD.Root.Extent, r.PVD.Root.Size, 0, map[uint32]bool{}, fn)
}

func (r *Reader) walk(dir string, lba, size uint32, depth int, seen map[uint32]bool, fn func(*File) error) error {
	if depth > maxDepth {
		return fmt.Errorf("iso: %s: directories nested more than %d deep", dir, maxDepth)
	}
	if seen[lba] {
		return fmt.Errorf("iso: %s: directory at LBA %d is its own ancestor", dir, lba)
	}
	seen[lba] = true
	defer delete(seen, lba)
	files, err := r.readDir(dir, lba, size, "rr")
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := fn(f); err != nil {
			return err
		}
		if f.IsDir() {
			if err := r.walk(f.Path, f.Extents[0].LBA, f.Extents[0].Size, depth+1, seen, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// FileAt returns the file whose data starts at lba, for naming boot images.
func (r *Reader) FileAt(lba uint32) (*File, error) {
	var found *File
	err := r.Walk(func(f *File) error {
		if !f.IsDir() && len(f.Extents) > 0 && f.Extents[0].LBA == lba && found == nil {
			found = f
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("iso: no file starts at LBA %d", lba)
	}
	return found, nil
}
