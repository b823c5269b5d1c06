package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/kiln-build/kiln/internal/fileutil"
)

// The cache also keeps whole files: installer ISOs, which QEMU and kiln's
// ISO reader open by path, so they are stored as they came, without an
// entry header, under files/. They share the objects' lock file and its
// OFD locks, Size and Prune.

// File returns the path of the file at rawURL in the cache, downloading
// it first when it is missing: resumed with a Range request after an
// interrupted download (kept as .part), and, when want is set, checked
// against that sha256 before it gets its name. progress, when set, is
// told the bytes so far and the total (-1 when unknown).
func (c *Cache) File(ctx context.Context, rawURL, want string, progress func(done, total int64)) (string, error) {
	dir := filepath.Join(c.dir, "files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(rawURL))
	final := filepath.Join(dir, hex.EncodeToString(sum[:8])+"-"+path.Base(rawURL))
	if ok, err := c.haveFile(final, want); ok || err != nil {
		return final, err
	}
	// One download per file at a time, across processes and builds.
	unlock, err := c.lockObject("file:" + final)
	if err != nil {
		return "", err
	}
	defer unlock()
	if ok, err := c.haveFile(final, want); ok || err != nil {
		return final, err // another build finished it while we waited
	}
	part := final + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return "", &UpstreamError{URL: Redact(rawURL), Err: err}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
	case resp.StatusCode == http.StatusOK:
		// No resume: start again.
		if err := f.Truncate(0); err != nil {
			return "", err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		have = 0
	default:
		return "", &UpstreamError{URL: Redact(rawURL), Status: resp.StatusCode, Err: fmt.Errorf("%s", resp.Status)}
	}
	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	}
	pw := &progressWriter{w: f, done: have, total: total, fn: progress}
	if _, err := io.Copy(pw, resp.Body); err != nil {
		return "", fmt.Errorf("downloading %s (kept %d bytes to resume): %w", Redact(rawURL), pw.done, err)
	}
	if total >= 0 && pw.done != total {
		return "", fmt.Errorf("downloading %s: got %d of %d bytes", Redact(rawURL), pw.done, total)
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if want != "" {
		got, err := fileutil.SHA256(part)
		if err != nil {
			return "", err
		}
		if got != want {
			os.Remove(part)
			return "", fmt.Errorf("downloading %s: sha256 %s, but the checksum file says %s", Redact(rawURL), got, want)
		}
	}
	if err := os.Rename(part, final); err != nil {
		return "", err
	}
	return final, nil
}

// haveFile reports whether final is complete: present, and with the sum
// want when one is given. A file with another sum is removed.
func (c *Cache) haveFile(final, want string) (bool, error) {
	if _, err := os.Stat(final); err != nil {
		return false, nil
	}
	if want == "" {
		return true, nil
	}
	got, err := fileutil.SHA256(final)
	if err != nil {
		return false, err
	}
	if got == want {
		return true, nil
	}
	return false, os.Remove(final)
}

// progressWriter counts what it writes and reports it, at most once per
// MiB.
type progressWriter struct {
	w           io.Writer
	done, total int64
	last        int64
	fn          func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.fn != nil && p.done-p.last >= 1<<20 {
		p.last = p.done
		p.fn(p.done, p.total)
	}
	return n, err
}
