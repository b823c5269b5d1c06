package ksserve

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// checksumName matches repodata named by its content: "<hex>-primary.xml.gz".
var checksumName = regexp.MustCompile(`^[0-9a-f]{32,128}-`)

// kind says how an object may be cached.
type kind int

const (
	immutable kind = iota // its name fixes its content: cache forever
	metadata              // may change: revalidate once per build, then pin
)

// classify decides from the path alone. Unknown files are treated as
// metadata: revalidating costs a round trip, serving stale data costs a
// broken build.
func classify(p string) kind {
	base := path.Base(p)
	switch {
	case strings.HasSuffix(base, ".rpm"), strings.HasSuffix(base, ".drpm"),
		strings.HasSuffix(base, ".iso"), strings.HasPrefix(p, "images/"), strings.Contains(p, "/images/"),
		strings.Contains(p, "repodata/") && checksumName.MatchString(base):
		return immutable
	}
	return metadata
}

// maxPinned bounds metadata kept in memory per build; repomd.xml,
// .treeinfo and .discinfo are a few KiB. Larger metadata is streamed.
const maxPinned = 4 << 20

func (s *Server) serveMirror(w http.ResponseWriter, r *http.Request, name, escaped string) {
	base, ok := s.mirrors[name]
	if !ok {
		http.Error(w, fmt.Sprintf("no mirror named %q is configured", name), http.StatusNotFound)
		return
	}
	rel, ok := cleanRel(escaped)
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	u := *base
	u.Path = base.Path + rel
	u.RawPath = ""
	target := u.String()
	k := classify(rel)

	s.mu.Lock()
	pinned, isPinned := s.pinned[target]
	want := s.expected[target]
	urlKey, known := s.urlKeys[target]
	s.mu.Unlock()
	if isPinned {
		s.record(name, rel, int64(len(pinned)), sha256hex(pinned), true)
		s.cacheBytes.Add(int64(len(pinned)))
		http.ServeContent(w, r, path.Base(rel), time.Time{}, bytes.NewReader(pinned))
		return
	}
	key := urlKey
	switch {
	case want != "":
		key = objectKey(target, want)
	case !known:
		// Hashing the URL for its key is a tenth of a hit: once per URL.
		key = objectKey(target, "")
		s.mu.Lock()
		s.urlKeys[target] = key
		s.mu.Unlock()
	}
	meta, f, err := s.cfg.Cache.lookup(key)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.cfg.Log.Warn("cache entry is corrupt; fetching it again", "mirror", name, "path", rel, "err", err)
		s.cfg.Cache.remove(key)
		meta, f = nil, nil
	}
	if f != nil {
		defer f.Close()
		if k == immutable || s.cfg.Offline {
			s.serveCached(w, r, name, rel, target, key, k, meta, f)
			return
		}
	}
	if s.cfg.Offline {
		http.Error(w, fmt.Sprintf("offline: %s/%s is not in the cache", name, rel), http.StatusNotFound)
		return
	}
	if r.Method == http.MethodHead && f == nil {
		s.headUpstream(w, r, target)
		return
	}
	var fe *fetch
	if f == nil {
		var m2 *entryMeta
		var f2 object
		if fe, m2, f2, err = s.cfg.Cache.startMiss(key, target, want); err != nil {
			s.fetchFailed(w, name, rel, err)
			return
		}
		if fe == nil {
			// Another kiln fetched it while this one waited.
			defer f2.Close()
			s.serveCached(w, r, name, rel, target, key, k, m2, f2)
			return
		}
	} else {
		fe = s.cfg.Cache.start(key, target, want, meta)
	}
	defer fe.release()
	select {
	case <-fe.ready:
	case <-r.Context().Done():
		return
	}
	fe.mu.Lock()
	started, hit, ferr := fe.started, fe.hit, fe.err
	fe.mu.Unlock()
	if hit {
		// 304: the cached copy is current.
		s.serveCached(w, r, name, rel, target, key, k, meta, f)
		return
	}
	if !started {
		if f != nil {
			// The upstream is unreachable, but we have a copy: better a
			// slightly stale repo than a failed build.
			s.cfg.Log.Warn("upstream failed; serving the cached copy", "mirror", name, "path", rel, "err", ferr)
			s.serveCached(w, r, name, rel, target, key, k, meta, f)
			return
		}
		status := http.StatusBadGateway
		var ue *upstreamError
		if errors.As(ferr, &ue) && ue.status == http.StatusNotFound {
			status = http.StatusNotFound
		}
		http.Error(w, ferr.Error(), status)
		return
	}
	if r.Header.Get("Range") != "" || (k == metadata && fe.meta.Size >= 0 && fe.meta.Size <= maxPinned) {
		// Ranges, and metadata that must be pinned, need the whole object
		// first.
		if _, err := fe.copyTo(r.Context(), io.Discard); err != nil {
			s.fetchFailed(w, name, rel, err)
			return
		}
		m2, f2, err := s.cfg.Cache.lookup(key)
		if err != nil {
			s.fetchFailed(w, name, rel, err)
			return
		}
		defer f2.Close()
		s.upstreamBytes.Add(m2.Size)
		s.afterFetch(name, rel, target, k, m2, f2)
		s.serveFileFrom(w, r, key, rel, m2, f2)
		s.record(name, rel, m2.Size, m2.SHA256, false)
		return
	}
	// Stream as the bytes arrive.
	h := w.Header()
	if fe.meta.ContentType != "" {
		h.Set("Content-Type", fe.meta.ContentType)
	}
	if fe.meta.Size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(fe.meta.Size, 10))
	}
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	n, err := fe.copyTo(r.Context(), w)
	s.upstreamBytes.Add(n)
	if err != nil {
		s.cfg.Log.Warn("download failed", "mirror", name, "path", rel, "err", err)
		// The client has a status line already; cutting the connection is
		// the only way to tell it the body is incomplete.
		panic(http.ErrAbortHandler)
	}
	s.record(name, rel, n, fe.sha256(), false)
	if k == metadata {
		if m2, f2, err := s.cfg.Cache.lookup(key); err == nil {
			s.afterFetch(name, rel, target, k, m2, f2)
			f2.Close()
		}
	}
}

