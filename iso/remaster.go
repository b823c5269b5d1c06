package iso

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/pkg/fat"
	"golang.org/x/sys/unix"
)

// AddFile puts a local file or directory on the image.
type AddFile struct {
	Src  string // a local file or directory
	Dest string // its path on the image; a directory's content goes under it
}

// Options says what Remaster changes.
type Options struct {
	Kickstart     []byte    // written as /ks.cfg; nil for none
	KickstartName string    // default "ks.cfg"
	Add           []AddFile // more files
	AppendArgs    []string  // kernel arguments for every install entry
	RemoveArgs    []string  // kernel arguments to drop ("quiet", or "inst.ks" for any inst.ks=)
	VolumeID      string    // a new volume label; "" keeps it
	Timeout       int       // boot menu timeout in seconds; negative keeps it
	NoMD5         bool      // leave the media checksum out
	Time          time.Time // the time of new records; SOURCE_DATE_EPOCH for reproducible output
	Force         bool      // replace an existing output
}

// Report says what Remaster did.
type Report struct {
	VolumeID      string   `json:"volume_id"`
	KickstartArg  string   `json:"inst_ks"`
	EditedConfigs []string `json:"edited_configs"`
	AddedFiles    []string `json:"added_files"`
	Size          int64    `json:"size"`
	MD5           bool     `json:"md5_implanted"`
}

// ErrNoBootConfig means the image has no boot configuration kiln knows.
var ErrNoBootConfig = errors.New("no isolinux, syslinux or GRUB configuration found")

