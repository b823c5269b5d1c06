package ksserve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// AnyHost stands for this server's own base URL in what it serves (the
// kickstart, the boot scripts): each response gets the scheme and host
// the request came in by. A server on a wildcard address is reached by a
// different address on each network, and a machine booting on any of
// them must be sent back to the one it used.
const AnyHost = "http://kiln-host.invalid"

// DefaultIPXEDir is where Debian's ipxe package puts iPXE's binaries for
// chainloading from a PXE ROM.
const DefaultIPXEDir = "/usr/lib/ipxe"

// Boot configures network boot: an iPXE script and a GRUB configuration
// that boot the first ISO's installer with the kickstart, the kernel and
// initrd, and iPXE's own binaries, all under /TOKEN/boot/.
type Boot struct {
	// Append is added to the installer's kernel command line.
	Append string
	// IPXEDir holds undionly.kpxe, ipxe.efi and snponly.efi; default
	// DefaultIPXEDir. The files it lacks are not served.
	IPXEDir string
}

// ipxeBinaries are the chainload files served from Boot.IPXEDir: BIOS
// PXE (undionly.kpxe) and UEFI PXE or HTTP boot (ipxe.efi, snponly.efi).
var ipxeBinaries = []string{"undionly.kpxe", "ipxe.efi", "snponly.efi"}

// ErrNoIPXE says the iPXE binaries are not installed.
var ErrNoIPXE = errors.New("iPXE's chainload binaries are not installed: install Debian's ipxe package for legacy PXE (undionly.kpxe) and UEFI PXE (ipxe.efi)")

// bootISOs are which ISO boots and which one holds the packages.
func (s *Server) bootISOs() (boot, repo int, ok bool) {
	boot, repo = -1, -1
	for i, t := range s.cfg.ISOs {
		if boot < 0 && t.Kernel != "" {
			boot = i
		}
		if repo < 0 && t.Packages {
			repo = i
		}
	}
	if repo < 0 {
		repo = boot
	}
	return boot, repo, boot >= 0
}

// ISOPath is the path prefix of the n-th ISO's tree, "/TOKEN/iso/N/".
func (s *Server) ISOPath(n int) string { return s.prefix + "iso/" + strconv.Itoa(n) + "/" }

// BootPath is the path of a boot file, "/TOKEN/boot/NAME".
func (s *Server) BootPath(name string) string { return s.prefix + "boot/" + name }

// BootArgs is the installer's kernel command line for a machine that
// reaches this server at base: the kickstart, the install tree (and the
// boot ISO's stage2 when the packages are on another ISO), DHCP on the
// boot interface, and Boot.Append.
func (s *Server) BootArgs(base string) string {
	boot, repo, ok := s.bootISOs()
	if !ok {
		return ""
	}
	args := []string{"inst.ks=" + base + s.KickstartPath()}
	if repo != boot {
		args = append(args, "inst.stage2="+base+s.ISOPath(boot))
	}
	args = append(args, "inst.repo="+base+s.ISOPath(repo), "ip=dhcp")
	if s.cfg.Boot != nil && s.cfg.Boot.Append != "" {
		args = append(args, s.cfg.Boot.Append)
	}
	return strings.Join(args, " ")
}

// IPXEScript is the iPXE script a machine that reaches this server at
// base boots by: the boot ISO's kernel and initrd over HTTP, with
// BootArgs. initrd= names the initrd for a UEFI kernel's EFI stub, which
// finds it by that name in the file system iPXE gives it.
func (s *Server) IPXEScript(base string) []byte {
	var b bytes.Buffer
	b.WriteString("#!ipxe\n# Served by kiln: the installer with its kickstart.\n")
	fmt.Fprintf(&b, "kernel %s%s initrd=initrd.img %s\n", base, s.BootPath("vmlinuz"), s.BootArgs(base))
	fmt.Fprintf(&b, "initrd %s%s\n", base, s.BootPath("initrd.img"))
	b.WriteString("boot\n")
	return b.Bytes()
}

// GRUBConfig is a grub.cfg for UEFI machines that boot shim or GRUB over
// the network: its paths are on GRUB's own root, the server GRUB was
// loaded from (by TFTP or HTTP), so it works whichever it was.
func (s *Server) GRUBConfig(base string) []byte {
	var b bytes.Buffer
	b.WriteString("# Served by kiln: the installer with its kickstart.\nset default=0\nset timeout=5\n")
	fmt.Fprintf(&b, "menuentry 'Install %s (kiln)' {\n", grubQuote(s.bootLabel()))
	fmt.Fprintf(&b, "\tlinux %s %s\n", s.BootPath("vmlinuz"), s.BootArgs(base))
	fmt.Fprintf(&b, "\tinitrd %s\n}\n", s.BootPath("initrd.img"))
	return b.Bytes()
}

func (s *Server) bootLabel() string {
	boot, _, _ := s.bootISOs()
	t := s.cfg.ISOs[boot]
	if t.Tree != nil && t.Tree.Family != "" {
		return strings.TrimSpace(t.Tree.Family + " " + t.Tree.Version)
	}
	return t.VolumeID
}

