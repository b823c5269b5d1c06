package ksserve

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-build/kiln/ksserve/cache"
)

// Config describes what one build serves.
type Config struct {
	// Kickstart is the rendered kickstart, served at /TOKEN/ks.cfg. It
	// holds secrets: it is never logged.
	Kickstart []byte
	// Mirrors maps a name to an upstream base URL, served at
	// /TOKEN/mirror/NAME/. Nothing else is ever fetched.
	Mirrors map[string]string
	// FilesDir is served at /TOKEN/files/; empty for none.
	FilesDir string
	// Cache holds mirrored objects; nil with Mirrors is an error.
	Cache *cache.Cache
	// Offline serves mirrors from the cache alone.
	Offline bool
	// Token is the capability in every path; empty means a random one.
	Token string
	// Log gets one line per request, without the token.
	Log *slog.Logger
	// Lists are the kickstart's mirror lists and metalinks, resolved;
	// each is served at /TOKEN/list/NAME with its chosen mirror's proxy
	// as its one entry, and that mirror is proxied as NAME.
	Lists []MirrorList
	// Expected are sha256 sums of objects by URL (a liveimg's
	// --checksum), checked as repository metadata's are.
	Expected map[string]string
	// Reports accepts POSTs at /TOKEN/report/NAME, up to MaxReport bytes
	// each, kept for Report: how a build's own %post tells kiln what the
	// installed system holds.
	Reports bool
	// ISOs are installer ISOs served as install trees, read in place, at
	// /TOKEN/iso/N/.
	ISOs []*ISO
	// Boot, with ISOs, serves network boot files at /TOKEN/boot/.
	Boot *Boot
	// Base is this server's URL as its clients reach it, for the boot
	// scripts; empty means the one each request came in by. A kickstart
	// rewritten with AnyHost gets the same.
	Base string
}

// MaxReport bounds one report's size.
const MaxReport = 16 << 20

// Server is the kickstart server, mirror proxy and file server of a build.
type Server struct {
	cfg     Config
	token   string
	prefix  string // "/TOKEN/"
	mirrors map[string]*url.URL
	lists   map[string]MirrorList
	files   *os.Root

	mu       sync.Mutex
	pinned   map[string]pinnedObject // metadata served in this build, by URL
	expected map[string]string       // sha256 of objects repo metadata lists, by URL
	// aptIndex names the Debian indices a pinned Release lists, by URL:
	// a by-hash URL does not say what it is. aptLearned holds the
	// Packages indices read in this build.
	aptIndex   map[string]string
	aptLearned map[string]bool
	objects    map[objectID]*ObjectRecord
	routes     map[string]route // mirror requests' paths, worked out

	reports map[string][]byte
	preseed []byte

	upstreamBytes atomic.Int64
	cacheBytes    atomic.Int64
	servedBytes   atomic.Uint64
	requests      atomic.Uint64
}

