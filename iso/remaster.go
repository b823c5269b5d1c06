package iso

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-build/kiln/pkg/fat"
	"github.com/kiln-build/kiln/pkg/parttable"
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
	// Updates is an Anaconda updates image, put at the root under its
	// own name and named by inst.updates=hd:LABEL=...:/NAME (mkksiso -u).
	Updates string
	// Replace are literal FROM, TO replacements in every boot
	// configuration, made before the other edits (mkksiso -R).
	Replace [][2]string
}

// Report says what Remaster did.
type Report struct {
	VolumeID      string   `json:"volume_id"`
	KickstartArg  string   `json:"inst_ks"`
	EditedConfigs []string `json:"edited_configs"`
	AddedFiles    []string `json:"added_files"`
	Size          int64    `json:"size"`
	MD5           bool     `json:"md5_implanted"`
	// Warnings are what the caller should tell the user: the image may
	// not be what they meant to remaster.
	Warnings []string `json:"warnings,omitempty"`
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
	// Read every directory once before writing anything: a corrupt tree is
	// bad input, found before an output exists.
	if err := r.Walk(func(*File) error { return nil }); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", src, ErrFormat, err)
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
	// The edits are planned over the source, and the output written once
	// when they are complete.
	ov := newOverlay(in, st.Size())
	defer ov.Close()
	if o.Time.IsZero() {
		o.Time = time.Now()
	}
	if o.KickstartName == "" {
		o.KickstartName = "ks.cfg"
	}
	rep = &Report{VolumeID: r.PVD.VolumeID}
	e := &editor{f: ov, ov: ov, end: sectorsFor(st.Size()), rr: r.RockRidge, pvd: r.PVD, joliet: r.Joliet, dirs: map[string]*dirNode{}, t: o.Time, ino: 0x6b000000}
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
	edit.Replace = o.Replace
	if o.Kickstart != nil {
		rep.KickstartArg = "inst.ks=hd:LABEL=" + UdevEscape(label) + ":/" + o.KickstartName
		edit.Append = append(edit.Append, rep.KickstartArg)
		edit.Remove = append(edit.Remove, "inst.ks")
	}
	if o.Updates != "" {
		name := filepath.Base(o.Updates)
		edit.Append = append(edit.Append, "inst.updates=hd:LABEL="+UdevEscape(label)+":/"+name)
		edit.Remove = append(edit.Remove, "inst.updates")
		o.Add = append(append([]AddFile(nil), o.Add...), AddFile{Src: o.Updates, Dest: name})
	}
	// An image with no .treeinfo and no installer entry (Debian's
	// grub-rescue ISO is one) is no Anaconda installer: every entry gets
	// inst.ks=, as mkksiso would do, and the user is told.
	installer := false
	if _, err := r.Stat(".treeinfo"); err == nil {
		installer = true
	}
	for _, f := range configs {
		data, err := io.ReadAll(f.Open())
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.Path, err)
		}
		for _, args := range KernelCmdlines(string(data)) {
			installer = installer || isInstallEntry(strings.Fields(args))
		}
	}
	if !installer && o.Kickstart != nil {
		edit.AllEntries = true
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s does not look like an Anaconda installer (no .treeinfo, and no boot entry names inst.stage2= or inst.repo=); kiln adds inst.ks= to every boot entry anyway", src))
	}
	// Boot configurations in the tree.
	for _, f := range configs {
		data, err := io.ReadAll(f.Open())
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", f.Path, err)
		}
		var edited string
		if isSyslinuxConfig(f.Path) {
			edited = EditIsolinux(string(data), edit)
		} else {
			edited = EditGrub(string(data), edit)
		}
		lba, err := e.replaceFile(r, f, []byte(edited))
		if err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.Path, err)
		}
		e.changes = append(e.changes, change{path: f.Path, lba: lba, size: uint32(len(edited))})
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
		lba, err := e.addFile("", o.KickstartName, int64(len(o.Kickstart)), 0o644, func(lba uint32) error {
			return e.writeData(lba, bytes.NewReader(o.Kickstart), int64(len(o.Kickstart)))
		})
		if err != nil {
			return nil, err
		}
		e.changes = append(e.changes, change{path: o.KickstartName, lba: lba, size: uint32(len(o.Kickstart)), mode: 0o644, added: true})
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
	// Images made with a partition offset (EL10, Fedora) carry a second
	// directory tree that counts blocks from the partition's start, for
	// whoever mounts the partition rather than the disk: it gets the same
	// changes, pointing at the same data.
	part, err := e.partitionTree(r, st.Size())
	if err != nil {
		return nil, err
	}
	espMove, err := e.moveAppendedESP(r, st.Size())
	if err != nil {
		return nil, err
	}
	size, err := e.finish(r, st.Size(), o, label, part, espMove)
	if err != nil {
		return nil, err
	}
	rep.Size = size
	if err := writeImage(out, in, ov, !o.NoMD5); err != nil {
		return nil, fmt.Errorf("writing %s: %w", dst, err)
	}
	rep.MD5 = !o.NoMD5
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

