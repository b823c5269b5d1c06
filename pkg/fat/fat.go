// Package fat reads FAT12, FAT16 and FAT32 file systems, such as the EFI
// system partition image (images/efiboot.img) of installer media, so that
// kiln can find and check the boot configuration inside it without root
// or mtools.
//
// Reference: Microsoft's FAT32 File System Specification (1.03, 2000),
// cited as "FAT" with its section numbers.
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"
)

// BPB is the BIOS parameter block (FAT section 3).
type BPB struct {
	BytesPerSector    uint16 // BPB_BytsPerSec
	SectorsPerCluster uint8  // BPB_SecPerClus
	ReservedSectors   uint16 // BPB_RsvdSecCnt
	NumFATs           uint8  // BPB_NumFATs
	RootEntries       uint16 // BPB_RootEntCnt, 0 on FAT32
	TotalSectors      uint32 // BPB_TotSec16, else BPB_TotSec32
	FATSize           uint32 // BPB_FATSz16, else BPB_FATSz32
	RootCluster       uint32 // BPB_RootClus, FAT32 only
}

// FS is a FAT file system in an io.ReaderAt.
type FS struct {
	r         io.ReaderAt
	size      int64
	BPB       BPB
	Type      int   // 12, 16 or 32 (FAT section 3.5)
	fatStart  int64 // byte offset of the first FAT
	rootStart int64 // byte offset of the FAT12/16 root directory
	dataStart int64 // byte offset of cluster 2
	clusters  uint32
}

// Entry is a directory entry (FAT section 6), with its long name.
type Entry struct {
	Name         string
	Attr         byte
	FirstCluster uint32
	Size         uint32
	// Offset is where the 32-byte short entry is, for an editor.
	Offset int64
}

// IsDir reports whether e is a directory.
func (e *Entry) IsDir() bool { return e.Attr&0x10 != 0 }

// ErrFormat is returned for an image that is not a FAT file system.
var ErrFormat = errors.New("fat: not a FAT file system")

// NewReader reads the BPB and works out the layout.
func NewReader(r io.ReaderAt, size int64) (*FS, error) {
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("fat: reading the boot sector: %w", err)
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil, fmt.Errorf("%w: no boot sector signature", ErrFormat)
	}
	p := BPB{
		BytesPerSector:    binary.LittleEndian.Uint16(b[11:]),
		SectorsPerCluster: b[13],
		ReservedSectors:   binary.LittleEndian.Uint16(b[14:]),
		NumFATs:           b[16],
		RootEntries:       binary.LittleEndian.Uint16(b[17:]),
		TotalSectors:      uint32(binary.LittleEndian.Uint16(b[19:])),
		FATSize:           uint32(binary.LittleEndian.Uint16(b[22:])),
	}
	if p.TotalSectors == 0 {
		p.TotalSectors = binary.LittleEndian.Uint32(b[32:])
	}
	if p.FATSize == 0 {
		p.FATSize = binary.LittleEndian.Uint32(b[36:])
		p.RootCluster = binary.LittleEndian.Uint32(b[44:])
	}
	switch p.BytesPerSector {
	case 512, 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("%w: %d bytes per sector", ErrFormat, p.BytesPerSector)
	}
	if p.SectorsPerCluster == 0 || p.SectorsPerCluster&(p.SectorsPerCluster-1) != 0 || p.NumFATs == 0 || p.ReservedSectors == 0 || p.FATSize == 0 {
		return nil, fmt.Errorf("%w: inconsistent BPB", ErrFormat)
	}
	bps := int64(p.BytesPerSector)
	rootSectors := (int64(p.RootEntries)*32 + bps - 1) / bps
	firstData := int64(p.ReservedSectors) + int64(p.NumFATs)*int64(p.FATSize) + rootSectors
	if firstData >= int64(p.TotalSectors) || int64(p.TotalSectors)*bps > size {
		return nil, fmt.Errorf("%w: %d sectors do not fit the %d-byte image", ErrFormat, p.TotalSectors, size)
	}
	f := &FS{r: r, size: size, BPB: p,
		fatStart:  int64(p.ReservedSectors) * bps,
		rootStart: (int64(p.ReservedSectors) + int64(p.NumFATs)*int64(p.FATSize)) * bps,
		dataStart: firstData * bps,
		clusters:  uint32((int64(p.TotalSectors) - firstData) / int64(p.SectorsPerCluster)),
	}
	switch {
	case f.clusters < 4085:
		f.Type = 12
	case f.clusters < 65525:
		f.Type = 16
	default:
		f.Type = 32
	}
	return f, nil
}

func (f *FS) clusterSize() int64 { return int64(f.BPB.SectorsPerCluster) * int64(f.BPB.BytesPerSector) }

// ClusterOffset is the byte offset of cluster n.
func (f *FS) ClusterOffset(n uint32) int64 { return f.dataStart + int64(n-2)*f.clusterSize() }

// next returns the FAT entry of cluster n (FAT section 4).
func (f *FS) next(n uint32) (uint32, error) {
	var b [4]byte
	switch f.Type {
	case 12:
		if _, err := f.r.ReadAt(b[:2], f.fatStart+int64(n+n/2)); err != nil {
			return 0, err
		}
		v := uint32(binary.LittleEndian.Uint16(b[:2]))
		if n%2 == 1 {
			v >>= 4
		}
		return v & 0xFFF, nil
	case 16:
		if _, err := f.r.ReadAt(b[:2], f.fatStart+int64(n)*2); err != nil {
			return 0, err
		}
		return uint32(binary.LittleEndian.Uint16(b[:2])), nil
	}
	if _, err := f.r.ReadAt(b[:4], f.fatStart+int64(n)*4); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:4]) & 0x0FFFFFFF, nil
}

