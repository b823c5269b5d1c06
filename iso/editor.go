package iso

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"time"
)

// editor patches an image in place: it rewrites directories, appends new
// data after everything the image already holds, and fixes every
// reference a move breaks (the parent's record, the "." and ".." records,
// the descriptors' root records and the path tables).
type editor struct {
	f      rwAt     // the image; for a partition's tree, a view of it
	ov     *overlay // the image itself, to resize it and lay files in it
	end    uint32   // the next free LBA
	rr     bool
	pvd    *VolumeDescriptor
	joliet *VolumeDescriptor
	dirs   map[string]*dirNode
	moved  bool // a directory moved or was created: rewrite the path tables
	t      time.Time
	ino    uint32
	// changes are the files replaced or added, for a partition's tree.
	changes []change
}

// change is one file given new content or added, with where its data is.
type change struct {
	path  string
	lba   uint32 // absolute
	size  uint32
	mode  fs.FileMode
	added bool
}

// rwAt is what an editor patches: the image, or the part of it a
// partition's own directory tree counts its blocks from.
type rwAt interface {
	io.ReaderAt
	io.WriterAt
}

// offsetRW is the image from base on.
type offsetRW struct {
	rw   rwAt
	base int64
}

func (o offsetRW) ReadAt(p []byte, off int64) (int, error)  { return o.rw.ReadAt(p, off+o.base) }
func (o offsetRW) WriteAt(p []byte, off int64) (int, error) { return o.rw.WriteAt(p, off+o.base) }

// dirNode is a directory being edited, in one view ("iso" or "joliet").
type dirNode struct {
	view    string
	path    string
	lba     uint32
	size    uint32
	sectors uint32   // sectors available at lba
	records [][]byte // raw; [0] is ".", [1] is ".."
	parent  *dirNode
	dirty   bool
}

func (e *editor) key(view, path string) string { return view + ":" + path }

// alloc reserves n sectors at the end of the image.
func (e *editor) alloc(n uint32) uint32 {
	lba := e.end
	e.end += n
	return lba
}

func sectorsFor(n int64) uint32 { return uint32((n + SectorSize - 1) / SectorSize) }

// writeData writes size bytes from r at lba, zero-filling the last sector.
func (e *editor) writeData(lba uint32, r io.Reader, size int64) error {
	w := io.NewOffsetWriter(e.f, int64(lba)*SectorSize)
	n, err := io.CopyN(w, r, size)
	if err != nil {
		return fmt.Errorf("writing %d bytes at LBA %d: %w", size, lba, err)
	}
	if pad := int64(sectorsFor(n))*SectorSize - n; pad > 0 {
		if _, err := w.Write(make([]byte, pad)); err != nil {
			return fmt.Errorf("writing at LBA %d: %w", lba, err)
		}
	}
	return nil
}

