package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFile fetches an ISO into the cache from a server that drops the first
// connection halfway: the partial file is kept and resumed with a Range
// request, and only a whole file with the right sha256 gets its name.
func TestFile(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	var requests atomic.Int32
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		ranges = append(ranges, r.Header.Get("Range"))
		if n == 1 {
			// Promise everything, send half, and drop the connection.
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		http.ServeContent(w, r, "x.iso", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	c, err := Open(t.TempDir(), srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dir := filepath.Join(c.Dir(), "files")
	u := srv.URL + "/Rocky-9.5-x86_64-dvd.iso"
	if _, err := c.File(context.Background(), u, want, nil); err == nil {
		t.Fatal("a dropped download succeeded")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.iso")); len(files) != 0 {
		t.Fatalf("a partial download got the final name: %v", files)
	}
	p, err := c.File(context.Background(), u, want, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Errorf("the resumed download differs")
	}
	if !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Errorf("the second request did not resume: Range %q", ranges[1])
	}
	// A second build finds it; a wrong checksum is refused.
	if p2, err := c.File(context.Background(), u, want, nil); err != nil || p2 != p || requests.Load() != 2 {
		t.Errorf("cached download: %v, %d requests", err, requests.Load())
	}
	other := srv.URL + "/other.iso"
	if _, err := c.File(context.Background(), other, strings.Repeat("0", 64), nil); err == nil || !strings.Contains(err.Error(), "checksum file says") {
		t.Errorf("a wrong checksum: %v", err)
	}
	// Whole files count in the cache's size, and Prune removes them.
	if n, objs, err := c.Size(); err != nil || n != int64(len(data)) || objs != 1 {
		t.Errorf("Size = %d, %d, %v", n, objs, err)
	}
	if freed, err := c.Prune(time.Now().Add(time.Hour), -1); err != nil || freed != int64(len(data)) {
		t.Errorf("Prune = %d, %v", freed, err)
	}
	if _, err := os.Stat(p); err == nil {
		t.Error("Prune left the ISO")
	}
}
