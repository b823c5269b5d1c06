package ksserve

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/integration/fixtures"
	"github.com/kiln-build/kiln/internal/testutil"
	"github.com/kiln-build/kiln/ksserve/cache"
)

// TestRealRepository proxies a repository made by rpmbuild and
// createrepo_c: the proxy learns the packages' sha256 from its real
// primary.xml.gz, serves the genuine RPM, and refuses a tampered one.
func TestRealRepository(t *testing.T) {
	testutil.RequireTool(t, "rpmbuild")
	testutil.RequireTool(t, "createrepo_c")
	root := t.TempDir()
	repo := filepath.Join(root, "custom-rpms")
	pkgs := []fixtures.Package{
		{Name: "custom-package-1", Files: []fixtures.File{{Path: "/opt/one", Content: strings.Repeat("one", 1000)}}},
		{Name: "custom-package-2", Files: []fixtures.File{{Path: "/opt/two", Content: "two"}}},
	}
	if err := fixtures.BuildRepo(repo, pkgs, nil); err != nil {
		t.Fatal(err)
	}
	genuine, _ := os.ReadFile(filepath.Join(repo, "Packages", "custom-package-1-1.0-1.noarch.rpm"))
	// The "mirror" serves a tampered copy of package 2.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "custom-package-2-1.0-1.noarch.rpm") {
			w.Write([]byte("not the package the metadata describes"))
			return
		}
		http.FileServer(http.Dir(root)).ServeHTTP(w, r)
	}))
	defer up.Close()
	client, _ := NewUpstreamClient("")
	mc, _ := cache.Open(t.TempDir(), client)
	srv, err := New(Config{Mirrors: map[string]string{"custom": up.URL + "/custom-rpms/"}, Cache: mc})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, srv)
	get := func(p string) (int, []byte) {
		resp, err := http.Get(ts.URL + srv.MirrorPath("custom") + p)
		if err != nil {
			return -1, nil
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		if _, err := b.ReadFrom(resp.Body); err != nil {
			return -1, nil
		}
		return resp.StatusCode, b.Bytes()
	}
	if code, _ := get("repodata/repomd.xml"); code != 200 {
		t.Fatalf("repomd.xml: %d", code)
	}
	if code, body := get("Packages/custom-package-1-1.0-1.noarch.rpm"); code != 200 || !bytes.Equal(body, genuine) {
		t.Errorf("genuine package: %d, %d bytes", code, len(body))
	}
	if code, _ := get("Packages/custom-package-2-1.0-1.noarch.rpm"); code == 200 {
		t.Error("a package whose sha256 differs from primary.xml.gz was served whole")
	}
	st := srv.Stats()
	var sawOne bool
	for _, o := range st.Objects {
		sawOne = sawOne || (o.Path == "Packages/custom-package-1-1.0-1.noarch.rpm" && o.SHA256 == sum(genuine))
	}
	if !sawOne {
		t.Errorf("stats do not record the package with its sha256: %+v", st.Objects)
	}
}
