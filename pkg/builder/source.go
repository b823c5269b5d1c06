package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

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
