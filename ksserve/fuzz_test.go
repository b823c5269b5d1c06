package ksserve

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/ksserve/cache"
)

// FuzzPaths throws arbitrary request paths at Serve with a files
// directory and a mirror. Whatever the path, nothing outside the files
// directory is served, the upstream is asked only for paths under the
// mirror's base, and nothing panics.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{"files/a.txt", "files/../secret", "files/%2e%2e/secret", "mirror/m/x.rpm", "mirror/m/../../secret",
		"mirror/m/%2e%2e%2fsecret", "files/sub/..%2f..%2fsecret", "ks.cfg", "files/link", "mirror/other/x", "files/%00", "files//a.txt"} {
		f.Add(s)
	}
	root := f.TempDir()
	outside := f.TempDir()
	os.WriteFile(filepath.Join(root, "a.txt"), []byte("inside"), 0o644)
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("SECRET-OUTSIDE"), 0o644)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "link"))
	var asked []string
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "from upstream")
	}))
	defer up.Close()
	client, _ := NewUpstreamClient("")
	mc, _ := cache.Open(f.TempDir(), client, cache.WithRetries(0, 0))
	srv, err := New(Config{Kickstart: []byte("ks"), FilesDir: root, Mirrors: map[string]string{"m": up.URL + "/base/"}, Cache: mc, Token: "tok"})
	if err != nil {
		f.Fatal(err)
	}
	ts := startServer(f, srv)
	f.Fuzz(func(t *testing.T, p string) {
		if strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return // not one request target
		}
		raw := "/tok/" + p
		got := exchange(t, ts.Addr, []byte("GET "+raw+" HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n\r\n"))
		if strings.Contains(got, "SECRET-OUTSIDE") {
			t.Fatalf("%q served a file outside the root", raw)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, a := range asked {
			if !strings.HasPrefix(a, "/base/") || strings.Contains(a, "/../") {
				t.Fatalf("%q made the proxy ask the upstream for %q", raw, a)
			}
		}
		asked = asked[:0]
	})
}

// FuzzRequest writes raw bytes to Serve, the production server, and the
// same bytes to net/http's own server with the same handler: Serve must
// answer them as net/http does (the same sequence of statuses), never
// serve the kickstart where net/http does not (a desync), and keep
// serving afterwards.
func FuzzRequest(f *testing.F) {
	srv, err := New(Config{Kickstart: []byte("KICKSTART-BODY"), Token: "tok", Reports: true})
	if err != nil {
		f.Fatal(err)
	}
	kiln := startServer(f, srv)
	plain := httptest.NewServer(srv)
	defer plain.Close()
	hidden := "GET /tok/ks.cfg HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, s := range []string{
		hidden,
		hidden + hidden,
		"POST /tok/report/p HTTP/1.1\r\nHost: x\r\nContent-Length : 36\r\n\r\n" + hidden,
		"POST /tok/report/p HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\nTransfer-Encoding: chunked\r\n\r\n" + hidden,
		"POST /tok/report/p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + hidden,
		"GET /tok/ks.cfg HTTP/1.0\r\n\r\n",
		"GET /tok/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://evil/ HTTP/1.1\r\nHost: evil\r\n\r\n",
		"\r\n\r\nGET /tok/ks.cfg HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 8<<10 {
			return
		}
		got := exchange(t, kiln.Addr, raw)
		want := exchange(t, strings.TrimPrefix(plain.URL, "http://"), raw)
		if g, w := statuses(got), statuses(want); fmt.Sprint(g) != fmt.Sprint(w) {
			t.Fatalf("Serve answered %v, net/http %v, to %q", g, w, raw)
		}
		if strings.Count(got, "KICKSTART-BODY") > strings.Count(want, "KICKSTART-BODY") {
			t.Fatalf("Serve served the kickstart where net/http did not, to %q", raw)
		}
		if after := exchange(t, kiln.Addr, []byte(hidden)); !strings.Contains(after, "KICKSTART-BODY") {
			t.Fatalf("Serve stopped serving after %q", raw)
		}
	})
}

// exchange writes raw on a new connection, closes its writing half, and
// returns all the server sends until it closes.
func exchange(t *testing.T, addr string, raw []byte) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(raw)
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	return string(b)
}
