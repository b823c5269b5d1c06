package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kiln-build/kiln/internal/fileutil"
	"github.com/kiln-build/kiln/ksserve/cache"

	"github.com/kiln-build/kiln/iso"
	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/pkg/verify"
	"github.com/kiln-build/kiln/qemu"
)

// Manifest is OUT.manifest.json: what went into a build and what came out.
type Manifest struct {
	KilnVersion string           `json:"kiln_version"`
	QEMUVersion string           `json:"qemu_version"`
	Firmware    Firmware         `json:"firmware"`
	Accel       qemu.AccelReport `json:"accel"`
	Inputs      []File           `json:"inputs"`
	// Sources are the kickstart's network sources, how the build reached
	// each, and the mirror chosen from each list.
	Sources   []Source    `json:"sources"`
	Phases    []PhaseTime `json:"phases"`
	VMSeconds float64     `json:"vm_seconds"`
	// OverheadSeconds is the build's wall time less the VM's run: what
	// kiln itself cost.
	OverheadSeconds float64   `json:"overhead_seconds"`
	Packages        []Package `json:"packages"`
	// UpstreamBytes came from the user's mirrors; CacheBytes from kiln's
	// cache. A repeat build fetches no upstream bytes.
	UpstreamBytes int64  `json:"upstream_bytes"`
	CacheBytes    int64  `json:"cache_bytes"`
	Outputs       []File `json:"outputs"`
	// Verify is what --verify saw when it booted the finished image.
	Verify []verify.Result `json:"verify,omitempty"`
}

