package ksserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

const secretKS = "rootpw --plaintext hunter2-SECRET\ntext\n"

type env struct {
	up    *upstream
	cache *cache.Cache
	srv   *Server
	ts    *liveServer
	logs  *lockedWriter
}

func newEnv(t *testing.T, cacheDir string, mutate ...func(*Config)) *env {
	t.Helper()
	up := newUpstream(t)
	return newEnvWith(t, up, cacheDir, mutate...)
}

func newEnvWith(t *testing.T, up *upstream, cacheDir string, mutate ...func(*Config)) *env {
	t.Helper()
	return newEnvRetries(t, up, cacheDir, 2, mutate...)
}

func newEnvRetries(t *testing.T, up *upstream, cacheDir string, retries int, mutate ...func(*Config)) *env {
	t.Helper()
	if cacheDir == "" {
		cacheDir = t.TempDir()
	}
	client, err := NewUpstreamClient("")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := cache.Open(cacheDir, client, cache.WithRetries(retries, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedWriter{w: &bytes.Buffer{}}
	cfg := Config{Kickstart: []byte(secretKS), Mirrors: map[string]string{"BaseOS": up.URL + "/rocky/9/BaseOS/x86_64/os/"}, Cache: mc,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, srv)
	return &env{up: up, cache: mc, srv: srv, ts: ts, logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.(*bytes.Buffer).String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *env) get(t *testing.T, p string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(e.ts.URL + p)
	if err != nil {
		// The proxy cuts the connection to say a body is incomplete.
		return -1, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, b
	}
	return resp.StatusCode, b
}

func (e *env) mirror(p string) string { return e.srv.MirrorPath("BaseOS") + p }

const base = "/rocky/9/BaseOS/x86_64/os/"

func TestKickstartCapability(t *testing.T) {
	e := newEnv(t, "")
	code, body := e.get(t, e.srv.KickstartPath())
	if code != 200 || string(body) != secretKS {
		t.Errorf("kickstart: %d %q", code, body)
	}
	for _, p := range []string{"/ks.cfg", "/", "/" + strings.Repeat("0", 32) + "/ks.cfg", "/" + e.srv.Token() + "/ks.cfg/", "/" + e.srv.Token() + "/other", "/" + e.srv.Token()} {
		if code, body := e.get(t, p); code != 404 || bytes.Contains(body, []byte("SECRET")) {
			t.Errorf("GET %s: %d %q, want 404", p, code, body)
		}
	}
	resp, _ := http.Post(e.ts.URL+e.srv.KickstartPath(), "text/plain", nil)
	if resp.StatusCode != 405 {
		t.Errorf("POST: %d", resp.StatusCode)
	}
	if strings.Contains(e.logs.String(), "SECRET") || strings.Contains(e.logs.String(), e.srv.Token()) {
		t.Errorf("the kickstart or the token reached the log:\n%s", e.logs)
	}
	if !strings.Contains(e.logs.String(), "route=kickstart") {
		t.Errorf("requests are not logged:\n%s", e.logs)
	}
}

func TestHitAndMiss(t *testing.T) {
	e := newEnv(t, "")
	rpm := bytes.Repeat([]byte("rpm!"), 100000)
	e.up.addRepo(base, map[string][]byte{"a-1.0-1.x86_64.rpm": rpm}, nil)
	for i := 0; i < 3; i++ {
		code, body := e.get(t, e.mirror("Packages/a-1.0-1.x86_64.rpm"))
		if code != 200 || !bytes.Equal(body, rpm) {
			t.Fatalf("get %d: %d, %d bytes", i, code, len(body))
		}
	}
	if n := e.up.count(base + "Packages/a-1.0-1.x86_64.rpm"); n != 1 {
		t.Errorf("upstream fetched the RPM %d times, want 1", n)
	}
	st := e.srv.Stats()
	// One record for the object, however many requests.
	if st.UpstreamBytes != int64(len(rpm)) || st.CacheBytes != 2*int64(len(rpm)) || len(st.Objects) != 1 ||
		st.Objects[0].Hit || st.Objects[0].Requests != 3 || st.Objects[0].Hits != 2 {
		t.Fatalf("stats = %+v", st)
	}
	if st.Objects[0].SHA256 != sum(rpm) || st.Objects[0].Size != int64(len(rpm)) {
		t.Errorf("recorded %+v", st.Objects[0])
	}
	// A second build on the same cache fetches nothing.
	e2 := newEnvWith(t, e.up, e.cache.Dir())
	e2.get(t, e2.mirror("Packages/a-1.0-1.x86_64.rpm"))
	if st := e2.srv.Stats(); st.UpstreamBytes != 0 || e.up.count(base+"Packages/a-1.0-1.x86_64.rpm") != 1 {
		t.Errorf("second build: %+v", st)
	}
}

func TestRevalidateAndPin(t *testing.T) {
	e := newEnv(t, "")
	e.up.addRepo(base, map[string][]byte{"a.rpm": []byte("A")}, nil)
	_, first := e.get(t, e.mirror("repodata/repomd.xml"))
	// Within a build the repo is a snapshot: a change upstream is not seen.
	e.up.addRepo(base, map[string][]byte{"a.rpm": []byte("A"), "b.rpm": []byte("B")}, nil)
	_, again := e.get(t, e.mirror("repodata/repomd.xml"))
	if !bytes.Equal(first, again) {
		t.Error("repomd.xml changed within one build")
	}
	if n := e.up.count(base + "repodata/repomd.xml"); n != 1 {
		t.Errorf("upstream asked %d times within one build", n)
	}
	// The next build revalidates and sees the change.
	e2 := newEnvWith(t, e.up, e.cache.Dir())
	_, next := e2.get(t, e2.mirror("repodata/repomd.xml"))
	if bytes.Equal(next, first) {
		t.Error("the next build still sees the old repomd.xml")
	}
	// And a build after that gets a 304 and serves from the cache.
	e3 := newEnvWith(t, e.up, e.cache.Dir())
	_, last := e3.get(t, e3.mirror("repodata/repomd.xml"))
	if !bytes.Equal(last, next) || e.up.cond304[base+"repodata/repomd.xml"] != 1 {
		t.Errorf("revalidation: 304s %d", e.up.cond304[base+"repodata/repomd.xml"])
	}
	if st := e3.srv.Stats(); len(st.Objects) == 0 || !st.Objects[0].Hit {
		t.Errorf("a 304 is not a hit: %+v", st)
	}
}

func TestConcurrentClientsOneFetch(t *testing.T) {
	e := newEnv(t, "")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	gate := make(chan struct{})
	var fetches int
	var mu sync.Mutex
	e.up.misbehave[base+"Packages/big.rpm"] = func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches++
		mu.Unlock()
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big[:1<<20])
		w.(http.Flusher).Flush()
		<-gate // hold the rest until every client has joined
		w.Write(big[1<<20:])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	started := make(chan struct{}, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.ts.URL + e.mirror("Packages/big.rpm"))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			started <- struct{}{}
			b, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.Equal(b, big) {
				errs <- fmt.Errorf("got %d bytes, %v", len(b), err)
			}
		}()
	}
	for i := 0; i < 100; i++ {
		<-started
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if fetches != 1 {
		t.Errorf("100 clients caused %d upstream fetches", fetches)
	}
}

func cacheEmpty(t *testing.T, c *cache.Cache) {
	t.Helper()
	c.Wait()
	_, n, _ := c.Size()
	tmps, _ := os.ReadDir(filepath.Join(c.Dir(), "tmp"))
	if n != 0 || len(tmps) != 0 {
		t.Errorf("cache holds %d objects and %d temporaries", n, len(tmps))
	}
}

func TestUpstreamDropsConnection(t *testing.T) {
	e := newEnv(t, "")
	data := bytes.Repeat([]byte("x"), 1<<20)
	broken := true
	e.up.misbehave[base+"Packages/x.rpm"] = func(w http.ResponseWriter, r *http.Request) {
		if !broken {
			w.Write(data)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}
	code, body := e.get(t, e.mirror("Packages/x.rpm"))
	if code != -1 {
		t.Errorf("client got status %d and %d bytes, want a broken body", code, len(body))
	}
	cacheEmpty(t, e.cache)
	broken = false
	if code, body := e.get(t, e.mirror("Packages/x.rpm")); code != 200 || !bytes.Equal(body, data) {
		t.Errorf("retry: %d, %d bytes", code, len(body))
	}
}

func TestUpstreamWrongLength(t *testing.T) {
	e := newEnv(t, "")
	e.up.misbehave[base+"Packages/short.rpm"] = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("only a little"))
	}
	if code, _ := e.get(t, e.mirror("Packages/short.rpm")); code == 200 {
		t.Error("a short body was served as complete")
	}
	cacheEmpty(t, e.cache)
}