// Remaster writes a copy of the installer image src to dst with a
// kickstart embedded and every install entry told to use it. The copy is
// made with copy_file_range, which reflinks on file systems that can, and
// then edited in place: only the edited files, the directories that list
// new files, the descriptors and the system area are written. The output
// appears at dst only when complete.
func Remaster(src, dst string, o Options) (rep *Report, err error) {
	if !o.Force {
		if _, err := os.Lstat(dst); err == nil {
			return nil, fmt.Errorf("%s exists; use --force to replace it", dst)
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return nil, err
	}
	r, err := NewReader(in, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	var configs []*File
	for _, p := range bootConfigPaths {
		if f, err := r.Stat(p); err == nil && !f.IsDir() && len(f.Extents) == 1 {
			configs = append(configs, f)
		}
	}
	if len(configs) == 0 {
		return nil, fmt.Errorf("%s: %w", src, ErrNoBootConfig)
	}
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".kiln-*")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(out.Name())
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return nil, fmt.Errorf("copying %s: %w", src, err)
	}
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	if o.KickstartName == "" {
		o.KickstartName = "ks.cfg"
	}
	rep = &Report{VolumeID: r.PVD.VolumeID}
	e := &editor{f: out, end: sectorsFor(st.Size()), rr: r.RockRidge, pvd: r.PVD, joliet: r.Joliet, dirs: map[string]*dirNode{}, t: o.Time, ino: 0x6b000000}
	label := r.PVD.VolumeID
	if o.VolumeID != "" {
		if len(o.VolumeID) > 32 {
			return nil, fmt.Errorf("volume id %q is longer than 32 characters", o.VolumeID)
		}
		label = o.VolumeID
		rep.VolumeID = label
	}
	edit := ConfigEdit{Append: append([]string(nil), o.AppendArgs...), Remove: o.RemoveArgs, Timeout: o.Timeout, Unattend: true}
	if o.VolumeID != "" && o.VolumeID != r.PVD.VolumeID {
		edit.OldLabel, edit.NewLabel = r.PVD.VolumeID, o.VolumeID
	}
	if o.Kickstart != nil {
		rep.KickstartArg = "inst.ks=hd:LABEL=" + UdevEscape(label) + ":/" + o.KickstartName
		edit.Append = append(edit.Append, rep.KickstartArg)
		edit.Remove = append(edit.Remove, "inst.ks")
	}
	// Boot configurations in the tree.
	for _, f := range configs {
		data, err := io.ReadAll(f.Open())
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.Path, err)
		}
		var edited string
		if strings.HasPrefix(f.Path, "isolinux/") || strings.HasPrefix(f.Path, "syslinux/") {
			edited = EditIsolinux(string(data), edit)
		} else {
			edited = EditGrub(string(data), edit)
		}
		if err := e.replaceFile(r, f, []byte(edited)); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.Path, err)
		}
		rep.EditedConfigs = append(rep.EditedConfigs, f.Path)
	}
	// Boot configurations inside each EFI image.
	if r.Catalog != nil {
		for _, be := range r.Catalog.Entries {
			if be.Platform != PlatformEFI {
				continue
			}
			name, err := e.editESP(r, st.Size(), be, edit)
			if err != nil {
				return nil, err
			}
			rep.EditedConfigs = append(rep.EditedConfigs, name...)
		}
	}
	if o.Kickstart != nil {
		if err := e.addFile("", o.KickstartName, strings.NewReader(string(o.Kickstart)), int64(len(o.Kickstart)), 0o644); err != nil {
			return nil, err
		}
		rep.AddedFiles = append(rep.AddedFiles, o.KickstartName)
	}
	for _, a := range o.Add {
		added, err := e.addTree(a)
		if err != nil {
			return nil, err
		}
		rep.AddedFiles = append(rep.AddedFiles, added...)
	}
	if err := e.flush(); err != nil {
		return nil, err
	}
	size, err := e.finish(r, st.Size(), o, label)
	if err != nil {
		return nil, err
	}
	rep.Size = size
	if !o.NoMD5 {
		if err := ImplantMD5(out); err != nil {
			return nil, err
		}
		rep.MD5 = true
	}
	if err := out.Sync(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	if o.Force {
		err = os.Rename(out.Name(), dst)
	} else {
		// Refuse to replace a file that appeared while we worked.
		err = unix.Renameat2(unix.AT_FDCWD, out.Name(), unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	}
	if err != nil {
		return nil, fmt.Errorf("publishing %s: %w", dst, err)
	}
	return rep, nil
}

// replaceFile gives the file f new content: in place when it fits its
// sectors, else at the end, with its records in both views pointed there.
func (e *editor) replaceFile(r *Reader, f *File, data []byte) error {
	old := f.Extents[0]
	lba := old.LBA
	if sectorsFor(int64(len(data))) > sectorsFor(int64(old.Size)) || len(data) > 0 && old.Size == 0 {
		lba = e.alloc(sectorsFor(int64(len(data))))
	}
	if err := e.writeData(lba, strings.NewReader(string(data)), int64(len(data))); err != nil {
		return err
	}
	if err := e.patchRecord(f.RecordLBA, f.RecordOffset, lba, uint32(len(data))); err != nil {
		return err
	}
	if r.Joliet != nil {
		files, err := r.JolietReadDir(path.Dir(f.Path))
		if path.Dir(f.Path) == "." {
			files, err = r.JolietReadDir("")
		}
		if err != nil {
			return err
		}
		for _, jf := range files {
			if len(jf.Extents) == 1 && jf.Extents[0].LBA == old.LBA {
				if err := e.patchRecord(jf.RecordLBA, jf.RecordOffset, lba, uint32(len(data))); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (e *editor) patchRecord(recLBA uint32, off int, lba, size uint32) error {
	var b [16]byte
	putBoth32(b[0:8], lba)
	putBoth32(b[8:16], size)
	_, err := e.f.WriteAt(b[:], int64(recLBA)*SectorSize+int64(off)+2)
	return err
}

// editESP edits the GRUB configurations inside the EFI image an El Torito
// entry loads, in place.
func (e *editor) editESP(r *Reader, imageSize int64, be BootEntry, edit ConfigEdit) ([]string, error) {
	size := int64(be.SectorCount) * 512
	where := fmt.Sprintf("the EFI image at LBA %d", be.LoadRBA)
	if f, err := r.FileAt(be.LoadRBA); err == nil {
		size, where = f.Size, f.Path
	}
	if size <= 512 {
		size = imageSize - int64(be.LoadRBA)*SectorSize
	}
	off := int64(be.LoadRBA) * SectorSize
	esp, err := fat.NewReader(io.NewSectionReader(e.f, off, size), size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var edited []string
	for _, p := range []string{"EFI/BOOT/grub.cfg", "EFI/BOOT/BOOT.conf"} {
		data, err := esp.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := esp.WriteFile(io.NewOffsetWriter(e.f, off), p, []byte(EditGrub(string(data), edit))); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		edited = append(edited, where+":"+p)
	}
	return edited, nil
}

// addFile puts a new file (or replaces one) at dir/name in both views.
func (e *editor) addFile(dir, name string, content io.Reader, size int64, mode fs.FileMode) error {
	if size > 0xFFFFFFFF {
		return fmt.Errorf("%s: files over 4 GiB cannot be added", path.Join(dir, name))
	}
	lba := e.alloc(sectorsFor(size))
	if size == 0 {
		lba = 0
	}
	if err := e.writeData(lba, content, size); err != nil {
		return err
	}
	views := []string{"iso"}
	if e.joliet != nil {
		views = append(views, "joliet")
	}
	for _, v := range views {
		d, err := e.dir(v, dir, true)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		i, rec, err := e.find(d, name)
		if err != nil {
			return err
		}
		if i >= 0 {
			if rec.IsDir() {
				return fmt.Errorf("%s is a directory on the image", path.Join(dir, name))
			}
			setExtent(d.records[i], lba, uint32(size))
			d.dirty = true
			continue
		}
		var id, su []byte
		if v == "joliet" {
			id = jolietIdentifier(name, false)
		} else {
			id = []byte(e.uniqueISOName(d, isoIdentifier(name, false)))
			if e.rr {
				e.ino++
				su = rockRidgeEntries(name, mode, e.ino, e.t)
			}
		}
		e.insert(d, buildRecord(id, lba, uint32(size), 0, e.t, su))
	}
	return nil
}

// addTree adds a local file, or a directory and everything under it.
func (e *editor) addTree(a AddFile) ([]string, error) {
	dest := strings.Trim(path.Clean("/"+filepath.ToSlash(a.Dest)), "/")
	st, err := os.Stat(a.Src)
	if err != nil {
		return nil, err
	}
	var added []string
	add := func(src, dst string, info fs.FileInfo) error {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		dir, name := path.Split(dst)
		if err := e.addFile(strings.TrimSuffix(dir, "/"), name, f, info.Size(), info.Mode().Perm()); err != nil {
			return err
		}
		added = append(added, dst)
		return nil
	}
	if !st.IsDir() {
		if dest == "" {
			dest = filepath.Base(a.Src)
		}
		return added, add(a.Src, dest, st)
	}
	err = filepath.Walk(a.Src, func(p string, info fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a.Src, p)
		target := path.Join(dest, filepath.ToSlash(rel))
		switch {
		case info.IsDir():
			if target != "" && target != "." {
				_, err := e.dir("iso", target, true)
				if err == nil && e.joliet != nil {
					_, err = e.dir("joliet", target, true)
				}
				return err
			}
			return nil
		case info.Mode().IsRegular():
			return add(p, target, info)
		}
		return fmt.Errorf("%s: only regular files and directories can be added", p)
	})
	return added, err
}

// finish updates the volume descriptors and the system area for the new
// size and label, and pads the image as its layout needs.
func (e *editor) finish(r *Reader, oldSize int64, o Options, label string) (int64, error) {
	oldVolEnd := int64(r.PVD.SpaceSize) * SectorSize
	newVolEnd := int64(e.end) * SectorSize
	sa, err := ReadSystemArea(e.f, oldSize)
	if err != nil {
		return 0, err
	}
	size := newVolEnd
	if sa.GPT != nil {
		size += 33 * 512 // the backup partition entries and header
	}
	if oldSize%(1<<20) == 0 && sa.Kind == "isohybrid" {
		// isohybrid images end on a 1 MiB "cylinder" boundary.
		size = (size + 1<<20 - 1) / (1 << 20) * (1 << 20)
	}
	size = (size + SectorSize - 1) / SectorSize * SectorSize
	if err := e.f.Truncate(size); err != nil {
		return 0, err
	}
	for _, vd := range []*VolumeDescriptor{r.PVD, r.Joliet} {
		if vd == nil {
			continue
		}
		base := int64(vd.LBA) * SectorSize
		var b [8]byte
		putBoth32(b[:], e.end)
		if _, err := e.f.WriteAt(b[:], base+80); err != nil {
			return 0, err
		}
		if _, err := e.f.WriteAt(volumeTime(o.Time), base+830); err != nil {
			return 0, err
		}
		if o.VolumeID != "" {
			id := make([]byte, 32)
			if vd == r.Joliet {
				u := jolietIdentifier(label, true)
				if len(u) > 32 {
					u = u[:32]
				}
				for i := 0; i < 32; i += 2 {
					id[i], id[i+1] = 0, ' '
				}
				copy(id, u)
			} else {
				copy(id, strings.Repeat(" ", 32))
				copy(id, label)
			}
			if _, err := e.f.WriteAt(id, base+40); err != nil {
				return 0, err
			}
		}
	}
	return size, e.fixSystemArea(sa, oldSize, oldVolEnd, newVolEnd, size)
}

// fixSystemArea grows the MBR and GPT partitions that covered the ISO to
// its new end, and writes the backup GPT at the new end of the image.
func (e *editor) fixSystemArea(sa *SystemArea, oldSize, oldVolEnd, newVolEnd, size int64) error {
	if sa.MBRSignature {
		mbr := make([]byte, 512)
		if _, err := e.f.ReadAt(mbr, 0); err != nil {
			return err
		}
		for i := 0; i < 4; i++ {
			p := mbr[446+16*i : 446+16*(i+1)]
			start := int64(binary.LittleEndian.Uint32(p[8:]))
			end := start + int64(binary.LittleEndian.Uint32(p[12:]))
			if p[4] == 0xEE || end == 0 || start*512 >= oldVolEnd {
				continue
			}
			var newEnd int64
			switch {
			case end*512 >= oldSize:
				newEnd = size / 512
			case end*512 >= oldVolEnd:
				newEnd = newVolEnd / 512
			default:
				continue
			}
			binary.LittleEndian.PutUint32(p[12:], uint32(newEnd-start))
			setCHS(p[5:8], newEnd-1)
		}
		if len(sa.MBR) == 1 && sa.MBR[0].Type == 0xEE {
			p := mbr[446:462]
			binary.LittleEndian.PutUint32(p[12:], uint32(min(size/512-1, 0xFFFFFFFF)))
		}
		if _, err := e.f.WriteAt(mbr, 0); err != nil {
			return err
		}
	}
	if sa.GPT == nil {
		return nil
	}
	g := sa.GPT
	hdr := make([]byte, 512)
	if _, err := e.f.ReadAt(hdr, 512); err != nil {
		return err
	}
	entries := make([]byte, int(g.NumEntries)*int(g.EntrySize))
	if _, err := e.f.ReadAt(entries, int64(g.EntriesLBA)*512); err != nil {
		return err
	}
	total := uint64(size / 512)
	for i := 0; i < int(g.NumEntries); i++ {
		en := entries[i*int(g.EntrySize):]
		first, last := binary.LittleEndian.Uint64(en[32:]), binary.LittleEndian.Uint64(en[40:])
		if first*512 < uint64(oldVolEnd) && (last+1)*512 >= uint64(oldVolEnd) && (last+1)*512 <= uint64(oldSize) {
			binary.LittleEndian.PutUint64(en[40:], uint64(newVolEnd)/512-1)
		}
	}
	ecrc := crc32.ChecksumIEEE(entries)
	hsize := binary.LittleEndian.Uint32(hdr[12:])
	write := func(current, backup, entriesLBA uint64) error {
		h := append([]byte(nil), hdr[:hsize]...)
		binary.LittleEndian.PutUint64(h[24:], current)
		binary.LittleEndian.PutUint64(h[32:], backup)
		binary.LittleEndian.PutUint64(h[48:], total-34)
		binary.LittleEndian.PutUint64(h[72:], entriesLBA)
		binary.LittleEndian.PutUint32(h[88:], ecrc)
		binary.LittleEndian.PutUint32(h[16:], 0)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
		if _, err := e.f.WriteAt(entries, int64(entriesLBA)*512); err != nil {
			return err
		}
		_, err := e.f.WriteAt(h, int64(current)*512)
		return err
	}
	if err := write(1, total-1, g.EntriesLBA); err != nil {
		return err
	}
	return write(total-1, 1, total-1-uint64(len(entries)+511)/512)
}

// setCHS writes a cylinder/head/sector address as isohybrid does, with 64
// heads and 32 sectors, capped at the largest CHS can say.
func setCHS(b []byte, lba int64) {
	c := lba / (64 * 32)
	h := (lba / 32) % 64
	s := lba%32 + 1
	if c > 1023 {
		c, h, s = 1023, 63, 32
	}
	b[0] = byte(h)
	b[1] = byte(s) | byte(c>>8)<<6
	b[2] = byte(c)
}
