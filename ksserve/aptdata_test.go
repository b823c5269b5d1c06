package ksserve

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

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