// grubQuote keeps a label inside GRUB's single quotes.
func grubQuote(s string) string { return strings.ReplaceAll(s, "'", "") }

// BootFiles lists the names served under /TOKEN/boot/.
func (s *Server) BootFiles() []string {
	if s.cfg.Boot == nil {
		return nil
	}
	names := []string{"boot.ipxe", "grub.cfg", "vmlinuz", "initrd.img"}
	boot, _, _ := s.bootISOs()
	for _, n := range shimFiles {
		if s.cfg.ISOs[boot].File("EFI/BOOT/"+n) != nil {
			names = append(names, n)
		}
	}
	for _, n := range ipxeBinaries {
		if st, err := os.Stat(filepath.Join(s.ipxeDir(), n)); err == nil && st.Mode().IsRegular() {
			names = append(names, n)
		}
	}
	return names
}

// shimFiles are the boot ISO's EFI loaders, served for UEFI machines that
// netboot shim and GRUB (Secure Boot) rather than iPXE.
var shimFiles = []string{"BOOTX64.EFI", "grubx64.efi"}

func (s *Server) ipxeDir() string {
	if s.cfg.Boot.IPXEDir != "" {
		return s.cfg.Boot.IPXEDir
	}
	return DefaultIPXEDir
}

// HasIPXE says whether iPXE's chainload binaries are there to serve.
func (s *Server) HasIPXE() bool {
	for _, n := range s.BootFiles() {
		if n == "undionly.kpxe" || n == "ipxe.efi" {
			return true
		}
	}
	return false
}

// BootFile is one boot file's content.
type BootFile struct {
	io.ReadSeeker
	Size    int64
	ModTime time.Time
	close   func() error
}

// Close releases the file.
func (b *BootFile) Close() error {
	if b.close != nil {
		return b.close()
	}
	return nil
}

// OpenBootFile opens the boot file name, with base standing for this
// server in the scripts; fs.ErrNotExist when there is none of that name.
// The HTTP and TFTP servers both serve from it.
func (s *Server) OpenBootFile(name, base string) (*BootFile, error) {
	if s.cfg.Boot == nil {
		return nil, fs.ErrNotExist
	}
	boot, _, _ := s.bootISOs()
	doc := func(b []byte) (*BootFile, error) {
		return &BootFile{ReadSeeker: bytes.NewReader(b), Size: int64(len(b))}, nil
	}
	fromISO := func(p string) (*BootFile, error) {
		t := s.cfg.ISOs[boot]
		file := t.File(p)
		if file == nil {
			return nil, fs.ErrNotExist
		}
		e, err := t.open(file)
		if err != nil {
			return nil, err
		}
		return &BootFile{ReadSeeker: e, Size: e.size, ModTime: file.ModTime, close: e.f.Close}, nil
	}
	switch name {
	case "boot.ipxe":
		return doc(s.IPXEScript(base))
	case "grub.cfg":
		return doc(s.GRUBConfig(base))
	case "vmlinuz":
		return fromISO(s.cfg.ISOs[boot].Kernel)
	case "initrd.img":
		return fromISO(s.cfg.ISOs[boot].Initrd)
	}
	for _, n := range shimFiles {
		if name == n {
			return fromISO("EFI/BOOT/" + n)
		}
	}
	for _, n := range ipxeBinaries {
		if name == n {
			f, err := os.Open(filepath.Join(s.ipxeDir(), n))
			if err != nil {
				return nil, fs.ErrNotExist
			}
			st, err := f.Stat()
			if err != nil || !st.Mode().IsRegular() {
				f.Close()
				return nil, fs.ErrNotExist
			}
			return &BootFile{ReadSeeker: f, Size: st.Size(), ModTime: st.ModTime(), close: f.Close}, nil
		}
	}
	return nil, fs.ErrNotExist
}

// hostPattern is what a Host header may hold to be echoed into a
// script: a name or address and a port, nothing that could end a line or
// an argument.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?\](:[0-9]+)?$`)

// base is this server's URL as the request reached it, or the configured
// one.
func (s *Server) base(r *http.Request) (string, bool) {
	if s.cfg.Base != "" {
		return s.cfg.Base, true
	}
	if !hostPattern.MatchString(r.Host) {
		return "", false
	}
	return "http://" + r.Host, true
}

func (s *Server) serveBoot(w http.ResponseWriter, r *http.Request, name string) {
	base, ok := s.base(r)
	if !ok {
		http.Error(w, "bad Host header", http.StatusBadRequest)
		return
	}
	f, err := s.OpenBootFile(name, base)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	ct := "application/octet-stream"
	if name == "boot.ipxe" || name == "grub.cfg" {
		ct = "text/plain; charset=utf-8"
		w.Header().Set("Cache-Control", "no-store")
	}
	w.Header().Set("Content-Type", ct)
	http.ServeContent(w, r, "", f.ModTime, f)
}

// ISOs are the ISOs served, in the order of their paths' numbers.
func (s *Server) ISOs() []*ISO { return s.cfg.ISOs }