// rawRecords returns a directory's records as stored.
func rawRecords(r io.ReaderAt, lba, size uint32) ([][]byte, error) {
	buf, err := readDirBytes(r, lba, size)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	err = forEachRecord(buf, size, lba, func(_ *DirectoryRecord, raw []byte, _ uint32, _ int) error {
		out = append(out, append([]byte(nil), raw...))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("directory at LBA %d has no . and .. records", lba)
	}
	return out, nil
}

// recordName is the name a record has in its view.
func (e *editor) recordName(view string, raw []byte) (string, *DirectoryRecord, error) {
	rec, err := parseDirectoryRecord(raw)
	if err != nil {
		return "", nil, err
	}
	if view == "joliet" {
		return jolietName(rec.Name), rec, nil
	}
	name := isoName(rec.Name, rec.IsDir())
	if e.rr {
		entries, err := parseSUSP(e.f, 1<<62, rec.SystemUse, 0)
		if err == nil {
			if rr, err := rockRidgeOf(entries); err == nil && rr.hasName {
				name = rr.name
			}
		}
	}
	return name, rec, nil
}

// dir loads the directory at path in view, creating missing directories
// when create is set.
func (e *editor) dir(view, path string, create bool) (*dirNode, error) {
	if d := e.dirs[e.key(view, path)]; d != nil {
		return d, nil
	}
	if path == "" {
		root := e.pvd.Root
		if view == "joliet" {
			root = e.joliet.Root
		}
		recs, err := rawRecords(e.f, root.Extent, root.Size)
		if err != nil {
			return nil, err
		}
		d := &dirNode{view: view, lba: root.Extent, size: root.Size, sectors: sectorsFor(int64(root.Size)), records: recs}
		e.dirs[e.key(view, "")] = d
		return d, nil
	}
	parentPath, name := "", path
	if i := lastSlash(path); i >= 0 {
		parentPath, name = path[:i], path[i+1:]
	}
	parent, err := e.dir(view, parentPath, create)
	if err != nil {
		return nil, err
	}
	i, rec, err := e.find(parent, name)
	if err != nil {
		return nil, err
	}
	if i < 0 {
		if !create {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		return e.mkdir(parent, path, name)
	}
	if !rec.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", path)
	}
	recs, err := rawRecords(e.f, rec.Extent, rec.Size)
	if err != nil {
		return nil, err
	}
	d := &dirNode{view: view, path: path, lba: rec.Extent, size: rec.Size, sectors: sectorsFor(int64(rec.Size)), records: recs, parent: parent}
	e.dirs[e.key(view, path)] = d
	return d, nil
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// find returns the index of name's record in d, or -1.
func (e *editor) find(d *dirNode, name string) (int, *DirectoryRecord, error) {
	for i, raw := range d.records[2:] {
		n, rec, err := e.recordName(d.view, raw)
		if err != nil {
			return 0, nil, err
		}
		if n == name {
			return i + 2, rec, nil
		}
	}
	return -1, nil, nil
}

// mkdir creates an empty directory in parent.
func (e *editor) mkdir(parent *dirNode, path, name string) (*dirNode, error) {
	lba := e.alloc(1)
	e.moved = true
	e.ino++
	d := &dirNode{view: parent.view, path: path, lba: lba, size: SectorSize, sectors: 1, parent: parent, dirty: true}
	var dotSU, dotdotSU, su []byte
	var id []byte
	if parent.view == "joliet" {
		id = jolietIdentifier(name, true)
	} else {
		id = []byte(e.uniqueISOName(parent, isoIdentifier(name, true)))
		if e.rr {
			dotSU = rockRidgeEntries("", fs.ModeDir|0o755, e.ino, e.t)
			dotdotSU = rockRidgeEntries("", fs.ModeDir|0o755, e.ino, e.t)
			su = rockRidgeEntries(name, fs.ModeDir|0o755, e.ino, e.t)
		}
	}
	d.records = [][]byte{
		buildRecord([]byte{0}, lba, SectorSize, flagDirectory, e.t, dotSU),
		buildRecord([]byte{1}, parent.lba, parent.size, flagDirectory, e.t, dotdotSU),
	}
	e.insert(parent, buildRecord(id, lba, SectorSize, flagDirectory, e.t, su))
	e.dirs[e.key(parent.view, path)] = d
	return d, nil
}

// uniqueISOName makes id unique among d's ISO identifiers.
func (e *editor) uniqueISOName(d *dirNode, id string) string {
	taken := map[string]bool{}
	for _, raw := range d.records[2:] {
		if rec, err := parseDirectoryRecord(raw); err == nil {
			taken[string(rec.Name)] = true
		}
	}
	if !taken[id] {
		return id
	}
	for n := 1; ; n++ {
		cand := fmt.Sprintf("%s_%d", id, n)
		if i := bytes.IndexByte([]byte(id), ';'); i >= 0 {
			cand = fmt.Sprintf("%s_%d%s", id[:i], n, id[i:])
		}
		if !taken[cand] {
			return cand
		}
	}
}

// insert adds a record in identifier order (ECMA-119 9.3).
func (e *editor) insert(d *dirNode, raw []byte) {
	rec, _ := parseDirectoryRecord(raw)
	at := len(d.records)
	for i := 2; i < len(d.records); i++ {
		other, err := parseDirectoryRecord(d.records[i])
		if err == nil && bytes.Compare(other.Name, rec.Name) > 0 {
			at = i
			break
		}
	}
	d.records = append(d.records[:at], append([][]byte{raw}, d.records[at:]...)...)
	d.dirty = true
}

// setExtent patches a record's extent and size.
func setExtent(raw []byte, lba, size uint32) {
	putBoth32(raw[2:10], lba)
	putBoth32(raw[10:18], size)
}

// layout places records in sectors; none may cross a sector boundary.
func layout(records [][]byte) (sectors uint32) {
	off := 0
	for _, r := range records {
		if off%SectorSize+len(r) > SectorSize {
			off = (off/SectorSize + 1) * SectorSize
		}
		off += len(r)
	}
	return sectorsFor(int64(off))
}

// flush writes every changed directory, moving the ones that outgrew
// their sectors, and fixes what pointed at them.
func (e *editor) flush() error {
	for changed := true; changed; {
		changed = false
		for _, d := range e.sortedDirs() {
			if !d.dirty {
				continue
			}
			need := layout(d.records)
			if need > d.sectors {
				d.lba, d.sectors = e.alloc(need), need
				e.moved = true
				changed = true
				if err := e.repoint(d); err != nil {
					return err
				}
			}
			d.size = need * SectorSize
		}
	}
	// Each directory's own "." and its parent's record carry its size.
	for _, d := range e.dirs {
		if !d.dirty {
			continue
		}
		setExtent(d.records[0], d.lba, d.size)
		if d.parent == nil {
			setExtent(d.records[1], d.lba, d.size)
			if err := e.setRoot(d); err != nil {
				return err
			}
		} else if err := e.setInParent(d); err != nil {
			return err
		}
	}
	for _, d := range e.sortedDirs() {
		if !d.dirty {
			continue
		}
		buf := make([]byte, int(d.sectors)*SectorSize)
		off := 0
		for _, r := range d.records {
			if off%SectorSize+len(r) > SectorSize {
				off = (off/SectorSize + 1) * SectorSize
			}
			copy(buf[off:], r)
			off += len(r)
		}
		if _, err := e.f.WriteAt(buf, int64(d.lba)*SectorSize); err != nil {
			return fmt.Errorf("writing directory %q at LBA %d: %w", d.path, d.lba, err)
		}
	}
	if e.moved {
		return e.writePathTables()
	}
	return nil
}

func (e *editor) sortedDirs() []*dirNode {
	var ds []*dirNode
	for _, d := range e.dirs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].view+ds[i].path < ds[j].view+ds[j].path })
	return ds
}

