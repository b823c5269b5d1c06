package ksserve

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// upstream is a loopback mirror the tests control.
type upstream struct {
	*httptest.Server
	mu      sync.Mutex
	files   map[string][]byte
	gets    map[string]int // 200 responses per path
	cond304 map[string]int
	// misbehave, when set for a path, answers instead of the normal handler.
	misbehave map[string]func(w http.ResponseWriter, r *http.Request)
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{files: map[string][]byte{}, gets: map[string]int{}, cond304: map[string]int{}, misbehave: map[string]func(http.ResponseWriter, *http.Request){}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func etag(b []byte) string {
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:8]) + `"`
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	bad := u.misbehave[r.URL.Path]
	data, ok := u.files[r.URL.Path]
	u.mu.Unlock()
	if bad != nil {
		bad(w, r)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	tag := etag(data)
	if r.Header.Get("If-None-Match") == tag {
		u.mu.Lock()
		u.cond304[r.URL.Path]++
		u.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if r.Method == http.MethodGet {
		u.mu.Lock()
		u.gets[r.URL.Path]++
		u.mu.Unlock()
	}
	w.Header().Set("ETag", tag)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

func (u *upstream) set(p string, data []byte) {
	u.mu.Lock()
	u.files[p] = data
	u.mu.Unlock()
}

func (u *upstream) count(p string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.gets[p]
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// addRepo lays out a yum repository at prefix: the packages, primary.xml.gz
// listing them with their sha256 (or the given wrong ones), and repomd.xml.
func (u *upstream) addRepo(prefix string, pkgs map[string][]byte, lie map[string]string) {
	var prim bytes.Buffer
	prim.WriteString(`<?xml version="1.0"?><metadata xmlns="http://linux.duke.edu/metadata/common" packages="` + strconv.Itoa(len(pkgs)) + `">`)
	for name, data := range pkgs {
		s := sum(data)
		if l, ok := lie[name]; ok {
			s = l
		}
		fmt.Fprintf(&prim, `<package type="rpm"><name>%s</name><checksum type="sha256" pkgid="YES">%s</checksum><location href="Packages/%s"/></package>`, name, s, name)
		u.set(prefix+"Packages/"+name, data)
	}
	prim.WriteString(`</metadata>`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(prim.Bytes())
	zw.Close()
	primName := sum(gz.Bytes()) + "-primary.xml.gz"
	u.set(prefix+"repodata/"+primName, gz.Bytes())
	repomd := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision>
<data type="primary"><checksum type="sha256">%s</checksum><location href="repodata/%s"/><size>%d</size></data>
</repomd>`, sum(gz.Bytes()), primName, gz.Len())
	u.set(prefix+"repodata/repomd.xml", []byte(repomd))
}
