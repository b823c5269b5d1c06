package fat

import (
	"encoding/binary"
	"fmt"
	"io"
)

// setNext writes the FAT entry of cluster n in every copy of the FAT.
func (f *FS) setNext(w io.WriterAt, n, val uint32) error {
	for i := 0; i < int(f.BPB.NumFATs); i++ {
		base := f.fatStart + int64(i)*int64(f.BPB.FATSize)*int64(f.BPB.BytesPerSector)
		var b [4]byte
		switch f.Type {
		case 12:
			off := base + int64(n+n/2)
			if _, err := f.r.ReadAt(b[:2], off); err != nil {
				return err
			}
			v := binary.LittleEndian.Uint16(b[:2])
			if n%2 == 1 {
				v = v&0x000F | uint16(val&0xFFF)<<4
			} else {
				v = v&0xF000 | uint16(val&0xFFF)
			}
			binary.LittleEndian.PutUint16(b[:2], v)
			if _, err := w.WriteAt(b[:2], off); err != nil {
				return err
			}
		case 16:
			binary.LittleEndian.PutUint16(b[:2], uint16(val))
			if _, err := w.WriteAt(b[:2], base+int64(n)*2); err != nil {
				return err
			}
		default:
			off := base + int64(n)*4
			if _, err := f.r.ReadAt(b[:4], off); err != nil {
				return err
			}
			v := binary.LittleEndian.Uint32(b[:4])&0xF0000000 | val&0x0FFFFFFF
			binary.LittleEndian.PutUint32(b[:4], v)
			if _, err := w.WriteAt(b[:4], off); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *FS) eoc() uint32 {
	switch f.Type {
	case 12:
		return 0xFFF
	case 16:
		return 0xFFFF
	}
	return 0x0FFFFFFF
}

// WriteFile replaces the content of the existing file name. w writes to
// the same bytes f reads (an editor passes the image it patches). The
// file keeps its clusters where it can; more are taken from the free ones
// and spare ones are freed, so the result checks clean with fsck.fat.
func (f *FS) WriteFile(w io.WriterAt, name string, data []byte) (err error) {
	e, err := f.Stat(name)
	if err != nil {
		return err
	}
	if e.IsDir() {
		return fmt.Errorf("fat: %s is a directory", name)
	}
	cs := f.clusterSize()
	need := int((int64(len(data)) + cs - 1) / cs)
	var chain []uint32
	if e.FirstCluster != 0 {
		if chain, err = f.Chain(e.FirstCluster); err != nil {
			return err
		}
	}
	delta := len(chain) // clusters in use before; the FSInfo sector tracks the change
	defer func() {
		if err == nil && f.Type == 32 {
			err = f.adjustFree(w, delta-len(chain))
		}
	}()
	// Free what is no longer needed.
	if len(chain) > need {
		for _, c := range chain[need:] {
			if err := f.setNext(w, c, 0); err != nil {
				return fmt.Errorf("fat: freeing cluster %d: %w", c, err)
			}
		}
		chain = chain[:need]
		if need > 0 {
			if err := f.setNext(w, chain[need-1], f.eoc()); err != nil {
				return err
			}
		}
	}
	// Take free clusters for what is missing.
	for c := uint32(2); len(chain) < need && c < f.clusters+2; c++ {
		v, err := f.next(c)
		if err != nil {
			return err
		}
		if v != 0 {
			continue
		}
		if err := f.setNext(w, c, f.eoc()); err != nil {
			return err
		}
		if len(chain) > 0 {
			if err := f.setNext(w, chain[len(chain)-1], c); err != nil {
				return err
			}
		}
		chain = append(chain, c)
	}
	if len(chain) < need {
		return fmt.Errorf("fat: no room for %s: it needs %d clusters of %d bytes and the file system has too few free", name, need, cs)
	}
	for i, c := range chain {
		block := make([]byte, cs)
		copy(block, data[min(int64(len(data)), int64(i)*cs):])
		if _, err := w.WriteAt(block, f.ClusterOffset(c)); err != nil {
			return fmt.Errorf("fat: writing %s cluster %d: %w", name, c, err)
		}
	}
	first := uint32(0)
	if len(chain) > 0 {
		first = chain[0]
	}
	var ent [32]byte
	if _, err := f.r.ReadAt(ent[:], e.Offset); err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(ent[20:], uint16(first>>16))
	binary.LittleEndian.PutUint16(ent[26:], uint16(first))
	binary.LittleEndian.PutUint32(ent[28:], uint32(len(data)))
	_, err = w.WriteAt(ent[:], e.Offset)
	return err
}

// adjustFree corrects FAT32's FSInfo free-cluster count (FAT section 5)
// by delta; an unknown count (0xFFFFFFFF) stays unknown.
func (f *FS) adjustFree(w io.WriterAt, delta int) error {
	var bs [512]byte
	if _, err := f.r.ReadAt(bs[:], 0); err != nil {
		return err
	}
	sector := int64(binary.LittleEndian.Uint16(bs[48:]))
	if sector == 0 || sector == 0xFFFF {
		return nil
	}
	off := sector * int64(f.BPB.BytesPerSector)
	var fi [512]byte
	if _, err := f.r.ReadAt(fi[:], off); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(fi[0:]) != 0x41615252 || binary.LittleEndian.Uint32(fi[484:]) != 0x61417272 {
		return nil
	}
	free := binary.LittleEndian.Uint32(fi[488:])
	if free == 0xFFFFFFFF {
		return nil
	}
	binary.LittleEndian.PutUint32(fi[488:], uint32(int64(free)+int64(delta)))
	_, err := w.WriteAt(fi[488:492], off+488)
	return err
}
