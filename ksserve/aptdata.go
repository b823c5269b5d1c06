package ksserve

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/ulikunitz/xz"
)

// The Debian archive metadata the proxy reads to verify what it caches
// (Debian's "Repository format", wiki.debian.org/DebianRepository/Format):
// a suite's InRelease or Release lists the SHA256 of every index under
// dists/SUITE/, and each Packages index the SHA256 of every .deb or .udeb
// it names, by its Filename relative to the archive's root.
//
// The signature over InRelease and Release is d-i's and apt's to check,
// with their own keyrings: the proxy passes the files through unchanged.
// What the proxy adds is that no byte whose sum disagrees with the
// metadata this build pinned ever reaches the cache or a client.

// releaseIndex is one file a Release lists.
type releaseIndex struct {
	url, sum string
	name     string // its name, "Packages.xz", which by-hash hides
}

// releaseSums reads the SHA256 section of a Release or InRelease whose
// URL is releaseURL: each index by its own URL and by its by-hash URL
// (Acquire-By-Hash: DIR/by-hash/SHA256/SUM).
func releaseSums(releaseURL string, data []byte) []releaseIndex {
	dir := strings.TrimSuffix(releaseURL, path.Base(releaseURL))
	var out []releaseIndex
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if !strings.HasPrefix(line, " ") {
			in = line == "SHA256:"
			continue
		}
		f := strings.Fields(line)
		if !in || len(f) != 3 || len(f[0]) != 64 {
			continue
		}
		rel := path.Clean(f[2])
		if strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
			continue
		}
		sum := strings.ToLower(f[0])
		name := path.Base(rel)
		out = append(out,
			releaseIndex{url: dir + rel, sum: sum, name: name},
			releaseIndex{url: dir + path.Join(path.Dir(rel), "by-hash", "SHA256", sum), sum: sum, name: name})
	}
	return out
}

// isPackagesIndex reports whether name is a binary package index whose
// entries the proxy learns.
func isPackagesIndex(name string) bool {
	switch name {
	case "Packages", "Packages.gz", "Packages.xz":
		return true
	}
	return false
}

// archiveRoot is the archive's root, under which Filename fields are, for
// an index at indexURL: everything before "/dists/".
func archiveRoot(indexURL string) (string, bool) {
	i := strings.LastIndex(indexURL, "/dists/")
	if i < 0 {
		return "", false
	}
	return indexURL[:i+1], true
}

// packagesSums reads a Packages index, compressed as name says, and
// returns the SHA256 of each package by its URL under root.
func packagesSums(r io.Reader, name, root string) (map[string]string, error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(name, ".xz"):
		xr, err := xz.NewReader(bufio.NewReaderSize(r, 1<<16))
		if err != nil {
			return nil, err
		}
		r = xr
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(r)
	// Description fields run long; a stanza's lines are each far below this.
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var file, sum string
	flush := func() {
		if file != "" && len(sum) == 64 {
			rel := path.Clean(file)
			if !strings.HasPrefix(rel, "../") && !path.IsAbs(rel) {
				sums[root+rel] = strings.ToLower(sum)
			}
		}
		file, sum = "", ""
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "Filename:"):
			file = strings.TrimSpace(line[len("Filename:"):])
		case strings.HasPrefix(line, "SHA256:"):
			sum = strings.TrimSpace(line[len("SHA256:"):])
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return sums, fmt.Errorf("reading %s: %w", name, err)
	}
	return sums, nil
}
