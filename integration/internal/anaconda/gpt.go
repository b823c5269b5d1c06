package anaconda

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// The GUID Partition Table, UEFI 2.10 section 5.3, as `clearpart --all
// --initlabel` on a UEFI-era Anaconda leaves it: a protective MBR, the
// primary header and entry array, and their backups at the disk's end.

const (
	sectorSize  = 512
	gptEntries  = 128 // entries in the array, the minimum the spec allows
	gptEntrySz  = 128 // bytes per entry (5.3.3)
	gptArrayLBA = 2   // the primary array follows the primary header
	// gptArraySectors is the array's size: 128 x 128 bytes.
	gptArraySectors = gptEntries * gptEntrySz / sectorSize
)

// LinuxFilesystem is the partition type GUID of Linux filesystem data.
var LinuxFilesystem = [16]byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}

// Partition is one partition to create.
type Partition struct {
	Name     string   // the GPT partition name, such as "root"
	Type     [16]byte // the type GUID in its on-disk (mixed-endian) form
	FirstLBA uint64
	LastLBA  uint64 // inclusive
}

// gptHeader is the GPT header (5.3.2), little-endian on disk.
type gptHeader struct {
	Signature      [8]byte  // "EFI PART"
	Revision       uint32   // 0x00010000
	HeaderSize     uint32   // 92
	HeaderCRC32    uint32   // of the first HeaderSize bytes, with this field zero
	Reserved       uint32   // zero
	MyLBA          uint64   // the LBA of this header
	AlternateLBA   uint64   // the LBA of the other header
	FirstUsableLBA uint64   // the first LBA a partition may use
	LastUsableLBA  uint64   // the last LBA a partition may use
	DiskGUID       [16]byte // the disk's identity
	EntryLBA       uint64   // the first LBA of this header's entry array
	NumEntries     uint32   // entries in the array
	EntrySize      uint32   // bytes per entry
	EntryArrayCRC  uint32   // of the whole entry array
}

// gptEntry is a partition entry (5.3.3).
type gptEntry struct {
	Type       [16]byte   // the partition type GUID; zero means unused
	Unique     [16]byte   // this partition's own GUID
	FirstLBA   uint64     // the first sector
	LastLBA    uint64     // the last sector, inclusive
	Attributes uint64     // bit 0: required by the platform; none here
	Name       [36]uint16 // UTF-16LE, zero padded
}

// UsableLBAs returns the first and last sectors a partition may use on a
// disk of size bytes.
func UsableLBAs(size int64) (first, last uint64) {
	sectors := uint64(size / sectorSize)
	return gptArrayLBA + gptArraySectors, sectors - 2 - gptArraySectors
}

// WriteGPT writes a protective MBR and a primary and a backup GPT holding
// parts to a disk of size bytes.
func WriteGPT(w io.WriterAt, size int64, parts []Partition) error {
	sectors := uint64(size / sectorSize)
	first, last := UsableLBAs(size)
	if sectors < 2*(2+gptArraySectors)+1 {
		return fmt.Errorf("writing a partition table: the disk has %d sectors, too few for a GPT", sectors)
	}
	if len(parts) > gptEntries {
		return fmt.Errorf("writing a partition table: %d partitions, at most %d", len(parts), gptEntries)
	}
	array := make([]byte, gptEntries*gptEntrySz)
	for i, p := range parts {
		if p.FirstLBA < first || p.LastLBA > last || p.FirstLBA > p.LastLBA {
			return fmt.Errorf("writing a partition table: partition %d (%s) spans sectors %d-%d, outside %d-%d", i+1, p.Name, p.FirstLBA, p.LastLBA, first, last)
		}
		e := gptEntry{Type: p.Type, FirstLBA: p.FirstLBA, LastLBA: p.LastLBA, Unique: newGUID()}
		copy(e.Name[:], utf16.Encode([]rune(p.Name)))
		b, _ := binary.Append(nil, binary.LittleEndian, e)
		copy(array[i*gptEntrySz:], b)
	}
	h := gptHeader{
		Signature: [8]byte{'E', 'F', 'I', ' ', 'P', 'A', 'R', 'T'}, Revision: 0x00010000, HeaderSize: 92,
		MyLBA: 1, AlternateLBA: sectors - 1, FirstUsableLBA: first, LastUsableLBA: last,
		DiskGUID: newGUID(), EntryLBA: gptArrayLBA, NumEntries: gptEntries, EntrySize: gptEntrySz,
		EntryArrayCRC: crc32.ChecksumIEEE(array),
	}
	backup := h
	backup.MyLBA, backup.AlternateLBA, backup.EntryLBA = sectors-1, 1, sectors-1-gptArraySectors

	// The protective MBR (5.2.3): one partition of type 0xEE covering the
	// disk, or as much of it as 32 bits can say.
	mbr := make([]byte, sectorSize)
	pe := mbr[446:462]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	pe[4] = 0xee
	pe[5], pe[6], pe[7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(pe[8:], 1)
	binary.LittleEndian.PutUint32(pe[12:], uint32(min(sectors-1, 0xffffffff)))
	mbr[510], mbr[511] = 0x55, 0xaa

	writes := []struct {
		lba  uint64
		data []byte
	}{
		{0, mbr},
		{gptArrayLBA, array},
		{1, headerSector(h)},
		{backup.EntryLBA, array},
		{sectors - 1, headerSector(backup)},
	}
	for _, wr := range writes {
		if _, err := w.WriteAt(wr.data, int64(wr.lba)*sectorSize); err != nil {
			return fmt.Errorf("writing a partition table at LBA %d: %w", wr.lba, err)
		}
	}
	return nil
}

// headerSector encodes h with its CRC into a whole sector.
func headerSector(h gptHeader) []byte {
	h.HeaderCRC32 = 0
	b, _ := binary.Append(nil, binary.LittleEndian, h)
	h.HeaderCRC32 = crc32.ChecksumIEEE(b[:h.HeaderSize])
	b, _ = binary.Append(nil, binary.LittleEndian, h)
	return append(b, make([]byte, sectorSize-len(b))...)
}

// newGUID returns a random (version 4) GUID in its on-disk form.
func newGUID() [16]byte {
	var g [16]byte
	rand.Read(g[:])
	g[7] = g[7]&0x0f | 0x40 // the version, in the little-endian third field
	g[8] = g[8]&0x3f | 0x80 // the variant
	return g
}