// repoint fixes the ".." records of d's subdirectories after d moved.
func (e *editor) repoint(d *dirNode) error {
	for _, raw := range d.records[2:] {
		name, rec, err := e.recordName(d.view, raw)
		if err != nil {
			return err
		}
		if !rec.IsDir() {
			continue
		}
		p := name
		if d.path != "" {
			p = d.path + "/" + name
		}
		child, err := e.dir(d.view, p, false)
		if err != nil {
			return err
		}
		setExtent(child.records[1], d.lba, d.sectors*SectorSize)
		child.dirty = true
	}
	return nil
}

// setInParent points d's record in its parent at d.
func (e *editor) setInParent(d *dirNode) error {
	name := d.path[lastSlash(d.path)+1:]
	i, _, err := e.find(d.parent, name)
	if err != nil {
		return err
	}
	if i < 0 {
		return fmt.Errorf("directory %q vanished from its parent", d.path)
	}
	setExtent(d.parent.records[i], d.lba, d.size)
	if !d.parent.dirty {
		d.parent.dirty = true
		// The parent did not need rewriting otherwise; its layout is
		// unchanged, so it is written where it is.
		d.parent.size = layout(d.parent.records) * SectorSize
		if sectorsFor(int64(d.parent.size)) > d.parent.sectors {
			return fmt.Errorf("directory %q grew while only a record changed", d.parent.path)
		}
		setExtent(d.parent.records[0], d.parent.lba, d.parent.size)
	}
	return nil
}

