package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Holdback is how much of an object with a known sum is kept from its
// followers until the sum is checked: enough that no client holds a whole
// body that turns out wrong.
const Holdback = 64 << 10

// idleBody bounds how long an upstream body may stall before its fetch
// fails; the whole body may take as long as it keeps moving.
const idleBody = 60 * time.Second

// fetch is one download. Followers read its temporary file as it grows,
// so every caller of Get for the object while it downloads is served from
// the one upstream request.
type fetch struct {
	c   *Cache
	key string
	req Request

	ready     chan struct{} // closed once result is set
	readyOnce sync.Once
	meta      Meta     // as the upstream announced it; valid after ready
	tmp       *os.File // the download, valid after ready when result is zero
	named     bool     // tmp has a name in tmp/ (no O_TMPFILE here)

	mu        sync.Mutex
	cond      *sync.Cond
	result    result
	written   int64
	done      bool
	err       error
	final     Meta // the complete object's metadata, once done without error
	published bool // in the cache under key
	readers   int
}

// result is how a fetch went before any body: served from the cache
// (with stale set when the upstream failed), failed, or neither (the
// body is coming).
type result struct {
	cached bool
	stale  error
	err    error
}

// join returns the running fetch for key with a reference taken for the
// caller, starting one when none runs.
func (c *Cache) join(key string, req Request) *fetch {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Join a fetch still under way. One that has already settled on the
	// cached copy (a 304, or no revalidation) is not joined: its verdict
	// is older than this request, which asks afresh, and the object lock
	// orders the two.
	if f := c.inflight[key]; f != nil && !f.settledCached() {
		f.mu.Lock()
		f.readers++
		f.mu.Unlock()
		return f
	}
	// Two references: the caller's, and the runner's until it ends.
	f := &fetch{c: c, key: key, req: req, ready: make(chan struct{}), readers: 2}
	f.cond = sync.NewCond(&f.mu)
	c.inflight[key] = f
	c.downloads.Add(1)
	go c.run(f)
	return f
}

