// Package unixmode converts between POSIX st_mode values, as cpio and
// Rock Ridge store them, and Go's fs.FileMode.
package unixmode

import "io/fs"

// File type bits of st_mode (stat(2)).
const (
	typeMask = 0o170000
	socket   = 0o140000
	symlink  = 0o120000
	regular  = 0o100000
	block    = 0o060000
	dir      = 0o040000
	char     = 0o020000
	fifo     = 0o010000
)

// FileMode turns st_mode into an fs.FileMode.
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	switch m & typeMask {
	case dir:
		mode |= fs.ModeDir
	case symlink:
		mode |= fs.ModeSymlink
	case char:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case block:
		mode |= fs.ModeDevice
	case fifo:
		mode |= fs.ModeNamedPipe
	case socket:
		mode |= fs.ModeSocket
	}
	return mode
}

// Mode turns an fs.FileMode into st_mode.
func Mode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	switch {
	case m.IsDir():
		u |= dir
	case m&fs.ModeSymlink != 0:
		u |= symlink
	case m&fs.ModeCharDevice != 0:
		u |= char
	case m&fs.ModeDevice != 0:
		u |= block
	case m&fs.ModeNamedPipe != 0:
		u |= fifo
	case m&fs.ModeSocket != 0:
		u |= socket
	default:
		u |= regular
	}
	return u
}
