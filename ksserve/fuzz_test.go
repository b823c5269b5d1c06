package ksserve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/ksserve/cache"
)

// FuzzPaths throws arbitrary request paths at a server with a files
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
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path)
		io.WriteString(w, "from upstream")
	}))
	defer up.Close()
	client, _ := NewUpstreamClient("")
	mc, _ := cache.Open(f.TempDir(), client, cache.WithRetries(0, 0))
	srv, err := New(Config{Kickstart: []byte("ks"), FilesDir: root, Mirrors: map[string]string{"m": up.URL + "/base/"}, Cache: mc, Token: "tok"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req := httptest.NewRequest("GET", "http://kiln/", nil)
		req.URL.Path = ""
		req.URL.RawPath = ""
		raw := "/tok/" + p
		if err := setRawPath(req, raw); err != nil {
			return
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if strings.Contains(w.Body.String(), "SECRET-OUTSIDE") {
			t.Fatalf("%q served a file outside the root", raw)
		}
		for _, a := range asked {
			if !strings.HasPrefix(a, "/base/") || strings.Contains(a, "/../") {
				t.Fatalf("%q made the proxy ask the upstream for %q", raw, a)
			}
		}
		asked = asked[:0]
	})
}

func setRawPath(req *http.Request, raw string) error {
	u, err := req.URL.Parse(raw)
	if err != nil {
		return err
	}
	req.URL = u
	return nil
}