// ObjectRecord is one object the proxy served, however many times.
// Records are per object, not per request, so that a kiln serve that runs
// for weeks holds one per object of its mirrors, not one per request.
type ObjectRecord struct {
	Mirror string `json:"mirror"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Hit says every request for it was served from the cache: nothing
	// of it came from upstream.
	Hit bool `json:"hit"`
	// Requests counts the requests for it, Hits those served from the
	// cache.
	Requests int `json:"requests"`
	Hits     int `json:"hits"`
}

// objectID names an object in the records.
type objectID struct{ mirror, path string }

// Stats is the proxy's accounting for a build.
type Stats struct {
	UpstreamBytes int64          `json:"upstream_bytes"`
	CacheBytes    int64          `json:"cache_bytes"`
	Objects       []ObjectRecord `json:"objects"`
}

var mirrorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, mirrors: map[string]*url.URL{}, pinned: map[string]pinnedObject{}, expected: map[string]string{},
		aptIndex: map[string]string{}, aptLearned: map[string]bool{},
		objects: map[objectID]*ObjectRecord{}, routes: map[string]route{}}
	if s.cfg.Log == nil {
		s.cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.token = cfg.Token
	if s.token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		s.token = hex.EncodeToString(b)
	}
	s.prefix = "/" + s.token + "/"
	mirrors := map[string]string{}
	for n, u := range cfg.Mirrors {
		mirrors[n] = u
	}
	s.lists = map[string]MirrorList{}
	for _, ml := range cfg.Lists {
		if _, ok := mirrors[ml.Name]; !ok {
			mirrors[ml.Name] = ml.Mirror
		}
		s.lists[ml.Name] = ml
	}
	for u, sum := range cfg.Expected {
		s.expected[u] = strings.ToLower(sum)
	}
	for name, raw := range mirrors {
		if !mirrorName.MatchString(name) {
			return nil, fmt.Errorf("mirror name %q: use letters, digits, '.', '_' and '-'", name)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("mirror %s: %q is not an http or https URL", name, cache.Redact(raw))
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		u.RawQuery, u.Fragment = "", ""
		s.mirrors[name] = u
	}
	if len(s.mirrors) > 0 && cfg.Cache == nil {
		return nil, errors.New("mirrors need a cache")
	}
	if cfg.Boot != nil {
		if _, _, ok := s.bootISOs(); !ok {
			return nil, fmt.Errorf("network boot: none of the ISOs holds an installer kernel and initrd: %w", ErrNotInstallTree)
		}
	}
	if cfg.FilesDir != "" {
		root, err := os.OpenRoot(cfg.FilesDir)
		if err != nil {
			return nil, fmt.Errorf("files directory: %w", err)
		}
		s.files = root
	}
	return s, nil
}

// Close releases the files directory.
func (s *Server) Close() error {
	if s.files != nil {
		return s.files.Close()
	}
	return nil
}

// SetKickstart replaces the kickstart served, for callers that rewrite
// it with this server's URLs after New.
func (s *Server) SetKickstart(ks []byte) {
	s.mu.Lock()
	s.cfg.Kickstart = ks
	s.mu.Unlock()
}

// anyHostName is in every form of AnyHost that withHost replaces.
const anyHostName = "kiln-host"

// sedLiteral escapes a host for a basic regular expression, as
// kickstart.SedCommand does.
var sedLiteral = strings.NewReplacer(".", `\.`, "[", `\[`, "]", `\]`)

// withHost puts base, the server as a client reaches it, where a served
// document names AnyHost, in its three forms: the URL; the host alone
// (a preseed's mirror/http/hostname); and the host as a sed pattern, in
// the script that gives the installed system its own URLs back.
func withHost(doc []byte, base string) []byte {
	host, anyHost := strings.TrimPrefix(base, "http://"), strings.TrimPrefix(AnyHost, "http://")
	doc = bytes.ReplaceAll(doc, []byte(AnyHost), []byte(base))
	doc = bytes.ReplaceAll(doc, []byte(sedLiteral.Replace(anyHost)), []byte(sedLiteral.Replace(host)))
	return bytes.ReplaceAll(doc, []byte(anyHost), []byte(host))
}

// serveDocument serves the kickstart or the preseed, kind, naming kiln as
// this client reaches it, and logs which machine took it, never what it
// holds.
func (s *Server) serveDocument(w *countingWriter, r *http.Request, name string, doc []byte, kind string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if bytes.Contains(doc, []byte(anyHostName)) {
		base, ok := s.base(r)
		if !ok {
			http.Error(w, "bad Host header", http.StatusBadRequest)
			return
		}
		doc = withHost(doc, base)
	}
	before := w.n
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(doc))
	s.cfg.Log.Info(kind+" fetched", "client", r.RemoteAddr, "at", time.Now().UTC().Format(time.RFC3339), "method", r.Method, "status", w.status, "bytes", w.n-before)
}

// SetPreseed sets the Debian preseed served at PreseedPath. AnyHost in
// it, and its host part alone (mirror/http/hostname has no scheme), are
// replaced per request with the address the client came by.
func (s *Server) SetPreseed(p []byte) {
	s.mu.Lock()
	s.preseed = p
	s.mu.Unlock()
}

// PreseedPath is the path of the preseed, "/TOKEN/preseed.cfg".
func (s *Server) PreseedPath() string { return "/" + s.token + "/preseed.cfg" }

// Token returns the capability token.
func (s *Server) Token() string { return s.token }

// KickstartPath is the path of the kickstart, e.g. "/TOKEN/ks.cfg".
func (s *Server) KickstartPath() string { return "/" + s.token + "/ks.cfg" }

// MirrorPath is the path prefix of a mirror, "/TOKEN/mirror/NAME/".
func (s *Server) MirrorPath(name string) string { return "/" + s.token + "/mirror/" + name + "/" }

// ListPath is the path of the mirror list or metalink served for the
// upstream name.
func (s *Server) ListPath(name string) string { return "/" + s.token + "/list/" + name }

// FilesPath is the path prefix of the files directory.
func (s *Server) FilesPath() string { return "/" + s.token + "/files/" }

// Activity counts bytes served; it moves whenever the guest fetches
// anything, which the VM inactivity watchdog watches.
func (s *Server) Activity() uint64 { return s.servedBytes.Load() + s.requests.Load() }

// Totals returns the byte counts so far, without the per-object records.
func (s *Server) Totals() Stats {
	return Stats{UpstreamBytes: s.upstreamBytes.Load(), CacheBytes: s.cacheBytes.Load()}
}

// Stats returns the accounting so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs := make([]ObjectRecord, 0, len(s.objects))
	for _, o := range s.objects {
		r := *o
		r.Hit = r.Hits == r.Requests
		objs = append(objs, r)
	}
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].Mirror != objs[j].Mirror {
			return objs[i].Mirror < objs[j].Mirror
		}
		return objs[i].Path < objs[j].Path
	})
	return Stats{UpstreamBytes: s.upstreamBytes.Load(), CacheBytes: s.cacheBytes.Load(), Objects: objs}
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	start := time.Now()
	rw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
	route := s.route(rw, r)
	s.servedBytes.Add(uint64(rw.n))
	// Building the arguments costs allocations even when the line is
	// dropped: ask first.
	if s.cfg.Log.Enabled(r.Context(), slog.LevelDebug) {
		s.cfg.Log.Debug("request", "method", r.Method, "route", route, "status", rw.status, "bytes", rw.n, "ms", time.Since(start).Milliseconds())
	}
}

// Fetch GETs path through the server's own handler, with no connection:
// what kiln itself reads of a mirror (an install tree's .treeinfo, kernel
// and initrd) goes through the same cache, checksums and byte counts as
// the VM's requests, and no loopback socket. A status other than 200 is
// an error carrying the start of the body.
func (s *Server) Fetch(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1"+path, nil)
	if err != nil {
		return err
	}
	rw := &fetchWriter{header: http.Header{}, w: w, status: http.StatusOK}
	s.ServeHTTP(rw, req)
	if rw.err != nil {
		return rw.err
	}
	if rw.status != http.StatusOK {
		return fmt.Errorf("%s: %d %s: %s", path, rw.status, http.StatusText(rw.status), strings.TrimSpace(rw.body.String()))
	}
	return nil
}

// fetchWriter is the ResponseWriter of Fetch: a 200's body goes to w, any
// other's first 512 bytes are kept for the error.
type fetchWriter struct {
	header http.Header
	w      io.Writer
	status int
	wrote  bool
	body   strings.Builder
	err    error
}

func (f *fetchWriter) Header() http.Header { return f.header }

func (f *fetchWriter) WriteHeader(code int) {
	if !f.wrote {
		f.status, f.wrote = code, true
	}
}

func (f *fetchWriter) Write(p []byte) (int, error) {
	f.WriteHeader(http.StatusOK)
	if f.status != http.StatusOK {
		if f.body.Len() < 512 {
			f.body.Write(p[:min(len(p), 512-f.body.Len())])
		}
		return len(p), nil
	}
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.w.Write(p)
	if err != nil {
		f.err = err
	}
	return n, err
}

// ReportPath is the path a report named name is POSTed to.
func (s *Server) ReportPath(name string) string { return "/" + s.token + "/report/" + name }

// Report returns the last report POSTed under name, and whether there was
// one.
func (s *Server) Report(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.reports[name]
	return b, ok
}

func (s *Server) receiveReport(w http.ResponseWriter, r *http.Request, name string) {
	if !s.cfg.Reports || !mirrorName.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxReport+1))
	if err != nil {
		http.Error(w, "reading the report: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(b) > MaxReport {
		http.Error(w, "report too large", http.StatusRequestEntityTooLarge)
		return
	}
	s.mu.Lock()
	if s.reports == nil {
		s.reports = map[string][]byte{}
	}
	s.reports[name] = b
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) route(w *countingWriter, r *http.Request) string {
	// Work on the raw path: an encoded slash or dot must not become a
	// separator after the routing decision.
	raw := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(raw, s.prefix)
	if !ok {
		http.NotFound(w, r)
		return "unknown"
	}
	if name, ok := strings.CutPrefix(rest, "report/"); ok {
		s.receiveReport(w, r, name)
		return "report"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return "method"
	}
	switch {
	case rest == "ks.cfg":
		s.mu.Lock()
		ks := s.cfg.Kickstart
		s.mu.Unlock()
		s.serveDocument(w, r, "ks.cfg", ks, "kickstart")
		return "kickstart"
	case rest == "preseed.cfg":
		s.mu.Lock()
		doc := s.preseed
		s.mu.Unlock()
		if doc == nil {
			http.NotFound(w, r)
			return "unknown"
		}
		s.serveDocument(w, r, "preseed.cfg", doc, "preseed")
		return "preseed"
	case strings.HasPrefix(rest, "iso/"):
		n, p, _ := strings.Cut(strings.TrimPrefix(rest, "iso/"), "/")
		i, err := strconv.Atoi(n)
		if err != nil || i < 0 || i >= len(s.cfg.ISOs) || strconv.Itoa(i) != n {
			http.NotFound(w, r)
			return "unknown"
		}
		rel, ok := cleanRel(p)
		if !ok {
			http.Error(w, "bad path", http.StatusBadRequest)
			return "iso"
		}
		s.cfg.ISOs[i].serve(w, r, rel)
		return "iso/" + n
	case strings.HasPrefix(rest, "boot/"):
		s.serveBoot(w, r, strings.TrimPrefix(rest, "boot/"))
		return "boot"
	case strings.HasPrefix(rest, "mirror/"):
		name, p, _ := strings.Cut(strings.TrimPrefix(rest, "mirror/"), "/")
		s.serveMirror(w, r, name, p)
		return "mirror/" + name
	case strings.HasPrefix(rest, "list/"):
		ml, ok := s.lists[strings.TrimPrefix(rest, "list/")]
		if !ok {
			http.NotFound(w, r)
			return "unknown"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ml.Kind == "metalink" {
			w.Header().Set("Content-Type", "application/metalink+xml")
		}
		// The mirror's proxy as this client reaches this server.
		doc := ml.render("http://" + r.Host + s.MirrorPath(ml.Name))
		http.ServeContent(w, r, "list", time.Time{}, bytes.NewReader(doc))
		return "list"
	case strings.HasPrefix(rest, "files/"):
		s.serveFile(w, r, strings.TrimPrefix(rest, "files/"))
		return "files"
	}
	http.NotFound(w, r)
	return "unknown"
}

// cleanRel decodes an escaped relative path and refuses anything that
// could leave its root: "..", empty or absolute segments, encoded slashes,
// backslashes and NULs.
func cleanRel(escaped string) (string, bool) {
	if escaped == "" {
		return "", false
	}
	var parts []string
	for _, seg := range strings.Split(escaped, "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "", false
		}
		if dec == "" && len(parts) > 0 {
			continue // a doubled or trailing slash
		}
		if dec == "" || dec == "." || dec == ".." || strings.ContainsAny(dec, "/\\\x00") {
			return "", false
		}
		parts = append(parts, dec)
	}
	return strings.Join(parts, "/"), true
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, escaped string) {
	if s.files == nil {
		http.NotFound(w, r)
		return
	}
	rel, ok := cleanRel(escaped)
	if !ok {
		http.Error(w, "bad path", http.StatusBadRequest)
		return
	}
	f, err := s.files.Open(rel)
	if err != nil {
		// Not found, a symlink out of the directory, or a permission error:
		// all are "no such file" to the client.
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, path.Base(rel), st.ModTime(), f)
}

// countingWriter counts the body bytes and remembers the status.
type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps sendfile(2) for cache hits.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
