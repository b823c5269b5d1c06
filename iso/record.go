package iso

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"strings"
	"time"
	"unicode/utf16"
)

// putBoth32 writes a both-byte-order 32-bit field (ECMA-119 7.3.3).
func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b[0:4], v)
	binary.BigEndian.PutUint32(b[4:8], v)
}

// putBoth16 writes a both-byte-order 16-bit field (ECMA-119 7.2.3).
func putBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b[0:2], v)
	binary.BigEndian.PutUint16(b[2:4], v)
}

// recordTime is a 7-byte directory record date (ECMA-119 9.1.5), in UTC.
func recordTime(t time.Time) []byte {
	t = t.UTC()
	return []byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

// volumeTime is a 17-byte volume descriptor date (ECMA-119 8.4.26.1).
func volumeTime(t time.Time) []byte {
	t = t.UTC()
	return append([]byte(t.Format("20060102150405")+"00"), 0)
}

// buildRecord makes a directory record (ECMA-119 9.1).
func buildRecord(id []byte, extent, size uint32, flags byte, t time.Time, su []byte) []byte {
	n := 33 + len(id)
	if len(id)%2 == 0 {
		n++
	}
	n += len(su)
	if n%2 == 1 {
		n++ // records have even length (9.1.1 note)
	}
	b := make([]byte, n)
	b[0] = byte(n)
	putBoth32(b[2:10], extent)
	putBoth32(b[10:18], size)
	copy(b[18:25], recordTime(t))
	b[25] = flags
	putBoth16(b[28:32], 1)
	b[32] = byte(len(id))
	copy(b[33:], id)
	off := 33 + len(id)
	if len(id)%2 == 0 {
		off++
	}
	copy(b[off:], su)
	return b
}

// rockRidgeEntries makes the SUSP entries for a new file or directory:
// PX (RRIP 1.12, with an inode number), TF (modify and access times) and,
// unless it is "." or "..", NM.
func rockRidgeEntries(name string, mode fs.FileMode, ino uint32, t time.Time) []byte {
	var b bytes.Buffer
	px := make([]byte, 44)
	copy(px, "PX")
	px[2], px[3] = 44, 1
	m := uint32(mode.Perm())
	nlink := uint32(1)
	if mode.IsDir() {
		m |= 0o040000
		nlink = 2
	} else {
		m |= 0o100000
	}
	putBoth32(px[4:12], m)
	putBoth32(px[12:20], nlink)
	putBoth32(px[20:28], 0)
	putBoth32(px[28:36], 0)
	putBoth32(px[36:44], ino)
	b.Write(px)
	tf := []byte{'T', 'F', 5 + 14, 1, 0x06}
	tf = append(tf, recordTime(t)...)
	tf = append(tf, recordTime(t)...)
	b.Write(tf)
	if name != "" {
		b.Write([]byte{'N', 'M', byte(5 + len(name)), 1, 0})
		b.WriteString(name)
	}
	return b.Bytes()
}

// isoIdentifier makes an ISO 9660 level 2 identifier for a name: upper
// case d-characters, at most 30 of them, with ";1" for files.
func isoIdentifier(name string, dir bool) string {
	var sb strings.Builder
	dot := strings.LastIndexByte(name, '.')
	for i, c := range strings.ToUpper(name) {
		switch {
		case c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_':
			sb.WriteRune(c)
		case c == '.' && i == dot && !dir:
			sb.WriteRune(c)
		default:
			sb.WriteByte('_')
		}
	}
	s := sb.String()
	if len(s) > 30 {
		if ext := strings.LastIndexByte(s, '.'); ext > 0 && len(s)-ext <= 8 {
			s = s[:30-(len(s)-ext)] + s[ext:]
		} else {
			s = s[:30]
		}
	}
	if !dir {
		if !strings.Contains(s, ".") {
			s += "."
		}
		s += ";1"
	}
	return s
}

// jolietIdentifier encodes a Joliet identifier: UCS-2 big-endian, at most
// 103 characters (as xorriso's joliet_long_names), ";1" for files.
func jolietIdentifier(name string, dir bool) []byte {
	u := utf16.Encode([]rune(name))
	if len(u) > 103 {
		u = u[:103]
	}
	if !dir {
		u = append(u, ';', '1')
	}
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}
