package iso

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// susEntry is one System Use Sharing Protocol entry (SUSP 4.1).
type susEntry struct {
	Sig  string // two letters: "NM", "PX", "SL", "CE", ...
	Len  byte
	Ver  byte
	Data []byte
}

// rockRidge is what Rock Ridge (RRIP 1.10/1.12) says of one record.
type rockRidge struct {
	name      string // NM, continued entries joined
	hasName   bool
	mode      uint32 // PX, st_mode
	hasMode   bool
	uid, gid  uint32
	symlink   string // SL, components joined
	isSymlink bool
	childLink uint32 // CL: a relocated directory's real location
	hasChild  bool
	relocated bool // RE: this entry is the relocated directory's stand-in
}

// maxSUSPEntries bounds the walk over continuation areas, which a
// corrupt image could chain in a loop.
const maxSUSPEntries = 4096

// parseSUSP reads a system use area, following CE continuation areas
// (SUSP 5.1). skip is the byte count the SP entry says to skip.
func parseSUSP(r io.ReaderAt, size int64, area []byte, skip int) ([]susEntry, error) {
	var out []susEntry
	if skip > len(area) {
		return nil, nil
	}
	area = area[skip:]
	for hops := 0; hops < 64; hops++ {
		var ce []byte
		for len(area) >= 4 {
			if area[0] == 0 {
				break // padding
			}
			n := int(area[2])
			if n < 4 || n > len(area) {
				return out, fmt.Errorf("system use entry %q: length %d out of range", area[:2], n)
			}
			e := susEntry{Sig: string(area[:2]), Len: area[2], Ver: area[3], Data: area[4:n]}
			area = area[n:]
			switch e.Sig {
			case "ST":
				return out, nil
			case "CE":
				if len(e.Data) < 24 {
					return out, fmt.Errorf("CE entry: %d bytes, want 24", len(e.Data))
				}
				ce = e.Data
				continue
			}
			out = append(out, e)
			if len(out) > maxSUSPEntries {
				return out, fmt.Errorf("more than %d system use entries", maxSUSPEntries)
			}
		}
		if ce == nil {
			return out, nil
		}
		lba := binary.LittleEndian.Uint32(ce[0:4])
		off := binary.LittleEndian.Uint32(ce[8:12])
		n := binary.LittleEndian.Uint32(ce[16:20])
		pos := int64(lba)*SectorSize + int64(off)
		if n > SectorSize || pos+int64(n) > size {
			return out, fmt.Errorf("CE entry points at LBA %d offset %d length %d, outside the image", lba, off, n)
		}
		area = make([]byte, n)
		if _, err := r.ReadAt(area, pos); err != nil {
			return out, fmt.Errorf("reading continuation area at LBA %d: %w", lba, err)
		}
	}
	return out, fmt.Errorf("continuation areas chained more than 64 deep")
}

// rockRidgeOf interprets SUSP entries as Rock Ridge.
func rockRidgeOf(entries []susEntry) (rockRidge, error) {
	var rr rockRidge
	var sl strings.Builder
	slStarted, prevCont, lastRoot := false, false, false
	for _, e := range entries {
		switch e.Sig {
		case "NM": // RRIP 4.1.4
			if len(e.Data) < 1 {
				return rr, fmt.Errorf("NM entry without flags")
			}
			flags := e.Data[0]
			switch {
			case flags&0x02 != 0:
				rr.name = "."
			case flags&0x04 != 0:
				rr.name = ".."
			default:
				rr.name += string(e.Data[1:])
			}
			rr.hasName = true
		case "PX": // RRIP 4.1.1
			if len(e.Data) < 32 {
				return rr, fmt.Errorf("PX entry: %d bytes, want at least 32", len(e.Data))
			}
			rr.mode = binary.LittleEndian.Uint32(e.Data[0:4])
			rr.uid = binary.LittleEndian.Uint32(e.Data[16:20])
			rr.gid = binary.LittleEndian.Uint32(e.Data[24:28])
			rr.hasMode = true
		case "SL": // RRIP 4.1.3
			if len(e.Data) < 1 {
				return rr, fmt.Errorf("SL entry without flags")
			}
			rr.isSymlink = true
			comps := e.Data[1:]
			for len(comps) >= 2 {
				cflags, clen := comps[0], int(comps[1])
				if 2+clen > len(comps) {
					return rr, fmt.Errorf("SL component length %d overruns the entry", clen)
				}
				content := string(comps[2 : 2+clen])
				comps = comps[2+clen:]
				// Components are joined by slashes, except one that continues
				// the previous (its CONTINUE flag was set).
				if slStarted && !prevCont && !lastRoot {
					sl.WriteByte('/')
				}
				lastRoot = false
				switch {
				case cflags&0x08 != 0:
					sl.Reset()
					sl.WriteByte('/')
					lastRoot = true
				case cflags&0x02 != 0:
					sl.WriteString(".")
				case cflags&0x04 != 0:
					sl.WriteString("..")
				default:
					sl.WriteString(content)
				}
				slStarted = true
				prevCont = cflags&0x01 != 0
			}
		case "CL": // RRIP 4.1.5.1
			if len(e.Data) >= 8 {
				rr.childLink, rr.hasChild = binary.LittleEndian.Uint32(e.Data[0:4]), true
			}
		case "RE": // RRIP 4.1.5.3
			rr.relocated = true
		}
	}
	rr.symlink = sl.String()
	return rr, nil
}
