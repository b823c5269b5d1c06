package ksserve

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// installTree writes a small install tree: a .treeinfo naming the boot
// files and a variant, files of sizes around sector and chunk bounds,
// names xorriso must mangle for plain ISO 9660, a deep directory and a
// symlink.
func installTree(t *testing.T, dir string) {
	t.Helper()
	files := map[string]int{
		"images/pxeboot/vmlinuz":             1<<20 + 3,
		"images/pxeboot/initrd.img":          5<<20 + 17, // over one sendfile chunk
		"images/install.img":                 2048,
		"BaseOS/repodata/repomd.xml":         0,
		"BaseOS/Packages/b/bash-5.1.rpm":     2049,
		"BaseOS/Packages/a/a name+plus.rpm":  2047,
		"AppStream/Packages/ünïcode-1.0.rpm": 1,
		"EFI/BOOT/BOOTX64.EFI":               4096,
		"a/b/c/d/e/f/g/h/deep.txt":           100,
	}
	for name, size := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		b := make([]byte, size)
		rand.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, ".treeinfo"), []byte("[general]\nfamily = Rocky Linux\nversion = 9.5\narch = x86_64\nvariants = BaseOS\n\n"+
		"[variant-BaseOS]\nid = BaseOS\npackages = BaseOS/Packages\nrepository = BaseOS\n\n"+
		"[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n\n[stage2]\nmainimage = images/install.img\n"), 0o644)
	os.Symlink("images/pxeboot/vmlinuz", filepath.Join(dir, "vmlinuz-link"))
}

// treeISO is installTree made into an ISO in a directory of the test's.
func treeISO(t *testing.T) (dir, image string) {
	t.Helper()
	dir = t.TempDir()
	installTree(t, filepath.Join(dir, "tree"))
	image = filepath.Join(dir, "tree.iso")
	makeISO(t, filepath.Join(dir, "tree"), image)
	return dir, image
}

func makeISO(t *testing.T, tree, image string) {
	t.Helper()
	testutil.RequireTool(t, "xorriso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-R", "-J", "-iso-level", "3", "-V", "KILN_TEST", "-o", image, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
}

// extractISO is xorriso's own reading of the image: the oracle.
func extractISO(t *testing.T, image, dir string) map[string]string {
	t.Helper()
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", image, "-extract", "/", dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -osirrox: %v\n%s", err, out)
	}
	files := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			files[filepath.ToSlash(rel)] = p
		}
		return nil
	})
	return files
}

func isoServer(t *testing.T, images ...string) (*Server, *liveServer) {
	t.Helper()
	var isos []*ISO
	for _, p := range images {
		i, err := OpenISO(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { i.Close() })
		isos = append(isos, i)
	}
	srv, err := New(Config{Kickstart: []byte("rootpw --plaintext secret\nurl --url=" + AnyHost + "/x/\n"), ISOs: isos, Boot: &Boot{Append: "inst.text"}, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	return srv, startServer(t, srv)
}

func get(t *testing.T, method, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestISOTreeMatchesXorriso serves an ISO as an install tree and compares
// every file, whole, by HEAD and by Range, with xorriso's extraction of
// the same image.
func TestISOTreeMatchesXorriso(t *testing.T) {
	dir, image := treeISO(t)
	want := extractISO(t, image, filepath.Join(dir, "x"))
	srv, live := isoServer(t, image)
	tree := srv.cfg.ISOs[0]
	served := tree.Files()
	sort.Strings(served)
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	// xorriso extracts a symlink as a link; the tree serves what it names.
	if got, w := strings.Join(served, "\n"), strings.Join(names, "\n"); got != w {
		t.Errorf("files served:\n%s\nxorriso extracts:\n%s", got, w)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	base := live.URL + srv.ISOPath(0)
	for _, name := range names {
		data, _ := os.ReadFile(want[name])
		u := base + escapePath(name)
		resp, body := get(t, "GET", u)
		if resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Errorf("GET %s: %s, %d bytes, want %d", name, resp.Status, len(body), len(data))
			continue
		}
		resp, body = get(t, "HEAD", u)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(data)) || resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("HEAD %s: %s, length %d", name, resp.Status, resp.ContentLength)
		}
		n := int64(len(data))
		if n == 0 {
			// net/http serves an empty file whole, whatever the range.
			if resp, body := get(t, "GET", u, "Range", "bytes=0-0"); len(body) != 0 || resp.StatusCode != http.StatusOK {
				t.Errorf("a range of an empty file: %s", resp.Status)
			}
			continue
		}
		type rg struct {
			spec       string
			start, end int64 // inclusive
		}
		a := rng.Int64N(n)
		b := a + rng.Int64N(n-a)
		ranges := []rg{{"0-0", 0, 0}, {fmt.Sprintf("%d-", n-1), n - 1, n - 1}, {fmt.Sprintf("%d-%d", a, b), a, b},
			{fmt.Sprintf("-%d", min(n, 1000)), n - min(n, 1000), n - 1}, {fmt.Sprintf("%d-%d", a, n+5000), a, n - 1}}
		for _, r := range ranges {
			resp, body := get(t, "GET", u, "Range", "bytes="+r.spec)
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[r.start:r.end+1]) ||
				resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", r.start, r.end, n) {
				t.Errorf("%s Range %s: %s %q, %d bytes", name, r.spec, resp.Status, resp.Header.Get("Content-Range"), len(body))
			}
		}
		if resp, _ := get(t, "GET", u, "Range", fmt.Sprintf("bytes=%d-", n)); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("%s: a range past the end: %s", name, resp.Status)
		}
		// Two ranges: a multipart/byteranges body.
		resp, body = get(t, "GET", u, "Range", fmt.Sprintf("bytes=0-0,%d-%d", a, b))
		_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		var parts [][]byte
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			pb, _ := io.ReadAll(p)
			parts = append(parts, pb)
		}
		if a > 1 && (resp.StatusCode != http.StatusPartialContent || len(parts) != 2 || !bytes.Equal(parts[0], data[:1]) || !bytes.Equal(parts[1], data[a:b+1])) {
			t.Errorf("%s: two ranges: %s, %d parts", name, resp.Status, len(parts))
		}
	}
	// curl, as a user and dracut's fetch would, on the biggest file.
	testutil.RequireTool(t, "curl")
	out := filepath.Join(dir, "curl.out")
	if b, err := exec.Command("curl", "-fsS", "-r", "4194300-4194400", "-o", out, base+"images/pxeboot/initrd.img").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s", err, b)
	}
	got, _ := os.ReadFile(out)
	data, _ := os.ReadFile(want["images/pxeboot/initrd.img"])
	if !bytes.Equal(got, data[4194300:4194401]) {
		t.Errorf("curl's range differs")
	}
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i := range parts {
		parts[i] = url.PathEscape(parts[i])
	}
	return strings.Join(parts, "/")
}

