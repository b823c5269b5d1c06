// Package iso reads ISO 9660 images as installer media use them: the
// primary volume, its Rock Ridge names, modes and symlinks, the Joliet
// tree, files over 4 GiB split into several extents, and the El Torito
// boot catalog.
//
// It is shaped like archive/zip: NewReader takes an io.ReaderAt and a
// size, and file contents are io.SectionReaders over the image, so no
// file is ever held in memory. Every error names the structure and its
// location ("directory record at LBA 19 offset 68: ...").
//
// References: ECMA-119 (ISO 9660), IEEE P1281 (SUSP) and P1282 (Rock
// Ridge), the Joliet specification, and the El Torito Bootable CD-ROM
// Format Specification 1.0.
package iso

import "errors"

// SectorSize is the logical block size of every image kiln reads: ECMA-119
// allows others, but no installer medium uses them.
const SectorSize = 2048

// ErrFormat is returned for an image that is not ISO 9660.
var ErrFormat = errors.New("iso: not an ISO 9660 image")