// TestWrongChecksum: an RPM whose bytes differ from primary.xml's sum
// never reaches a client whole, at any size: small ones get a 502, large
// ones a body cut before its end.
func TestWrongChecksum(t *testing.T) {
	e := newEnv(t, "")
	sizes := []int{7 << 10, 300 << 10, 3 << 20}
	pkgs, lies := map[string][]byte{}, map[string]string{}
	for _, n := range sizes {
		name := fmt.Sprintf("evil-%d.rpm", n)
		pkgs[name] = bytes.Repeat([]byte("t"), n)
		lies[name] = sum(bytes.Repeat([]byte("g"), n))
	}
	e.up.addRepo(base, pkgs, lies)
	if code, _ := e.get(t, e.mirror("repodata/repomd.xml")); code != 200 {
		t.Fatal("repomd")
	}
	for _, n := range sizes {
		name := fmt.Sprintf("evil-%d.rpm", n)
		code, body := e.get(t, e.mirror("Packages/"+name))
		switch {
		case code == 200:
			t.Errorf("%s: served whole with 200", name)
		case n <= wholeFirst && code != 502:
			t.Errorf("%s: %d, want 502", name, code)
		case len(body) >= n:
			t.Errorf("%s: %d bytes reached the client", name, len(body))
		}
		e.cache.Wait()
		if _, err := os.Stat(entryPath(e.cache, cache.Key("", lies[name]))); err == nil {
			t.Errorf("%s entered the cache", name)
		}
	}
	if !strings.Contains(e.logs.String(), "does not match the repository metadata") {
		t.Errorf("no log of the mismatch:\n%s", e.logs)
	}
}

