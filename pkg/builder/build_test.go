package builder

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

	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

// TestDownload fetches an ISO from a server that drops the first
// connection halfway: the partial file is kept and resumed with a Range
// request, and only a whole file with the right sha256 gets its name.
func TestDownload(t *testing.T) {
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
	dir := t.TempDir()
	u := srv.URL + "/Rocky-9.5-x86_64-dvd.iso"
	if _, err := download(context.Background(), srv.Client(), u, dir, want, nil); err == nil {
		t.Fatal("a dropped download succeeded")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.iso")); len(files) != 0 {
		t.Fatalf("a partial download got the final name: %v", files)
	}
	p, err := download(context.Background(), srv.Client(), u, dir, want, nil)
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
	if p2, err := download(context.Background(), srv.Client(), u, dir, want, nil); err != nil || p2 != p || requests.Load() != 2 {
		t.Errorf("cached download: %v, %d requests", err, requests.Load())
	}
	other := srv.URL + "/other.iso"
	if _, err := download(context.Background(), srv.Client(), other, dir, strings.Repeat("0", 64), nil); err == nil || !strings.Contains(err.Error(), "checksum file says") {
		t.Errorf("a wrong checksum: %v", err)
	}
}

func TestChecksumFor(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gnu":
			fmt.Fprintln(w, "aaaa  other.iso\nBBBB *Rocky-9.5-x86_64-dvd.iso")
		case "/bsd":
			fmt.Fprintln(w, "# Rocky-9.5-x86_64-dvd.iso: 1 bytes\nSHA256 (Rocky-9.5-x86_64-dvd.iso) = CCCC")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for path, want := range map[string]string{"/gnu": "bbbb", "/bsd": "cccc"} {
		if got, err := checksumFor(context.Background(), srv.Client(), srv.URL+path, "Rocky-9.5-x86_64-dvd.iso"); err != nil || got != want {
			t.Errorf("%s: %q, %v", path, got, err)
		}
	}
	if _, err := checksumFor(context.Background(), srv.Client(), srv.URL+"/gnu", "missing.iso"); err == nil {
		t.Error("a file the list does not name got a checksum")
	}
	if _, err := checksumFor(context.Background(), srv.Client(), srv.URL+"/404", "x.iso"); err == nil {
		t.Error("a missing checksum file was accepted")
	}
}

func TestCheckPartitionTable(t *testing.T) {
	disk := func(edit func([]byte)) string {
		b := make([]byte, 4096)
		edit(b)
		p := filepath.Join(t.TempDir(), "d.raw")
		os.WriteFile(p, b, 0o644)
		return p
	}
	sig := func(b []byte) { b[510], b[511] = 0x55, 0xaa }
	for _, tc := range []struct {
		name string
		edit func([]byte)
		ok   bool
	}{
		{"blank", func([]byte) {}, false},
		{"signature only", sig, false},
		{"GPT", func(b []byte) { sig(b); b[446+4] = 0xee; copy(b[512:], "EFI PART") }, true},
		{"MBR", func(b []byte) { sig(b); b[446+16+4] = 0x83 }, true},
	} {
		if err := checkPartitionTable(disk(tc.edit)); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestPackages(t *testing.T) {
	report := []byte("bash\t0\t5.1.8\t9.el9\tx86_64\nhttpd\t0\t2.4.57\t5.el9\tx86_64\nkernel\t1\t5.14\t1.el9\tx86_64\nbroken line\n")
	st := ksserve.Stats{Objects: []ksserve.ObjectRecord{
		{Mirror: "install", Path: "Packages/b/bash-5.1.8-9.el9.x86_64.rpm", SHA256: "aa"},
		{Mirror: "AppStream", Path: "Packages/h/httpd-2.4.57-5.el9.x86_64.rpm", SHA256: "bb"},
		{Mirror: "AppStream", Path: "repodata/repomd.xml", SHA256: "cc"},
	}}
	got := packages(report, st, "")
	if len(got) != 3 || got[0].SHA256 != "aa" || got[1].SHA256 != "bb" || got[2].SHA256 != "" || got[2].EVR() != "1:5.14-1.el9" || got[0].EVR() != "5.1.8-9.el9" {
		t.Errorf("packages = %+v", got)
	}
}

// TestServeKickstart checks the served copy: poweroff instead of reboot,
// the mirrors and the file server behind the proxy, the user's kickstart
// restored on the installed system, and the package report last. The
// user's own parsed kickstart is what --iso-out gets, untouched.
func TestServeKickstart(t *testing.T) {
	orig := []byte("text\nurl --url=http://mirror.example/os/\nrootpw --plaintext s3cret\nautopart\nreboot\n%post\ncurl -o /etc/a http://files.example/a\ncurl -o /etc/b @KILN_FILES@/b.conf\n%end\n")
	ks := kickstart.Parse("k.ks", orig, kickstart.Options{Version: kickstart.RHEL9})
	var warnings []string
	b := &builder{o: Options{Kickstart: ks, Original: orig, FilesDir: t.TempDir(), Events: func(ev Event) {
		if ev.Event == "warning" {
			warnings = append(warnings, ev.Message)
		}
	}}, ks: ks, original: orig, manifest: &Manifest{}}
	ups := b.upstreams()
	srv, err := ksserve.New(ksserve.Config{Mirrors: ups, Cache: &cache.Cache{}, Reports: true, FilesDir: b.o.FilesDir})
	if err != nil {
		t.Fatal(err)
	}
	served := string(b.serveKickstart(srv, "http://10.0.2.100:1234"))
	for _, want := range []string{"poweroff", "url --url=http://10.0.2.100:1234/" + srv.Token() + "/mirror/install/",
		"curl -o /etc/a http://10.0.2.100:1234/" + srv.Token() + "/mirror/script-files.example/a", "original-ks.cfg",
		"curl -o /etc/b http://10.0.2.100:1234/" + srv.Token() + "/files/b.conf", srv.ReportPath("packages"), "rpm -qa"} {
		if !strings.Contains(served, want) {
			t.Errorf("the served kickstart lacks %q:\n%s", want, served)
		}
	}
	if !strings.Contains(served, "|@KILN_FILES@/|g") {
		t.Errorf("the restore script does not put @KILN_FILES@ back:\n%s", served)
	}
	if strings.Contains(served, "\nreboot") {
		t.Errorf("the served kickstart still reboots:\n%s", served)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "reboot") {
		t.Errorf("warnings: %q", warnings)
	}
	if strings.Contains(strings.Join(warnings, ""), "s3cret") {
		t.Errorf("a warning holds the password")
	}
	if ks := kickstart.Parse("served", []byte(served), kickstart.Options{Version: kickstart.RHEL9}); ks.Err() != nil {
		t.Errorf("the served kickstart does not parse: %v", ks.Err())
	}
}

// FuzzPackages feeds the package report parser anything the guest could
// POST: it never panics, and every package it returns has all five fields
// from one line of the input.
func FuzzPackages(f *testing.F) {
	f.Add([]byte("bash\t0\t5.1.8\t9.el9\tx86_64\n"))
	f.Add([]byte("a\tb\n\t\t\t\t\n\x00\t1\t2\t3\t4"))
	f.Fuzz(func(t *testing.T, report []byte) {
		for _, p := range packages(report, ksserve.Stats{}, "") {
			line := strings.Join([]string{p.Name, p.Epoch, p.Version, p.Release, p.Arch}, "\t")
			if p.Name == "" || !bytes.Contains(report, []byte(strings.TrimSpace(line))) {
				t.Fatalf("package %+v is not a line of the report", p)
			}
		}
	})
}
