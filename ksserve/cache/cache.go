// Package cache is kiln's on-disk object cache: the mirror proxy's store,
// shared by every kiln on the host.
//
// Get is the whole API. It returns an object from the cache, or starts one
// upstream fetch for it that every concurrent Get of the same key, in this
// process or another, shares: within a process the callers follow the one
// download as its bytes arrive (singleflight is the model, but followers
// stream); across processes an object is locked while it is fetched (a
// one-byte OFD record lock in the cache's lock file, at an offset from the
// key), so a second kiln waits and then serves the first one's copy.
//
// # Never a wrong byte
//
// An object whose sha256 is known (from repository metadata) is held back
// by its last chunk until the sum matches: a follower never has the whole
// body of a mismatched object, and the download's error reaches it instead
// of the end of the body. An object that arrives with neither a length
// nor a known sum is passed through but never cached, since a short body
// could not be told from a whole one. An entry whose size or sum does not
// match its metadata is removed and fetched again. Downloads go to
// temporary files that their process holds locked, so Open removes those
// of processes that died.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Cache is an open cache directory. Its layout: objects/XX/KEY is an entry
// (its Meta, then its bytes: see entry.go); tmp/ holds downloads in
// progress; lock is where objects are locked.
type Cache struct {
	dir      string
	client   *http.Client
	lockFile *os.File
	retries  int
	backoff  time.Duration
	// noTmpfile makes downloads named files, as on a file system without
	// O_TMPFILE; for tests.
	noTmpfile bool

	downloads sync.WaitGroup

	mu       sync.Mutex
	inflight map[string]*fetch
	verified map[string]verified // entries whose sum this process checked
	hot      map[string]*Object  // small checked entries held in memory
	hotBytes int64
}

// verified is an entry this process checked, with the file's size and
// time then: a later change of either means it is checked again.
type verified struct {
	meta  *Meta
	size  int64
	mtime time.Time
}