// TestNoCredentialsOut: a mirror URL's user and password reach neither a
// response nor a log line.
func TestNoCredentialsOut(t *testing.T) {
	up := newUpstream(t)
	withCreds := strings.Replace(up.URL, "http://", "http://kiln-user:s3cret-pw@", 1)
	e := newEnvRetries(t, up, "", 0, func(c *Config) {
		c.Mirrors = map[string]string{"BaseOS": withCreds + base, "dead": "http://kiln-user:s3cret-pw@127.0.0.1:1/"}
	})
	for _, p := range []string{e.mirror("Packages/missing.rpm"), e.srv.MirrorPath("dead") + "x.rpm"} {
		code, body := e.get(t, p)
		if code == 200 || bytes.Contains(body, []byte("s3cret-pw")) || bytes.Contains(body, []byte("kiln-user")) {
			t.Errorf("%s: %d %q", p, code, body)
		}
	}
	if strings.Contains(e.logs.String(), "s3cret-pw") {
		t.Errorf("the log names the password:\n%s", e.logs)
	}
	if _, err := New(Config{Mirrors: map[string]string{"x": "ftp://kiln-user:s3cret-pw@h/"}, Cache: e.cache}); err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("New: %v", err)
	}
}

func TestCorruptEntryIsFetchedAgain(t *testing.T) {
	e := newEnv(t, "")
	rpm := []byte("a perfectly good rpm")
	e.up.set(base+"Packages/c.rpm", rpm)
	e.get(t, e.mirror("Packages/c.rpm"))
	e.cache.Wait()
	corrupt(t, e.cache, cache.Key(e.up.URL+base+"Packages/c.rpm", ""))
	// A new process (a new Cache) checks each entry once.
	e2 := newEnvWith(t, e.up, e.cache.Dir())
	code, body := e2.get(t, e2.mirror("Packages/c.rpm"))
	if code != 200 || !bytes.Equal(body, rpm) {
		t.Errorf("got %d %q", code, body)
	}
	if n := e.up.count(base + "Packages/c.rpm"); n != 2 {
		t.Errorf("upstream fetched %d times, want 2", n)
	}
}

// entryPath is where the cache keeps key's bytes.
func entryPath(c *cache.Cache, key string) string {
	return filepath.Join(c.Dir(), "objects", key[len(key)-2:], key)
}

