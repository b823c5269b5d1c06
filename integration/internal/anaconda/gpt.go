package anaconda

import (
	"fmt"
	"io"

	"github.com/kiln-build/kiln/pkg/parttable"
)

// The GUID Partition Table as `clearpart --all --initlabel` on a
// UEFI-era Anaconda leaves it: a protective MBR, the primary header and a
// 128-entry array, and their backups at the disk's end. pkg/parttable
// writes it.

// Partition is one partition to create.
type Partition struct {
	Name     string // the GPT partition name, such as "root"
	Type     parttable.GUID
	FirstLBA uint64
	LastLBA  uint64 // inclusive
}

// UsableLBAs returns the first and last sectors a partition may use on a
// disk of size bytes.
func UsableLBAs(size int64) (first, last uint64) {
	h := parttable.New(uint64(size / parttable.SectorSize)).Header
	return h.FirstUsableLBA, h.LastUsableLBA
}

// WriteGPT writes a protective MBR and a primary and a backup GPT holding
// parts to a disk of size bytes.
func WriteGPT(w io.WriterAt, size int64, parts []Partition) error {
	sectors := uint64(size / parttable.SectorSize)
	g := parttable.New(sectors)
	if sectors <= 2*g.Header.FirstUsableLBA { // both tables, and a sector between
		return fmt.Errorf("writing a partition table: the disk has %d sectors, too few for a GPT", sectors)
	}
	first, last := g.Header.FirstUsableLBA, g.Header.LastUsableLBA
	if len(parts) > int(g.Header.NumEntries) {
		return fmt.Errorf("writing a partition table: %d partitions, at most %d", len(parts), g.Header.NumEntries)
	}
	for i, p := range parts {
		if p.FirstLBA < first || p.LastLBA > last || p.FirstLBA > p.LastLBA {
			return fmt.Errorf("writing a partition table: partition %d (%s) spans sectors %d-%d, outside %d-%d", i+1, p.Name, p.FirstLBA, p.LastLBA, first, last)
		}
		e := parttable.Entry{Type: p.Type, Unique: parttable.NewGUID(), FirstLBA: p.FirstLBA, LastLBA: p.LastLBA}
		e.SetName(p.Name)
		g.SetEntry(i, e)
	}
	if err := parttable.Protective(sectors).Write(w); err != nil {
		return fmt.Errorf("writing a partition table: %w", err)
	}
	if err := g.Write(w, sectors); err != nil {
		return fmt.Errorf("writing a partition table: %w", err)
	}
	return nil
}
