package ksserve

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Small objects go into pack files rather than a file each. On ext4,
// creating a file costs far more than writing a few KiB to an open one, so
// a repo's thousands of small metadata and package files would otherwise
// be bound by file creation. Each process appends to packs of its own
// (pack-<time>-<pid>-<random>.pack), so writers never interleave; an
// object becomes visible only when its line is appended to the pack's
// .idx file, after its bytes are written and checked.
const (
	packMax    = 1 << 20   // objects up to this size go into packs
	packRotate = 512 << 20 // a pack is closed for writing at this size
)

type pack struct {
	path string   // the .pack file
	f    *os.File // read-write for this process's packs, read-only for others'
	idx  *os.File // the index, for appending; nil for others' packs
	end  int64    // the next free offset, for this process's packs
	read int64    // how much of the index has been loaded
	// touched is when this process last saw or set the pack's time, so a
	// hit need not fstat the pack to learn it is recent (c.mu guards it).
	touched time.Time

	// final says the pack's writer had exited when this process found
	// it; done, that its index has been read since.
	final, done bool

	mapOnce sync.Once
	mapped  []byte // the pack mapped read-only, or nil
}

// view returns the pack mapped into memory, or nil when it cannot be
// mapped. A hit on a small object then costs no pread(2), which was a
// tenth of a hit's time: its bytes come straight from the page cache. The
// mapping covers packRotate, the most a pack grows to; only regions the
// index lists are touched, and those were written before they were
// listed, so no access reaches past the end of the file. Packs are only
// ever appended to or removed whole, never truncated.
func (p *pack) view() []byte {
	p.mapOnce.Do(func() {
		if b, err := unix.Mmap(int(p.f.Fd()), 0, packRotate, unix.PROT_READ, unix.MAP_SHARED); err == nil {
			p.mapped = b
		}
	})
	return p.mapped
}

// packEntry is one line of a pack's index.
type packEntry struct {
	Key  string    `json:"key"`
	Off  int64     `json:"off"`
	Meta entryMeta `json:"meta"`
	pack *pack
}

func (c *Cache) packDir() string { return filepath.Join(c.dir, "packs") }

// packDirTick bounds the granularity of a directory's time: the kernel's
// coarse clock, a few milliseconds.
const packDirTick = 50 * time.Millisecond

// packRescan is how often a miss may look for objects other processes
// added to their packs.
const packRescan = 2 * time.Second

// loadPacks reads every pack index it has not read yet, or the part of it
// written since. The most recently fetched copy of an object wins, so a
// refetched object replaces a corrupt one. A miss calls it, so it is cheap
// when nothing changed: the directory is listed only when its time says a
// pack was added, and this process's own indexes, whose lines it wrote,
// are never reread. Callers hold c.mu.
func (c *Cache) loadPacks() {
	now := time.Now()
	c.packsLoaded = now
	st, err := os.Stat(c.packDir())
	if err != nil {
		return
	}
	// A pack made in the same clock tick as the listing that saw this
	// time would not change it: list again until a listing has happened
	// safely after the time. (On a file system with coarser times a pack
	// can be seen late, which costs a second fetch, nothing worse.)
	if !st.ModTime().Equal(c.packDirTime) || c.packDirListed.Sub(st.ModTime()) < packDirTick {
		c.packDirTime, c.packDirListed = st.ModTime(), now
		idxs, _ := filepath.Glob(filepath.Join(c.packDir(), "*.idx"))
		for _, idx := range idxs {
			packPath := strings.TrimSuffix(idx, ".idx") + ".pack"
			if c.packs[packPath] != nil {
				continue
			}
			f, err := os.Open(packPath)
			if err != nil {
				continue
			}
			c.packs[packPath] = &pack{path: packPath, f: f, final: writerGone(packPath)}
		}
	}
	for path, p := range c.packs {
		if p.idx != nil || p.done {
			continue
		}
		idx := strings.TrimSuffix(path, ".pack") + ".idx"
		if st, err := os.Stat(idx); err == nil && st.Size() != p.read {
			c.readIndex(p, idx)
		}
		// Read once more after its writer is gone, then never again.
		p.done = p.final
	}
}

// writerGone reports whether the process that wrote a pack, named
// pack-<time>-<pid>-<random>.pack, has exited, so the pack can no longer
// grow. A reused pid only costs rereading.
func writerGone(packPath string) bool {
	parts := strings.Split(filepath.Base(packPath), "-")
	if len(parts) != 4 {
		return false
	}
	pid, err := strconv.Atoi(parts[2])
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

func (c *Cache) readIndex(p *pack, idxPath string) {
	f, err := os.Open(idxPath)
	if err != nil {
		return
	}
	defer f.Close()
	if _, err := f.Seek(p.read, io.SeekStart); err != nil {
		return
	}
	st, err := p.f.Stat()
	if err != nil {
		return
	}
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			// A line without its newline is still being written, or was cut
			// by a crash: read it next time, or never.
			return
		}
		p.read += int64(len(line))
		var e packEntry
		if json.Unmarshal(line, &e) != nil || e.Off < 0 || e.Meta.Size < 0 || e.Off+e.Meta.Size > st.Size() {
			continue
		}
		if old := c.index[e.Key]; old != nil && old.Meta.Fetched.After(e.Meta.Fetched) {
			// Packs are read in no particular order: the newer copy wins,
			// wherever it is.
			continue
		}
		e.pack = p
		c.index[e.Key] = &e
	}
}

