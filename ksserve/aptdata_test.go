package ksserve

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

func TestReleaseSums(t *testing.T) {
	// An InRelease: clearsigned, the SHA256 section after MD5Sum.
	in := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nAcquire-By-Hash: yes\nMD5Sum:\n 0123456789abcdef0123456789abcdef 10 main/binary-amd64/Packages.xz\nSHA256:\n" +
		" " + strings.Repeat("a", 64) + " 10 main/binary-amd64/Packages.xz\n" +
		" " + strings.Repeat("b", 64) + " 20 main/debian-installer/binary-amd64/Packages.gz\n" +
		" " + strings.Repeat("c", 64) + " 30 ../../etc/passwd\n" +
		"-----BEGIN PGP SIGNATURE-----\n\nxyz\n-----END PGP SIGNATURE-----\n"
	got := releaseSums("http://m/debian/dists/bookworm/InRelease", []byte(in))
	want := []releaseIndex{
		{"http://m/debian/dists/bookworm/main/binary-amd64/Packages.xz", strings.Repeat("a", 64), "Packages.xz"},
		{"http://m/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + strings.Repeat("a", 64), strings.Repeat("a", 64), "Packages.xz"},
		{"http://m/debian/dists/bookworm/main/debian-installer/binary-amd64/Packages.gz", strings.Repeat("b", 64), "Packages.gz"},
		{"http://m/debian/dists/bookworm/main/debian-installer/binary-amd64/by-hash/SHA256/" + strings.Repeat("b", 64), strings.Repeat("b", 64), "Packages.gz"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d indices, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("index %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPackagesSums(t *testing.T) {
	text := "Package: a\nVersion: 1\nFilename: pool/main/a/a_1_all.deb\nSize: 3\nSHA256: " + strings.Repeat("A", 64) + "\nDescription: x\n long\n\n" +
		"Package: b\nFilename: pool/main/b/b_1_amd64.udeb\nSHA256: " + strings.Repeat("b", 64) + "\n\n" +
		"Package: evil\nFilename: ../evil.deb\nSHA256: " + strings.Repeat("e", 64) + "\n\n" +
		"Package: nosum\nFilename: pool/main/n/n.deb\n"
	var gz, xzb bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(text))
	zw.Close()
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write([]byte(text))
	xw.Close()
	for name, data := range map[string][]byte{"Packages": []byte(text), "Packages.gz": gz.Bytes(), "Packages.xz": xzb.Bytes()} {
		sums, err := packagesSums(bytes.NewReader(data), name, "http://m/debian/")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := map[string]string{
			"http://m/debian/pool/main/a/a_1_all.deb":    strings.Repeat("a", 64),
			"http://m/debian/pool/main/b/b_1_amd64.udeb": strings.Repeat("b", 64),
		}
		if len(sums) != len(want) {
			t.Errorf("%s: %v", name, sums)
		}
		for u, s := range want {
			if sums[u] != s {
				t.Errorf("%s: %s = %q, want %q", name, u, sums[u], s)
			}
		}
	}
	if root, ok := archiveRoot("http://m/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/ab"); !ok || root != "http://m/debian/" {
		t.Errorf("archiveRoot = %q, %v", root, ok)
	}
}

// TestAptPipelined sends apt's way of asking: several GETs written at once
// on one connection, before any response is read (HTTP/1.1 pipelining,
// apt's Acquire::http::Pipeline-Depth). The responses come back in
// order, each whole, and a package whose bytes disagree with the pinned
// Packages index is refused without breaking the connection's order.
func TestAptPipelined(t *testing.T) {
	e := newEnv(t, "")
	deb := bytes.Repeat([]byte("deb!"), 50000)
	bad := bytes.Repeat([]byte("bad!"), 100)
	pkgs := "Package: a\nFilename: pool/main/a/a_1_all.deb\nSHA256: " + sum(deb) + "\n\n" +
		"Package: b\nFilename: pool/main/b/b_1_all.deb\nSHA256: " + sum([]byte("something else")) + "\n\n"
	release := "Suite: kiln\nSHA256:\n " + sum([]byte(pkgs)) + " " + strconv.Itoa(len(pkgs)) + " main/binary-all/Packages\n"
	e.up.set(base+"dists/kiln/Release", []byte(release))
	e.up.set(base+"dists/kiln/main/binary-all/Packages", []byte(pkgs))
	e.up.set(base+"pool/main/a/a_1_all.deb", deb)
	e.up.set(base+"pool/main/b/b_1_all.deb", bad)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	paths := []string{"dists/kiln/Release", "dists/kiln/main/binary-all/Packages", "pool/main/a/a_1_all.deb", "pool/main/b/b_1_all.deb", "pool/main/a/a_1_all.deb"}
	var reqs strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&reqs, "GET %s HTTP/1.1\r\nHost: kiln\r\nUser-Agent: Debian APT-HTTP/1.3\r\n\r\n", e.mirror(p))
	}
	if _, err := io.WriteString(conn, reqs.String()); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	want := []struct {
		code int
		body []byte
	}{{200, []byte(release)}, {200, []byte(pkgs)}, {200, deb}, {502, nil}, {200, deb}}
	for i, w := range want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d (%s): %v", i, paths[i], err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("response %d (%s): %v", i, paths[i], err)
		}
		if resp.StatusCode != w.code || (w.body != nil && !bytes.Equal(body, w.body)) {
			t.Errorf("response %d (%s): %d, %d bytes; want %d", i, paths[i], resp.StatusCode, len(body), w.code)
		}
	}
}
