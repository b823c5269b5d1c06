package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// aptArchive builds a small Debian archive in dir with Debian's own tools:
// two packages (dpkg-deb), indexed by apt-ftparchive, with the Release
// asking clients to fetch indices by hash (Acquire-By-Hash) as Debian's
// does. It is unsigned; the clients trust it explicitly ([trusted=yes]).
func aptArchive(t *testing.T, dir string) {
	t.Helper()
	testutil.RequireTool(t, "dpkg-deb")
	testutil.RequireTool(t, "apt-ftparchive")
	pool := filepath.Join(dir, "pool/main/k")
	for _, p := range []struct{ name, depends, content string }{
		{"kiln-one", "kiln-two", strings.Repeat("one ", 5000)},
		{"kiln-two", "", "two"},
	} {
		root := filepath.Join(t.TempDir(), p.name)
		os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755)
		os.MkdirAll(filepath.Join(root, "opt"), 0o755)
		control := "Package: " + p.name + "\nVersion: 1:1.0-1\nArchitecture: all\nMaintainer: kiln <kiln@example.invalid>\nDescription: kiln test package\n"
		if p.depends != "" {
			control += "Depends: " + p.depends + "\n"
		}
		os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644)
		os.WriteFile(filepath.Join(root, "opt", p.name), []byte(p.content), 0o644)
		os.MkdirAll(filepath.Join(pool, p.name), 0o755)
		deb := filepath.Join(pool, p.name, p.name+"_1.0-1_all.deb")
		if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb: %v\n%s", err, out)
		}
	}
	bin := filepath.Join(dir, "dists/kiln/main/binary-all")
	os.MkdirAll(bin, 0o755)
	cmd := exec.Command("apt-ftparchive", "packages", "pool")
	cmd.Dir = dir
	pkgs, err := cmd.Output()
	if err != nil {
		t.Fatalf("apt-ftparchive packages: %v", err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(pkgs)
	zw.Close()
	for name, data := range map[string][]byte{"Packages": pkgs, "Packages.gz": gz.Bytes()} {
		os.WriteFile(filepath.Join(bin, name), data, 0o644)
		sum := sha256.Sum256(data)
		os.MkdirAll(filepath.Join(bin, "by-hash/SHA256"), 0o755)
		os.WriteFile(filepath.Join(bin, "by-hash/SHA256", hex.EncodeToString(sum[:])), data, 0o644)
	}
	cmd = exec.Command("apt-ftparchive", "-o", "APT::FTPArchive::Release::Codename=kiln", "-o", "APT::FTPArchive::Release::Suite=kiln",
		"-o", "APT::FTPArchive::Release::Components=main", "-o", "APT::FTPArchive::Release::Architectures=all amd64", "release", "dists/kiln")
	cmd.Dir = dir
	rel, err := cmd.Output()
	if err != nil {
		t.Fatalf("apt-ftparchive release: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "dists/kiln/Release"), append([]byte("Acquire-By-Hash: yes\n"), rel...), 0o644)
}

// apt runs Debian's apt-get against sources, with its own state, cache
// and configuration in dir: nothing of the host's apt is used.
func apt(t *testing.T, dir, sources string, args ...string) ([]byte, error) {
	t.Helper()
	for _, d := range []string{"parts", "lists/partial", "cache/archives/partial", "out"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "parts/kiln.list"), []byte(sources), 0o644)
	os.WriteFile(filepath.Join(dir, "status"), nil, 0o644)
	base := []string{"-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "parts"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"), "-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Dir::State::status=" + filepath.Join(dir, "status"), "-o", "Debug::NoLocking=true", "-o", "APT::Sandbox::User=root",
		"-o", "Acquire::Languages=none", "-o", "Acquire::http::Proxy=DIRECT"}
	cmd := exec.Command("apt-get", append(base, args...)...)
	cmd.Dir = filepath.Join(dir, "out")
	return cmd.CombinedOutput()
}

// TestServeToApt has Debian's apt fetch an archive through kiln serve
// --preseed: apt-get update (by hash, pipelined on one connection) and
// apt-get install --download-only of a package and its dependency, twice
// with a fresh kiln serve and a fresh apt on one kiln cache. The second
// round must take no byte from the mirror. Then a mirror whose package
// differs from its index must be refused: apt fails, and the bad bytes
// never enter the cache.
func TestServeToApt(t *testing.T) {
	testutil.RequireTool(t, "apt-get")
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")
	aptArchive(t, archive)
	var bodyBytes atomic.Int64
	var tamper atomic.Bool
	files := http.FileServer(http.Dir(archive))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/debian/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		if tamper.Load() && strings.HasSuffix(rest, ".deb") {
			data, _ := os.ReadFile(filepath.Join(archive, rest))
			data[len(data)-1] ^= 0xff
			bodyBytes.Add(int64(len(data)))
			w.Write(data)
			return
		}
		r.URL.Path = "/" + rest
		// Content bytes: a 404's body (apt asks for InRelease and
		// Release.gpg, which this archive lacks) is not content.
		cw := &statusCountWriter{countWriter: countWriter{ResponseWriter: w}}
		files.ServeHTTP(cw, r)
		if cw.code == 0 || cw.code == http.StatusOK || cw.code == http.StatusPartialContent {
			bodyBytes.Add(cw.n)
		}
	}))
	defer up.Close()
	pre := filepath.Join(dir, "debian.cfg")
	os.WriteFile(pre, []byte("d-i mirror/http/hostname string "+strings.TrimPrefix(up.URL, "http://")+"\nd-i mirror/http/directory string /debian\n"), 0o600)
	cacheDir := filepath.Join(dir, "cache")
	for round := 0; round < 3; round++ {
		if round == 2 {
			tamper.Store(true)
			cacheDir = filepath.Join(dir, "cache-tampered")
		}
		before := bodyBytes.Load()
		ev, _ := serveJSON(t, "--preseed", pre, "--cache-dir", cacheDir)
		mirror := ev["mirrors"].(map[string]any)["debian"].(string)
		// The served preseed points d-i at this proxy.
		resp, err := http.Get(ev["preseed_url"].(string))
		if err != nil {
			t.Fatal(err)
		}
		served, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		host := strings.TrimPrefix(strings.SplitN(mirror, "/", 4)[2], "")
		if !bytes.Contains(served, []byte("d-i mirror/http/hostname string "+host+"\n")) {
			t.Fatalf("the served preseed does not name the proxy %s:\n%s", host, served)
		}
		// The late command gives the installed system the mirror back,
		// matching the proxy's URL as this client reaches it.
		if want := "s|http://" + strings.ReplaceAll(host, ".", `\.`) + "/"; !bytes.Contains(served, []byte(want)) || bytes.Contains(served, []byte("kiln-host")) {
			t.Errorf("the restore does not match the proxy %s:\n%s", host, served)
		}
		state := filepath.Join(dir, fmt.Sprintf("apt-%d", round))
		src := "deb [trusted=yes] " + mirror + " kiln main\n"
		if out, err := apt(t, state, src, "update"); err != nil || bytes.Contains(out, []byte("Err:")) {
			t.Fatalf("round %d: apt-get update: %v\n%s", round, err, out)
		}
		out, err := apt(t, state, src, "install", "-y", "--download-only", "kiln-one")
		took := bodyBytes.Load() - before
		if round == 2 {
			if err == nil {
				t.Fatalf("apt installed packages that differ from their index:\n%s", out)
			}
			// kiln's refusal, not apt's own check of what it got.
			if !bytes.Contains(out, []byte("502")) {
				t.Errorf("apt's error does not show kiln's refusal (502):\n%s", out)
			}
			if n := countFiles(t, cacheDir, `.deb"`); n != 0 {
				t.Errorf("the tampered packages entered the cache: %d", n)
			}
			if n := countFiles(t, cacheDir, "/binary-all/Packages"); n == 0 {
				t.Error("the cache holds no Packages index: the check above proves nothing")
			}
			continue
		}
		if err != nil {
			t.Fatalf("round %d: apt-get install: %v\n%s", round, err, out)
		}
		for _, p := range []string{"kiln-one", "kiln-two"} {
			got, _ := filepath.Glob(filepath.Join(state, "cache/archives", p+"_*.deb"))
			if len(got) != 1 {
				t.Errorf("round %d: apt downloaded %v for %s", round, got, p)
			}
		}
		if round == 0 && took == 0 {
			t.Error("the first round took nothing from the mirror")
		}
		if round == 1 && took != 0 {
			t.Errorf("the second round took %d bytes from the mirror, want 0", took)
		}
	}
}

// countFiles counts the cache's entries whose header holds needle.
func countFiles(t *testing.T, dir, needle string) int {
	n := 0
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		head := make([]byte, 4096)
		k, _ := io.ReadFull(f, head)
		if bytes.Contains(head[:k], []byte(needle)) {
			n++
		}
		return nil
	})
	return n
}

type statusCountWriter struct {
	countWriter
	code int
}

func (c *statusCountWriter) WriteHeader(code int) {
	c.code = code
	c.ResponseWriter.WriteHeader(code)
}
