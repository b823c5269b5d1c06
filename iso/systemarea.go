package iso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// The system area is the first 32 KiB of the image (ECMA-119 6.2.1), where
// hybrid images keep an MBR and a GPT so that firmware can boot them from
// a disk. Both count in 512-byte sectors.

// MBRPartition is one of the four primary partition entries (the MBR's
// partition table at byte 446).
type MBRPartition struct {
	Index    int    `json:"index"` // 1-4
	Bootable bool   `json:"bootable"`
	Type     byte   `json:"type"`      // 0x17 isohybrid, 0xEF ESP, 0xEE GPT protective, 0x00 ISO/unused
	StartLBA uint32 `json:"start_lba"` // in 512-byte sectors
	Sectors  uint32 `json:"sectors"`
}

// GPTHeader is the GUID partition table header (UEFI 2.10 5.3.2).
type GPTHeader struct {
	CurrentLBA   uint64 `json:"current_lba"`
	BackupLBA    uint64 `json:"backup_lba"`
	FirstUsable  uint64 `json:"first_usable_lba"`
	LastUsable   uint64 `json:"last_usable_lba"`
	DiskGUID     string `json:"disk_guid"`
	EntriesLBA   uint64 `json:"entries_lba"`
	NumEntries   uint32 `json:"num_entries"`
	EntrySize    uint32 `json:"entry_size"`
	HeaderCRCOK  bool   `json:"header_crc_ok"`
	EntriesCRCOK bool   `json:"entries_crc_ok"`
}

// GPTPartition is one partition entry (UEFI 2.10 5.3.3).
type GPTPartition struct {
	Index    int    `json:"index"`
	TypeGUID string `json:"type_guid"`
	GUID     string `json:"guid"`
	FirstLBA uint64 `json:"first_lba"`
	LastLBA  uint64 `json:"last_lba"`
	Attrs    uint64 `json:"attributes"`
	Name     string `json:"name"`
}

// Well-known partition type GUIDs.
const (
	GUIDESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	GUIDBasicData = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
	GUIDHFSPlus   = "48465300-0000-11AA-AA11-00306543ECAC"
)

// SystemArea is what the first sectors of an image hold.
type SystemArea struct {
	MBRSignature bool           `json:"mbr_signature"` // 55 AA at byte 510
	MBR          []MBRPartition `json:"mbr_partitions"`
	// Kind is "none", "isohybrid" (a bootable MBR with the ISO as
	// partition 1 or at 0), "protective" (a lone 0xEE partition) or "mbr".
	Kind       string         `json:"kind"`
	GPT        *GPTHeader     `json:"gpt,omitempty"`
	Partitions []GPTPartition `json:"gpt_partitions,omitempty"`
}

// guid formats a GUID stored mixed-endian (UEFI 2.10 appendix A).
func guid(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// ReadSystemArea reads the MBR and the primary GPT.
func ReadSystemArea(r io.ReaderAt, size int64) (*SystemArea, error) {
	sa := &SystemArea{Kind: "none"}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("reading the MBR: %w", err)
	}
	sa.MBRSignature = mbr[510] == 0x55 && mbr[511] == 0xAA
	if sa.MBRSignature {
		for i := 0; i < 4; i++ {
			e := mbr[446+16*i : 446+16*(i+1)]
			p := MBRPartition{Index: i + 1, Bootable: e[0] == 0x80, Type: e[4], StartLBA: binary.LittleEndian.Uint32(e[8:]), Sectors: binary.LittleEndian.Uint32(e[12:])}
			if p.Type != 0 || p.Sectors != 0 {
				sa.MBR = append(sa.MBR, p)
			}
		}
		switch {
		case len(sa.MBR) == 1 && sa.MBR[0].Type == 0xEE:
			sa.Kind = "protective"
		case len(sa.MBR) > 0 && bytes.Count(mbr[:440], []byte{0}) < 400:
			// Boot code before the table: isohdpfx.bin or GRUB's boot_hybrid.
			sa.Kind = "isohybrid"
		case len(sa.MBR) > 0:
			sa.Kind = "mbr"
		}
	}
	hdr := make([]byte, 512)
	if _, err := r.ReadAt(hdr, 512); err != nil {
		return nil, fmt.Errorf("reading the GPT header: %w", err)
	}
	if string(hdr[:8]) != "EFI PART" {
		return sa, nil
	}
	hsize := binary.LittleEndian.Uint32(hdr[12:])
	if hsize < 92 || hsize > 512 {
		return nil, fmt.Errorf("GPT header at byte 512: header size %d out of range", hsize)
	}
	g := &GPTHeader{
		CurrentLBA:  binary.LittleEndian.Uint64(hdr[24:]),
		BackupLBA:   binary.LittleEndian.Uint64(hdr[32:]),
		FirstUsable: binary.LittleEndian.Uint64(hdr[40:]),
		LastUsable:  binary.LittleEndian.Uint64(hdr[48:]),
		DiskGUID:    guid(hdr[56:72]),
		EntriesLBA:  binary.LittleEndian.Uint64(hdr[72:]),
		NumEntries:  binary.LittleEndian.Uint32(hdr[80:]),
		EntrySize:   binary.LittleEndian.Uint32(hdr[84:]),
	}
	crc := binary.LittleEndian.Uint32(hdr[16:])
	h := append([]byte(nil), hdr[:hsize]...)
	copy(h[16:20], []byte{0, 0, 0, 0})
	g.HeaderCRCOK = crc32.ChecksumIEEE(h) == crc
	if g.EntrySize < 128 || g.EntrySize > 4096 || g.NumEntries > 1024 {
		return nil, fmt.Errorf("GPT header at byte 512: %d entries of %d bytes is out of range", g.NumEntries, g.EntrySize)
	}
	n := int64(g.NumEntries) * int64(g.EntrySize)
	if int64(g.EntriesLBA)*512+n > size {
		return nil, fmt.Errorf("GPT partition entries at LBA %d run past the end of the image", g.EntriesLBA)
	}
	entries := make([]byte, n)
	if _, err := r.ReadAt(entries, int64(g.EntriesLBA)*512); err != nil {
		return nil, fmt.Errorf("reading GPT partition entries at LBA %d: %w", g.EntriesLBA, err)
	}
	g.EntriesCRCOK = crc32.ChecksumIEEE(entries) == binary.LittleEndian.Uint32(hdr[88:])
	sa.GPT = g
	zero := make([]byte, 16)
	for i := 0; i < int(g.NumEntries); i++ {
		e := entries[i*int(g.EntrySize) : (i+1)*int(g.EntrySize)]
		if bytes.Equal(e[:16], zero) {
			continue
		}
		name := make([]uint16, 36)
		for j := range name {
			name[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		sa.Partitions = append(sa.Partitions, GPTPartition{
			Index: i + 1, TypeGUID: guid(e[0:16]), GUID: guid(e[16:32]),
			FirstLBA: binary.LittleEndian.Uint64(e[32:]), LastLBA: binary.LittleEndian.Uint64(e[40:]),
			Attrs: binary.LittleEndian.Uint64(e[48:]), Name: string(utf16.Decode(name)),
		})
	}
	return sa, nil
}