func (f *FS) isEOC(v uint32) bool {
	switch f.Type {
	case 12:
		return v >= 0xFF8
	case 16:
		return v >= 0xFFF8
	}
	return v >= 0x0FFFFFF8
}

// Chain returns the clusters of a file starting at first.
func (f *FS) Chain(first uint32) ([]uint32, error) {
	var out []uint32
	for c := first; ; {
		if c < 2 || c >= f.clusters+2 {
			return nil, fmt.Errorf("fat: cluster %d out of range in chain from %d", c, first)
		}
		out = append(out, c)
		if len(out) > int(f.clusters) {
			return nil, fmt.Errorf("fat: cluster chain from %d loops", first)
		}
		n, err := f.next(c)
		if err != nil {
			return nil, fmt.Errorf("fat: reading the FAT entry of cluster %d: %w", c, err)
		}
		if f.isEOC(n) {
			return out, nil
		}
		c = n
	}
}

// readDir lists a directory: the FAT12/16 root (first == 0) or a cluster chain.
func (f *FS) readDir(first uint32) ([]Entry, error) {
	type region struct{ off, n int64 }
	var regions []region
	if first == 0 && f.Type != 32 {
		regions = []region{{f.rootStart, int64(f.BPB.RootEntries) * 32}}
	} else {
		if first == 0 {
			first = f.BPB.RootCluster
		}
		chain, err := f.Chain(first)
		if err != nil {
			return nil, err
		}
		for _, c := range chain {
			regions = append(regions, region{f.ClusterOffset(c), f.clusterSize()})
		}
	}
	var out []Entry
	var lfn []uint16
	for _, rg := range regions {
		buf := make([]byte, rg.n)
		if _, err := f.r.ReadAt(buf, rg.off); err != nil {
			return nil, fmt.Errorf("fat: reading a directory at byte %d: %w", rg.off, err)
		}
		for i := 0; i+32 <= len(buf); i += 32 {
			e := buf[i : i+32]
			switch {
			case e[0] == 0:
				return out, nil
			case e[0] == 0xE5:
				lfn = nil
				continue
			case e[11] == 0x0F: // a long-name part (FAT section 7)
				seq := int(e[0] & 0x1F)
				if e[0]&0x40 != 0 {
					lfn = make([]uint16, 13*seq)
				}
				if seq == 0 || 13*seq > len(lfn) {
					lfn = nil
					continue
				}
				part := lfn[13*(seq-1):]
				for j, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
					part[j] = binary.LittleEndian.Uint16(e[o:])
				}
				continue
			case e[11]&0x08 != 0:
				lfn = nil
				continue // the volume label
			}
			name := shortName(e[:11])
			if lfn != nil {
				u := lfn
				for k, c := range u {
					if c == 0 {
						u = u[:k]
						break
					}
				}
				name = string(utf16.Decode(u))
				lfn = nil
			}
			out = append(out, Entry{Name: name, Attr: e[11], Size: binary.LittleEndian.Uint32(e[28:]), Offset: rg.off + int64(i),
				FirstCluster: uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))})
		}
	}
	return out, nil
}

func shortName(b []byte) string {
	base := strings.TrimRight(string(b[:8]), " ")
	ext := strings.TrimRight(string(b[8:11]), " ")
	if ext != "" {
		return base + "." + ext
	}
	return base
}

// Stat finds the entry at name, matching names without regard to case as
// FAT does.
func (f *FS) Stat(name string) (*Entry, error) {
	cur := uint32(0)
	parts := strings.Split(strings.Trim(name, "/"), "/")
	for i, part := range parts {
		entries, err := f.readDir(cur)
		if err != nil {
			return nil, err
		}
		var hit *Entry
		for j := range entries {
			if strings.EqualFold(entries[j].Name, part) && entries[j].Name != "." && entries[j].Name != ".." {
				hit = &entries[j]
				break
			}
		}
		if hit == nil {
			return nil, fmt.Errorf("fat: %s: %w", name, fs.ErrNotExist)
		}
		if i == len(parts)-1 {
			return hit, nil
		}
		if !hit.IsDir() {
			return nil, fmt.Errorf("fat: %s: %w", name, fs.ErrNotExist)
		}
		cur = hit.FirstCluster
	}
	return nil, fmt.Errorf("fat: %s: %w", name, fs.ErrNotExist)
}

// maxReadFile bounds ReadFile, which is for configuration files.
const maxReadFile = 16 << 20

// ReadFile returns the content of the file at name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	e, err := f.Stat(name)
	if err != nil {
		return nil, err
	}
	if e.IsDir() {
		return nil, fmt.Errorf("fat: %s is a directory", name)
	}
	if e.Size > maxReadFile {
		return nil, fmt.Errorf("fat: %s: %d bytes is more than ReadFile reads", name, e.Size)
	}
	if e.Size == 0 {
		return nil, nil
	}
	chain, err := f.Chain(e.FirstCluster)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, e.Size)
	cs := f.clusterSize()
	for _, c := range chain {
		n := cs
		if rem := int64(e.Size) - int64(len(out)); rem < n {
			n = rem
		}
		if n <= 0 {
			break
		}
		buf := make([]byte, n)
		if _, err := f.r.ReadAt(buf, f.ClusterOffset(c)); err != nil {
			return nil, fmt.Errorf("fat: reading %s cluster %d: %w", name, c, err)
		}
		out = append(out, buf...)
	}
	if len(out) != int(e.Size) {
		return nil, fmt.Errorf("fat: %s: its chain holds %d bytes, its entry says %d", name, len(out), e.Size)
	}
	return out, nil
}
