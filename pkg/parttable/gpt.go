package parttable

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Header is the GPT header (UEFI 2.10 5.3.2), little-endian on disk.
type Header struct {
	Signature      [8]byte // "EFI PART"
	Revision       uint32  // 0x00010000
	HeaderSize     uint32  // 92, or up to a sector
	HeaderCRC32    uint32  // of the first HeaderSize bytes, with this field zero
	Reserved       uint32  // zero
	MyLBA          uint64  // the LBA of this header
	AlternateLBA   uint64  // the LBA of the other header
	FirstUsableLBA uint64  // the first LBA a partition may use
	LastUsableLBA  uint64  // the last LBA a partition may use
	DiskGUID       GUID    // the disk's identity
	EntryLBA       uint64  // the first LBA of this header's entry array
	NumEntries     uint32  // entries in the array
	EntrySize      uint32  // bytes per entry: 128 x 2^n
	EntryArrayCRC  uint32  // of the whole entry array
}

const headerBytes = 92 // the encoded Header

// Entry is a partition entry (UEFI 2.10 5.3.3); an entry wider than 128
// bytes keeps its further bytes in the array.
type Entry struct {
	Type       GUID       // the partition type; zero means unused
	Unique     GUID       // this partition's own GUID
	FirstLBA   uint64     // the first sector
	LastLBA    uint64     // the last sector, inclusive
	Attributes uint64     // bit 0: required by the platform
	Name       [36]uint16 // UTF-16LE, zero padded
}

const entryBytes = 128 // the encoded Entry

// GPT is a disk's primary GPT: its header and its entry array, as stored.
type GPT struct {
	Header Header
	Array  []byte // NumEntries x EntrySize bytes
	// Whether the CRCs held when it was read.
	HeaderCRCOK, ArrayCRCOK bool
}

// ErrNoGPT is a disk with no GPT signature at LBA 1.
var ErrNoGPT = fmt.Errorf("no GPT header at LBA 1")

// ReadGPT reads the primary GPT of a disk of size bytes.
func ReadGPT(r io.ReaderAt, size int64) (*GPT, error) {
	sector := make([]byte, SectorSize)
	if _, err := r.ReadAt(sector, SectorSize); err != nil {
		return nil, fmt.Errorf("reading the GPT header: %w", err)
	}
	g := &GPT{}
	binary.Decode(sector, binary.LittleEndian, &g.Header)
	h := &g.Header
	if string(h.Signature[:]) != "EFI PART" {
		return nil, ErrNoGPT
	}
	if h.HeaderSize < headerBytes || h.HeaderSize > SectorSize {
		return nil, fmt.Errorf("GPT header at byte 512: header size %d out of range", h.HeaderSize)
	}
	raw := append([]byte(nil), sector[:h.HeaderSize]...)
	clear(raw[16:20])
	g.HeaderCRCOK = crc32.ChecksumIEEE(raw) == h.HeaderCRC32
	if h.EntrySize < entryBytes || h.EntrySize > 4096 || h.NumEntries > 1024 {
		return nil, fmt.Errorf("GPT header at byte 512: %d entries of %d bytes is out of range", h.NumEntries, h.EntrySize)
	}
	n := int64(h.NumEntries) * int64(h.EntrySize)
	if int64(h.EntryLBA)*SectorSize+n > size {
		return nil, fmt.Errorf("GPT partition entries at LBA %d run past the end of the disk", h.EntryLBA)
	}
	g.Array = make([]byte, n)
	if _, err := r.ReadAt(g.Array, int64(h.EntryLBA)*SectorSize); err != nil {
		return nil, fmt.Errorf("reading GPT partition entries at LBA %d: %w", h.EntryLBA, err)
	}
	g.ArrayCRCOK = crc32.ChecksumIEEE(g.Array) == h.EntryArrayCRC
	return g, nil
}

// Entry returns entry i (from 0).
func (g *GPT) Entry(i int) Entry {
	var e Entry
	binary.Decode(g.Array[i*int(g.Header.EntrySize):], binary.LittleEndian, &e)
	return e
}

// SetEntry replaces entry i, keeping the bytes past the first 128.
func (g *GPT) SetEntry(i int, e Entry) {
	b, _ := binary.Append(nil, binary.LittleEndian, e)
	copy(g.Array[i*int(g.Header.EntrySize):], b)
}

// Used reports whether entry i holds a partition.
func (g *GPT) Used(i int) bool { return g.Entry(i).Type != GUID{} }

// arraySectors is the entry array's size in sectors.
func (g *GPT) arraySectors() uint64 { return (uint64(len(g.Array)) + SectorSize - 1) / SectorSize }