func (s *Server) fetchFailed(w http.ResponseWriter, name, rel string, err error) {
	s.cfg.Log.Warn("download failed", "mirror", name, "path", rel, "err", err)
	http.Error(w, err.Error(), http.StatusBadGateway)
}

func (s *Server) serveCached(w http.ResponseWriter, r *http.Request, name, rel, target, key string, k kind, meta *entryMeta, f object) {
	s.cfg.Cache.touch(key, f)
	s.afterFetch(name, rel, target, k, meta, f)
	s.cacheBytes.Add(meta.Size)
	s.record(name, rel, meta.Size, meta.SHA256, true)
	s.serveFileFrom(w, r, key, rel, meta, f)
}

func (s *Server) serveFileFrom(w http.ResponseWriter, r *http.Request, key, rel string, meta *entryMeta, f object) {
	if meta.ContentType != "" {
		w.Header().Set("Content-Type", meta.ContentType)
	}
	if p, ok := f.(packedObject); ok && wholeObject(r) && meta.ContentType != "" {
		// A small object read whole, the common case for a repository's
		// many small packages, needs none of ServeContent's range and
		// precondition work: its bytes from the pack's mapping, and one
		// write.
		h := w.Header()
		h["Accept-Ranges"] = acceptRanges
		h["Content-Length"] = []string{strconv.FormatInt(p.Size(), 10)}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		if p.mapped != nil {
			if err := writeMapped(w, p.mapped); err != nil {
				var re runtime.Error
				if errors.As(err, &re) {
					s.cfg.Log.Warn("cache pack is damaged; fetching the object again next time", "path", rel, "err", err)
					s.cfg.Cache.remove(key)
				}
				panic(http.ErrAbortHandler)
			}
			return
		}
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		buf := *bp
		for off := int64(0); off < p.Size(); {
			n := min(int64(len(buf)), p.Size()-off)
			if _, err := p.ReadAt(buf[:n], off); err != nil {
				// The status line is out; cutting the connection tells
				// the client the body is incomplete.
				panic(http.ErrAbortHandler)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			off += n
		}
		return
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, path.Base(rel), time.Time{}, f)
}

var acceptRanges = []string{"bytes"}

// writeMapped writes b, which is in a pack's mapping. Should the file have
// shrunk under kiln (nothing in kiln truncates a pack, but a user might),
// touching the lost pages faults; that becomes an error, not a crash.
func writeMapped(w io.Writer, b []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			if re, ok := v.(runtime.Error); ok {
				err = fmt.Errorf("reading the cache: %w", re)
				return
			}
			panic(v)
		}
	}()
	if fw, ok := w.(finalWriter); ok {
		return fw.WriteFinal(b)
	}
	_, err = w.Write(b)
	return err
}

