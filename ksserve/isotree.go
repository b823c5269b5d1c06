package ksserve

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/pkg/treeinfo"
)

// ErrNotInstallTree says an ISO holds no installer to boot over the
// network: no .treeinfo naming a kernel and initrd, and none where lorax
// puts them.
var ErrNotInstallTree = errors.New("not an installer ISO: no .treeinfo naming a kernel and initrd, and no images/pxeboot/vmlinuz")

// ISO is an installer ISO served as an HTTP install tree, read in place:
// no mount, no copy. Its files are indexed once; each request opens the
// image afresh, so that sendfile(2) can send from a file offset of its
// own.
type ISO struct {
	// Path is the image on disk.
	Path string
	// VolumeID is the primary volume's label.
	VolumeID string
	// Tree is the image's .treeinfo, or nil.
	Tree *treeinfo.TreeInfo
	// Kernel and Initrd are the installer's boot files, as paths in the
	// image; both are empty for an ISO that boots nothing (a package
	// DVD beside a boot ISO).
	Kernel, Initrd string
	// Stage2 is the installer's runtime image (images/install.img or
	// LiveOS/squashfs.img), or "".
	Stage2 string
	// Packages says the image holds repositories: .treeinfo variants, or
	// repodata at its root.
	Packages bool

	files map[string]*iso.File // by path without a leading slash
	size  int64
	f     *os.File // for small files, read with pread by any request
}

