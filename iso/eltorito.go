package iso

import (
	"encoding/binary"
	"fmt"
	"io"
)

// El Torito platform IDs (El Torito 2.1, and UEFI 2.x 13.3.2.1).
const (
	PlatformX86 = 0x00
	PlatformPPC = 0x01
	PlatformMac = 0x02
	PlatformEFI = 0xEF
)

// BootCatalog is the El Torito boot catalog (El Torito 2.0).
type BootCatalog struct {
	LBA     uint32
	Entries []BootEntry // the initial/default entry first, then each section's
}

// BootEntry is an initial/default or section entry (El Torito 2.2, 2.4).
type BootEntry struct {
	Offset      int    // byte offset of the entry in the catalog
	Platform    byte   // from the validation entry or section header
	Bootable    bool   // boot indicator 0x88
	Media       byte   // 0 no emulation, 1-3 floppies, 4 hard disk
	LoadSegment uint16 // 0 means the traditional 0x7C0
	SystemType  byte   // the partition type, for hard disk emulation
	SectorCount uint16 // virtual 512-byte sectors to load
	LoadRBA     uint32 // LBA of the boot image
	SectionID   string // the section header's ID string
}

// PlatformName names a platform ID as xorriso reports it.
func PlatformName(p byte) string {
	switch p {
	case PlatformX86:
		return "BIOS"
	case PlatformPPC:
		return "PPC"
	case PlatformMac:
		return "Mac"
	case PlatformEFI:
		return "UEFI"
	}
	return fmt.Sprintf("0x%02x", p)
}

// readBootCatalog reads the catalog at lba.
func readBootCatalog(r io.ReaderAt, size int64, lba uint32) (*BootCatalog, error) {
	if int64(lba+1)*SectorSize > size {
		return nil, fmt.Errorf("boot catalog at LBA %d: outside the image", lba)
	}
	b := make([]byte, SectorSize)
	if _, err := r.ReadAt(b, int64(lba)*SectorSize); err != nil {
		return nil, fmt.Errorf("reading boot catalog at LBA %d: %w", lba, err)
	}
	// Validation entry (2.1): header 1, key 55 AA, words summing to zero.
	if b[0] != 1 || b[30] != 0x55 || b[31] != 0xAA {
		return nil, fmt.Errorf("boot catalog at LBA %d: no validation entry", lba)
	}
	var sum uint16
	for i := 0; i < 32; i += 2 {
		sum += binary.LittleEndian.Uint16(b[i:])
	}
	if sum != 0 {
		return nil, fmt.Errorf("boot catalog at LBA %d: validation entry checksum is wrong", lba)
	}
	cat := &BootCatalog{LBA: lba}
	platform := b[1]
	cat.Entries = append(cat.Entries, parseBootEntry(b[32:64], 32, platform, ""))
	off := 64
	for off+32 <= len(b) {
		h := b[off]
		if h != 0x90 && h != 0x91 {
			break
		}
		platform := b[off+1]
		n := int(binary.LittleEndian.Uint16(b[off+2:]))
		id := trimA(b[off+4 : off+32])
		off += 32
		for i := 0; i < n && off+32 <= len(b); off += 32 {
			if b[off] == 0x44 {
				continue // an extension entry of the previous entry (2.5)
			}
			cat.Entries = append(cat.Entries, parseBootEntry(b[off:off+32], off, platform, id))
			i++
		}
		if h == 0x91 {
			break
		}
	}
	return cat, nil
}

func parseBootEntry(e []byte, off int, platform byte, id string) BootEntry {
	return BootEntry{
		Offset:      off,
		Platform:    platform,
		Bootable:    e[0] == 0x88,
		Media:       e[1] & 0x0F,
		LoadSegment: binary.LittleEndian.Uint16(e[2:]),
		SystemType:  e[4],
		SectorCount: binary.LittleEndian.Uint16(e[6:]),
		LoadRBA:     binary.LittleEndian.Uint32(e[8:]),
		SectionID:   id,
	}
}
