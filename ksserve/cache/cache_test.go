package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this binary as a second process that holds a
// download when it is killed (see TestKilledDownloadIsRemoved).
func TestMain(m *testing.M) {
	if dir := os.Getenv("KILN_CACHE_HELPER_DIR"); dir != "" {
		c, err := Open(dir, http.DefaultClient)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		c.noTmpfile = os.Getenv("KILN_CACHE_HELPER_NAMED") != ""
		o, err := c.Get(context.Background(), Request{URL: os.Getenv("KILN_CACHE_HELPER_URL")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		o.WriteTo(context.Background(), io.Discard)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// origin is an upstream whose answer for each path the test sets.
type origin struct {
	*httptest.Server
	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	hits     map[string]int
}

func newOrigin(t *testing.T) *origin {
	o := &origin{handlers: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		h := o.handlers[r.URL.Path]
		o.hits[r.URL.Path]++
		o.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) handle(p string, h http.HandlerFunc) {
	o.mu.Lock()
	o.handlers[p] = h
	o.mu.Unlock()
}

func (o *origin) count(p string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[p]
}

// serveBytes answers with data, with or without a Content-Length.
func serveBytes(data []byte, length bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if length {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		}
		w.Write(data)
	}
}

// cutShort sends part of data and closes the connection; with length it
// announces the whole.
func cutShort(data []byte, length bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if length {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		}
		w.WriteHeader(200)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}
}

func open(t *testing.T, dir string) *Cache {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := Open(dir, &http.Client{Transport: &http.Transport{DisableCompression: true}}, WithRetries(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// read gets req and reads it whole, as a client of the proxy would.
func read(c *Cache, req Request) ([]byte, error) {
	o, err := c.Get(context.Background(), req)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	var b bytes.Buffer
	_, err = o.WriteTo(context.Background(), &b)
	return b.Bytes(), err
}

func entries(t *testing.T, c *Cache) (objects, temps int) {
	t.Helper()
	c.Wait()
	_, objects, _ = c.Size()
	tmps, _ := os.ReadDir(filepath.Join(c.dir, "tmp"))
	return objects, len(tmps)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// TestWrongSumNeverReachesAClient: an object whose bytes do not match the
// sum the metadata gave is never given out whole, at any size, and never
// cached; the client gets the error.
func TestWrongSumNeverReachesAClient(t *testing.T) {
	up := newOrigin(t)
	c := open(t, "")
	for _, size := range []int{7 << 10, 300 << 10, 3 << 20} {
		data := pattern(size)
		p := fmt.Sprintf("/wrong-%d.rpm", size)
		up.handle(p, serveBytes(data, true))
		genuine := sum(append([]byte("x"), data...))
		got, err := read(c, Request{URL: up.URL + p, SHA256: genuine})
		if err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("%d bytes: err = %v", size, err)
		}
		if len(got) > max(0, size-Holdback) {
			t.Errorf("%d bytes: %d were given out before the sum was checked", size, len(got))
		}
	}
	if n, tmps := entries(t, c); n != 0 || tmps != 0 {
		t.Errorf("the cache holds %d objects and %d temporaries", n, tmps)
	}
	// The right sum passes, and the object is cached under it.
	data := pattern(3 << 20)
	up.handle("/right.rpm", serveBytes(data, true))
	if got, err := read(c, Request{URL: up.URL + "/right.rpm", SHA256: sum(data)}); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("right sum: %d bytes, %v", len(got), err)
	}
	o, err := c.Get(context.Background(), Request{URL: "anywhere", SHA256: sum(data)})
	if err != nil || !o.Cached {
		t.Fatalf("the checked object is not served from the cache: %v", err)
	}
	o.Close()
}

// TestShortBodies: a body cut short is never cached, with a length (the
// count shows it) or without one (nothing could), and a body without a
// length or sum is passed through but not kept.
func TestShortBodies(t *testing.T) {
	up := newOrigin(t)
	c := open(t, "")
	data := pattern(2 << 20)
	for _, length := range []bool{true, false} {
		p := fmt.Sprintf("/images/install-%v.img", length)
		up.handle(p, cutShort(data, length))
		if got, err := read(c, Request{URL: up.URL + p}); err == nil {
			t.Errorf("length %v: a short body of %d bytes read as whole", length, len(got))
		}
		up.handle(p, serveBytes(data, length))
		if got, err := read(c, Request{URL: up.URL + p}); err != nil || !bytes.Equal(got, data) {
			t.Errorf("length %v, after the upstream is fixed: %d bytes, %v", length, len(got), err)
		}
	}
	if n, tmps := entries(t, c); n != 1 || tmps != 0 {
		t.Errorf("the cache holds %d objects and %d temporaries, want the one with a length", n, tmps)
	}
	// Without a length, each Get fetches again.
	before := up.count("/images/install-false.img")
	read(c, Request{URL: up.URL + "/images/install-false.img"})
	if up.count("/images/install-false.img") != before+1 {
		t.Error("an object without a length or sum was served from the cache")
	}
}

// TestDamagedEntries: an entry cut short, grown, or with a byte changed on
// disk is found, removed and fetched again: by the same process when it
// reads the file again (a change of size or time), by a new one
// otherwise; a process keeps small checked entries in memory, and checks
// each sum once.
func TestDamagedEntries(t *testing.T) {
	for _, size := range []int{8 << 10, SmallMax, 1 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testDamage(t, size) })
	}
}

func testDamage(t *testing.T, size int) {
	up := newOrigin(t)
	dir := t.TempDir()
	data := pattern(size)
	for i, damage := range []func(path string){
		func(p string) { os.Truncate(p, 1000) },
		func(p string) {
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte("more"))
			f.Close()
		},
		func(p string) {
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			f.WriteAt([]byte{0}, 3) // the header's magic
			f.Close()
		},
		func(p string) {
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			f.WriteAt([]byte{^data[500]}, HeaderSize+500)
			f.Close()
		},
	} {
		p := fmt.Sprintf("/d%d.rpm", i)
		up.handle(p, serveBytes(data, true))
		c := open(t, dir)
		for j := 0; j < 2; j++ { // a miss, then a hit
			if got, err := read(c, Request{URL: up.URL + p}); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes, %v", len(got), err)
			}
		}
		c.Wait()
		damage(c.dataPath(Key(up.URL+p, "")))
		// This process still serves the right bytes (from memory, or
		// fetched again); a new one finds the damage.
		if got, err := read(c, Request{URL: up.URL + p}); err != nil || !bytes.Equal(got, data) {
			t.Errorf("damage %d, same process: %d bytes, %v", i, len(got), err)
		}
		if up.count(p) == 1 {
			c = open(t, dir)
			if got, err := read(c, Request{URL: up.URL + p}); err != nil || !bytes.Equal(got, data) {
				t.Errorf("damage %d: %d bytes, %v", i, len(got), err)
			}
		}
		if n := up.count(p); n != 2 {
			t.Errorf("damage %d: fetched %d times, want 2", i, n)
		}
	}
}

// TestKilledDownloadIsRemoved kills a process in the middle of a download
// (kill -9, so nothing of it runs after) and opens the cache again: the
// dead download leaves nothing behind, and the object is fetched whole.
// A download is an unnamed file (O_TMPFILE), which dies with its process;
// where a file system has no O_TMPFILE it is a named one that its process
// holds locked, and Open removes it once no process does.
func TestKilledDownloadIsRemoved(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) { testKilledDownload(t, named) })
	}
}