// corrupt flips the first byte of a cached object, past its entry's header.
func corrupt(t *testing.T, c *cache.Cache, key string) {
	t.Helper()
	f, err := os.OpenFile(entryPath(c, key), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, cache.HeaderSize)
	b[0] ^= 0xff
	f.WriteAt(b, cache.HeaderSize)
}

func TestLargeCorruptEntryIsFetchedAgain(t *testing.T) {
	e := newEnv(t, "")
	rpm := bytes.Repeat([]byte("big"), 1<<20)
	e.up.set(base+"Packages/big.rpm", rpm)
	e.get(t, e.mirror("Packages/big.rpm"))
	e.cache.Wait()
	corrupt(t, e.cache, cache.Key(e.up.URL+base+"Packages/big.rpm", ""))
	e2 := newEnvWith(t, e.up, e.cache.Dir())
	if code, body := e2.get(t, e2.mirror("Packages/big.rpm")); code != 200 || !bytes.Equal(body, rpm) {
		t.Errorf("got %d, %d bytes", code, len(body))
	}
	if n := e.up.count(base + "Packages/big.rpm"); n != 2 {
		t.Errorf("upstream fetched %d times, want 2", n)
	}
}

func TestOffline(t *testing.T) {
	e := newEnv(t, "")
	e.up.set(base+"Packages/o.rpm", []byte("offline rpm"))
	e.up.set(base+".treeinfo", []byte("[general]\nfamily = Rocky\n"))
	e.get(t, e.mirror("Packages/o.rpm"))
	e.get(t, e.mirror(".treeinfo"))
	e.up.Close() // the mirror is gone
	off := newEnvWith(t, e.up, e.cache.Dir(), func(c *Config) { c.Offline = true })
	if code, body := off.get(t, off.mirror("Packages/o.rpm")); code != 200 || string(body) != "offline rpm" {
		t.Errorf("offline hit: %d %q", code, body)
	}
	if code, body := off.get(t, off.mirror(".treeinfo")); code != 200 || !strings.Contains(string(body), "Rocky") {
		t.Errorf("offline metadata: %d %q", code, body)
	}
	code, body := off.get(t, off.mirror("Packages/missing.rpm"))
	if code != 404 || !strings.Contains(string(body), "offline") {
		t.Errorf("offline miss: %d %q", code, body)
	}
	empty := newEnvWith(t, e.up, t.TempDir(), func(c *Config) { c.Offline = true })
	if code, _ := empty.get(t, empty.mirror("Packages/o.rpm")); code != 404 {
		t.Errorf("offline with an empty cache: %d", code)
	}
}

func TestUpstreamErrors(t *testing.T) {
	e := newEnvRetries(t, newUpstream(t), "", 1)
	e.up.misbehave[base+"boom"] = func(w http.ResponseWriter, r *http.Request) { http.Error(w, "kaboom", 500) }
	code, body := e.get(t, e.mirror("boom"))
	if code != 502 || !strings.Contains(string(body), "500") {
		t.Errorf("upstream 500: %d %q", code, body)
	}
	if code, _ := e.get(t, e.mirror("nonexistent")); code != 404 {
		t.Errorf("upstream 404: %d", code)
	}
	dead := newEnvRetries(t, newUpstream(t), "", 0, func(c *Config) { c.Mirrors = map[string]string{"BaseOS": "http://127.0.0.1:1/"} })
	code, body = dead.get(t, dead.mirror("x.rpm"))
	if code != 502 || !strings.Contains(string(body), "connect") {
		t.Errorf("unreachable upstream: %d %q", code, body)
	}
}

func TestRangeAndHead(t *testing.T) {
	e := newEnv(t, "")
	data := []byte("0123456789")
	e.up.set(base+"images/install.img", data)
	req, _ := http.NewRequest("GET", e.ts.URL+e.mirror("images/install.img"), nil)
	req.Header.Set("Range", "bytes=2-4")
	for i := 0; i < 2; i++ { // a miss, then a hit
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 || string(b) != "234" {
			t.Errorf("range %d: %d %q", i, resp.StatusCode, b)
		}
	}
	resp, err := http.Head(e.ts.URL + e.mirror("images/install.img"))
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != 10 {
		t.Errorf("HEAD: %v %+v", err, resp)
	}
}