// writeImage writes the planned image ov, whose source is in, to out,
// with the media checksum implanted when implant is set. Where the file
// system shares extents (XFS, Btrfs) the source is cloned and patched,
// and read once for the checksum. Elsewhere the kernel copies it
// (copy_file_range, as cp does) and only the changes are written; the
// checksum is of the planned bytes, summed while the copy runs, from the
// source's pages the copy reads: the image is read from the disk once.
// The copy has the disk write as it goes, so that the write, the copy and
// the checksum overlap.
func writeImage(out, in *os.File, ov *overlay, implant bool) error {
	unix.Fadvise(int(in.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
	pvdOff := int64(16*SectorSize) + appUseOffset
	if implant {
		// The checksum is of the image with this area blank.
		ov.WriteAt(bytes.Repeat([]byte{' '}, appUseSize), pvdOff)
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		if err := ov.apply(out); err != nil {
			return err
		}
		if implant {
			return ImplantMD5(out)
		}
		return nil
	}
	type summed struct {
		sum, frags string
		err        error
	}
	done := make(chan summed, 1)
	if implant {
		// Its own view of the source: the overlay's open file is not
		// shared between goroutines.
		view := *ov
		view.open, view.openPath = nil, ""
		go func() {
			defer view.Close()
			var s summed
			s.sum, s.frags, s.err = view.mediaSum()
			done <- s
		}()
	}
	err := copyWriting(out, in, ov.baseSize)
	if err == nil {
		err = ov.apply(out)
	}
	if !implant {
		return err
	}
	s := <-done
	if err != nil {
		return err
	}
	if s.err != nil {
		return s.err
	}
	if _, err := out.WriteAt(appUse(s.sum, s.frags), pvdOff); err != nil {
		return fmt.Errorf("writing the media checksum: %w", err)
	}
	return nil
}

// copyWriting copies the first size bytes of in to out in the kernel
// (copy_file_range), a step at a time, and starts the disk writing each
// step (sync_file_range): the page cache would otherwise hold the whole
// image dirty until the final fsync, and only then write it. Where the
// kernel cannot copy between the two, it copies through a buffer.
func copyWriting(out, in *os.File, size int64) error {
	const step = 32 << 20
	for off := int64(0); off < size; {
		roff, woff := off, off
		n, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(min(step, size-off)), 0)
		if err != nil || n == 0 {
			if _, err := io.Copy(io.NewOffsetWriter(out, off), io.NewSectionReader(in, off, size-off)); err != nil {
				return err
			}
			break
		}
		unix.SyncFileRange(int(out.Fd()), off, int64(n), unix.SYNC_FILE_RANGE_WRITE)
		off += int64(n)
	}
	return nil
}

// replaceFile gives the file f new content: in place when it fits its
// sectors, else at the end, with its records in both views pointed there.
// It returns where the content now is.
func (e *editor) replaceFile(r *Reader, f *File, data []byte) (uint32, error) {
	old := f.Extents[0]
	lba := old.LBA
	if sectorsFor(int64(len(data))) > sectorsFor(int64(old.Size)) || len(data) > 0 && old.Size == 0 {
		lba = e.alloc(sectorsFor(int64(len(data))))
	}
	if err := e.writeData(lba, strings.NewReader(string(data)), int64(len(data))); err != nil {
		return 0, err
	}
	return lba, e.pointFile(r, f, lba, uint32(len(data)))
}

// pointFile patches the records of f, in both views, to lba and size.
func (e *editor) pointFile(r *Reader, f *File, lba, size uint32) error {
	old := f.Extents[0]
	if err := e.patchRecord(f.RecordLBA, f.RecordOffset, lba, size); err != nil {
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
				if err := e.patchRecord(jf.RecordLBA, jf.RecordOffset, lba, size); err != nil {
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

// addFile puts a new file (or replaces one) at dir/name in both views,
// with its size bytes laid at the LBA it is given by fill, and returns
// that LBA.
func (e *editor) addFile(dir, name string, size int64, mode fs.FileMode, fill func(lba uint32) error) (uint32, error) {
	if size > 0xFFFFFFFF {
		return 0, fmt.Errorf("%s: files over 4 GiB cannot be added", path.Join(dir, name))
	}
	lba := e.alloc(sectorsFor(size))
	if size == 0 {
		lba = 0
	} else if err := fill(lba); err != nil {
		return 0, err
	}
	return lba, e.addRecords(dir, name, lba, uint32(size), mode)
}

// addRecords lists a file whose data is at lba in dir, in both views.
func (e *editor) addRecords(dir, name string, lba, size uint32, mode fs.FileMode) error {
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
			setExtent(d.records[i], lba, size)
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
		e.insert(d, buildRecord(id, lba, size, 0, e.t, su))
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
		// Read now, so that an unreadable file fails before any output;
		// its bytes are copied when the image is written.
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		f.Close()
		dir, name := path.Split(dst)
		lba, err := e.addFile(strings.TrimSuffix(dir, "/"), name, info.Size(), info.Mode().Perm(), func(lba uint32) error {
			e.ov.refer(int64(lba)*SectorSize, src, 0, info.Size())
			return nil
		})
		if err != nil {
			return err
		}
		e.changes = append(e.changes, change{path: dst, lba: lba, size: uint32(info.Size()), mode: info.Mode().Perm(), added: true})
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

// partTree is the second directory tree of an image made with a
// partition offset.
type partTree struct {
	bias   uint32 // the partition's start, in 2048-byte blocks
	view   rwAt
	pvd    *VolumeDescriptor
	joliet *VolumeDescriptor
}

// partitionTree finds a second tree at a partition's start and applies
// the changes made to the first.
func (e *editor) partitionTree(r *Reader, oldSize int64) (*partTree, error) {
	sa, err := ReadSystemArea(e.f, oldSize)
	if err != nil || sa.GPT == nil {
		return nil, err
	}
	var bias uint32
	for _, p := range sa.Partitions {
		if p.FirstLBA == 0 || p.FirstLBA%4 != 0 || int64(p.FirstLBA)*512+17*SectorSize > oldSize {
			continue
		}
		b := uint32(p.FirstLBA / 4)
		buf := make([]byte, 8)
		if _, err := e.f.ReadAt(buf, int64(b+16)*SectorSize); err == nil && buf[0] == vdPrimary && string(buf[1:6]) == "CD001" {
			bias = b
			break
		}
	}
	if bias == 0 {
		return nil, nil
	}
	view := offsetRW{e.f, int64(bias) * SectorSize}
	rb, err := NewReader(io.NewSectionReader(e.f, int64(bias)*SectorSize, oldSize-int64(bias)*SectorSize), oldSize-int64(bias)*SectorSize)
	if err != nil {
		return nil, fmt.Errorf("the tree at partition block %d: %w", bias, err)
	}
	eb := &editor{f: view, end: e.end - bias, rr: rb.RockRidge, pvd: rb.PVD, joliet: rb.Joliet, dirs: map[string]*dirNode{}, t: e.t, ino: e.ino + 1<<16}
	rel := func(lba uint32) uint32 {
		if lba == 0 {
			return 0
		}
		return lba - bias
	}
	for _, c := range e.changes {
		if c.added {
			dir, name := path.Split(c.path)
			if err := eb.addRecords(strings.TrimSuffix(dir, "/"), name, rel(c.lba), c.size, c.mode); err != nil {
				return nil, fmt.Errorf("the tree at partition block %d: %w", bias, err)
			}
			continue
		}
		f, err := rb.Stat(c.path)
		if err != nil {
			return nil, fmt.Errorf("the tree at partition block %d: %w", bias, err)
		}
		if err := eb.pointFile(rb, f, rel(c.lba), c.size); err != nil {
			return nil, err
		}
	}
	if err := eb.flush(); err != nil {
		return nil, err
	}
	e.end = max(e.end, eb.end+bias)
	return &partTree{bias: bias, view: view, pvd: rb.PVD, joliet: rb.Joliet}, nil
}

// espMove records an appended EFI partition moved to the new end.
type espMove struct {
	from, to, blocks uint32 // 2048-byte blocks
}

// moveAppendedESP moves an EFI system partition appended after the ISO
// (EL10, Fedora) to after the new files, so the ISO partition can grow
// without overlapping it, and points El Torito at the new place.
func (e *editor) moveAppendedESP(r *Reader, oldSize int64) (*espMove, error) {
	if r.Catalog == nil {
		return nil, nil
	}
	sa, err := ReadSystemArea(e.f, oldSize)
	if err != nil || sa.GPT == nil {
		return nil, err
	}
	for _, be := range r.Catalog.Entries {
		if be.Platform != PlatformEFI {
			continue
		}
		if _, err := r.FileAt(be.LoadRBA); err == nil {
			continue // an image in the tree: nothing to move
		}
		for _, p := range sa.Partitions {
			if p.FirstLBA != uint64(be.LoadRBA)*4 {
				continue
			}
			blocks := uint32((p.LastLBA - p.FirstLBA + 1 + 3) / 4)
			to := e.alloc(blocks)
			if err := e.ov.move(int64(to)*SectorSize, int64(be.LoadRBA)*SectorSize, int64(blocks)*SectorSize); err != nil {
				return nil, fmt.Errorf("moving the EFI partition: %w", err)
			}
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], to)
			if _, err := e.f.WriteAt(b[:], int64(r.Catalog.LBA)*SectorSize+int64(be.Offset)+8); err != nil {
				return nil, err
			}
			return &espMove{from: be.LoadRBA, to: to, blocks: blocks}, nil
		}
	}
	return nil, nil
}

// finish updates the volume descriptors and the system area for the new
// size and label, and pads the image as its layout needs.
func (e *editor) finish(r *Reader, oldSize int64, o Options, label string, part *partTree, esp *espMove) (int64, error) {
	oldVolEnd := int64(r.PVD.SpaceSize) * SectorSize
	newVolEnd := int64(e.end) * SectorSize
	sa, err := ReadSystemArea(e.f, oldSize)
	if err != nil {
		return 0, err
	}
	size := newVolEnd
	// The backup GPT at the end: its entry array, then its header.
	var gptTail uint64
	if sa.GPT != nil {
		gptTail = 1 + (uint64(sa.GPT.NumEntries)*uint64(sa.GPT.EntrySize)+511)/512
		size += int64(gptTail) * 512
	}
	if oldSize%(1<<20) == 0 && sa.Kind == "isohybrid" {
		// isohybrid images end on a 1 MiB "cylinder" boundary.
		size = (size + 1<<20 - 1) / (1 << 20) * (1 << 20)
	}
	size = (size + SectorSize - 1) / SectorSize * SectorSize
	if err := e.ov.Truncate(size); err != nil {
		return 0, err
	}
	type vdUpdate struct {
		rw    rwAt
		vd    *VolumeDescriptor
		space uint32
	}
	updates := []vdUpdate{{e.f, r.PVD, e.end}}
	if r.Joliet != nil {
		updates = append(updates, vdUpdate{e.f, r.Joliet, e.end})
	}
	if part != nil {
		space := e.end - part.bias
		if esp != nil {
			space = esp.to - part.bias
		}
		updates = append(updates, vdUpdate{part.view, part.pvd, space})
		if part.joliet != nil {
			updates = append(updates, vdUpdate{part.view, part.joliet, space})
		}
	}
	for _, u := range updates {
		base := int64(u.vd.LBA) * SectorSize
		var b [8]byte
		putBoth32(b[:], u.space)
		if _, err := u.rw.WriteAt(b[:], base+80); err != nil {
			return 0, err
		}
		if _, err := u.rw.WriteAt(volumeTime(o.Time), base+830); err != nil {
			return 0, err
		}
		if o.VolumeID != "" {
			id := make([]byte, 32)
			if u.vd.Type == vdSupplementary {
				for i := 0; i < 32; i += 2 {
					id[i], id[i+1] = 0, ' '
				}
				u := jolietIdentifier(label, true)
				copy(id, u[:min(len(u), 32)])
			} else {
				copy(id, strings.Repeat(" ", 32))
				copy(id, label)
			}
			if _, err := u.rw.WriteAt(id, base+40); err != nil {
				return 0, err
			}
		}
	}
	total := uint64(size / 512)
	adjust := func(first, last uint64) (uint64, uint64) {
		switch {
		case esp != nil && first == uint64(esp.from)*4:
			return uint64(esp.to) * 4, uint64(esp.to)*4 + (last - first)
		case esp != nil && first == uint64(esp.from+esp.blocks)*4:
			// The gap partition after the EFI one moves with it.
			nf := uint64(esp.to+esp.blocks) * 4
			return nf, min(nf+(last-first), total-1-gptTail) // the last usable LBA
		case part != nil && first == uint64(part.bias)*4 && esp != nil:
			return first, uint64(esp.to)*4 - 1
		case part != nil && first == uint64(part.bias)*4:
			return first, uint64(newVolEnd)/512 - 1
		case first*512 < uint64(oldVolEnd) && (last+1)*512 >= uint64(oldVolEnd) && (last+1)*512 <= uint64(oldSize):
			return first, uint64(newVolEnd)/512 - 1
		}
		return first, last
	}
	return size, e.fixSystemArea(sa, oldSize, oldVolEnd, newVolEnd, size, adjust)
}

// fixSystemArea grows the MBR partitions that covered the ISO to its new
// end, moves GPT partitions as adjust says, and writes the backup GPT at
// the new end of the image.
func (e *editor) fixSystemArea(sa *SystemArea, oldSize, oldVolEnd, newVolEnd, size int64, adjust func(first, last uint64) (uint64, uint64)) error {
	if sa.MBRSignature {
		mbr, err := parttable.ReadMBR(e.f)
		if err != nil {
			return err
		}
		for i := 0; i < 4; i++ {
			p := mbr.Partition(i)
			start, end := int64(p.StartLBA), int64(p.StartLBA)+int64(p.Sectors)
			if p.Type == parttable.TypeProtective || end == 0 || start*512 >= oldVolEnd {
				continue
			}
			switch {
			case end*512 >= oldSize:
				mbr.SetSectors(i, uint32(size/512-start))
			case end*512 >= oldVolEnd:
				mbr.SetSectors(i, uint32(newVolEnd/512-start))
			}
		}
		if len(sa.MBR) == 1 && sa.MBR[0].Type == parttable.TypeProtective {
			mbr.SetSectors(sa.MBR[0].Index-1, uint32(min(size/512-1, 0xFFFFFFFF)))
		}
		if err := mbr.Write(e.f); err != nil {
			return err
		}
	}
	if sa.GPT == nil {
		return nil
	}
	g, err := parttable.ReadGPT(e.f, oldSize)
	if err != nil {
		return err
	}
	for i := 0; i < int(g.Header.NumEntries); i++ {
		en := g.Entry(i)
		if en.FirstLBA == 0 && en.LastLBA == 0 {
			continue
		}
		en.FirstLBA, en.LastLBA = adjust(en.FirstLBA, en.LastLBA)
		g.SetEntry(i, en)
	}
	return g.Write(e.f, uint64(size/512))
}