func (s *Server) headUpstream(w http.ResponseWriter, r *http.Request, target string) {
	ctx, cancel := context.WithTimeout(r.Context(), upstreamTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, target, nil)
	resp, err := s.cfg.Cache.client.Do(req)
	if err != nil {
		http.Error(w, fmt.Sprintf("fetching %s: %v", target, err), http.StatusBadGateway)
		return
	}
	resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length", "Last-Modified", "ETag"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
}

func (s *Server) record(mirror, rel string, size int64, sha string, hit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := objectID{mirror, rel}
	o := s.objects[id]
	if o == nil {
		o = &ObjectRecord{Mirror: mirror, Path: rel}
		s.objects[id] = o
	}
	o.Requests++
	if hit {
		o.Hits++
	}
	if sha != "" {
		// The latest: a revalidated object may have changed.
		o.Size, o.SHA256 = size, sha
	}
}

// afterFetch pins metadata for the rest of the build and, for repomd.xml,
// learns the checksums of the repo's files so they are verified.
func (s *Server) afterFetch(name, rel, target string, k kind, meta *entryMeta, f object) {
	if k != metadata || meta.Size > maxPinned {
		return
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPinned))
	if err != nil {
		return
	}
	s.mu.Lock()
	if _, done := s.pinned[target]; done {
		s.mu.Unlock()
		return
	}
	s.pinned[target] = data
	s.mu.Unlock()
	if path.Base(rel) == "repomd.xml" {
		s.learnRepo(name, target, data)
	}
}

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

// learnRepo records the sha256 of every repodata file repomd.xml lists and
// of every package primary.xml lists, relative to the repo's base.
func (s *Server) learnRepo(name, repomdURL string, data []byte) {
	var md repomd
	if err := xml.Unmarshal(data, &md); err != nil {
		s.cfg.Log.Warn("cannot read repomd.xml; its files will not be verified", "mirror", name, "err", err)
		return
	}
	repoBase := strings.TrimSuffix(repomdURL, "repodata/repomd.xml")
	var primaryURL, primarySum string
	s.mu.Lock()
	for _, d := range md.Data {
		if d.Checksum.Type != "sha256" {
			continue
		}
		u := repoBase + d.Location.Href
		s.expected[u] = strings.TrimSpace(d.Checksum.Value)
		if d.Type == "primary" {
			primaryURL, primarySum = u, s.expected[u]
		}
	}
	s.mu.Unlock()
	if primaryURL == "" {
		return
	}
	// primary.xml.gz is needed by the installer next anyway; reading it now
	// through the cache costs nothing extra.
	key := objectKey(primaryURL, primarySum)
	var f object
	if _, cf, err := s.cfg.Cache.lookup(key); err == nil {
		f = cf
	} else if !s.cfg.Offline {
		fe := s.cfg.Cache.start(key, primaryURL, primarySum, nil)
		<-fe.ready
		_, err := fe.copyTo(context.Background(), io.Discard)
		fe.release()
		if err != nil {
			s.cfg.Log.Warn("cannot fetch primary metadata; packages will not be verified", "mirror", name, "err", err)
			return
		}
		if _, cf, err := s.cfg.Cache.lookup(key); err == nil {
			f = cf
		}
	}
	if f == nil {
		return
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(primaryURL, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return
		}
		defer zr.Close()
		r = zr
	}
	dec := xml.NewDecoder(r)
	sums := map[string]string{}
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "package" {
			continue
		}
		var p located
		if dec.DecodeElement(&p, &se) == nil && p.Checksum.Type == "sha256" {
			sums[repoBase+p.Location.Href] = strings.TrimSpace(p.Checksum.Value)
		}
	}
	s.mu.Lock()
	for u, sum := range sums {
		s.expected[u] = sum
	}
	s.mu.Unlock()
}

// wholeObject reports whether r asks for the whole object with no
// conditions, so a plain 200 is the right answer.
var preconditions = []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"}

func wholeObject(r *http.Request) bool {
	// Indexing the map with canonical names skips Get's canonicalising,
	// a measurable part of a hit.
	for _, h := range preconditions {
		if len(r.Header[h]) > 0 && r.Header[h][0] != "" {
			return false
		}
	}
	return true
}