func TestNotAnOpenProxy(t *testing.T) {
	e := newEnv(t, "")
	e.up.set("/secret", []byte("not for you"))
	for _, p := range []string{
		"/" + e.srv.Token() + "/mirror/other/x",
		"/" + e.srv.Token() + "/mirror/BaseOS/../../../../secret",
		"/" + e.srv.Token() + "/mirror/BaseOS/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret",
		"/" + e.srv.Token() + "/mirror/BaseOS/..%2f..%2f..%2f..%2fsecret",
		"/" + e.srv.Token() + "/mirror/BaseOS/%252e%252e/secret",
		"/" + e.srv.Token() + "/mirror/BaseOS/..\\..\\secret",
		"/" + e.srv.Token() + "/mirror/http:%2f%2fexample.com%2f",
		"/" + e.srv.Token() + "/mirror/BaseOS/%00",
	} {
		resp, err := http.Get(e.ts.URL + p)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || bytes.Contains(b, []byte("not for you")) {
			t.Errorf("%s: %d %q", p, resp.StatusCode, b)
		}
	}
	// An absolute-form request, as a forward proxy would get, is not forwarded.
	conn, err := net.Dial("tcp", e.ts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s/secret HTTP/1.1\r\nHost: %s\r\n\r\n", e.up.URL, strings.TrimPrefix(e.up.URL, "http://"))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 404")) || bytes.Contains(buf[:n], []byte("not for you")) {
		t.Errorf("absolute-form request: %q", buf[:n])
	}
	if e.up.count("/secret") != 0 {
		t.Error("the upstream was asked for a path outside the mirror")
	}
}

func TestFileServer(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(root, "configs"), 0o755)
	os.WriteFile(filepath.Join(root, "configs", "app.conf"), []byte("key = value\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "escape"))
	os.Symlink("configs/app.conf", filepath.Join(root, "inside"))
	e := newEnv(t, "", func(c *Config) { c.FilesDir = root })
	if code, body := e.get(t, e.srv.FilesPath()+"configs/app.conf"); code != 200 || string(body) != "key = value\n" {
		t.Errorf("file: %d %q", code, body)
	}
	if code, body := e.get(t, e.srv.FilesPath()+"inside"); code != 200 || string(body) != "key = value\n" {
		t.Errorf("symlink inside: %d %q", code, body)
	}
	for _, p := range []string{"escape", "../" + filepath.Base(outside) + "/secret", "%2e%2e/secret", "configs/..%2f..%2fsecret", "configs", "", "configs/%00"} {
		code, body := e.get(t, e.srv.FilesPath()+p)
		if code == 200 || bytes.Contains(body, []byte("outside")) {
			t.Errorf("files/%s: %d %q", p, code, body)
		}
	}
	if code, _ := e.get(t, "/"+strings.Repeat("f", 32)+"/files/configs/app.conf"); code != 404 {
		t.Errorf("wrong token: %d", code)
	}
}

func TestHTTPSUpstreamWithCA(t *testing.T) {
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "over tls") }))
	defer tls.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, caFile, tls.Certificate().Raw)
	for _, ca := range []string{"", caFile} {
		client, err := NewUpstreamClient(ca)
		if err != nil {
			t.Fatal(err)
		}
		mc, _ := cache.Open(t.TempDir(), client, cache.WithRetries(0, 0))
		srv, _ := New(Config{Mirrors: map[string]string{"m": tls.URL + "/"}, Cache: mc})
		ts := startServer(t, srv)
		resp, err := http.Get(ts.URL + srv.MirrorPath("m") + "x.rpm")
		ts.Close()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ca == "" && resp.StatusCode != 502 {
			t.Errorf("an unknown CA was trusted: %d %q", resp.StatusCode, b)
		}
		if ca != "" && (resp.StatusCode != 200 || string(b) != "over tls") {
			t.Errorf("with --ca: %d %q", resp.StatusCode, b)
		}
	}
	if _, err := NewUpstreamClient(filepath.Join(t.TempDir(), "none.pem")); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

