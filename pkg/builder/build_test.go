package builder

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

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
	b := &builder{o: Options{Kickstart: ks, Original: orig, FilesDir: t.TempDir()}, ks: ks, original: orig, manifest: &Manifest{}}
	ups := b.upstreams()
	srv, err := ksserve.New(ksserve.Config{Mirrors: ups, Cache: &cache.Cache{}, Reports: true, FilesDir: b.o.FilesDir, Token: "TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	served := string(b.serveKickstart(srv, "http://10.0.2.100:1234"))
	golden(t, "served-ks.cfg", []byte(served))
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
	if n := shutdownNotice(ks); !strings.Contains(n, "reboot") || strings.Contains(n, "s3cret") {
		t.Errorf("the plan's notice: %q", n)
	}
	if string(ks.Render()) != string(orig) {
		t.Errorf("serving changed the build's own copy of the kickstart:\n%s", ks.Render())
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
