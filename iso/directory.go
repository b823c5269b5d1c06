package iso

import (
	"fmt"
	"time"
)

// File flags of a directory record (ECMA-119 9.1.6).
const (
	flagHidden      = 1 << 0
	flagDirectory   = 1 << 1
	flagMultiExtent = 1 << 7
)

// DirectoryRecord is one ECMA-119 directory record (9.1).
type DirectoryRecord struct {
	Length     byte      // 9.1.1, the record's length in bytes
	ExtAttrLen byte      // 9.1.2
	Extent     uint32    // 9.1.3, LBA of the data
	Size       uint32    // 9.1.4, data length of this extent
	Recorded   time.Time // 9.1.5
	Flags      byte      // 9.1.6
	Name       []byte    // 9.1.10, the raw identifier
	SystemUse  []byte    // 9.1.13, where SUSP and Rock Ridge live
}

// IsDir reports whether the record names a directory.
func (d *DirectoryRecord) IsDir() bool { return d.Flags&flagDirectory != 0 }

// parseDirectoryRecord reads a record from b, which starts with it.
func parseDirectoryRecord(b []byte) (*DirectoryRecord, error) {
	if len(b) < 34 {
		return nil, fmt.Errorf("record is %d bytes, shorter than the 34 of a minimal record", len(b))
	}
	n := int(b[0])
	if n < 34 || n > len(b) {
		return nil, fmt.Errorf("record length %d out of range (34..%d)", n, len(b))
	}
	nameLen := int(b[32])
	if 33+nameLen > n {
		return nil, fmt.Errorf("name length %d overruns the %d-byte record", nameLen, n)
	}
	d := &DirectoryRecord{
		Length:     b[0],
		ExtAttrLen: b[1],
		Extent:     bothEndian32(b[2:10]),
		Size:       bothEndian32(b[10:18]),
		Recorded:   recordingTime(b[18:25]),
		Flags:      b[25],
		Name:       b[33 : 33+nameLen],
	}
	su := 33 + nameLen
	if nameLen%2 == 0 {
		su++ // the padding byte (9.1.12)
	}
	if su < n {
		d.SystemUse = b[su:n]
	}
	return d, nil
}

// recordingTime decodes a 7-byte recording date (ECMA-119 9.1.5).
func recordingTime(b []byte) time.Time {
	if b[0] == 0 && b[1] == 0 && b[2] == 0 {
		return time.Time{}
	}
	loc := time.FixedZone("", int(int8(b[6]))*15*60)
	return time.Date(1900+int(b[0]), time.Month(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5]), 0, loc)
}

// isDot reports whether the record is the "." or ".." entry of a directory.
func (d *DirectoryRecord) isDot() bool {
	return len(d.Name) == 1 && (d.Name[0] == 0 || d.Name[0] == 1)
}