func TestFullCacheDisk(t *testing.T) {
	if os.Getuid() != 0 {
		if testutil.InCI() {
			t.Fatal("mounting a small tmpfs needs root")
		}
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "kiln-test", dir).CombinedOutput(); err != nil {
		if testutil.InCI() {
			t.Fatalf("mount tmpfs: %v %s", err, out)
		}
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	e := newEnv(t, dir)
	defer func() {
		e.ts.Close()
		e.cache.Close()
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	}()
	big := bytes.Repeat([]byte("z"), 3<<20)
	e.up.set(base+"Packages/huge.rpm", big)
	code, _ := e.get(t, e.mirror("Packages/huge.rpm"))
	if code == 200 {
		t.Error("an object that did not fit the cache was served as complete")
	}
	cacheEmpty(t, e.cache)
	if !strings.Contains(e.logs.String(), "no space left on device") {
		t.Errorf("the log does not say the disk is full:\n%s", e.logs)
	}
	// Small objects still work.
	e.up.set(base+"Packages/small.rpm", []byte("small"))
	if code, body := e.get(t, e.mirror("Packages/small.rpm")); code != 200 || string(body) != "small" {
		t.Errorf("small object after a full disk: %d %q", code, body)
	}
}

func TestPrepareKickstartAndRestore(t *testing.T) {
	e := newEnv(t, "", func(c *Config) {
		c.Mirrors = map[string]string{"install": "http://mirror.local/rocky/9/BaseOS/x86_64/os/", "custom": "http://mirror.local/custom-rpms/", "files": "http://files.local/"}
	})
	orig := "url --url=http://mirror.local/rocky/9/BaseOS/x86_64/os/\nrepo --name=custom --baseurl=http://mirror.local/custom-rpms/ --install\n%post\ncurl -o /etc/app.conf http://files.local/configs/app.conf\n%end\n"
	f := kickstart.Parse("ks", []byte(orig), kickstart.Options{})
	ps := e.srv.Prefixes("http://10.0.2.100")
	kickstart.PrepareForProxy(f, []byte(orig), ps)
	served := string(f.Render())
	tok := e.srv.Token()
	for _, want := range []string{
		"url --url=http://10.0.2.100/" + tok + "/mirror/install/\n",
		"repo --name=custom --install --baseurl=http://10.0.2.100/" + tok + "/mirror/custom/",
		"curl -o /etc/app.conf http://10.0.2.100/" + tok + "/mirror/files/configs/app.conf",
		"%post --nochroot",
	} {
		if !strings.Contains(served, want) {
			t.Errorf("served kickstart lacks %q:\n%s", want, served)
		}
	}
	if back := kickstart.Parse("served", []byte(served), kickstart.Options{}); len(back.Errors()) != 0 {
		t.Errorf("served kickstart does not parse: %v", back.Errors())
	}
	// Run the restore script against a fake installed system.
	sh := testutil.RequireTool(t, "sh")
	sysroot := filepath.Join(t.TempDir(), "mnt", "sysroot")
	os.MkdirAll(filepath.Join(sysroot, "etc", "yum.repos.d"), 0o755)
	os.MkdirAll(filepath.Join(sysroot, "root"), 0o700)
	repo := "[custom]\nbaseurl=http://10.0.2.100/" + tok + "/mirror/custom/\n"
	os.WriteFile(filepath.Join(sysroot, "etc/yum.repos.d/custom.repo"), []byte(repo), 0o644)
	os.WriteFile(filepath.Join(sysroot, "root/anaconda-ks.cfg"), []byte(served), 0o600)
	script := strings.ReplaceAll(kickstart.RestoreScript([]byte(orig), ps), "sysroot=/mnt/sysroot\n", "sysroot="+sysroot+"\n")
	if out, err := exec.Command(sh, "-ec", script).CombinedOutput(); err != nil {
		t.Fatalf("restore script: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(sysroot, "root/original-ks.cfg"))
	if string(got) != orig {
		t.Errorf("original-ks.cfg = %q", got)
	}
	r, _ := os.ReadFile(filepath.Join(sysroot, "etc/yum.repos.d/custom.repo"))
	if string(r) != "[custom]\nbaseurl=http://mirror.local/custom-rpms/\n" {
		t.Errorf("repo file = %q", r)
	}
	a, _ := os.ReadFile(filepath.Join(sysroot, "root/anaconda-ks.cfg"))
	if strings.Contains(string(a), "http://10.0.2.100/"+tok) {
		t.Errorf("anaconda-ks.cfg still names the proxy:\n%s", a)
	}
}

func TestUpstreamsFromKickstart(t *testing.T) {
	f := kickstart.Parse("ks", []byte("url --url=http://m/os/\nrepo --name=AppStream --baseurl=http://m/as/\nrepo --name=ml --mirrorlist=http://m/list\n"), kickstart.Options{})
	got := kickstart.Upstreams(f)
	if len(got) != 2 || got["install"] != "http://m/os/" || got["AppStream"] != "http://m/as/" {
		t.Errorf("Upstreams = %v", got)
	}
}

func TestServeShutsDownCleanly(t *testing.T) {
	e := newEnv(t, "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, e.srv, l, 2*time.Second) }()
	resp, err := http.Get("http://" + l.Addr().String() + e.srv.KickstartPath())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("serve: %v", err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get("http://" + l.Addr().String() + "/"); err == nil {
		t.Error("still serving after shutdown")
	}
	_ = errors.New
}

// repeatReader yields n bytes of a pattern without holding them.
type repeatReader struct{ n int64 }

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = byte(i)
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// TestMemoryIsBounded streams a 256 MiB object through the proxy, cold and
// then hot, and checks the heap never grows by more than a few buffers.
func TestMemoryIsBounded(t *testing.T) {
	const size = 256 << 20
	e := newEnv(t, "")
	e.up.misbehave[base+"Packages/huge.rpm"] = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.Copy(w, &repeatReader{n: size})
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 2; i++ {
		resp, err := http.Get(e.ts.URL + e.mirror("Packages/huge.rpm"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("pass %d: %d bytes, %v", i, n, err)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapSys) - int64(before.HeapSys); grew > 32<<20 {
		t.Errorf("the heap grew by %d MiB while serving a 256 MiB object", grew>>20)
	}
	if st := e.srv.Stats(); len(st.Objects) != 1 || st.Objects[0].Requests != 2 || st.Objects[0].Hits != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// TestReports checks the endpoint a build's %post reports to: off unless
// configured, behind the token, by name, bounded.
func TestReports(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		srv, err := New(Config{Reports: enabled})
		if err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, srv)
		post := func(path string, body []byte) int {
			resp, err := http.Post(ts.URL+path, "text/plain", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := post(srv.ReportPath("packages"), []byte("bash\t0\t5.1\t1.el9\tx86_64\n")); (code == 204) != enabled {
			t.Errorf("reports %v: POST got %d", enabled, code)
		}
		if got, ok := srv.Report("packages"); ok != enabled || (enabled && !strings.HasPrefix(string(got), "bash\t")) {
			t.Errorf("reports %v: Report = %q, %v", enabled, got, ok)
		}
		for _, p := range []string{"/" + strings.Repeat("0", 32) + "/report/packages", srv.ReportPath("../ks.cfg"), srv.ReportPath("")} {
			if code := post(p, []byte("x")); code != 404 {
				t.Errorf("POST %s: %d, want 404", p, code)
			}
		}
		if enabled {
			if code := post(srv.ReportPath("big"), make([]byte, MaxReport+1)); code != 413 {
				t.Errorf("an oversized report: %d, want 413", code)
			}
			if resp, _ := http.Get(ts.URL + srv.ReportPath("packages")); resp.StatusCode != 405 {
				t.Errorf("GET of a report: %d, want 405", resp.StatusCode)
			}
		}
		ts.Close()
	}
}

func TestScriptUpstreams(t *testing.T) {
	ks := kickstart.Parse("t.ks", []byte("url --url=http://mirror.example/rocky/9/BaseOS/x86_64/os/\n"+
		"repo --name=custom --baseurl=http://files.example:8080/custom-rpms/\n"+
		"%post\ncurl -o /etc/a http://files.example:8080/configs/app.conf\ncurl http://files.example:8080/x https://other.example/y\n"+
		"wget http://given.example/z\n%end\n"), kickstart.Options{Version: kickstart.RHEL9})
	have := kickstart.Upstreams(ks)
	have["files"] = "http://given.example/"
	got := kickstart.ScriptUpstreams(ks, have)
	want := map[string]string{"script-files.example-8080": "http://files.example:8080/", "script-other.example": "https://other.example/"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ScriptUpstreams = %v, want %v", got, want)
	}
}