// TestISOTreeRefuses: nothing outside the tree, nothing without the
// token, and ISOs that are not install trees refused when opened.
func TestISOTreeRefuses(t *testing.T) {
	dir, image := treeISO(t)
	_, live := isoServer(t, image)
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/wrong/iso/0/.treeinfo", 404},
		{"/wrong/ks.cfg", 404},
		{"/wrong/boot/boot.ipxe", 404},
		{"/tok/iso/0/../ks.cfg", 400},
		{"/tok/iso/0/%2e%2e/ks.cfg", 400},
		{"/tok/iso/0/images%2fpxeboot/vmlinuz", 400},
		{"/tok/iso/0/images", 404},
		{"/tok/iso/0/", 400},
		{"/tok/iso/1/.treeinfo", 404},
		{"/tok/iso/00/.treeinfo", 404},
		{"/tok/iso/-0/.treeinfo", 404},
		{"/tok/iso/0/nope", 404},
		{"/tok/boot/../ks.cfg", 404},
		{"/tok/boot/nope", 404},
		{"/tok/iso/0/.treeinfo", 200},
	} {
		// A raw request line: clients clean dot segments themselves.
		if resp := rawGet(t, live.Addr, tc.path); resp != tc.code {
			t.Errorf("%s: %d, want %d", tc.path, resp, tc.code)
		}
	}

	notTree := filepath.Join(dir, "data")
	os.MkdirAll(filepath.Join(notTree, "docs"), 0o755)
	os.WriteFile(filepath.Join(notTree, "docs/readme.txt"), []byte("hello"), 0o644)
	dataISO := filepath.Join(dir, "data.iso")
	makeISO(t, notTree, dataISO)
	if _, err := OpenISO(dataISO); !errors.Is(err, ErrNotInstallTree) {
		t.Errorf("a data ISO: %v", err)
	}
	junk := filepath.Join(dir, "junk.iso")
	os.WriteFile(junk, bytes.Repeat([]byte("x"), 100000), 0o644)
	if _, err := OpenISO(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("a file that is no ISO: %v", err)
	}
	if _, err := OpenISO(filepath.Join(dir, "missing.iso")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing ISO: %v", err)
	}
}

