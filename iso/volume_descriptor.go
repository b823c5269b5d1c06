package iso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Volume descriptor types (ECMA-119 8.1.1).
const (
	vdBootRecord    = 0
	vdPrimary       = 1
	vdSupplementary = 2
	vdPartition     = 3
	vdTerminator    = 255
)

// VolumeDescriptor is a primary or supplementary volume descriptor
// (ECMA-119 8.4 and 8.5); Joliet is a supplementary one.
type VolumeDescriptor struct {
	LBA         uint32 // where the descriptor is
	Type        byte   // 1 primary, 2 supplementary (8.4.1)
	SystemID    string // 8.4.5
	VolumeID    string // 8.4.6, the label installers find media by
	SpaceSize   uint32 // 8.4.8, in logical blocks
	Escape      []byte // 8.5.6, escape sequences: "%/E" etc. for Joliet
	BlockSize   uint16 // 8.4.12
	Root        *DirectoryRecord
	VolumeSetID string // 8.4.19
	Publisher   string // 8.4.20
	Preparer    string // 8.4.21
	Application string // 8.4.22
	Created     string // 8.4.26, the raw 17-byte date digits
	Modified    string // 8.4.27
	// AppUse is the 512-byte application use area (8.4.32), where
	// implantisomd5 keeps the media checksum.
	AppUse []byte
}

// joliet reports whether the descriptor is a Joliet one (Joliet 5.1).
func (v *VolumeDescriptor) joliet() bool {
	if v.Type != vdSupplementary || len(v.Escape) < 3 {
		return false
	}
	e := v.Escape[:3]
	return bytes.Equal(e, []byte("%/@")) || bytes.Equal(e, []byte("%/C")) || bytes.Equal(e, []byte("%/E"))
}

// BootRecord is the El Torito boot record volume descriptor (El Torito 2.0).
type BootRecord struct {
	LBA        uint32 // where the descriptor is; El Torito wants 17
	SystemID   string // "EL TORITO SPECIFICATION"
	CatalogLBA uint32 // the boot catalog
}

func trimA(b []byte) string { return strings.TrimRight(string(b), " \x00") }

// bothEndian32 reads a 32-bit both-byte-order field (ECMA-119 7.3.3),
// trusting the little-endian half as every reader does.
func bothEndian32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func bothEndian16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

func parseVolumeDescriptor(lba uint32, b []byte) (*VolumeDescriptor, error) {
	v := &VolumeDescriptor{
		LBA:         lba,
		Type:        b[0],
		SystemID:    trimA(b[8:40]),
		VolumeID:    trimA(b[40:72]),
		SpaceSize:   bothEndian32(b[80:88]),
		Escape:      append([]byte(nil), b[88:120]...),
		BlockSize:   bothEndian16(b[128:132]),
		VolumeSetID: trimA(b[190:318]),
		Publisher:   trimA(b[318:446]),
		Preparer:    trimA(b[446:574]),
		Application: trimA(b[574:702]),
		Created:     string(b[813:830]),
		Modified:    string(b[830:847]),
		AppUse:      append([]byte(nil), b[883:1395]...),
	}
	if v.BlockSize != SectorSize {
		return nil, fmt.Errorf("volume descriptor at LBA %d: logical block size %d, only %d is supported", lba, v.BlockSize, SectorSize)
	}
	root, err := parseDirectoryRecord(b[156:190])
	if err != nil {
		return nil, fmt.Errorf("volume descriptor at LBA %d: root directory record: %w", lba, err)
	}
	v.Root = root
	return v, nil
}

// readVolumeDescriptors reads the descriptor set from LBA 16 to the
// terminator (ECMA-119 6.7.1).
func readVolumeDescriptors(r io.ReaderAt, size int64) (pvd, joliet *VolumeDescriptor, boot *BootRecord, err error) {
	buf := make([]byte, SectorSize)
	for lba := uint32(16); ; lba++ {
		if int64(lba+1)*SectorSize > size {
			return nil, nil, nil, fmt.Errorf("%w: no volume descriptor set terminator before the end of the image", ErrFormat)
		}
		if _, err := r.ReadAt(buf, int64(lba)*SectorSize); err != nil {
			return nil, nil, nil, fmt.Errorf("reading volume descriptor at LBA %d: %w", lba, err)
		}
		if string(buf[1:6]) != "CD001" || buf[6] != 1 {
			if lba == 16 {
				return nil, nil, nil, ErrFormat
			}
			return nil, nil, nil, fmt.Errorf("%w: volume descriptor at LBA %d has no CD001 identifier", ErrFormat, lba)
		}
		switch buf[0] {
		case vdTerminator:
			if pvd == nil {
				return nil, nil, nil, fmt.Errorf("%w: no primary volume descriptor", ErrFormat)
			}
			return pvd, joliet, boot, nil
		case vdPrimary:
			if pvd == nil {
				if pvd, err = parseVolumeDescriptor(lba, buf); err != nil {
					return nil, nil, nil, err
				}
			}
		case vdSupplementary:
			v, err := parseVolumeDescriptor(lba, buf)
			if err == nil && v.joliet() && joliet == nil {
				joliet = v
			}
		case vdBootRecord:
			if trimA(buf[7:39]) == "EL TORITO SPECIFICATION" && boot == nil {
				boot = &BootRecord{LBA: lba, SystemID: trimA(buf[7:39]), CatalogLBA: binary.LittleEndian.Uint32(buf[71:75])}
			}
		}
		if lba > 16+64 {
			return nil, nil, nil, fmt.Errorf("%w: more than 64 volume descriptors", ErrFormat)
		}
	}
}