func testKilledDownload(t *testing.T, named bool) {
	up := newOrigin(t)
	data := pattern(4 << 20)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	up.handle("/slow.img", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:1<<20])
		w.(http.Flusher).Flush()
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(data[1<<20:])
	})
	dir := t.TempDir()
	self, _ := os.Executable()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), "KILN_CACHE_HELPER_DIR="+dir, "KILN_CACHE_HELPER_URL="+up.URL+"/slow.img")
	if named {
		cmd.Env = append(cmd.Env, "KILN_CACHE_HELPER_NAMED=1")
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the helper never started its download")
	}
	// The first MiB is on its way to the helper's temporary file.
	deadline := time.Now().Add(10 * time.Second)
	for partialDownload(cmd.Process.Pid, dir) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the helper holds no partial download under %s/tmp", dir)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A live download is left alone by a second process.
	live := open(t, dir)
	if _, tmps := entries(t, live); tmps != map[bool]int{false: 0, true: 1}[named] {
		t.Errorf("a second process sees %d named temporaries of a live download", tmps)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(release)
	c := open(t, dir)
	if _, tmps := entries(t, c); tmps != 0 {
		t.Errorf("the killed download left %d temporary files", tmps)
	}
	if got, err := read(c, Request{URL: up.URL + "/slow.img"}); err != nil || !bytes.Equal(got, data) {
		t.Errorf("after the restart: %d bytes, %v", len(got), err)
	}
}