// rawGet sends one request line as written and returns the status.
func rawGet(t *testing.T, addr, path string) int {
	resp := exchange(t, addr, []byte("GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"))
	f := strings.Fields(resp)
	if len(f) < 2 {
		t.Fatalf("%s: response %q", path, resp)
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

// TestBootFiles checks the iPXE script, the GRUB configuration, the
// kickstart's host and the boot files, as a machine reaching the server
// by some address of its own would get them.
func TestBootFiles(t *testing.T) {
	dir, image := treeISO(t)
	srv, live := isoServer(t, image)
	_, script := get(t, "GET", live.URL+"/tok/boot/boot.ipxe")
	base := live.URL
	want := "#!ipxe\n# Served by kiln: the installer with its kickstart.\n" +
		"kernel " + base + "/tok/boot/vmlinuz initrd=initrd.img inst.ks=" + base + "/tok/ks.cfg inst.repo=" + base + "/tok/iso/0/ ip=dhcp inst.text\n" +
		"initrd " + base + "/tok/boot/initrd.img\nboot\n"
	if string(script) != want {
		t.Errorf("boot.ipxe:\n%s\nwant:\n%s", script, want)
	}
	// Another Host: another base, as on a second interface.
	_, script = get(t, "GET", live.URL+"/tok/boot/boot.ipxe", "Host", "192.0.2.7:8080")
	if !strings.Contains(string(script), "inst.ks=http://192.0.2.7:8080/tok/ks.cfg") {
		t.Errorf("boot.ipxe by another host:\n%s", script)
	}
	if resp, _ := get(t, "GET", live.URL+"/tok/boot/boot.ipxe", "Host", "x y"); resp.StatusCode != 400 {
		t.Errorf("a bad Host: %s", resp.Status)
	}
	_, ks := get(t, "GET", live.URL+"/tok/ks.cfg", "Host", "192.0.2.7:8080")
	if !strings.Contains(string(ks), "url --url=http://192.0.2.7:8080/x/") {
		t.Errorf("the kickstart's host:\n%s", ks)
	}
	_, cfg := get(t, "GET", live.URL+"/tok/boot/grub.cfg")
	if !strings.Contains(string(cfg), "\tlinux /tok/boot/vmlinuz inst.ks="+base+"/tok/ks.cfg") || !strings.Contains(string(cfg), "\tinitrd /tok/boot/initrd.img\n") {
		t.Errorf("grub.cfg:\n%s", cfg)
	}
	gsc := testutil.RequireTool(t, "grub-script-check")
	p := filepath.Join(dir, "grub.cfg")
	os.WriteFile(p, cfg, 0o644)
	if out, err := exec.Command(gsc, p).CombinedOutput(); err != nil {
		t.Errorf("grub-script-check: %v\n%s", err, out)
	}
	for name, src := range map[string]string{"vmlinuz": "images/pxeboot/vmlinuz", "initrd.img": "images/pxeboot/initrd.img", "BOOTX64.EFI": "EFI/BOOT/BOOTX64.EFI"} {
		_, b := get(t, "GET", live.URL+"/tok/boot/"+name)
		data, _ := os.ReadFile(filepath.Join(dir, "tree", src))
		if !bytes.Equal(b, data) {
			t.Errorf("%s: %d bytes, want %d", name, len(b), len(data))
		}
	}
	names := srv.BootFiles()
	if !strings.Contains(strings.Join(names, " "), "boot.ipxe grub.cfg vmlinuz initrd.img BOOTX64.EFI") {
		t.Errorf("boot files: %v", names)
	}
}

// TestBootAcrossISOs: with a boot ISO and a package DVD, the kernel and
// stage2 come from the first and the packages from the second.
func TestBootAcrossISOs(t *testing.T) {
	dir := t.TempDir()
	installTree(t, filepath.Join(dir, "tree"))
	boot := filepath.Join(dir, "boot")
	os.MkdirAll(filepath.Join(boot, "images/pxeboot"), 0o755)
	for _, f := range []string{"images/pxeboot/vmlinuz", "images/pxeboot/initrd.img", "images/install.img"} {
		os.WriteFile(filepath.Join(boot, f), []byte(f), 0o644)
	}
	os.WriteFile(filepath.Join(boot, ".treeinfo"), []byte("[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n[stage2]\nmainimage = images/install.img\n"), 0o644)
	os.RemoveAll(filepath.Join(dir, "tree/images/pxeboot"))
	os.WriteFile(filepath.Join(dir, "tree/.treeinfo"), []byte("[general]\nvariants = BaseOS\n[variant-BaseOS]\nrepository = BaseOS\n"), 0o644)
	bootISO, dvd := filepath.Join(dir, "boot.iso"), filepath.Join(dir, "dvd.iso")
	makeISO(t, boot, bootISO)
	makeISO(t, filepath.Join(dir, "tree"), dvd)
	for _, order := range [][]string{{bootISO, dvd}, {dvd, bootISO}} {
		srv, live := isoServer(t, order...)
		b, d := 0, 1
		if order[0] == dvd {
			b, d = 1, 0
		}
		args := srv.BootArgs("http://h")
		if want := fmt.Sprintf("inst.ks=http://h/tok/ks.cfg inst.stage2=http://h/tok/iso/%d/ inst.repo=http://h/tok/iso/%d/ ip=dhcp inst.text", b, d); args != want {
			t.Errorf("args %q, want %q", args, want)
		}
		if _, k := get(t, "GET", live.URL+"/tok/boot/vmlinuz"); string(k) != "images/pxeboot/vmlinuz" {
			t.Errorf("the kernel: %q", k)
		}
	}
}

// TestISOMultiExtent serves a file over 4 GiB, which ISO 9660 keeps in
// several extents, whole and by ranges across the extents' seams.
func TestISOMultiExtent(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 4 GiB image")
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	installTree(t, tree)
	big := filepath.Join(tree, "LiveOS", "squashfs.img")
	os.MkdirAll(filepath.Dir(big), 0o755)
	const size = 4<<30 + 12345
	f, _ := os.Create(big)
	f.Truncate(size)
	// Marks either side of each 4 GiB - 2 KiB extent seam xorriso makes.
	marks := map[int64]string{0: "HEAD", 4<<30 - 2048 - 4: "SEAM", 4<<30 - 2048: "NEXT", size - 3: "END"}
	for off, m := range marks {
		f.WriteAt([]byte(m), off)
	}
	f.Close()
	image := filepath.Join(dir, "big.iso")
	makeISO(t, tree, image)
	os.Remove(big)
	srv, live := isoServer(t, image)
	file := srv.cfg.ISOs[0].File("LiveOS/squashfs.img")
	if file == nil || len(file.Extents) < 2 || file.Size != size {
		t.Fatalf("the big file: %+v", file)
	}
	u := live.URL + srv.ISOPath(0) + "LiveOS/squashfs.img"
	for off, m := range marks {
		resp, body := get(t, "GET", u, "Range", fmt.Sprintf("bytes=%d-%d", off, off+int64(len(m))-1))
		if resp.StatusCode != 206 || string(body) != m {
			t.Errorf("range at %d: %s %q, want %q", off, resp.Status, body, m)
		}
	}
	// Across the seam in one range.
	seam := int64(4<<30 - 2048)
	if resp, body := get(t, "GET", u, "Range", fmt.Sprintf("bytes=%d-%d", seam-4, seam+3)); string(body) != "SEAMNEXT" {
		t.Errorf("across the seam: %s %q", resp.Status, body)
	}
	// Whole, by curl, counted and its marks checked.
	testutil.RequireTool(t, "curl")
	cmd := exec.Command("curl", "-fsS", u)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var n int64
	var tail []byte
	buf := make([]byte, 1<<20)
	var head []byte
	for {
		k, err := out.Read(buf)
		if k > 0 {
			if head == nil {
				head = append([]byte(nil), buf[:4]...)
			}
			n += int64(k)
			tail = append(tail, buf[:k]...)
			if len(tail) > 8 {
				tail = tail[len(tail)-8:]
			}
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil || n != size || string(head) != "HEAD" || !strings.HasSuffix(string(tail), "END") {
		t.Errorf("whole: %v, %d bytes (want %d), head %q, tail %q", err, n, int64(size), head, tail)
	}
}

// recordingWriter is a ResponseWriter whose ReadFrom records what it is
// given: net/http's own takes sendfile(2) only for an *os.File under an
// io.LimitedReader.
type recordingWriter struct {
	http.ResponseWriter
	got []string
}

func (r *recordingWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	_, isFile := lr.R.(*os.File)
	r.got = append(r.got, fmt.Sprintf("%v/%v/%d", ok, isFile, lr.N))
	return io.Copy(io.Discard, src)
}

// TestISOServedBySendfile: a file of the ISO reaches net/http's ReadFrom
// as runs of the image file, so it goes out by sendfile(2), in chunks.
func TestISOServedBySendfile(t *testing.T) {
	_, image := treeISO(t)
	tree, err := OpenISO(image)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	f, _ := os.Open(image)
	defer f.Close()
	e, err := newExtentReader(f, tree.File("images/pxeboot/initrd.img"), tree.Size())
	if err != nil {
		t.Fatal(err)
	}
	rw := &recordingWriter{}
	p := &progressWriter{ResponseWriter: rw, rc: http.NewResponseController(rw)}
	n, err := p.ReadFrom(&io.LimitedReader{R: e, N: e.size})
	if err != nil || n != e.size {
		t.Fatalf("ReadFrom: %d, %v", n, err)
	}
	if got := strings.Join(rw.got, " "); got != fmt.Sprintf("true/true/%d true/true/%d", writeChunk, e.size-writeChunk) {
		t.Errorf("ReadFrom got %s", got)
	}
}
