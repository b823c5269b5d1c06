package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/integration/fixtures"
	"github.com/kiln-build/kiln/internal/testutil"
)

// TestServeToDNF has a real client, Debian's dnf, install RPMs from a
// fixture repository through kiln serve into an --installroot: twice,
// each time with a fresh kiln serve and a fresh dnf cache, on one kiln
// cache. The second run must take no byte from the mirror.
func TestServeToDNF(t *testing.T) {
	dnf := testutil.RequireTool(t, "dnf")
	testutil.RequireTool(t, "rpmbuild")
	testutil.RequireTool(t, "createrepo_c")
	dir := t.TempDir()
	repo := filepath.Join(dir, "mirror", "custom-rpms")
	pkgs := []fixtures.Package{
		{Name: "custom-package-1", Requires: []string{"custom-package-2"}, Files: []fixtures.File{{Path: "/opt/one", Content: strings.Repeat("one", 3000)}}},
		{Name: "custom-package-2", Files: []fixtures.File{{Path: "/opt/two", Content: "two"}}},
	}
	if err := fixtures.BuildRepo(repo, pkgs, nil); err != nil {
		t.Fatal(err)
	}
	var bodyBytes atomic.Int64
	fileServer := http.FileServer(http.Dir(filepath.Join(dir, "mirror")))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countWriter{ResponseWriter: w}
		fileServer.ServeHTTP(cw, r)
		bodyBytes.Add(cw.n)
	}))
	defer up.Close()
	ks := filepath.Join(dir, "my.ks")
	os.WriteFile(ks, []byte("text\nrepo --name=custom --baseurl="+up.URL+"/custom-rpms/\n%packages\ncustom-package-1\n%end\n"), 0o600)
	cacheDir := filepath.Join(dir, "cache")
	for round := 0; round < 2; round++ {
		before := bodyBytes.Load()
		base := serveInBackground(t, ks, cacheDir)
		// The served kickstart names kiln as this client reaches it,
		// in its URLs and in the restore script's sed patterns alike.
		resp, err := http.Get(base + "ks.cfg")
		if err != nil {
			t.Fatal(err)
		}
		served, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if host := strings.TrimPrefix(strings.SplitN(base, "/", 4)[2], ""); bytes.Contains(served, []byte("kiln-host")) ||
			!bytes.Contains(served, []byte("s|http://"+strings.ReplaceAll(host, ".", `\.`)+"/")) {
			t.Errorf("round %d: the served kickstart does not name kiln as %s everywhere:\n%s", round, host, served)
		}
		root := filepath.Join(dir, "root", string(rune('a'+round)))
		conf := filepath.Join(dir, "dnf.conf")
		os.WriteFile(conf, []byte("[main]\ngpgcheck=0\nreposdir=\ninstall_weak_deps=0\n"), 0o644)
		cmd := exec.Command(dnf, "-y", "-c", conf, "--installroot", root, "--releasever", "9", "--forcearch", "noarch",
			"--setopt", "cachedir="+filepath.Join(dir, "dnf-cache", string(rune('a'+round))),
			"--repofrompath", "custom,"+base+"mirror/custom/", "--repo", "custom", "install", "custom-package-1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("round %d: dnf: %v\n%s", round, err, out)
		}
		for p, want := range map[string]string{"opt/one": strings.Repeat("one", 3000), "opt/two": "two"} {
			if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
				t.Errorf("round %d: /%s: %v", round, p, err)
			}
		}
		took := bodyBytes.Load() - before
		if round == 0 && took == 0 {
			t.Error("the first run took nothing from the mirror")
		}
		if round == 1 && took != 0 {
			t.Errorf("the second run took %d bytes from the mirror, want 0", took)
		}
	}
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// serveInBackground runs kiln serve on ks until the test ends and returns
// its base URL, ".../TOKEN/".
func serveInBackground(t *testing.T, ks, cacheDir string) string {
	t.Helper()
	ev, _ := serveJSON(t, "--ks", ks, "--cache-dir", cacheDir)
	return strings.TrimSuffix(ev["kickstart_url"].(string), "ks.cfg")
}