// File is an input or output, with its sha256.
type File struct {
	Role   string `json:"role"` // kickstart, tdl, iso, tree, or an image format
	Path   string `json:"path"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// PhaseTime is how long one phase took.
type PhaseTime struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
}

// Firmware is the guest firmware a build booted.
type Firmware struct {
	Kind   string `json:"kind"` // bios or uefi
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Package is one installed package, as the installed system's rpm
// database lists it, with the sha256 of the RPM it was installed from
// when kiln served it (through the proxy or on the ISO).
type Package struct {
	Name    string `json:"name"`
	Epoch   string `json:"epoch,omitempty"`
	Version string `json:"version"` // a Debian package's whole version, epoch and revision included
	Release string `json:"release,omitempty"`
	Arch    string `json:"arch"`
	SHA256  string `json:"sha256,omitempty"`
}

// EVR is the package's epoch:version-release, without a zero epoch.
func (p Package) EVR() string {
	if p.Epoch == "" || p.Epoch == "0" {
		return p.Version + "-" + p.Release
	}
	return p.Epoch + ":" + p.Version + "-" + p.Release
}

// filename is the package's conventional RPM file name.
func (p Package) filename() string {
	return p.Name + "-" + p.Version + "-" + p.Release + "." + p.Arch + ".rpm"
}

func (b *builder) input(role, p string) File {
	f := File{Role: role, Path: p}
	if st, err := os.Stat(p); err == nil {
		f.Size = st.Size()
	}
	f.SHA256, _ = fileutil.SHA256(p)
	return f
}

func (b *builder) inputs() []File {
	var in []File
	if b.o.KickstartPath != "" {
		in = append(in, b.input("kickstart", b.o.KickstartPath))
	}
	if b.o.TDLPath != "" {
		in = append(in, b.input("tdl", b.o.TDLPath))
	}
	if b.o.TreeURL != "" {
		in = append(in, File{Role: "tree", Path: cache.Redact(b.o.TreeURL)})
	}
	return in
}

// firmwareInfo names the firmware image a build booted, with its hash;
// for SeaBIOS, QEMU's own.
func firmwareInfo(kind, code string) Firmware {
	if code == "" {
		for _, p := range []string{"/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/bios-256k.bin"} {
			if _, err := os.Stat(p); err == nil {
				code = p
				break
			}
		}
	}
	f := Firmware{Kind: kind, Path: code}
	if code != "" {
		f.SHA256, _ = fileutil.SHA256(code)
	}
	return f
}

// packages reads the installed system's package report (name, epoch,
// version, release and arch, tab-separated, from rpm).
func packages(report []byte, st ksserve.Stats, isoPath string) []Package {
	return joinReport(report, st, isoPath, ".rpm", 5, func(f []string) (Package, string) {
		p := Package{Name: f[0], Epoch: f[1], Version: f[2], Release: f[3], Arch: f[4]}
		return p, p.filename()
	})
}

// joinReport reads a package report, one package a line with fields
// tab-separated fields, parsed by parse into a package and the file name
// it was installed from, and finds each one's sha256: from the proxy's
// records of files ending in suffix, else from the ISO's copy.
func joinReport(report []byte, st ksserve.Stats, isoPath, suffix string, fields int, parse func([]string) (Package, string)) []Package {
	byFile := map[string]string{}
	for _, o := range st.Objects {
		if strings.HasSuffix(o.Path, suffix) && o.SHA256 != "" {
			byFile[path.Base(o.Path)] = o.SHA256
		}
	}
	var onISO map[string]*iso.File
	var isoFile *os.File
	var out []Package
	for _, line := range strings.Split(string(report), "\n") {
		f := strings.Split(strings.TrimSpace(line), "\t")
		if len(f) != fields || f[0] == "" {
			continue
		}
		p, name := parse(f)
		p.SHA256 = byFile[name]
		if p.SHA256 == "" && isoPath != "" {
			if onISO == nil {
				onISO, isoFile = filesOnISO(isoPath, suffix)
			}
			p.SHA256 = sumOnISO(onISO, name)
		}
		out = append(out, p)
	}
	if isoFile != nil {
		isoFile.Close()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name+out[i].Arch < out[j].Name+out[j].Arch })
	return out
}

// sumOnISO is the sha256 of the file named name on the ISO, or "".
func sumOnISO(onISO map[string]*iso.File, name string) string {
	file := onISO[name]
	if file == nil {
		return ""
	}
	h := sha256.New()
	if _, err := io.Copy(h, file.Open()); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// filesOnISO indexes the packages on an installer ISO, the files whose
// names end in suffix (".rpm", ".deb"), by file name.
func filesOnISO(p, suffix string) (map[string]*iso.File, *os.File) {
	out := map[string]*iso.File{}
	f, err := os.Open(p)
	if err != nil {
		return out, nil
	}
	st, err := f.Stat()
	if err != nil {
		return out, f
	}
	r, err := iso.NewReader(f, st.Size())
	if err != nil {
		return out, f
	}
	r.Walk(func(file *iso.File) error {
		if strings.HasSuffix(file.Name, suffix) {
			out[path.Base(file.Name)] = file
		}
		return nil
	})
	return out, f
}

// icicle is Oz's ICICLE package manifest.
type icicle struct {
	XMLName     xml.Name        `xml:"icicle"`
	Description string          `xml:"description,omitempty"`
	Packages    []iciclePackage `xml:"packages>package"`
}

type iciclePackage struct {
	Name string `xml:"name,attr"`
}

// writeManifest writes OUT.manifest.json and OUT.icicle.xml, each
// complete or not at all.
func (b *builder) writeManifest() error {
	m := b.manifest
	// Phases so far; writing the manifest itself is not counted.
	var total float64
	for _, p := range m.Phases {
		total += p.Seconds
	}
	m.OverheadSeconds = total - m.VMSeconds
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	ic := icicle{Description: "kiln build of " + filepath.Base(b.o.Output)}
	for _, p := range m.Packages {
		// Oz lists rpm -qa's NAME-VERSION-RELEASE.ARCH.
		ic.Packages = append(ic.Packages, iciclePackage{Name: p.Name + "-" + p.Version + "-" + p.Release + "." + p.Arch})
	}
	x, err := xml.MarshalIndent(ic, "", "  ")
	if err != nil {
		return err
	}
	outs := map[string][]byte{b.o.Output + ".manifest.json": append(js, '\n')}
	if b.o.Preseed == nil {
		outs[b.o.iciclePath()] = append(append([]byte(xml.Header), x...), '\n')
	}
	for p, data := range outs {
		tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".kiln-tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			os.Remove(tmp)
			return err
		}
		if err := publish(tmp, p); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	return nil
}
