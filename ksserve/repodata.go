package ksserve

import (
	"compress/gzip"
	"encoding/xml"
	"io"
	"path"
	"strings"
)

// The repository metadata the proxy reads to verify what it caches: yum's
// repodata (repomd.xml, primary.xml) and a tree's .treeinfo.

// located is what repomd.xml's data entries and primary.xml's packages
// share: a location and the checksum of what is there.
type located struct {
	Checksum struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"checksum"`
	Location struct {
		Href string `xml:"href,attr"`
	} `xml:"location"`
}

// repomd is the part of repodata/repomd.xml kiln reads.
type repomd struct {
	Data []struct {
		Type string `xml:"type,attr"`
		located
	} `xml:"data"`
}

// repomdSums returns the sha256 of each file repomd.xml lists, by its href
// relative to the repository, and the primary metadata's href.
func repomdSums(data []byte) (sums map[string]string, primary string, err error) {
	var md repomd
	if err := xml.Unmarshal(data, &md); err != nil {
		return nil, "", err
	}
	sums = map[string]string{}
	for _, d := range md.Data {
		if d.Checksum.Type != "sha256" || d.Location.Href == "" {
			continue
		}
		sums[d.Location.Href] = strings.TrimSpace(d.Checksum.Value)
		if d.Type == "primary" {
			primary = d.Location.Href
		}
	}
	return sums, primary, nil
}

// primarySums returns the sha256 of each package primary.xml lists, by its
// href, reading the document as a stream.
func primarySums(r io.Reader, gzipped bool) (map[string]string, error) {
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	dec := xml.NewDecoder(r)
	sums := map[string]string{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return sums, nil
		}
		if err != nil {
			return sums, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var p located
		if dec.DecodeElement(&p, &se) == nil && p.Checksum.Type == "sha256" && p.Location.Href != "" {
			sums[p.Location.Href] = strings.TrimSpace(p.Checksum.Value)
		}
	}
}

// treeInfoSums reads the [checksums] section of a .treeinfo (productmd:
// "images/install.img = sha256:HEX") as URLs under base.
func treeInfoSums(base string, data []byte) map[string]string {
	sums := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		if section != "checksums" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		algo, sum, ok := strings.Cut(strings.TrimSpace(v), ":")
		rel := path.Clean(strings.TrimSpace(k))
		if !ok || algo != "sha256" || len(sum) != 64 || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
			continue
		}
		sums[base+rel] = strings.ToLower(sum)
	}
	return sums
}
