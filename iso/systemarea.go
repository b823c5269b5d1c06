package iso

import (
	"bytes"
	"errors"
	"io"

	"github.com/kiln-build/kiln/pkg/parttable"
)

// The system area is the first 32 KiB of the image (ECMA-119 6.2.1), where
// hybrid images keep an MBR and a GPT so that firmware can boot them from
// a disk. Both count in 512-byte sectors.

// MBRPartition is one of the four primary partition entries.
type MBRPartition = parttable.MBRPartition

// GPTHeader is the GUID partition table header (UEFI 2.10 5.3.2), as
// kiln iso inspect reports it.
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

// GPTPartition is one partition entry (UEFI 2.10 5.3.3), as kiln iso
// inspect reports it.
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
var (
	GUIDESP       = parttable.TypeGUIDESP.String()
	GUIDBasicData = parttable.TypeGUIDBasicData.String()
	GUIDHFSPlus   = parttable.TypeGUIDHFSPlus.String()
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

// ReadSystemArea reads the MBR and the primary GPT.
func ReadSystemArea(r io.ReaderAt, size int64) (*SystemArea, error) {
	sa := &SystemArea{Kind: "none"}
	mbr, err := parttable.ReadMBR(r)
	if err != nil {
		return nil, err
	}
	sa.MBRSignature = mbr.Signature
	if sa.MBRSignature {
		sa.MBR = mbr.Partitions()
		switch {
		case len(sa.MBR) == 1 && sa.MBR[0].Type == parttable.TypeProtective:
			sa.Kind = "protective"
		case len(sa.MBR) > 0 && bytes.Count(mbr.Sector[:440], []byte{0}) < 400:
			// Boot code before the table: isohdpfx.bin or GRUB's boot_hybrid.
			sa.Kind = "isohybrid"
		case len(sa.MBR) > 0:
			sa.Kind = "mbr"
		}
	}
	g, err := parttable.ReadGPT(r, size)
	if errors.Is(err, parttable.ErrNoGPT) {
		return sa, nil
	}
	if err != nil {
		return nil, err
	}
	h := g.Header
	sa.GPT = &GPTHeader{CurrentLBA: h.MyLBA, BackupLBA: h.AlternateLBA, FirstUsable: h.FirstUsableLBA, LastUsable: h.LastUsableLBA,
		DiskGUID: h.DiskGUID.String(), EntriesLBA: h.EntryLBA, NumEntries: h.NumEntries, EntrySize: h.EntrySize,
		HeaderCRCOK: g.HeaderCRCOK, EntriesCRCOK: g.ArrayCRCOK}
	for i := 0; i < int(h.NumEntries); i++ {
		e := g.Entry(i)
		if e.Type == (parttable.GUID{}) {
			continue
		}
		sa.Partitions = append(sa.Partitions, GPTPartition{Index: i + 1, TypeGUID: e.Type.String(), GUID: e.Unique.String(),
			FirstLBA: e.FirstLBA, LastLBA: e.LastLBA, Attrs: e.Attributes, Name: e.NameString()})
	}
	return sa, nil
}
