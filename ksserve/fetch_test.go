package ksserve

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/ksserve/cache"
)

// TestFetch: kiln's own reads of a mirror go through the proxy's handler
// with no connection, and are cached and counted as the VM's are.
func TestFetch(t *testing.T) {
	gets := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/os/.treeinfo" {
			http.NotFound(w, r)
			return
		}
		gets++
		io.WriteString(w, "[general]\nfamily = Rocky\n")
	}))
	defer up.Close()
	client, _ := NewUpstreamClient("")
	mc, err := cache.Open(t.TempDir(), client, cache.WithRetries(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	srv, err := New(Config{Mirrors: map[string]string{"tree": up.URL + "/os/"}, Cache: mc})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		var sb strings.Builder
		if err := srv.Fetch(context.Background(), srv.MirrorPath("tree")+".treeinfo", &sb); err != nil {
			t.Fatal(err)
		}
		if sb.String() != "[general]\nfamily = Rocky\n" {
			t.Errorf("fetched %q", sb.String())
		}
	}
	if st := srv.Stats(); gets != 1 || st.UpstreamBytes == 0 || st.CacheBytes == 0 {
		t.Errorf("%d upstream GETs, stats %+v: want one GET, then the cache", gets, st)
	}
	var sb strings.Builder
	err = srv.Fetch(context.Background(), srv.MirrorPath("tree")+"images/missing.img", &sb)
	if err == nil || !strings.Contains(err.Error(), "404") || sb.Len() != 0 {
		t.Errorf("a missing file: %v, wrote %q", err, sb.String())
	}
}