// OpenISO reads an ISO's directory tree and what it boots.
func OpenISO(p string) (t *ISO, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("opening the ISO: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("opening the ISO: %w", err)
	}
	r, err := iso.NewReader(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	t = &ISO{Path: p, VolumeID: r.PVD.VolumeID, files: map[string]*iso.File{}, size: st.Size(), f: f}
	if err := r.Walk(func(file *iso.File) error {
		t.files[file.Path] = file
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s: reading its directories: %w", p, err)
	}
	if ti, ok := t.files[".treeinfo"]; ok && !ti.IsDir() {
		b, err := io.ReadAll(io.LimitReader(ti.Open(), 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: reading .treeinfo: %w", p, err)
		}
		t.Tree = treeinfo.Parse(string(b))
	}
	kernels := []string{"images/pxeboot/vmlinuz", "isolinux/vmlinuz"}
	initrds := []string{"images/pxeboot/initrd.img", "isolinux/initrd.img"}
	stage2 := []string{"images/install.img", "LiveOS/squashfs.img"}
	if t.Tree != nil {
		if t.Tree.Kernel != "" {
			kernels = append([]string{t.Tree.Kernel}, kernels...)
			initrds = append([]string{t.Tree.Initrd}, initrds...)
		}
		if t.Tree.Stage2 != "" {
			stage2 = append([]string{t.Tree.Stage2}, stage2...)
		}
		for _, v := range t.Tree.Variants {
			if t.regular(path.Join(v, "repodata/repomd.xml")) {
				t.Packages = true
			}
		}
	}
	if t.regular("repodata/repomd.xml") {
		t.Packages = true
	}
	for i := range kernels {
		if t.regular(kernels[i]) && t.regular(initrds[i]) {
			t.Kernel, t.Initrd = kernels[i], initrds[i]
			break
		}
	}
	for _, s := range stage2 {
		if t.regular(s) {
			t.Stage2 = s
			break
		}
	}
	if t.Kernel == "" && !t.Packages {
		return nil, fmt.Errorf("%s: %w", p, ErrNotInstallTree)
	}
	return t, nil
}

func (t *ISO) regular(name string) bool {
	f, ok := t.files[name]
	return ok && f.Mode.IsRegular()
}

// Close releases the image.
func (t *ISO) Close() error { return t.f.Close() }

// Size is the image's size in bytes.
func (t *ISO) Size() int64 { return t.size }

// File returns the regular file at name in the image, or nil.
func (t *ISO) File(name string) *iso.File {
	if f, ok := t.files[strings.Trim(name, "/")]; ok && f.Mode.IsRegular() {
		return f
	}
	return nil
}

// Files lists the regular files' paths, for tests and listings.
func (t *ISO) Files() []string {
	var out []string
	for p, f := range t.files {
		if f.Mode.IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// serve sends one file of the image, with Range and HEAD as
// http.ServeContent does them, the bytes by sendfile(2) from the image's
// extents.
func (t *ISO) serve(w http.ResponseWriter, r *http.Request, rel string) {
	file := t.File(rel)
	if file == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType(rel))
	if file.Size <= smallFile && len(file.Extents) == 1 && plain(r) {
		t.serveSmall(w, r, file)
		return
	}
	content, err := t.open(file)
	if err != nil {
		http.Error(w, "reading the ISO", http.StatusInternalServerError)
		return
	}
	defer content.f.Close()
	http.ServeContent(w, r, "", file.ModTime, content)
}

// open reads file's bytes from an image file opened for it alone, with
// a file offset of its own that sendfile(2) moves. Closing its f ends it.
func (t *ISO) open(file *iso.File) (*extentReader, error) {
	f, err := os.Open(t.Path)
	if err != nil {
		return nil, err
	}
	e, err := newExtentReader(f, file, t.size)
	if err != nil {
		f.Close()
		return nil, err
	}
	return e, nil
}

// smallFile is the size up to which a file is read whole with pread(2)
// and written with its header in one segment: most of an install tree's
// requests are for repodata and small packages, and opening the image
// for each costs more than sending it.
const smallFile = 64 << 10

// plain says a request asks for a whole body, unconditionally.
func plain(r *http.Request) bool {
	h := r.Header
	return h.Get("Range") == "" && h.Get("If-Modified-Since") == "" && h.Get("If-None-Match") == "" &&
		h.Get("If-Range") == "" && h.Get("If-Match") == "" && h.Get("If-Unmodified-Since") == ""
}

func (t *ISO) serveSmall(w http.ResponseWriter, r *http.Request, file *iso.File) {
	buf := make([]byte, file.Size)
	if _, err := t.f.ReadAt(buf, int64(file.Extents[0].LBA)*iso.SectorSize); err != nil {
		http.Error(w, "reading the ISO", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h["Content-Length"] = []string{strconv.FormatInt(file.Size, 10)}
	h["Accept-Ranges"] = acceptRanges
	if !file.ModTime.IsZero() {
		h.Set("Last-Modified", file.ModTime.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	writeCorked(w, r, buf)
}

// contentType is what the install tree's files are: text for the
// metadata a person might read, octet-stream for the rest (never a
// sniffed guess).
func contentType(name string) string {
	// path.Ext of ".treeinfo" is ".treeinfo".
	switch path.Ext(name) {
	case ".xml":
		return "text/xml; charset=utf-8"
	case ".cfg", ".conf", ".txt", ".treeinfo", ".discinfo":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// extentReader is a file's bytes in an ISO: one run per extent (several
// for a file over 4 GiB, ECMA-119 6.5.1). It reads with ReadAt, and
// gives progressWriter the runs so that a response goes out by
// sendfile(2).
type extentReader struct {
	f    *os.File
	runs []run // offsets in the image, in file order
	size int64
	pos  int64
}

// run is a contiguous part of a file in the image.
type run struct{ off, n int64 }

func newExtentReader(f *os.File, file *iso.File, image int64) (*extentReader, error) {
	e := &extentReader{f: f}
	for _, x := range file.Extents {
		off, n := int64(x.LBA)*iso.SectorSize, int64(x.Size)
		if off+n > image {
			return nil, fmt.Errorf("%s: extent at sector %d runs past the image's end", file.Path, x.LBA)
		}
		if n > 0 {
			e.runs = append(e.runs, run{off, n})
		}
		e.size += n
	}
	if e.size != file.Size {
		return nil, fmt.Errorf("%s: extents hold %d bytes, the record says %d", file.Path, e.size, file.Size)
	}
	return e, nil
}

// at returns where the byte at file offset pos lies in the image, and
// how many bytes follow it in the same run.
func (e *extentReader) at(pos int64) (off, n int64) {
	for _, r := range e.runs {
		if pos < r.n {
			return r.off + pos, r.n - pos
		}
		pos -= r.n
	}
	return 0, 0
}

func (e *extentReader) Read(p []byte) (int, error) {
	off, n := e.at(e.pos)
	if n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > n {
		p = p[:n]
	}
	k, err := e.f.ReadAt(p, off)
	e.pos += int64(k)
	if err == io.EOF && k > 0 {
		err = nil
	}
	return k, err
}

func (e *extentReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += e.pos
	case io.SeekEnd:
		offset += e.size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	e.pos = offset
	return offset, nil
}

// nextRun positions the image file at the current byte and returns it
// with the length of its run, for sendfile(2); advance moves past what
// was sent.
func (e *extentReader) nextRun() (*os.File, int64, error) {
	off, n := e.at(e.pos)
	if n == 0 {
		return nil, 0, nil
	}
	if _, err := e.f.Seek(off, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return e.f, n, nil
}

func (e *extentReader) advance(k int64) { e.pos += k }