// reserve returns a region of size bytes in this process's current pack.
func (c *Cache) reserve(size int64) (*pack, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil || c.cur.end+size > packRotate {
		if err := os.MkdirAll(c.packDir(), 0o755); err != nil {
			return nil, 0, err
		}
		b := make([]byte, 4)
		rand.Read(b)
		name := fmt.Sprintf("pack-%d-%d-%s", time.Now().UnixNano(), os.Getpid(), hex.EncodeToString(b))
		base := filepath.Join(c.packDir(), name)
		f, err := os.OpenFile(base+".pack", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, 0, err
		}
		idx, err := os.OpenFile(base+".idx", os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_EXCL, 0o644)
		if err != nil {
			f.Close()
			os.Remove(base + ".pack")
			return nil, 0, err
		}
		c.cur = &pack{path: base + ".pack", f: f, idx: idx}
		c.packs[c.cur.path] = c.cur
	}
	off := c.cur.end
	c.cur.end += size
	return c.cur, off, nil
}

// commitPacked makes a packed object visible.
func (c *Cache) commitPacked(key string, p *pack, off int64, m entryMeta) error {
	line, err := json.Marshal(packEntry{Key: key, Off: off, Meta: m})
	if err != nil {
		return err
	}
	// One write to an O_APPEND file: the line lands whole, after the data.
	if _, err := p.idx.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("cache: writing the pack index: %w", err)
	}
	c.mu.Lock()
	c.index[key] = &packEntry{Key: key, Off: off, Meta: m, pack: p}
	c.verified[key] = verifiedStamp{size: m.Size}
	c.mu.Unlock()
	return nil
}

// packedObject is a cached object inside a pack.
type packedObject struct {
	*io.SectionReader
	mapped []byte // the object's bytes in the pack's mapping, or nil
}

func (packedObject) Close() error { return nil }

// lookupPacked returns a packed object, checking its sha256 once per
// process.
func (c *Cache) lookupPacked(key string) (*entryMeta, object, bool, error) {
	c.mu.Lock()
	e := c.index[key]
	if e == nil && time.Since(c.packsLoaded) > packRescan {
		// Another kiln may have added it since: look, but not on every miss.
		c.loadPacks()
		e = c.index[key]
	}
	checked := e != nil && c.verified[key] == verifiedStamp{size: e.Meta.Size}
	c.mu.Unlock()
	if e == nil {
		return nil, nil, false, nil
	}
	sr := io.NewSectionReader(e.pack.f, e.Off, e.Meta.Size)
	if !checked {
		h := sha256.New()
		if _, err := io.Copy(h, sr); err != nil {
			return nil, nil, true, fmt.Errorf("cache entry %s: reading its pack: %w", key, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.Meta.SHA256 {
			return nil, nil, true, fmt.Errorf("cache entry %s: sha256 %s, want %s: corrupt", key, got, e.Meta.SHA256)
		}
		sr.Seek(0, io.SeekStart)
		c.mu.Lock()
		c.verified[key] = verifiedStamp{size: e.Meta.Size}
		c.mu.Unlock()
	}
	m := e.Meta
	o := packedObject{SectionReader: sr}
	if b := e.pack.view(); e.Off+e.Meta.Size <= int64(len(b)) {
		o.mapped = b[e.Off : e.Off+e.Meta.Size : e.Off+e.Meta.Size]
	}
	return &m, o, true, nil
}

// touchPack renews a pack's time for Prune, at most once an hour.
func (c *Cache) touchPack(key string) {
	c.mu.Lock()
	e := c.index[key]
	fresh := e != nil && time.Since(e.pack.touched) < touchEvery
	c.mu.Unlock()
	if e == nil || fresh {
		return
	}
	st, err := e.pack.f.Stat()
	if err != nil {
		return
	}
	t := st.ModTime()
	if time.Since(t) > touchEvery {
		t = time.Now()
		os.Chtimes(e.pack.path, t, t)
	}
	c.mu.Lock()
	e.pack.touched = t
	c.mu.Unlock()
}

// packSizes returns the bytes in packs and the objects they index.
func (c *Cache) packSizes() (bytes int64, objects int) {
	c.mu.Lock()
	c.loadPacks()
	objects = len(c.index)
	c.mu.Unlock()
	files, _ := filepath.Glob(filepath.Join(c.packDir(), "*"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			bytes += st.Size()
		}
	}
	return bytes, objects
}

// packAge is a pack and its time, for Prune.
type packAge struct {
	path  string
	size  int64
	mtime time.Time
}

func (c *Cache) packAges() []packAge {
	var out []packAge
	packs, _ := filepath.Glob(filepath.Join(c.packDir(), "*.pack"))
	for _, p := range packs {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		size := st.Size()
		if ist, err := os.Stat(strings.TrimSuffix(p, ".pack") + ".idx"); err == nil {
			size += ist.Size()
		}
		out = append(out, packAge{p, size, st.ModTime()})
	}
	return out
}

func removePack(p string) error {
	os.Remove(strings.TrimSuffix(p, ".pack") + ".idx")
	return os.Remove(p)
}

// Close closes the pack files and the lock file. The cache must not be
// used after, and no response may still be reading from it: the packs'
// mappings go too.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lockFile != nil {
		c.lockFile.Close()
	}
	for _, p := range c.packs {
		if p.mapped != nil {
			unix.Munmap(p.mapped)
		}
		p.f.Close()
		if p.idx != nil {
			p.idx.Close()
		}
	}
	c.packs, c.index, c.cur = map[string]*pack{}, map[string]*packEntry{}, nil
	return nil
}