// Write writes the GPT to a disk of the given sectors: the primary header
// at LBA 1 with its array where the header says, and the backup header
// in the last sector with its array just before it. The usable range
// ends before the backup array.
func (g *GPT) Write(w io.WriterAt, sectors uint64) error {
	if sectors < 2*(2+g.arraySectors())+1 {
		return fmt.Errorf("writing a GPT: the disk has %d sectors, too few for a GPT", sectors)
	}
	h := g.Header
	h.MyLBA, h.AlternateLBA = 1, sectors-1
	h.LastUsableLBA = sectors - 2 - g.arraySectors()
	h.EntryArrayCRC = crc32.ChecksumIEEE(g.Array)
	backup := h
	backup.MyLBA, backup.AlternateLBA, backup.EntryLBA = sectors-1, 1, sectors-1-g.arraySectors()
	for _, wr := range []struct {
		lba  uint64
		data []byte
	}{{h.EntryLBA, g.Array}, {1, h.sector()}, {backup.EntryLBA, g.Array}, {sectors - 1, backup.sector()}} {
		if _, err := w.WriteAt(wr.data, int64(wr.lba)*SectorSize); err != nil {
			return fmt.Errorf("writing a GPT at LBA %d: %w", wr.lba, err)
		}
	}
	return nil
}

// sector encodes h, with its CRC, in a whole sector.
func (h Header) sector() []byte {
	h.HeaderCRC32 = 0
	b, _ := binary.Append(nil, binary.LittleEndian, h)
	b = append(b, make([]byte, SectorSize-len(b))...)
	h.HeaderCRC32 = crc32.ChecksumIEEE(b[:h.HeaderSize])
	binary.LittleEndian.PutUint32(b[16:], h.HeaderCRC32)
	return b
}

// New is an empty GPT of 128 entries of 128 bytes, the least the spec
// allows, for a disk of the given sectors, with a random disk GUID.
func New(sectors uint64) *GPT {
	const entries = 128
	g := &GPT{Array: make([]byte, entries*entryBytes)}
	g.Header = Header{
		Signature: [8]byte{'E', 'F', 'I', ' ', 'P', 'A', 'R', 'T'}, Revision: 0x00010000, HeaderSize: headerBytes,
		FirstUsableLBA: 2 + g.arraySectors(), DiskGUID: NewGUID(), EntryLBA: 2, NumEntries: entries, EntrySize: entryBytes,
	}
	g.Header.LastUsableLBA = sectors - 2 - g.arraySectors()
	return g
}

// NameString is the entry's name.
func (e Entry) NameString() string {
	n := e.Name[:]
	for len(n) > 0 && n[len(n)-1] == 0 {
		n = n[:len(n)-1]
	}
	return string(utf16.Decode(n))
}

// SetName sets the entry's name, cut to 36 UTF-16 units.
func (e *Entry) SetName(s string) {
	e.Name = [36]uint16{}
	copy(e.Name[:], utf16.Encode([]rune(s)))
}

// GUID is a GUID in its on-disk, mixed-endian form (UEFI 2.10 appendix A).
type GUID [16]byte

// String formats g as the spec writes GUIDs.
func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(g[0:4]), binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
}

// mustGUID is ParseGUID for the well-known types below, which parse.
func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// ParseGUID reads a GUID as the spec writes it.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	var a uint32
	var b, c uint16
	var d, e []byte
	if len(s) != 36 {
		return g, fmt.Errorf("GUID %q: want 36 characters", s)
	}
	if _, err := fmt.Sscanf(s, "%08X-%04X-%04X-%4X-%12X", &a, &b, &c, &d, &e); err != nil || len(d) != 2 || len(e) != 6 {
		return g, fmt.Errorf("GUID %q: not of the form 01234567-89AB-CDEF-0123-456789ABCDEF", s)
	}
	binary.LittleEndian.PutUint32(g[0:], a)
	binary.LittleEndian.PutUint16(g[4:], b)
	binary.LittleEndian.PutUint16(g[6:], c)
	copy(g[8:], bytes.Join([][]byte{d, e}, nil))
	return g, nil
}

// NewGUID returns a random (version 4) GUID.
func NewGUID() GUID {
	var g GUID
	rand.Read(g[:])
	g[7] = g[7]&0x0f | 0x40 // the version, in the little-endian third field
	g[8] = g[8]&0x3f | 0x80 // the variant
	return g
}

// Well-known partition types.
var (
	TypeGUIDESP             = mustGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	TypeGUIDBasicData       = mustGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
	TypeGUIDHFSPlus         = mustGUID("48465300-0000-11AA-AA11-00306543ECAC")
	TypeGUIDLinuxFilesystem = mustGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	TypeGUIDBIOSBoot        = mustGUID("21686148-6449-6E6F-744E-656564454649")
	TypeGUIDLinuxSwap       = mustGUID("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F")
)
