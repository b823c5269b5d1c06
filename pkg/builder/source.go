package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/internal/fileutil"
	"github.com/kiln-build/kiln/internal/httpget"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/treeinfo"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/ksserve"
)

// source is the installer the build boots.
type source struct {
	iso    string // the installer ISO on disk, or ""
	volID  string
	tree   *treeinfo.TreeInfo
	kernel string // in the ISO or the tree
	initrd string
	// For d-i: netbootURL is the proxy's path of a netboot directory
	// given by URL; local says kernel and initrd are paths on this host.
	netbootURL string
	local      bool
}

// openISO reads what a build needs of an installer ISO without mounting
// it: the volume label and where its kernel and initrd are, as
// ksserve finds them for a network boot.
func openISO(p string) (*source, error) {
	t, err := ksserve.OpenISO(p)
	if err != nil {
		return nil, &InputError{err}
	}
	defer t.Close()
	if t.Kernel == "" {
		return nil, &InputError{fmt.Errorf("%s: %w", p, ksserve.ErrNotInstallTree)}
	}
	return &source{iso: p, volID: t.VolumeID, tree: t.Tree, kernel: t.Kernel, initrd: t.Initrd}, nil
}

// extract copies files out of the ISO: each name in it to its path.
func extract(isoPath string, files map[string]string) error {
	f, err := os.Open(isoPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	r, err := iso.NewReader(f, st.Size())
	if err != nil {
		return err
	}
	for name, dst := range files {
		file, err := r.Stat(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := writeFile(dst, func(w io.Writer) error {
			_, err := io.Copy(w, file.Open())
			return err
		}); err != nil {
			return fmt.Errorf("extracting %s from %s: %w", name, isoPath, err)
		}
	}
	return nil
}

// download fetches an ISO by URL into dir, named by the URL's hash so
// that a second build finds it. A partial download is kept as .part and
// resumed with a Range request; only a complete file (and, when want is
// set, one with that sha256) gets the final name.
func download(ctx context.Context, client *http.Client, rawURL, dir, want string, progress func(done, total int64)) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(rawURL))
	final := filepath.Join(dir, hex.EncodeToString(sum[:8])+"-"+path.Base(rawURL))
	if _, err := os.Stat(final); err == nil {
		if want == "" {
			return final, nil
		}
		if got, err := fileutil.SHA256(final); err == nil && got == want {
			return final, nil
		}
		os.Remove(final)
	}
	part := final + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	// One download per file at a time, across processes.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(final); err == nil {
		return final, nil // another build finished it while we waited
	}
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
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", rawURL, err)
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
		return "", fmt.Errorf("downloading %s: %s", rawURL, resp.Status)
	}
	total := int64(-1)
	if resp.ContentLength >= 0 {
		total = have + resp.ContentLength
	}
	pw := &progressWriter{w: f, done: have, total: total, fn: progress}
	if _, err := io.Copy(pw, resp.Body); err != nil {
		return "", fmt.Errorf("downloading %s (kept %d bytes to resume): %w", rawURL, pw.done, err)
	}
	if total >= 0 && pw.done != total {
		return "", fmt.Errorf("downloading %s: got %d of %d bytes", rawURL, pw.done, total)
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
			return "", fmt.Errorf("downloading %s: sha256 %s, but the checksum file says %s", rawURL, got, want)
		}
	}
	if err := os.Rename(part, final); err != nil {
		return "", err
	}
	return final, nil
}

type progressWriter struct {
	w           io.Writer
	done, total int64
	fn          func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.done += int64(n)
	if p.fn != nil {
		p.fn(p.done, p.total)
	}
	return n, err
}

// checksumFor reads a checksum file (sha256sum's format, or the BSD
// "SHA256 (name) = sum" one) and returns the sum listed for name.
func checksumFor(ctx context.Context, client *http.Client, listURL, name string) (string, error) {
	b, err := httpget.Get(ctx, client, listURL, 1<<20)
	if err != nil {
		return "", fmt.Errorf("fetching the checksum file %s: %w", cache.Redact(listURL), err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && strings.TrimPrefix(f[1], "*") == name:
			return strings.ToLower(f[0]), nil
		case len(f) == 4 && f[0] == "SHA256" && f[1] == "("+name+")" && f[2] == "=":
			return strings.ToLower(f[3]), nil
		}
	}
	return "", fmt.Errorf("the checksum file %s lists no sha256 for %s", listURL, name)
}

var errNoReport = errors.New("the installer powered off without running kiln's final %post, so the install did not complete")
