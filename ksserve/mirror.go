package ksserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-build/kiln/ksserve/cache"
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
		strings.HasSuffix(base, ".deb"), strings.HasSuffix(base, ".udeb"),
		strings.HasSuffix(base, ".iso"), strings.HasPrefix(p, "images/"), strings.Contains(p, "/images/"),
		strings.Contains(p, "repodata/") && checksumName.MatchString(base),
		strings.Contains(p, "/by-hash/"),
		// An OSTree repository's objects and deltas are named by content.
		strings.HasPrefix(p, "objects/"), strings.Contains(p, "/objects/"), strings.HasPrefix(p, "deltas/"):
		return immutable
	}
	return metadata
}

// maxPinned bounds metadata kept in memory per build; repomd.xml,
// .treeinfo and .discinfo are a few KiB. Larger metadata is streamed.
const maxPinned = 4 << 20

// wholeFirst bounds the objects with a known sum that are fetched whole
// before the response starts, so that a wrong sum is a clean 502 rather
// than a cut connection.
const wholeFirst = 1 << 20

func (s *Server) serveMirror(w http.ResponseWriter, r *http.Request, name, escaped string) {
	rt, ok := s.routeOf(name, escaped)
	if !ok {
		if _, known := s.mirrors[name]; !known {
			http.Error(w, fmt.Sprintf("no mirror named %q is configured", name), http.StatusNotFound)
			return
		}
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	rel, target, k, key := rt.rel, rt.target, rt.kind, rt.urlKey
	s.mu.Lock()
	pinned, isPinned := s.pinned[target]
	want := s.expected[target]
	index := s.aptIndex[target]
	s.mu.Unlock()
	if index == "" && isPackagesIndex(path.Base(rel)) {
		index = path.Base(rel) // a flat repository, or one without a Release
	}
	// A Packages index is read whole before it is served, so that the
	// sums of the packages it lists are known before its client can ask
	// for one.
	packages := isPackagesIndex(index)
	if want != "" {
		// Named by its sum: it cannot change.
		k, key = immutable, cache.Key("", want)
	}
	if isPinned {
		s.record(name, rel, int64(len(pinned.data)), pinned.sha, true)
		s.cacheBytes.Add(int64(len(pinned.data)))
		http.ServeContent(w, r, path.Base(rel), time.Time{}, bytes.NewReader(pinned.data))
		return
	}
	obj, err := s.cfg.Cache.Get(r.Context(), cache.Request{URL: target, Key: key, SHA256: want, Revalidate: k == metadata, Offline: s.cfg.Offline})
	if err != nil {
		s.fetchFailed(w, r, name, rel, err)
		return
	}
	defer obj.Close()
	if obj.Stale != nil {
		s.cfg.Log.Warn("upstream failed; serving the cached copy", "mirror", name, "path", rel, "err", obj.Stale)
	}
	if obj.Meta.ContentType != "" {
		w.Header().Set("Content-Type", obj.Meta.ContentType)
	}
	if rs := obj.ReadSeeker(); rs != nil {
		// A hit: in memory or in a file.
		s.cacheBytes.Add(obj.Meta.Size)
		s.record(name, rel, obj.Meta.Size, obj.Meta.SHA256, true)
		if k == metadata {
			s.pin(name, rel, target, rs, obj.Meta)
		}
		if packages {
			s.learnPackages(name, target, index, rs)
		}
		if r.Header.Get("Range") != "" {
			http.ServeContent(w, r, path.Base(rel), time.Time{}, obj.ReadSeeker())
			return
		}
		serveWhole(w, r, obj)
		return
	}
	size := obj.Meta.Size
	if r.Method == http.MethodHead {
		// The download goes on without this client.
		if size >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		}
		w.Header().Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Header.Get("Range") != "" || packages ||
		(k == metadata && size >= 0 && size <= maxPinned) || (want != "" && size >= 0 && size <= wholeFirst) {
		// A range, metadata to pin, or a small object to check: the
		// whole object first.
		rs, meta, err := obj.Complete(r.Context())
		if err != nil {
			s.fetchFailed(w, r, name, rel, err)
			return
		}
		s.upstreamBytes.Add(meta.Size)
		s.record(name, rel, meta.Size, meta.SHA256, false)
		if k == metadata {
			s.pin(name, rel, target, rs, meta)
		}
		if packages {
			s.learnPackages(name, target, index, rs)
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			http.Error(w, "reading the cache", http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, path.Base(rel), time.Time{}, rs)
		return
	}
	// Stream as the bytes arrive.
	h := w.Header()
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	n, err := obj.WriteTo(r.Context(), w)
	s.upstreamBytes.Add(n)
	if err != nil {
		if r.Context().Err() == nil {
			s.cfg.Log.Warn("download failed", "mirror", name, "path", rel, "err", err)
		}
		// The status line is out: cutting the connection is the one way
		// left to tell the client its body is incomplete.
		panic(http.ErrAbortHandler)
	}
	rs, meta, err := obj.Complete(r.Context())
	if err != nil {
		return
	}
	s.record(name, rel, meta.Size, meta.SHA256, false)
	if k == metadata {
		s.pin(name, rel, target, rs, meta)
	}
}

var acceptRanges = []string{"bytes"}

// serveWhole sends a whole cached object. A small one leaves corked,
// header and body in one segment (writeCorked). A file's header goes out
// first, on its own, so that its body leaves by sendfile(2) from the
// entry's page-aligned start: net/http would otherwise copy the first 512
// bytes through its buffer to sniff a type, and send the rest from an
// unaligned offset.
func serveWhole(w http.ResponseWriter, r *http.Request, obj *cache.Object) {
	h := w.Header()
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/octet-stream")
	}
	h["Content-Length"] = []string{strconv.FormatInt(obj.Meta.Size, 10)}
	h["Accept-Ranges"] = acceptRanges
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if b := obj.Small(); b != nil {
		writeCorked(w, r, b)
		return
	}
	if obj.Meta.Size > 64<<10 {
		http.NewResponseController(w).Flush()
	}
	io.Copy(w, io.LimitReader(obj.File(), obj.Meta.Size))
}

// route is what a request path under a mirror names: worked out once per
// path, since a build asks for the same objects again and again.
type route struct {
	rel, target string
	kind        kind
	urlKey      string // the object's cache key by URL
}

// maxRoutes bounds the remembered routes; past it they are forgotten and
// worked out again.
const maxRoutes = 1 << 16

func (s *Server) routeOf(name, escaped string) (route, bool) {
	id := name + "/" + escaped
	s.mu.Lock()
	rt, ok := s.routes[id]
	s.mu.Unlock()
	if ok {
		return rt, true
	}
	base, ok := s.mirrors[name]
	if !ok {
		return route{}, false
	}
	rel, ok := cleanRel(escaped)
	if !ok {
		return route{}, false
	}
	u := *base
	u.Path = base.Path + rel
	u.RawPath = ""
	target := u.String()
	rt = route{rel: rel, target: target, kind: classify(rel), urlKey: cache.Key(target, "")}
	s.mu.Lock()
	if len(s.routes) >= maxRoutes {
		s.routes = map[string]route{}
	}
	s.routes[id] = rt
	s.mu.Unlock()
	return rt, true
}

func (s *Server) fetchFailed(w http.ResponseWriter, r *http.Request, name, rel string, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	status := http.StatusBadGateway
	var ue *cache.UpstreamError
	switch {
	case errors.Is(err, cache.ErrNotCached):
		status = http.StatusNotFound
		err = fmt.Errorf("offline: %s/%s is not in the cache", name, rel)
	case errors.As(err, &ue) && ue.Status == http.StatusNotFound:
		status = http.StatusNotFound
	}
	if status == http.StatusBadGateway {
		s.cfg.Log.Warn("download failed", "mirror", name, "path", rel, "err", err)
	}
	// The cache's errors name URLs without their credentials.
	http.Error(w, err.Error(), status)
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

// pinned is metadata held for the rest of the build.
type pinnedObject struct {
	data []byte
	sha  string
}

// pin keeps metadata for the rest of the build, so the build sees one
// snapshot of each repo, and learns the sums of the files repomd.xml and
// .treeinfo list, so they are verified.
func (s *Server) pin(name, rel, target string, r io.ReadSeeker, meta cache.Meta) {
	if meta.Size < 0 || meta.Size > maxPinned {
		return
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return
	}
	data, err := io.ReadAll(io.LimitReader(r, maxPinned))
	if err != nil {
		return
	}
	s.mu.Lock()
	if _, done := s.pinned[target]; done {
		s.mu.Unlock()
		return
	}
	s.pinned[target] = pinnedObject{data, meta.SHA256}
	s.mu.Unlock()
	switch path.Base(rel) {
	case "repomd.xml":
		s.learnRepo(name, target, data)
	case ".treeinfo", "treeinfo":
		s.learn(treeInfoSums(strings.TrimSuffix(target, path.Base(rel)), data))
	case "InRelease", "Release":
		s.learnRelease(target, data)
	}
}

// learnRelease records the sum and the name of every index a Debian
// suite's Release lists, by its own URL and its by-hash URL.
func (s *Server) learnRelease(target string, data []byte) {
	idx := releaseSums(target, data)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, i := range idx {
		s.expected[i.url] = i.sum
		s.aptIndex[i.url] = i.name
	}
}

// learnPackages records the sum of every package a Packages index lists,
// once per index and build. rs is the whole index, checked against its
// Release when the build has one.
func (s *Server) learnPackages(name, target, index string, rs io.ReadSeeker) {
	s.mu.Lock()
	done := s.aptLearned[target]
	s.aptLearned[target] = true
	s.mu.Unlock()
	root, ok := archiveRoot(target)
	if done || !ok {
		return
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return
	}
	sums, err := packagesSums(rs, index, root)
	if err != nil {
		s.cfg.Log.Warn("cannot read a Packages index; its packages will not be verified", "mirror", name, "err", err)
	}
	s.learn(sums)
	rs.Seek(0, io.SeekStart)
}

// learn records the sums of objects by URL.
func (s *Server) learn(sums map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for u, sum := range sums {
		s.expected[u] = sum
	}
}

// learnRepo records the sha256 of every repodata file repomd.xml lists and
// of every package primary.xml lists.
func (s *Server) learnRepo(name, repomdURL string, data []byte) {
	repoBase := strings.TrimSuffix(repomdURL, "repodata/repomd.xml")
	sums, primaryHref, err := repomdSums(data)
	if err != nil {
		s.cfg.Log.Warn("cannot read repomd.xml; its files will not be verified", "mirror", name, "err", err)
		return
	}
	abs := map[string]string{}
	for href, sum := range sums {
		abs[repoBase+href] = sum
	}
	s.learn(abs)
	if primaryHref == "" {
		return
	}
	// The installer needs primary.xml next anyway: reading it now, through
	// the cache, costs nothing extra.
	primaryURL := repoBase + primaryHref
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	obj, err := s.cfg.Cache.Get(ctx, cache.Request{URL: primaryURL, SHA256: sums[primaryHref], Offline: s.cfg.Offline})
	if err != nil {
		s.cfg.Log.Warn("cannot fetch primary metadata; packages will not be verified", "mirror", name, "err", err)
		return
	}
	defer obj.Close()
	rs, _, err := obj.Complete(ctx)
	if err != nil {
		s.cfg.Log.Warn("cannot fetch primary metadata; packages will not be verified", "mirror", name, "err", err)
		return
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return
	}
	pkgs, err := primarySums(rs, strings.HasSuffix(primaryHref, ".gz"))
	if err != nil {
		s.cfg.Log.Warn("cannot read primary metadata; packages will not be verified", "mirror", name, "err", err)
	}
	abs = map[string]string{}
	for href, sum := range pkgs {
		abs[repoBase+href] = sum
	}
	s.learn(abs)
}