// Meta is what the cache knows of an object.
type Meta struct {
	// URL is where it was fetched from, credentials removed.
	URL string `json:"url"`
	// Size is its length; -1 while unknown (a download without a length).
	Size int64 `json:"size"`
	// SHA256 is the sum of its bytes, once they are all there.
	SHA256       string    `json:"sha256"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	ContentType  string    `json:"content_type,omitempty"`
	Fetched      time.Time `json:"fetched"`
}

// Option configures Open.
type Option func(*Cache)

// WithRetries sets how often a failed upstream request is retried before
// any byte of its body was taken (default 2), and the wait before the
// first retry, which grows linearly.
func WithRetries(n int, backoff time.Duration) Option {
	return func(c *Cache) { c.retries, c.backoff = n, backoff }
}

// Open opens, creating it, the cache in dir. client makes the upstream
// requests. Downloads that dead processes left in tmp/ are removed.
func Open(dir string, client *http.Client, opts ...Option) (*Cache, error) {
	for _, d := range []string{"objects", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("opening cache %s: %w", dir, err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	c := &Cache{dir: dir, client: client, lockFile: lf, retries: 2, backoff: 500 * time.Millisecond,
		inflight: map[string]*fetch{}, verified: map[string]verified{}, hot: map[string]*Object{}}
	for _, o := range opts {
		o(c)
	}
	c.removeDeadTemps()
	return c, nil
}

// Close waits for running downloads and releases the cache.
func (c *Cache) Close() error {
	c.downloads.Wait()
	return c.lockFile.Close()
}

// Wait returns once every download this process started has ended.
func (c *Cache) Wait() { c.downloads.Wait() }

// Dir is the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// DefaultDir is ~/.cache/kiln/mirror (or $XDG_CACHE_HOME/kiln/mirror).
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kiln", "mirror"), nil
}

// Key names an object: by content when its sha256 is known, which keeps
// identical files from two repos once, else by URL.
func Key(rawURL, sum string) string {
	if sum != "" {
		return "sha256-" + sum
	}
	h := sha256.Sum256([]byte(rawURL))
	return "url-" + hex.EncodeToString(h[:])
}

func (c *Cache) dataPath(key string) string {
	return filepath.Join(c.dir, "objects", key[len(key)-2:], key)
}

// metaPath is where kiln before entry headers kept an object's Meta; such
// entries are damaged to this one, and removed with it.
func (c *Cache) metaPath(key string) string { return c.dataPath(key) + ".json" }

// Request is what Get is asked for.
type Request struct {
	// URL is the upstream object.
	URL string
	// Key names it in the cache: Key(URL, SHA256) when empty, which a
	// caller that asks for one object often can work out once.
	Key string
	// SHA256, when known, is checked before the object's last bytes are
	// given out, and names the object in the cache.
	SHA256 string
	// Revalidate asks the upstream whether a cached copy is current (a
	// conditional GET), for metadata that may change under its name.
	Revalidate bool
	// Offline serves from the cache alone.
	Offline bool
}

// ErrNotCached is Get's error for an object an offline request does not
// find.
var ErrNotCached = errors.New("not in the cache")

// UpstreamError is a failed upstream request. Its text never holds the
// URL's credentials.
type UpstreamError struct {
	URL    string // redacted
	Status int    // the upstream's status, or 0 when it gave none
	Err    error
}

func (e *UpstreamError) Error() string { return fmt.Sprintf("fetching %s: %v", e.URL, e.Err) }
func (e *UpstreamError) Unwrap() error { return e.Err }

// Redact removes a URL's password and user name, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// Get returns the object req names: from the cache, or from the one
// upstream fetch of it, which it starts when none runs. The fetch is not
// tied to ctx, which bounds only the wait for the upstream's answer: other
// callers may be following it. The caller must Close the object.
func (c *Cache) Get(ctx context.Context, req Request) (*Object, error) {
	key := req.Key
	if key == "" {
		key = Key(req.URL, req.SHA256)
	}
	if !req.Revalidate || req.Offline {
		if o := c.small(key); o != nil {
			return o, nil
		}
	}
	prev, f, err := c.lookup(key)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Damaged: fetched again.
		c.remove(key)
		prev, f = nil, nil
	}
	if f != nil && (!req.Revalidate || req.Offline) {
		return &Object{Meta: *prev, Cached: true, file: f}, nil
	}
	if req.Offline {
		return nil, fmt.Errorf("%s: %w", Redact(req.URL), ErrNotCached)
	}
	if f != nil {
		f.Close()
	}
	fe := c.join(key, req)
	select {
	case <-fe.ready:
	case <-ctx.Done():
		fe.release()
		return nil, ctx.Err()
	}
	fe.mu.Lock()
	res := fe.result
	fe.mu.Unlock()
	switch {
	case res.cached:
		// Nothing fetched: the cached copy is current (304), another
		// process had just fetched it, or the upstream failed and a copy
		// was there.
		fe.release()
		m, file, err := c.lookup(key)
		if err != nil {
			return nil, fmt.Errorf("cache: reading %s: %w", key, err)
		}
		return &Object{Meta: *m, Cached: true, Stale: res.stale, file: file}, nil
	case res.err != nil:
		fe.release()
		return nil, res.err
	}
	return &Object{Meta: fe.meta, fetch: fe}, nil
}

// lookup returns the cached entry for key, positioned at its first byte
// (seekBody), checking its size against its metadata each time and its
// sum once per process (again after it changed on disk). A missing entry
// is fs.ErrNotExist; any other error means it is damaged.
func (c *Cache) lookup(key string) (*Meta, *os.File, error) {
	f, err := os.Open(c.dataPath(key))
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	c.mu.Lock()
	v, ok := c.verified[key]
	c.mu.Unlock()
	if ok && v.size == st.Size() && v.mtime.Equal(st.ModTime()) {
		c.touch(key, st)
		if err := seekBody(f); err != nil {
			f.Close()
			return nil, nil, err
		}
		return v.meta, f, nil
	}
	m, err := check(key, f, st.Size())
	if err == nil {
		err = seekBody(f)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	c.mu.Lock()
	c.verified[key] = verified{m, st.Size(), st.ModTime()}
	c.mu.Unlock()
	return m, f, nil
}

// check reads an entry's header and checks the bytes against it.
func check(key string, f *os.File, size int64) (*Meta, error) {
	m, err := readHeader(f)
	if err != nil {
		return nil, fmt.Errorf("cache entry %s: %w", key, err)
	}
	if size != HeaderSize+m.Size {
		return nil, fmt.Errorf("cache entry %s: %d bytes, its header says %d", key, size-HeaderSize, m.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, HeaderSize, m.Size)); err != nil {
		return nil, fmt.Errorf("cache entry %s: reading: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
		return nil, fmt.Errorf("cache entry %s: sha256 %s, its header says %s", key, got, m.SHA256)
	}
	return m, nil
}

// SmallMax bounds the objects a hit serves from memory (Object.Small)
// rather than from a file: a repository's many small packages and
// metadata files, for which opening, reading and closing a file costs more
// than sending it. HotMax bounds the memory they take; past it, entries
// chosen at random give way. An entry enters only after its sum was
// checked, and leaves when the entry is removed.
const (
	SmallMax = 64 << 10
	HotMax   = 64 << 20
)

// small returns a hit on a small entry this process has checked: from
// memory, or read from its file and kept in memory; nil when it has no
// such entry. A file whose size or time changed on disk is left to lookup,
// which checks it again.
func (c *Cache) small(key string) *Object {
	c.mu.Lock()
	if o := c.hot[key]; o != nil {
		c.mu.Unlock()
		return o
	}
	v, ok := c.verified[key]
	c.mu.Unlock()
	if !ok || v.meta.Size > SmallMax {
		return nil
	}
	fd, err := unix.Open(c.dataPath(key), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Size != v.size || !time.Unix(st.Mtim.Unix()).Equal(v.mtime) {
		return nil
	}
	b := make([]byte, v.meta.Size+1)
	n, err := unix.Pread(fd, b, HeaderSize)
	if err != nil || int64(n) != v.meta.Size {
		return nil
	}
	o := &Object{Meta: *v.meta, Cached: true, small: b[:n:n]}
	c.mu.Lock()
	for k, old := range c.hot {
		if c.hotBytes+int64(n) <= HotMax {
			break
		}
		delete(c.hot, k)
		c.hotBytes -= int64(len(old.small))
	}
	if _, ok := c.verified[key]; ok && c.hot[key] == nil {
		c.hot[key] = o
		c.hotBytes += int64(n)
	}
	c.mu.Unlock()
	return o
}

// Remove drops key's entry, for one a reader found damaged.
func (c *Cache) Remove(key string) { c.remove(key) }

func (c *Cache) remove(key string) {
	os.Remove(c.metaPath(key))
	os.Remove(c.dataPath(key))
	c.mu.Lock()
	delete(c.verified, key)
	if o := c.hot[key]; o != nil {
		delete(c.hot, key)
		c.hotBytes -= int64(len(o.small))
	}
	c.mu.Unlock()
}

// lockObject takes the cache-wide lock of one object: a one-byte OFD
// record lock in the lock file at an offset from the key's hash, so
// objects lock independently and no file is made per object. OFD locks
// conflict between processes (each opens the file itself); within one
// process, join already lets one fetch run per key.
func (c *Cache) lockObject(key string) (unlock func(), err error) {
	h := sha256.Sum256([]byte(key))
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: int64(binary.BigEndian.Uint64(h[:8]) >> 2), Len: 1}
	fd := c.lockFile.Fd()
	for {
		err := unix.FcntlFlock(fd, unix.F_OFD_SETLKW, &lk)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("cache: locking %s: %w", key, err)
		}
	}
	return func() {
		ul := lk
		ul.Type = unix.F_UNLCK
		unix.FcntlFlock(fd, unix.F_OFD_SETLK, &ul)
	}, nil
}

// lockWhole takes a whole-file OFD lock on f without waiting.
func lockWhole(f *os.File) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
}

// removeDeadTemps removes downloads no process holds: a running download
// keeps its temporary file locked, and the lock dies with its process.
func (c *Cache) removeDeadTemps() {
	tmps, _ := filepath.Glob(filepath.Join(c.dir, "tmp", "*"))
	for _, t := range tmps {
		f, err := os.OpenFile(t, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if lockWhole(f) == nil {
			os.Remove(t)
		}
		f.Close()
	}
}

// Size returns the bytes the cache holds and how many objects.
func (c *Cache) Size() (bytes int64, objects int, err error) {
	err = c.walk(func(p string, d fs.DirEntry) error {
		info, err := d.Info()
		if err != nil {
			return err
		}
		bytes += info.Size()
		objects++
		return nil
	})
	return bytes, objects, err
}

// walk calls fn for each object and each whole file (File), but not for
// a file's download in progress.
func (c *Cache) walk(fn func(p string, d fs.DirEntry) error) error {
	for _, sub := range []string{"objects", "files"} {
		err := filepath.WalkDir(filepath.Join(c.dir, sub), func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == filepath.Join(c.dir, sub) {
				return filepath.SkipDir
			}
			if err != nil || d.IsDir() || strings.HasSuffix(p, ".part") {
				return err
			}
			return fn(p, d)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Prune removes objects not fetched or used since before, then the least
// recently used until the cache holds at most maxBytes (no limit when
// negative). It returns the bytes freed.
func (c *Cache) Prune(before time.Time, maxBytes int64) (int64, error) {
	type obj struct {
		data  string
		size  int64
		mtime time.Time
	}
	var objs []obj
	err := c.walk(func(p string, d fs.DirEntry) error {
		info, err := d.Info()
		if err != nil {
			return err
		}
		objs = append(objs, obj{p, info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		return 0, err
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].mtime.Before(objs[j].mtime) })
	var total int64
	for _, o := range objs {
		total += o.size
	}
	var freed int64
	for _, o := range objs {
		if !o.mtime.Before(before) && (maxBytes < 0 || total <= maxBytes) {
			continue
		}
		if err := os.Remove(o.data); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return freed, err
		}
		total -= o.size
		freed += o.size
	}
	c.removeDeadTemps()
	return freed, nil
}

// touchEvery is how stale an object's time may get before a hit renews
// it, for Prune's order; renewing it on every hit would cost two system
// calls a request.
const touchEvery = time.Hour

func (c *Cache) touch(key string, st os.FileInfo) {
	if time.Since(st.ModTime()) < touchEvery {
		return
	}
	now := time.Now()
	if os.Chtimes(c.dataPath(key), now, now) != nil {
		return
	}
	if nst, err := os.Stat(c.dataPath(key)); err == nil {
		c.mu.Lock()
		if v, ok := c.verified[key]; ok && v.size == nst.Size() {
			v.mtime = nst.ModTime()
			c.verified[key] = v
		}
		c.mu.Unlock()
	}
}