// settledCached reports whether f has already answered with the cached
// copy, with no body of its own to stream.
func (f *fetch) settledCached() bool {
	select {
	case <-f.ready:
	default:
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.result.cached
}

// markReady sets the result, once: a failure after the body began
// reaches followers through WriteTo, not here.
func (f *fetch) markReady(r result) {
	f.readyOnce.Do(func() {
		f.mu.Lock()
		f.result = r
		f.mu.Unlock()
		close(f.ready)
	})
}

// run fetches f under the object's lock; it is detached from every caller,
// so that when the first goes away the others still get the object.
func (c *Cache) run(f *fetch) {
	err := c.download(f)
	c.mu.Lock()
	if c.inflight[f.key] == f {
		delete(c.inflight, f.key)
	}
	c.mu.Unlock()
	f.mu.Lock()
	f.done, f.err = true, err
	f.cond.Broadcast()
	f.mu.Unlock()
	if err != nil {
		f.markReady(result{err: err})
	}
	f.release()
	c.downloads.Done()
}

func (c *Cache) download(f *fetch) error {
	unlock, err := c.lockObject(f.key)
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have fetched it while this one waited.
	prev, file, err := c.lookup(f.key)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.remove(f.key)
		prev = nil
	}
	if file != nil {
		file.Close()
		if !f.req.Revalidate {
			f.markReady(result{cached: true})
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := c.request(ctx, f.req.URL, prev)
	if err != nil {
		if prev != nil {
			// Better a slightly stale repo than a failed build.
			f.markReady(result{cached: true, stale: err})
			return nil
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && prev != nil {
		f.markReady(result{cached: true})
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		err := &UpstreamError{URL: Redact(f.req.URL), Status: resp.StatusCode, Err: fmt.Errorf("upstream answered %s", resp.Status)}
		if prev != nil {
			f.markReady(result{cached: true, stale: err})
			return nil
		}
		return err
	}
	tmp, named, err := c.createTemp()
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	f.tmp, f.named = tmp, named
	f.meta = Meta{URL: Redact(f.req.URL), Size: resp.ContentLength, ETag: resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"), ContentType: resp.Header.Get("Content-Type"), Fetched: time.Now().UTC()}
	f.markReady(result{})
	published, err := c.fill(f, resp, cancel)
	if !published && named {
		os.Remove(tmp.Name())
	}
	return err
}

// request makes the GET, conditional on prev, retrying failures that
// happen before any body byte.
func (c *Cache) request(ctx context.Context, rawURL string, prev *Meta) (*http.Response, error) {
	var last error
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * c.backoff)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, &UpstreamError{URL: Redact(rawURL), Err: errors.New("not a valid URL")}
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
			if inner := errors.Unwrap(err); inner != nil {
				err = inner // net/http's *url.Error repeats the URL, user name and all
			}
			last = &UpstreamError{URL: Redact(rawURL), Err: err}
			continue
		}
		if resp.StatusCode >= 500 && attempt < c.retries {
			resp.Body.Close()
			last = &UpstreamError{URL: Redact(rawURL), Status: resp.StatusCode, Err: fmt.Errorf("upstream answered %s", resp.Status)}
			continue
		}
		return resp, nil
	}
	return nil, last
}

// fill copies the body to f.tmp, checks it and publishes it when it can
// be trusted: its length was announced and met, or its sum was known and
// matched. stop ends the upstream request when the body stalls.
func (c *Cache) fill(f *fetch, resp *http.Response, stop context.CancelFunc) (published bool, err error) {
	h := sha256.New()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	idle := time.AfterFunc(idleBody, stop)
	defer idle.Stop()
	var n int64
	for {
		m, rerr := resp.Body.Read(buf)
		idle.Reset(idleBody)
		if m > 0 {
			if _, werr := f.tmp.WriteAt(buf[:m], HeaderSize+n); werr != nil {
				return false, fmt.Errorf("cache: writing %s: %w", Redact(f.req.URL), werr)
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
			return false, &UpstreamError{URL: Redact(f.req.URL), Err: fmt.Errorf("download broke after %d bytes: %w", n, rerr)}
		}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return false, &UpstreamError{URL: Redact(f.req.URL), Err: fmt.Errorf("got %d bytes, Content-Length said %d", n, resp.ContentLength)}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if f.req.SHA256 != "" && sum != f.req.SHA256 {
		return false, &UpstreamError{URL: Redact(f.req.URL), Err: fmt.Errorf("sha256 %s does not match the repository metadata's %s", sum, f.req.SHA256)}
	}
	final := f.meta
	final.Size, final.SHA256 = n, sum
	f.mu.Lock()
	f.final = final
	f.mu.Unlock()
	if resp.ContentLength < 0 && f.req.SHA256 == "" {
		// Whole or cut short: nothing says which. Pass it on, keep none.
		return false, nil
	}
	if err := c.publish(f.key, f.tmp, f.named, final); err != nil {
		return false, err
	}
	f.mu.Lock()
	f.published = true
	f.mu.Unlock()
	return true, nil
}

// publish writes a checked download's header and renames it into place.
func (c *Cache) publish(key string, tmp *os.File, named bool, m Meta) error {
	h, err := header(m)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if _, err := tmp.WriteAt(h, 0); err != nil {
		return fmt.Errorf("cache: writing %s: %w", key, err)
	}
	data := c.dataPath(key)
	place := func() error {
		if named {
			return os.Rename(tmp.Name(), data)
		}
		return linkTemp(tmp, data)
	}
	if err := place(); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cache: %w", err)
		}
		// The first object of its directory.
		if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		if err := place(); err != nil {
			return fmt.Errorf("cache: %w", err)
		}
	}
	os.Remove(c.metaPath(key)) // an older kiln's
	if st, err := tmp.Stat(); err == nil {
		c.mu.Lock()
		c.verified[key] = verified{&m, st.Size(), st.ModTime()}
		c.mu.Unlock()
	}
	return nil
}

// release drops one reference; the last closes the download's file.
func (f *fetch) release() {
	f.mu.Lock()
	f.readers--
	last := f.readers == 0 && f.done
	f.mu.Unlock()
	if last && f.tmp != nil {
		f.tmp.Close()
	}
}

// bufPool holds the downloads' copy buffers, so a busy proxy does not
// keep the collector clearing 256 KiB per object; followPool holds the
// smaller ones of the clients following a download, one per connection.
var (
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
	followPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
)

// Object is one Get's result. An object is either complete in the cache
// (File) or a download being followed (WriteTo, Complete).
type Object struct {
	// Meta is the object's metadata; while a download runs, Size is the
	// announced length (-1 for none) and SHA256 is empty.
	Meta Meta
	// Cached says no byte of it comes from upstream.
	Cached bool
	// Stale is the upstream's error when a cached copy is served because
	// revalidating it failed.
	Stale error

	file  *os.File
	fetch *fetch
	small []byte // shared by every hit on it: never written
}

// File is the complete cached object's entry, positioned at the object's
// first byte (a copy of Meta.Size bytes from it is the object, by
// sendfile(2) to a socket), or nil while it downloads or when Small holds
// it. ReadSeeker gives the object alone.
func (o *Object) File() *os.File { return o.file }

// ReadSeeker is the complete cached object as an io.ReadSeeker of its own
// bytes, for http.ServeContent; nil while it downloads.
func (o *Object) ReadSeeker() io.ReadSeeker {
	switch {
	case o.small != nil:
		return bytes.NewReader(o.small)
	case o.file != nil:
		return io.NewSectionReader(o.file, HeaderSize, o.Meta.Size)
	}
	return nil
}

// Small is a small cached object's bytes (see SmallMax), or nil. The
// caller must not change them.
func (o *Object) Small() []byte { return o.small }

// Close releases the object.
func (o *Object) Close() error {
	if o.file != nil {
		return o.file.Close()
	}
	if o.fetch != nil {
		o.fetch.release()
	}
	return nil
}

// WriteTo copies the object to w as its bytes arrive and are safe to give
// out (see Holdback). It returns the download's error when it fails, or
// ctx's; the writer then holds an incomplete body.
func (o *Object) WriteTo(ctx context.Context, w io.Writer) (int64, error) {
	if o.small != nil {
		n, err := w.Write(o.small)
		return int64(n), err
	}
	if o.file != nil {
		return io.Copy(w, io.NewSectionReader(o.file, HeaderSize, o.Meta.Size))
	}
	f := o.fetch
	defer f.wakeOn(ctx)()
	bp := followPool.Get().(*[]byte)
	defer followPool.Put(bp)
	buf := *bp
	var off int64
	for {
		f.mu.Lock()
		limit := f.limitLocked()
		for limit == off && !f.done && ctx.Err() == nil {
			f.cond.Wait()
			limit = f.limitLocked()
		}
		done, ferr := f.done, f.err
		f.mu.Unlock()
		if ctx.Err() != nil {
			return off, ctx.Err()
		}
		for off < limit {
			k, err := f.tmp.ReadAt(buf[:min(int64(len(buf)), limit-off)], HeaderSize+off)
			if k > 0 {
				if _, werr := w.Write(buf[:k]); werr != nil {
					return off, werr
				}
				off += int64(k)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return off, fmt.Errorf("cache: reading a download: %w", err)
			}
		}
		if done && off == limit {
			return off, ferr
		}
	}
}

// wakeOn wakes f's waiters when ctx ends, so they see it; the returned
// function stops that.
func (f *fetch) wakeOn(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
}

// limitLocked is how far followers may read: all that is written, less
// the holdback while a known sum is unchecked.
func (f *fetch) limitLocked() int64 {
	if f.req.SHA256 != "" && !(f.done && f.err == nil) {
		return max(0, f.written-Holdback)
	}
	return f.written
}

// Complete waits for the download to end and returns the whole object,
// checked, for a caller that needs all of it first (a range, or metadata
// to read), with its final metadata.
func (o *Object) Complete(ctx context.Context) (io.ReadSeeker, Meta, error) {
	if o.small != nil {
		return bytes.NewReader(o.small), o.Meta, nil
	}
	if o.file != nil {
		return io.NewSectionReader(o.file, HeaderSize, o.Meta.Size), o.Meta, nil
	}
	f := o.fetch
	defer f.wakeOn(ctx)()
	f.mu.Lock()
	for !f.done && ctx.Err() == nil {
		f.cond.Wait()
	}
	done, ferr, final := f.done, f.err, f.final
	f.mu.Unlock()
	if !done {
		return nil, Meta{}, ctx.Err()
	}
	if ferr != nil {
		return nil, Meta{}, ferr
	}
	return io.NewSectionReader(f.tmp, HeaderSize, final.Size), final, nil
}