// partialDownload is the size of the temporary file under dir/tmp that
// process pid has open, named or not, or 0.
func partialDownload(pid int, dir string) int64 {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		p := fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())
		target, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(target, filepath.Join(dir, "tmp")+"/") {
			continue
		}
		if st, err := os.Stat(p); err == nil && st.Size() > HeaderSize {
			return st.Size()
		}
	}
	return 0
}

// TestOneFetchPerKey: many callers of one key, in one process and in two
// (two Caches on one directory), share one upstream request.
func TestOneFetchPerKey(t *testing.T) {
	up := newOrigin(t)
	dir := t.TempDir()
	a, b := open(t, dir), open(t, dir)
	data := pattern(8 << 20)
	gate := make(chan struct{})
	var fetches atomic.Int32
	up.handle("/big.rpm", func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:1024])
		w.(http.Flusher).Flush()
		<-gate
		w.Write(data[1024:])
	})
	var wg sync.WaitGroup
	var got atomic.Int32
	for i := 0; i < 20; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if body, err := read(c, Request{URL: up.URL + "/big.rpm"}); err != nil || !bytes.Equal(body, data) {
				t.Errorf("%d bytes, %v", len(body), err)
			}
			got.Add(1)
		}()
	}
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the others join or queue on the lock
	close(gate)
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Errorf("20 callers in two processes caused %d upstream fetches", n)
	}
}

// TestRevalidation: a conditional GET keeps the copy on 304, replaces it
// on 200, and serves it (marked stale) when the upstream fails.
func TestRevalidation(t *testing.T) {
	up := newOrigin(t)
	c := open(t, "")
	body := []byte("revision 1")
	var fail atomic.Bool
	up.handle("/repodata/repomd.xml", func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		tag := `"` + sum(body)[:8] + `"`
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(304)
			return
		}
		w.Header().Set("ETag", tag)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	})
	req := Request{URL: up.URL + "/repodata/repomd.xml", Revalidate: true}
	get := func() (*Object, string) {
		o, err := c.Get(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		var b bytes.Buffer
		o.WriteTo(context.Background(), &b)
		return o, b.String()
	}
	if o, s := get(); o.Cached || s != "revision 1" {
		t.Errorf("first: cached %v, %q", o.Cached, s)
	}
	if o, s := get(); !o.Cached || s != "revision 1" {
		t.Errorf("304: cached %v, %q", o.Cached, s)
	}
	body = []byte("revision 2")
	if o, s := get(); o.Cached || s != "revision 2" {
		t.Errorf("changed: cached %v, %q", o.Cached, s)
	}
	fail.Store(true)
	if o, s := get(); !o.Cached || o.Stale == nil || s != "revision 2" {
		t.Errorf("upstream down: cached %v, stale %v, %q", o.Cached, o.Stale, s)
	}
	if _, err := c.Get(context.Background(), Request{URL: up.URL + "/none", Offline: true}); !errors.Is(err, ErrNotCached) {
		t.Errorf("offline miss: %v", err)
	}
}

// TestNoCredentialsInErrors: a URL's user and password never reach an
// error's text.
func TestNoCredentialsInErrors(t *testing.T) {
	up := newOrigin(t)
	c := open(t, "")
	for _, u := range []string{"http://kiln-user:s3cret-pw@127.0.0.1:1/x.rpm", strings.Replace(up.URL, "http://", "http://kiln-user:s3cret-pw@", 1) + "/missing.rpm"} {
		_, err := c.Get(context.Background(), Request{URL: u})
		if err == nil {
			t.Fatalf("%s: no error", u)
		}
		if strings.Contains(err.Error(), "s3cret-pw") || strings.Contains(err.Error(), "kiln-user") {
			t.Errorf("the error names the credentials: %v", err)
		}
	}
}
