package ksserve

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Cache is the on-disk mirror cache, shared by every build on the host.
// Objects are files under dir/objects, each with a JSON metadata file
// beside it.
type Cache struct {
	dir      string
	client   *http.Client
	lockFile *os.File // objects' cross-process locks (lockObject)

	// downloads counts running downloads; a client can have every byte
	// before the download has published its entry.
	downloads sync.WaitGroup

	mu            sync.Mutex
	inflight      map[string]*fetch
	locking       map[string]chan struct{} // misses taking an object's lock, closed when done
	verified      map[string]verifiedStamp // objects whose sha256 was checked by this process
	metas         map[string]*entryMeta    // their metadata, so a hit reads no JSON
	packs         map[string]*pack         // pack files known, by path
	index         map[string]*packEntry    // objects in packs, by key
	cur           *pack                    // this process's pack for new small objects
	packsLoaded   time.Time                // when the pack indexes were last read
	packDirTime   time.Time                // the pack directory's time when it was last listed
	packDirListed time.Time                // when that was

	// Retries is how many times a failed upstream request is retried
	// before any byte of it was sent on; default 2.
	Retries int
}

type verifiedStamp struct {
	size  int64
	mtime time.Time
}

// entryMeta is what the cache knows of an object.
type entryMeta struct {
	URL          string    `json:"url"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	ContentType  string    `json:"content_type,omitempty"`
	Fetched      time.Time `json:"fetched"`
}

// OpenCache opens (creating) a cache in dir. client fetches from upstreams.
func OpenCache(dir string, client *http.Client) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "objects"), 0o755); err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	for _, d := range []string{"tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("opening cache %s: %w", dir, err)
		}
	}
	c := &Cache{dir: dir, client: client, inflight: map[string]*fetch{}, locking: map[string]chan struct{}{}, verified: map[string]verifiedStamp{},
		metas: map[string]*entryMeta{}, packs: map[string]*pack{}, index: map[string]*packEntry{}, Retries: 2}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening cache %s: %w", dir, err)
	}
	c.lockFile = lf
	c.mu.Lock()
	c.loadPacks()
	c.mu.Unlock()
	return c, nil
}

// DefaultCacheDir is ~/.cache/kiln/mirror (or $XDG_CACHE_HOME/kiln/mirror).
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "kiln", "mirror"), nil
}

// objectKey names an object: by content when its sha256 is known, which
// shares identical files between repos, else by URL.
func objectKey(url, sha string) string {
	if sha != "" {
		return "sha256-" + sha
	}
	h := sha256.Sum256([]byte(url))
	return "url-" + hex.EncodeToString(h[:])
}

func (c *Cache) dataPath(key string) string {
	return filepath.Join(c.dir, "objects", key[len(key)-2:], key)
}

func (c *Cache) metaPath(key string) string { return c.dataPath(key) + ".json" }

// object is a cached object's content: a file, or a region of a pack.
type object interface {
	io.ReadSeeker
	io.Closer
}

// lookup returns the cached object for key, checking that its size is what
// the metadata says and, once per process, that its sha256 is. After that
// check a hit costs one open and one fstat, or nothing for a packed object.
func (c *Cache) lookup(key string) (*entryMeta, object, error) {
	if m, o, found, err := c.lookupPacked(key); found {
		return m, o, err
	}
	f, err := os.Open(c.dataPath(key))
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	stamp := verifiedStamp{st.Size(), st.ModTime()}
	c.mu.Lock()
	m, ok := c.metas[key]
	ok = ok && c.verified[key] == stamp
	c.mu.Unlock()
	if ok {
		return m, f, nil
	}
	b, err := os.ReadFile(c.metaPath(key))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	m = &entryMeta{}
	if err := json.Unmarshal(b, m); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cache entry %s: bad metadata: %w", key, err)
	}
	if st.Size() != m.Size {
		f.Close()
		return nil, nil, fmt.Errorf("cache entry %s: size %d, metadata says %d: corrupt", key, st.Size(), m.Size)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cache entry %s: reading: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
		f.Close()
		return nil, nil, fmt.Errorf("cache entry %s: sha256 %s, want %s: corrupt", key, got, m.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	c.mu.Lock()
	c.verified[key] = stamp
	c.metas[key] = m
	c.mu.Unlock()
	return m, f, nil
}

// remove deletes an entry, for one found corrupt.
func (c *Cache) remove(key string) {
	os.Remove(c.metaPath(key))
	os.Remove(c.dataPath(key))
	c.mu.Lock()
	delete(c.verified, key)
	delete(c.metas, key)
	delete(c.index, key)
	c.mu.Unlock()
}

// fetch is one download in progress. Readers follow the temporary file as
// it grows, so every client asking for the object while it downloads is
// served from the one upstream request.
type fetch struct {
	key, url, want string

	ready     chan struct{} // closed once the upstream answered, or the fetch failed
	readyOnce sync.Once
	started   bool      // the upstream sent 200 and the body is coming
	meta      entryMeta // valid after ready when started
	tmp       *os.File  // the temporary file, or the pack, being written
	base      int64     // where the object starts in tmp (non-zero in a pack)
	pack      *pack     // the pack tmp is, or nil: a pack is not this fetch's to close

	mu      sync.Mutex
	cond    *sync.Cond
	written int64
	done    bool
	err     error
	readers int
	hit     bool   // the upstream said 304: the cached copy is current
	sum     string // the content's sha256, once complete
	unlock  func() // releases the object's lock, held until the fetch ends
}

// sha256 returns the content's checksum once the download is complete.
func (f *fetch) sha256() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sum
}

// bufPool holds the copy buffers of downloads and of the clients that
// follow them; allocating 256 KiB per small object would keep the
// collector busy clearing memory.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// errNotModified ends a revalidation whose cached copy is still current.
var errNotModified = errors.New("not modified")

// startMiss is start for an object the cache does not have. Other kiln
// processes share the cache, so the object is locked while it is fetched:
// a second process waits for the first to publish it and then serves it
// from the cache (m and o, with a nil fetch) instead of fetching it again.
// Within this process, requests join the running fetch as start does.
// The fetch runs in the caller's goroutine (runInline): for a small
// object, startMiss returns once it is in the cache.
func (c *Cache) startMiss(key, url, want string) (f *fetch, m *entryMeta, o object, err error) {
	c.mu.Lock()
	for {
		if f := c.joinLocked(key); f != nil {
			c.mu.Unlock()
			return f, nil, nil, nil
		}
		// A request of this process is taking the lock: wait for it to
		// start the fetch (or find the object), never behind the file
		// lock, which this process's own fetch may need the waiter for.
		ch := c.locking[key]
		if ch == nil {
			break
		}
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	ch := make(chan struct{})
	c.locking[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.locking, key)
		c.mu.Unlock()
		close(ch)
	}()
	unlock, err := c.lockObject(key)
	if err != nil {
		return nil, nil, nil, err
	}
	// Another process may have fetched it since this one looked (the
	// lock says it is not fetching it now): read what the others added
	// to their packs, and look again.
	c.mu.Lock()
	c.loadPacks()
	c.mu.Unlock()
	m, o, err = c.lookup(key)
	if err == nil {
		unlock()
		return nil, m, o, nil
	}
	f, created := c.join(key, url, want)
	if !created {
		unlock()
		return f, nil, nil, nil
	}
	f.mu.Lock()
	f.unlock = unlock
	f.mu.Unlock()
	c.runInline(f)
	return f, nil, nil, nil
}

// lockObject takes the cache-wide lock of one object: a one-byte OFD
// record lock in the cache's lock file at an offset from the key's hash,
// so objects lock independently and no file is made per object. OFD
// locks conflict between processes (each opens the file itself) but not
// within this one, whose requests startMiss coordinates.
func (c *Cache) lockObject(key string) (unlock func(), err error) {
	h := sha256.Sum256([]byte(key))
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: int64(binary.BigEndian.Uint64(h[:8]) >> 2), Len: 1}
	fd := int(c.lockFile.Fd())
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk); err != nil {
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("cache: locking %s: %w", key, err)
		}
		for {
			err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLKW, &lk)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EINTR) {
				return nil, fmt.Errorf("cache: locking %s: %w", key, err)
			}
		}
	}
	return func() {
		ul := lk
		ul.Type = unix.F_UNLCK
		unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &ul)
	}, nil
}

// joinLocked returns the running fetch for key with a reference taken for
// the caller, or nil; c.mu is held.
func (c *Cache) joinLocked(key string) *fetch {
	f := c.inflight[key]
	if f != nil {
		f.mu.Lock()
		f.readers++
		f.mu.Unlock()
	}
	return f
}

// start returns the fetch for key, starting one when none is running.
// prev, when set, is the cached entry to revalidate against.
func (c *Cache) start(key, url, want string, prev *entryMeta) *fetch {
	f, created := c.join(key, url, want)
	if created {
		go c.run(f, prev)
	}
	return f
}

// join returns the running fetch for key with a reference taken for the
// caller or, when none runs, a new one that the caller must run (created).
func (c *Cache) join(key, url, want string) (f *fetch, created bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.joinLocked(key); f != nil {
		return f, false
	}
	// Two references: the caller's, and the runner's until the download
	// ends.
	f = &fetch{key: key, url: url, want: want, ready: make(chan struct{}), readers: 2}
	f.cond = sync.NewCond(&f.mu)
	c.inflight[key] = f
	c.downloads.Add(1)
	return f, true
}

// run downloads f. It is detached from any one client: if the first
// client goes away, the others still get the object.
func (c *Cache) run(f *fetch, prev *entryMeta) {
	resp, err := c.begin(f, prev)
	if err == nil {
		err = c.fill(f, resp)
	}
	c.finish(f, err)
}

// runInline runs a new fetch f in the goroutine of the request that
// started it: a small object (one that goes into a pack) to the end, a
// large one up to the upstream's answer, its body then copied in a
// goroutine of its own that the request follows. A miss on a small
// package was mostly hand-offs between goroutines, each a wakeup of
// another thread: to the fetch's goroutine and back at each step.
// Requests that join f are served as from run.
func (c *Cache) runInline(f *fetch) {
	resp, err := c.begin(f, nil)
	if err == nil && f.pack == nil {
		go func() { c.finish(f, c.fill(f, resp)) }()
		return
	}
	if err == nil {
		err = c.fill(f, resp)
	}
	c.finish(f, err)
}

// finish ends f with err, the result of its download.
func (c *Cache) finish(f *fetch, err error) {
	defer c.downloads.Done()
	c.mu.Lock()
	delete(c.inflight, f.key)
	c.mu.Unlock()
	// Published (or failed): other processes may look now.
	f.mu.Lock()
	if f.unlock != nil {
		f.unlock()
		f.unlock = nil
	}
	f.done, f.err = true, err
	f.cond.Broadcast()
	f.mu.Unlock()
	f.markReady()
	f.release()
}

func (f *fetch) markReady() { f.readyOnce.Do(func() { close(f.ready) }) }

// release drops one reference; the last one closes the temporary file.
func (f *fetch) release() {
	f.mu.Lock()
	f.readers--
	last := f.readers == 0 && f.done
	f.mu.Unlock()
	if last && f.tmp != nil && f.pack == nil {
		f.tmp.Close()
	}
}

// upstreamTimeout bounds one upstream request's headers; the body may take
// as long as it keeps moving.
const upstreamTimeout = 60 * time.Second

func (c *Cache) request(url string, prev *entryMeta) (*http.Response, error) {
	var lastErr error
	for attempt := 0; attempt <= c.Retries; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", "kiln")
		if prev != nil {
			if prev.ETag != "" {
				req.Header.Set("If-None-Match", prev.ETag)
			}
			if prev.LastModified != "" {
				req.Header.Set("If-Modified-Since", prev.LastModified)
			}
		}
		resp, err := c.client.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 {
			resp.Body.Close()
			lastErr = fmt.Errorf("upstream answered %s", resp.Status)
			continue
		}
		return resp, nil
	}
	return nil, lastErr
}

// begin makes f's request and prepares for its body: the response, whose
// body fill reads, or an error (errNotModified for a current copy). Once
// it returns without error, f is ready and started.
func (c *Cache) begin(f *fetch, prev *entryMeta) (_ *http.Response, err error) {
	resp, err := c.request(f.url, prev)
	if err != nil {
		return nil, &upstreamError{url: f.url, err: err}
	}
	defer func() {
		if err != nil {
			resp.Body.Close()
		}
	}()
	if resp.StatusCode == http.StatusNotModified && prev != nil {
		f.meta = *prev
		f.mu.Lock()
		f.hit = true
		f.mu.Unlock()
		return nil, errNotModified
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &upstreamError{url: f.url, status: resp.StatusCode, err: fmt.Errorf("upstream answered %s", resp.Status)}
	}
	packed := resp.ContentLength >= 0 && resp.ContentLength <= packMax
	var p *pack
	var tmp *os.File
	if packed {
		if p, f.base, err = c.reserve(resp.ContentLength); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
		tmp, f.pack = p.f, p
	} else {
		tmp, err = os.CreateTemp(filepath.Join(c.dir, "tmp"), "fetch-")
		if err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	f.tmp = tmp
	f.meta = entryMeta{URL: f.url, Size: resp.ContentLength, ETag: resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"), ContentType: resp.Header.Get("Content-Type"), Fetched: time.Now().UTC()}
	f.mu.Lock()
	f.started = true
	f.mu.Unlock()
	f.markReady()
	return resp, nil
}

// fill copies the body of f's response to the cache, checks it and
// publishes it.
func (c *Cache) fill(f *fetch, resp *http.Response) (err error) {
	defer resp.Body.Close()
	tmp, packed := f.tmp, f.pack != nil
	if !packed {
		defer func() {
			if err != nil {
				os.Remove(tmp.Name())
			}
		}()
	}
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var n int64
	for {
		m, rerr := resp.Body.Read(buf)
		if m > 0 {
			if packed && n+int64(m) > resp.ContentLength {
				return &upstreamError{url: f.url, err: fmt.Errorf("more bytes than Content-Length said (%d)", resp.ContentLength)}
			}
			if _, werr := tmp.WriteAt(buf[:m], f.base+n); werr != nil {
				return fmt.Errorf("cache: writing %s: %w", f.url, werr)
			}
			h.Write(buf[:m])
			n += int64(m)
			f.mu.Lock()
			f.written = n
			f.cond.Broadcast()
			f.mu.Unlock()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return &upstreamError{url: f.url, err: fmt.Errorf("download broke after %d bytes: %w", n, rerr)}
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return &upstreamError{url: f.url, err: fmt.Errorf("got %d bytes, Content-Length said %d", n, resp.ContentLength)}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if f.want != "" && sum != f.want {
		return &upstreamError{url: f.url, err: fmt.Errorf("sha256 %s does not match the repository metadata's %s", sum, f.want)}
	}
	// f.meta is read by clients since ready; the final fields go in a copy.
	final := f.meta
	final.Size, final.SHA256 = n, sum
	f.mu.Lock()
	f.sum = sum
	f.mu.Unlock()
	if packed {
		return c.commitPacked(f.key, f.pack, f.base, final)
	}
	// Publish: data first, then the metadata that makes it visible.
	data := c.dataPath(f.key)
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	mb, _ := json.Marshal(final)
	mtmp := tmp.Name() + ".json"
	if err := os.WriteFile(mtmp, mb, 0o644); err != nil {
		os.Remove(mtmp)
		return fmt.Errorf("cache: writing metadata: %w", err)
	}
	if err := os.Rename(tmp.Name(), data); err != nil {
		os.Remove(mtmp)
		return fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(mtmp, c.metaPath(f.key)); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	st, _ := os.Stat(data)
	if st != nil {
		c.mu.Lock()
		c.verified[f.key] = verifiedStamp{st.Size(), st.ModTime()}
		c.metas[f.key] = &final
		c.mu.Unlock()
	}
	return nil
}

// upstreamError is a failed upstream request; it becomes a 502.
type upstreamError struct {
	url    string
	status int
	err    error
}

func (e *upstreamError) Error() string { return fmt.Sprintf("fetching %s: %v", e.url, e.err) }
func (e *upstreamError) Unwrap() error { return e.err }

// readAt copies the fetch's bytes to w as they arrive. It returns the
// bytes copied and the fetch's error, if it failed.
func (f *fetch) copyTo(ctx context.Context, w io.Writer) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var off int64
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer stop()
	// A client connection can take the bytes straight from the page cache
	// with sendfile(2) when it reads from a file of its own; a second
	// descriptor of the file being written gives it one, renamed or not.
	// A small object in a pack is not worth the open(2).
	var own *os.File
	if _, ok := w.(io.ReaderFrom); ok && f.tmp != nil && f.pack == nil {
		own, _ = os.Open(fmt.Sprintf("/proc/self/fd/%d", f.tmp.Fd()))
		if own != nil {
			defer own.Close()
		}
	}
	for {
		f.mu.Lock()
		for f.written == off && !f.done && ctx.Err() == nil {
			f.cond.Wait()
		}
		avail, done, ferr := f.written, f.done, f.err
		f.mu.Unlock()
		if ctx.Err() != nil {
			return off, ctx.Err()
		}
		if own != nil && off < avail {
			if _, err := own.Seek(f.base+off, io.SeekStart); err == nil {
				k, err := w.(io.ReaderFrom).ReadFrom(io.LimitReader(own, avail-off))
				off += k
				if err != nil {
					return off, err
				}
			}
		}
		for off < avail {
			m := int64(len(buf))
			if avail-off < m {
				m = avail - off
			}
			k, err := f.tmp.ReadAt(buf[:m], f.base+off)
			if k > 0 {
				if _, werr := w.Write(buf[:k]); werr != nil {
					return off, werr
				}
				off += int64(k)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return off, err
			}
		}
		if done {
			return off, ferr
		}
	}
}

// Size returns the bytes the cache holds and how many objects.
func (c *Cache) Size() (bytes int64, objects int, err error) {
	err = filepath.WalkDir(filepath.Join(c.dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		bytes += info.Size()
		if filepath.Ext(p) != ".json" {
			objects++
		}
		return nil
	})
	pb, po := c.packSizes()
	return bytes + pb, objects + po, err
}

// Prune removes objects not fetched or used since before, then the oldest
// until the cache holds at most maxBytes (no limit when negative). It
// returns the bytes freed.
func (c *Cache) Prune(before time.Time, maxBytes int64) (int64, error) {
	type obj struct {
		data  string
		size  int64
		mtime time.Time
		pack  bool
	}
	var objs []obj
	for _, p := range c.packAges() {
		objs = append(objs, obj{p.path, p.size, p.mtime, true})
	}
	err := filepath.WalkDir(filepath.Join(c.dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) == ".json" {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size := info.Size()
		if mi, err := os.Stat(p + ".json"); err == nil {
			size += mi.Size()
		}
		objs = append(objs, obj{p, size, info.ModTime(), false})
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
		if o.pack {
			if err := removePack(o.data); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return freed, err
			}
		} else {
			os.Remove(o.data + ".json")
			if err := os.Remove(o.data); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return freed, err
			}
		}
		total -= o.size
		freed += o.size
	}
	// Leftover temporaries from a killed process.
	tmps, _ := filepath.Glob(filepath.Join(c.dir, "tmp", "fetch-*"))
	for _, t := range tmps {
		if info, err := os.Stat(t); err == nil && time.Since(info.ModTime()) > time.Hour {
			os.Remove(t)
		}
	}
	return freed, nil
}

// touchEvery is how stale an object's time may get before a hit renews it;
// renewing on every hit would cost two system calls per request.
const touchEvery = time.Hour

// touch marks an object used, for Prune's age.
func (c *Cache) touch(key string, o object) {
	f, ok := o.(*os.File)
	if !ok {
		c.touchPack(key)
		return
	}
	st, err := f.Stat()
	if err != nil || time.Since(st.ModTime()) < touchEvery {
		return
	}
	now := time.Now()
	os.Chtimes(c.dataPath(key), now, now)
	c.mu.Lock()
	if st, err := os.Stat(c.dataPath(key)); err == nil && c.verified[key].size == st.Size() {
		c.verified[key] = verifiedStamp{st.Size(), st.ModTime()}
	}
	c.mu.Unlock()
}