// setRoot writes the root directory record of the view's descriptor.
func (e *editor) setRoot(d *dirNode) error {
	vd := e.pvd
	if d.view == "joliet" {
		vd = e.joliet
	}
	var b [8]byte
	putBoth32(b[:], d.lba)
	if _, err := e.f.WriteAt(b[:], int64(vd.LBA)*SectorSize+156+2); err != nil {
		return err
	}
	putBoth32(b[:], d.size)
	_, err := e.f.WriteAt(b[:], int64(vd.LBA)*SectorSize+156+10)
	return err
}

// writePathTables regenerates both path tables (ECMA-119 9.4) of each view
// from the directories as they now are, and writes them at the end.
func (e *editor) writePathTables() error {
	views := []struct {
		view string
		vd   *VolumeDescriptor
	}{{"iso", e.pvd}}
	if e.joliet != nil {
		views = append(views, struct {
			view string
			vd   *VolumeDescriptor
		}{"joliet", e.joliet})
	}
	for _, v := range views {
		type entry struct {
			id     []byte
			lba    uint32
			parent uint16
		}
		var rootLBA, rootSize uint32
		var b [8]byte
		if _, err := e.f.ReadAt(b[:], int64(v.vd.LBA)*SectorSize+156+2); err != nil {
			return err
		}
		rootLBA = binary.LittleEndian.Uint32(b[:4])
		if _, err := e.f.ReadAt(b[:], int64(v.vd.LBA)*SectorSize+156+10); err != nil {
			return err
		}
		rootSize = binary.LittleEndian.Uint32(b[:4])
		table := []entry{{id: []byte{0}, lba: rootLBA, parent: 1}}
		sizes := []uint32{rootSize}
		for i := 0; i < len(table); i++ {
			if len(table) > 65535 {
				return fmt.Errorf("more than 65535 directories: path tables cannot number them")
			}
			recs, err := rawRecords(e.f, table[i].lba, sizes[i])
			if err != nil {
				return err
			}
			for _, raw := range recs[2:] {
				rec, err := parseDirectoryRecord(raw)
				if err != nil {
					return err
				}
				if rec.IsDir() {
					table = append(table, entry{id: append([]byte(nil), rec.Name...), lba: rec.Extent, parent: uint16(i + 1)})
					sizes = append(sizes, rec.Size)
				}
			}
		}
		var l, m bytes.Buffer
		for _, t := range table {
			for _, w := range []*bytes.Buffer{&l, &m} {
				rec := make([]byte, 8+len(t.id)+len(t.id)%2)
				rec[0] = byte(len(t.id))
				if w == &l {
					binary.LittleEndian.PutUint32(rec[2:], t.lba)
					binary.LittleEndian.PutUint16(rec[6:], t.parent)
				} else {
					binary.BigEndian.PutUint32(rec[2:], t.lba)
					binary.BigEndian.PutUint16(rec[6:], t.parent)
				}
				copy(rec[8:], t.id)
				w.Write(rec)
			}
		}
		size := uint32(l.Len())
		lLBA := e.alloc(sectorsFor(int64(size)))
		mLBA := e.alloc(sectorsFor(int64(size)))
		if err := e.writeData(lLBA, &l, int64(size)); err != nil {
			return err
		}
		if err := e.writeData(mLBA, &m, int64(size)); err != nil {
			return err
		}
		d := make([]byte, 24)
		putBoth32(d[0:8], size)
		binary.LittleEndian.PutUint32(d[8:12], lLBA)
		binary.BigEndian.PutUint32(d[16:20], mLBA)
		if _, err := e.f.WriteAt(d, int64(v.vd.LBA)*SectorSize+132); err != nil {
			return err
		}
	}
	return nil
}
