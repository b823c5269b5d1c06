package parttable

import (
	"encoding/binary"
	"fmt"
	"io"
)

// SectorSize is the logical block size the tables count in.
const SectorSize = 512

// The MBR's layout (UEFI 2.10 table 5-1).
const (
	mbrTableOffset = 446 // the four partition records
	mbrEntrySize   = 16
	mbrSigOffset   = 510 // 0x55 0xAA
)

// MBR types with a meaning here.
const (
	TypeProtective = 0xEE // a GPT's protective MBR (5.2.3)
	TypeESP        = 0xEF
	TypeIsohybrid  = 0x17 // isohybrid's "hidden NTFS" for the ISO
)

// MBR is the first sector of a disk.
type MBR struct {
	Sector    [SectorSize]byte // as read: boot code, disk signature and table
	Signature bool             // 0x55 0xAA at byte 510
}

// MBRPartition is one partition record (UEFI 2.10 table 5-2).
type MBRPartition struct {
	Index    int    `json:"index"` // 1-4
	Bootable bool   `json:"bootable"`
	Type     byte   `json:"type"`      // 0x17 isohybrid, 0xEF ESP, 0xEE GPT protective, 0x00 ISO/unused
	StartLBA uint32 `json:"start_lba"` // in 512-byte sectors
	Sectors  uint32 `json:"sectors"`
}

// ReadMBR reads the first sector of r.
func ReadMBR(r io.ReaderAt) (*MBR, error) {
	m := &MBR{}
	if _, err := r.ReadAt(m.Sector[:], 0); err != nil {
		return nil, fmt.Errorf("reading the MBR: %w", err)
	}
	m.Signature = m.Sector[mbrSigOffset] == 0x55 && m.Sector[mbrSigOffset+1] == 0xAA
	return m, nil
}

func (m *MBR) entry(i int) []byte {
	return m.Sector[mbrTableOffset+mbrEntrySize*i : mbrTableOffset+mbrEntrySize*(i+1)]
}

// Partition returns record i (0-3).
func (m *MBR) Partition(i int) MBRPartition {
	e := m.entry(i)
	return MBRPartition{Index: i + 1, Bootable: e[0] == 0x80, Type: e[4], StartLBA: binary.LittleEndian.Uint32(e[8:]), Sectors: binary.LittleEndian.Uint32(e[12:])}
}

// Partitions returns the records in use.
func (m *MBR) Partitions() []MBRPartition {
	var out []MBRPartition
	for i := 0; i < 4; i++ {
		if p := m.Partition(i); p.Type != 0 || p.Sectors != 0 {
			out = append(out, p)
		}
	}
	return out
}

// SetSectors gives record i a new length, with its CHS end address
// written as isohybrid does; a protective record's stays 0xFFFFFF, as the
// spec asks (5.2.3).
func (m *MBR) SetSectors(i int, sectors uint32) {
	e := m.entry(i)
	binary.LittleEndian.PutUint32(e[12:], sectors)
	if e[4] != TypeProtective {
		setCHS(e[5:8], int64(binary.LittleEndian.Uint32(e[8:]))+int64(sectors)-1)
	}
}

// Protective is the protective MBR of a GPT disk of the given sectors
// (5.2.3): one record of type 0xEE from LBA 1, covering the disk or as
// much of it as 32 bits can say.
func Protective(sectors uint64) *MBR {
	m := &MBR{Signature: true}
	e := m.entry(0)
	e[1], e[2], e[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	e[4] = TypeProtective
	e[5], e[6], e[7] = 0xff, 0xff, 0xff
	binary.LittleEndian.PutUint32(e[8:], 1)
	binary.LittleEndian.PutUint32(e[12:], uint32(min(sectors-1, 0xffffffff)))
	m.Sector[mbrSigOffset], m.Sector[mbrSigOffset+1] = 0x55, 0xAA
	return m
}

// Write writes the sector at the start of w.
func (m *MBR) Write(w io.WriterAt) error {
	if _, err := w.WriteAt(m.Sector[:], 0); err != nil {
		return fmt.Errorf("writing the MBR: %w", err)
	}
	return nil
}

// setCHS writes a cylinder/head/sector address with 64 heads and 32
// sectors, as isohybrid does, capped at the largest CHS can say.
func setCHS(b []byte, lba int64) {
	c := lba / (64 * 32)
	h := (lba / 32) % 64
	s := lba%32 + 1
	if c > 1023 {
		c, h, s = 1023, 63, 32
	}
	b[0] = byte(h)
	b[1] = byte(s) | byte(c>>8)<<6
	b[2] = byte(c)
}
