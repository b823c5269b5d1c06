// Package anaconda is the library half of kiln's test installer, a small
// stand-in for Anaconda that the integration tests boot: it reads yum
// repositories (repomd.xml, primary.xml.gz, comps), resolves a %packages
// selection through Requires, and installs packages by verifying each RPM
// against the repository's sha256 and unpacking its payload with modes and
// symlinks intact.
package anaconda

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	rpmutils "github.com/sassoftware/go-rpmutils"

	"github.com/kiln-build/kiln/internal/httpget"
)

// Repo is a yum repository's package list and groups.
type Repo struct {
	Name     string
	BaseURL  string
	Packages map[string]*Package
	Groups   map[string][]string // comps group id -> mandatory and default packages
	client   *http.Client        // what the repository was loaded with, and its packages are fetched with
}

// Package is one package of a repository's primary.xml.
type Package struct {
	Name     string
	Epoch    string // "0" when the package has none
	Version  string // version-release
	Arch     string
	Location string
	SHA256   string
	Size     int64
	Requires []string
	Provides []string
	Repo     *Repo
}

// primary.xml, as much of it as the installer reads.
type primaryXML struct {
	Packages []struct {
		Name    string `xml:"name"`
		Arch    string `xml:"arch"`
		Version struct {
			Epoch string `xml:"epoch,attr"`
			Ver   string `xml:"ver,attr"`
			Rel   string `xml:"rel,attr"`
		} `xml:"version"`
		Checksum struct {
			Type  string `xml:"type,attr"`
			Value string `xml:",chardata"`
		} `xml:"checksum"`
		Size struct {
			Package int64 `xml:"package,attr"`
		} `xml:"size"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
		Format struct {
			Provides []struct {
				Name string `xml:"name,attr"`
			} `xml:"provides>entry"`
			Requires []struct {
				Name string `xml:"name,attr"`
			} `xml:"requires>entry"`
			Files []string `xml:"file"`
		} `xml:"format"`
	} `xml:"package"`
}

type repomdXML struct {
	Data []struct {
		Type     string `xml:"type,attr"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

type compsXML struct {
	Groups []struct {
		ID       string `xml:"id"`
		Packages []struct {
			Type string `xml:"type,attr"`
			Name string `xml:",chardata"`
		} `xml:"packagelist>packagereq"`
	} `xml:"group"`
}

// maxMetadata bounds what the installer reads of repository metadata.
const maxMetadata = 256 << 20

// Fetch GETs url whole, up to 256 MiB; anything but a 200 is an error.
func Fetch(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	b, err := httpget.Get(ctx, client, url, maxMetadata)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return b, nil
}

// LoadRepo reads a repository's metadata from baseURL.
func LoadRepo(ctx context.Context, client *http.Client, name, baseURL string) (*Repo, error) {
	base := strings.TrimSuffix(baseURL, "/") + "/"
	b, err := Fetch(ctx, client, base+"repodata/repomd.xml")
	if err != nil {
		return nil, fmt.Errorf("repo %s: %w", name, err)
	}
	var md repomdXML
	if err := xml.Unmarshal(b, &md); err != nil {
		return nil, fmt.Errorf("repo %s: repomd.xml: %w", name, err)
	}
	r := &Repo{Name: name, BaseURL: base, Packages: map[string]*Package{}, Groups: map[string][]string{}}
	for _, d := range md.Data {
		switch d.Type {
		case "primary":
			data, err := Fetch(ctx, client, base+d.Location.Href)
			if err != nil {
				return nil, fmt.Errorf("repo %s: %w", name, err)
			}
			if strings.HasSuffix(d.Location.Href, ".gz") {
				zr, err := gzip.NewReader(bytes.NewReader(data))
				if err != nil {
					return nil, fmt.Errorf("repo %s: %s: %w", name, d.Location.Href, err)
				}
				if data, err = io.ReadAll(io.LimitReader(zr, maxMetadata)); err != nil {
					return nil, fmt.Errorf("repo %s: %s: %w", name, d.Location.Href, err)
				}
			}
			var p primaryXML
			if err := xml.Unmarshal(data, &p); err != nil {
				return nil, fmt.Errorf("repo %s: primary: %w", name, err)
			}
			for _, x := range p.Packages {
				pkg := &Package{Name: x.Name, Epoch: orZero(x.Version.Epoch), Version: x.Version.Ver + "-" + x.Version.Rel, Arch: x.Arch, Location: x.Location.Href, Size: x.Size.Package, Repo: r}
				if x.Checksum.Type == "sha256" {
					pkg.SHA256 = strings.TrimSpace(x.Checksum.Value)
				}
				for _, e := range x.Format.Requires {
					pkg.Requires = append(pkg.Requires, e.Name)
				}
				for _, e := range x.Format.Provides {
					pkg.Provides = append(pkg.Provides, e.Name)
				}
				pkg.Provides = append(pkg.Provides, x.Format.Files...)
				r.Packages[pkg.Name] = pkg
			}
		case "group":
			data, err := Fetch(ctx, client, base+d.Location.Href)
			if err != nil {
				return nil, fmt.Errorf("repo %s: %w", name, err)
			}
			var c compsXML
			if err := xml.Unmarshal(data, &c); err != nil {
				return nil, fmt.Errorf("repo %s: comps: %w", name, err)
			}
			for _, g := range c.Groups {
				for _, p := range g.Packages {
					if p.Type != "optional" {
						r.Groups[g.ID] = append(r.Groups[g.ID], strings.TrimSpace(p.Name))
					}
				}
			}
		}
	}
	return r, nil
}

// MissingError names packages the repositories do not have.
type MissingError struct{ Names []string }

func (e *MissingError) Error() string {
	return "no package provides " + strings.Join(e.Names, ", ")
}

// Resolve turns a selection of packages and groups into the packages to
// install, following Requires to whatever provides them. Missing names are
// skipped when ignoreMissing is set, else they fail the resolution.
func Resolve(repos []*Repo, names, groups, excluded []string, ignoreMissing bool) ([]*Package, error) {
	byName := map[string]*Package{}
	provides := map[string]*Package{}
	for _, r := range repos {
		for _, p := range r.Packages {
			if _, ok := byName[p.Name]; !ok {
				byName[p.Name] = p
			}
			for _, pr := range append([]string{p.Name}, p.Provides...) {
				if _, ok := provides[pr]; !ok {
					provides[pr] = p
				}
			}
		}
	}
	exclude := map[string]bool{}
	for _, x := range excluded {
		exclude[x] = true
	}
	var want, missing []string
	for _, g := range groups {
		found := false
		for _, r := range repos {
			if ps, ok := r.Groups[g]; ok {
				want = append(want, ps...)
				found = true
			}
		}
		if !found {
			missing = append(missing, "@"+g)
		}
	}
	want = append(want, names...)
	chosen := map[string]*Package{}
	var queue []string
	for _, n := range want {
		if exclude[n] {
			continue
		}
		if p := byName[n]; p != nil {
			queue = append(queue, p.Name)
		} else if p := provides[n]; p != nil {
			queue = append(queue, p.Name)
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 && !ignoreMissing {
		return nil, &MissingError{Names: missing}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if chosen[n] != nil {
			continue
		}
		p := byName[n]
		chosen[n] = p
		for _, req := range p.Requires {
			if strings.HasPrefix(req, "rpmlib(") || strings.HasPrefix(req, "config(") {
				continue
			}
			dep := provides[req]
			if dep == nil {
				return nil, fmt.Errorf("%s requires %s, which no package provides", p.Name, req)
			}
			queue = append(queue, dep.Name)
		}
	}
	var out []*Package
	for _, p := range chosen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Install downloads p, checks it against the repository's sha256, and
// unpacks its payload under root. It returns the files written.
func Install(ctx context.Context, client *http.Client, p *Package, root string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Repo.BaseURL+p.Location, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("downloading %s: %w", p.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("downloading %s: %s", p.Name, resp.Status)
	}
	tmp, err := os.CreateTemp("", "kiln-rpm-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), resp.Body); err != nil {
		return 0, fmt.Errorf("downloading %s: %w", p.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); p.SHA256 != "" && got != p.SHA256 {
		return 0, fmt.Errorf("%s: sha256 %s does not match the repository's %s", p.Name, got, p.SHA256)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	rpm, err := rpmutils.ReadRpm(tmp)
	if err != nil {
		return 0, fmt.Errorf("%s: reading the RPM: %w", p.Name, err)
	}
	pr, err := rpm.PayloadReaderExtended()
	if err != nil {
		return 0, fmt.Errorf("%s: payload: %w", p.Name, err)
	}
	n := 0
	for {
		fi, err := pr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("%s: payload: %w", p.Name, err)
		}
		name := path.Clean("/" + strings.TrimPrefix(fi.Name(), "."))
		dst := filepath.Join(root, filepath.FromSlash(name))
		mode := os.FileMode(fi.Mode() & 0o7777)
		switch fi.Mode() & 0o170000 {
		case 0o040000:
			if err := os.MkdirAll(dst, mode|0o700); err != nil {
				return n, err
			}
			os.Chmod(dst, mode)
		case 0o120000:
			os.MkdirAll(filepath.Dir(dst), 0o755)
			os.Remove(dst)
			if err := os.Symlink(fi.Linkname(), dst); err != nil {
				return n, fmt.Errorf("%s: %s: %w", p.Name, name, err)
			}
		case 0o100000:
			if pr.IsLink() {
				continue // a hard link whose content comes with another name
			}
			os.MkdirAll(filepath.Dir(dst), 0o755)
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				return n, fmt.Errorf("%s: %s: %w", p.Name, name, err)
			}
			_, err = io.Copy(f, pr)
			f.Close()
			if err != nil {
				return n, fmt.Errorf("%s: %s: %w", p.Name, name, err)
			}
			// The mode is set after the content: a 0444 file could not be written.
			if err := os.Chmod(dst, mode); err != nil {
				return n, err
			}
		default:
			continue // device nodes and fifos: none in the fixtures
		}
		n++
	}
}

func orZero(epoch string) string {
	if epoch == "" {
		return "0"
	}
	return epoch
}
