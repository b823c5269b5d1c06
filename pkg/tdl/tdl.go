package tdl

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Template is a parsed TDL.
type Template struct {
	Version     string // the template's version attribute: "" or "1.0"
	Name        string
	Description string
	OS          OS
	Install     Install
	// DiskSize is the disk size in bytes; 10 GiB when the TDL gives none,
	// which DiskSizeGiven tells apart.
	DiskSize      *big.Int
	DiskSizeGiven bool
	Packages      []Package
	Repositories  []Repository
	Files         []File
	Commands      []Command // in the order they run
	Precommands   []Command
}

// OS is the os element.
type OS struct {
	Name               string
	Version            string
	Arch               string
	RootPW             string // a secret: never log it
	Key                string
	KernelParam        string
	IcicleExtraCommand string
}

// Install is the os/install element.
type Install struct {
	Type      string // "url" or "iso"
	URL       string // for type url
	ISO       string // for type iso: a URL or a path
	MD5Sum    string // for type iso: the URL of a checksum file, at most one of the three
	SHA1Sum   string
	SHA256Sum string
	Extras    []Extra
}

// Extra is a file or directory added to the install media.
type Extra struct {
	Type        string // "file" or "directory"
	Source      string
	Destination string
}

// Package is a packages/package element.
type Package struct {
	Name       string
	Repository string
	File       string
	Arguments  string
}

// Repository is a repositories/repository element.
type Repository struct {
	Name      string
	URL       string
	Signed    bool
	Persisted bool // default true: keep the repo configured in the image
	SSLVerify bool
}

// File is a files/file element. Raw and base64 content is decoded into
// Content; a url file keeps its URL, fetched at build time.
type File struct {
	Name    string
	Type    string // raw, base64 or url
	Content string
	URL     string
}

// Command is a commands/command or precommands/command element.
type Command struct {
	Name     string
	Type     string // raw, base64 or url
	Content  string // the script, for raw and base64
	URL      string // for url
	Position int    // 0 when the TDL gives none
}

// DefaultDiskSize is what an install gets when the TDL names no disk size.
var defaultDiskSize = big.NewInt(10 << 30)

// DefaultDiskSize returns 10 GiB, Oz's default.
func DefaultDiskSize() *big.Int { return new(big.Int).Set(defaultDiskSize) }

// ParseFile reads and parses the TDL at path.
func ParseFile(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading TDL: %w", err)
	}
	t, err := parseIn(data, filepath.Dir(path))
	if err != nil {
		if e, ok := err.(*Error); ok && e.File == "" {
			e.File = path
		}
		return nil, err
	}
	return t, nil
}

// Parse parses a TDL document. Errors are *Error values. An xi:include
// names a file relative to the working directory, as for Oz, which
// parses the TDL as a string.
func Parse(data []byte) (*Template, error) { return parseIn(data, "") }

// parseIn is Parse with xi:include relative to dir.
func parseIn(data []byte, dir string) (*Template, error) {
	root, err := parseXMLIn(data, dir, 0)
	if err != nil {
		return nil, err
	}
	p := &checker{}
	t := p.template(root)
	if p.err != nil {
		return nil, p.err
	}
	return t, nil
}

// checker walks the tree and keeps the first error.
type checker struct{ err *Error }

func (c *checker) fail(n *node, format string, args ...any) {
	if c.err == nil {
		c.err = &Error{Path: n.path, Line: n.line, Msg: fmt.Sprintf(format, args...)}
	}
}

// elements checks n's children against the allowed set: required ones
// must appear once, optional ones at most once, and repeated ones any
// number of times. Text between child elements is not allowed.
func (c *checker) elements(n *node, required, optional, repeated []string) {
	count := map[string]int{}
	allowed := map[string]string{}
	for _, r := range required {
		allowed[r] = "once"
	}
	for _, o := range optional {
		allowed[o] = "optional"
	}
	for _, r := range repeated {
		allowed[r] = "many"
	}
	for _, ch := range n.children {
		kind, ok := allowed[ch.name]
		if !ok {
			c.fail(ch, "element %s is not allowed here (allowed: %s)", ch.name, strings.Join(keys(allowed), ", "))
			return
		}
		count[ch.name]++
		if kind != "many" && count[ch.name] > 1 {
			c.fail(ch, "element %s may appear only once", ch.name)
			return
		}
	}
	for _, r := range required {
		if count[r] == 0 {
			c.fail(n, "missing required element %s", r)
			return
		}
	}
	if len(n.children) > 0 && strings.TrimSpace(n.content()) != "" {
		c.fail(n, "text is not allowed between the elements of %s", n.name)
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// attrs checks that n has only the allowed attributes and the required ones.
func (c *checker) attrs(n *node, required, optional []string) {
	ok := map[string]bool{}
	for _, a := range append(append([]string{}, required...), optional...) {
		ok[a] = true
	}
	for _, a := range n.attrList {
		if !ok[a] {
			c.fail(n, "attribute %s is not allowed on %s", a, n.name)
			return
		}
	}
	for _, r := range required {
		if _, have := n.attrs[r]; !have {
			c.fail(n, "missing required attribute %s", r)
			return
		}
	}
}

// leaf checks that n holds text only, with no attributes, and returns it.
func (c *checker) leaf(n *node) string {
	if n == nil {
		return ""
	}
	c.attrs(n, nil, nil)
	return c.text(n)
}

// text checks that n has no child elements and returns its text.
func (c *checker) text(n *node) string {
	if len(n.children) > 0 {
		c.fail(n.children[0], "element %s is not allowed inside %s", n.children[0].name, n.name)
	}
	return n.content()
}

func (c *checker) template(root *node) *Template {
	if root.name != "template" {
		c.fail(root, "expecting element template, got %s", root.name)
		return nil
	}
	t := &Template{DiskSize: DefaultDiskSize()}
	c.attrs(root, nil, []string{"version"})
	if v, ok := root.attrs["version"]; ok {
		if v != "1.0" {
			c.fail(root, "invalid template version %q: the only version is 1.0", v)
		}
		t.Version = v
	}
	c.elements(root, []string{"name", "os"}, []string{"description", "packages", "files", "commands", "precommands", "repositories", "disk"}, nil)
	if c.err != nil {
		return nil
	}
	t.Name = c.leaf(root.child("name"))
	if d := root.child("description"); d != nil {
		t.Description = c.leaf(d)
	}
	c.os(root.child("os"), t)
	if p := root.child("packages"); p != nil {
		c.packages(p, t)
	}
	if f := root.child("files"); f != nil {
		c.files(f, t)
	}
	if r := root.child("repositories"); r != nil {
		c.repositories(r, t)
	}
	if cs := root.child("commands"); cs != nil {
		t.Commands = c.commands(cs)
	}
	if cs := root.child("precommands"); cs != nil {
		t.Precommands = c.commands(cs)
	}
	if d := root.child("disk"); d != nil {
		c.attrs(d, nil, nil)
		c.elements(d, []string{"size"}, nil, nil)
		if c.err == nil {
			size := d.child("size")
			v := c.leaf(size)
			switch {
			case v == "":
				// An empty size is Oz's default (TDL.py _parse_disksize).
			case v != strings.TrimSpace(v):
				// tdl.rng's disk_size pattern allows a space only between
				// the number and the unit.
				c.fail(size, "invalid disk size %q: no spaces around it", v)
			default:
				if n, err := ParseDiskSize(v); err != nil {
					c.fail(size, "%v", err)
				} else {
					t.DiskSize, t.DiskSizeGiven = n, true
				}
			}
		}
	}
	return t
}

var archs = []string{"i386", "x86_64", "ppc64", "ppc64le", "aarch64", "armv7l", "s390x"}

func (c *checker) os(n *node, t *Template) {
	c.attrs(n, nil, nil)
	c.elements(n, []string{"name", "version", "arch", "install"}, []string{"kernelparam", "rootpw", "key", "icicle"}, nil)
	if c.err != nil {
		return
	}
	t.OS.Name = c.leaf(n.child("name"))
	t.OS.Version = c.leaf(n.child("version"))
	arch := n.child("arch")
	t.OS.Arch = c.leaf(arch)
	found := false
	for _, a := range archs {
		found = found || a == t.OS.Arch
	}
	if !found {
		c.fail(arch, "invalid arch %q (one of %s)", t.OS.Arch, strings.Join(archs, ", "))
	}
	t.OS.KernelParam = c.leaf(n.child("kernelparam"))
	t.OS.RootPW = c.leaf(n.child("rootpw"))
	t.OS.Key = c.leaf(n.child("key"))
	if ic := n.child("icicle"); ic != nil {
		c.attrs(ic, nil, nil)
		c.elements(ic, []string{"extra_command"}, nil, nil)
		if c.err == nil {
			t.OS.IcicleExtraCommand = c.leaf(ic.child("extra_command"))
		}
	}
	c.install(n.child("install"), t)
}

func (c *checker) install(n *node, t *Template) {
	c.attrs(n, []string{"type"}, nil)
	if c.err != nil {
		return
	}
	in := &t.Install
	in.Type = n.attrs["type"]
	switch in.Type {
	case "url":
		c.elements(n, []string{"url"}, []string{"extras"}, nil)
		in.URL = strings.TrimSpace(c.leaf(n.child("url")))
	case "iso":
		c.elements(n, []string{"iso"}, []string{"md5sum", "sha1sum", "sha256sum", "extras"}, nil)
		in.ISO = strings.TrimSpace(c.leaf(n.child("iso")))
		sums := 0
		for _, s := range []struct {
			name string
			dst  *string
		}{{"md5sum", &in.MD5Sum}, {"sha1sum", &in.SHA1Sum}, {"sha256sum", &in.SHA256Sum}} {
			if e := n.child(s.name); e != nil {
				*s.dst = strings.TrimSpace(c.leaf(e))
				sums++
				if sums > 1 {
					c.fail(e, "only one of md5sum, sha1sum and sha256sum may be given")
				}
			}
		}
	default:
		c.fail(n, "invalid install type %q (url or iso)", in.Type)
		return
	}
	if ex := n.child("extras"); ex != nil && c.err == nil {
		if in.Type != "iso" {
			// TDL.py: "Extra ISO data can only be used with iso install type"
			c.fail(ex, "extras can only be used with an iso install")
			return
		}
		// tdl.rng: extras follows the install's source, in order.
		if n.children[len(n.children)-1] != ex {
			c.fail(ex, "extras must come last in install")
			return
		}
		c.attrs(ex, nil, nil)
		c.elements(ex, nil, nil, []string{"directory", "file"})
		if len(ex.children) == 0 {
			c.fail(ex, "extras needs at least one file or directory")
		}
		for _, e := range ex.children {
			c.attrs(e, []string{"source", "destination"}, nil)
			c.text(e)
			in.Extras = append(in.Extras, Extra{Type: e.name, Source: e.attrs["source"], Destination: e.attrs["destination"]})
		}
	}
}

func (c *checker) packages(n *node, t *Template) {
	c.attrs(n, nil, nil)
	c.elements(n, nil, nil, []string{"package"})
	for _, p := range n.children {
		c.attrs(p, []string{"name"}, nil)
		c.elements(p, nil, []string{"repository", "file", "arguments"}, nil)
		if c.err != nil {
			return
		}
		t.Packages = append(t.Packages, Package{
			Name:       p.attrs["name"],
			Repository: c.leaf(p.child("repository")),
			File:       c.leaf(p.child("file")),
			Arguments:  c.leaf(p.child("arguments")),
		})
	}
}

var base64Junk = regexp.MustCompile(`[^A-Za-z0-9+/=]`)

// content decodes an element of type raw, base64 or url.
func (c *checker) content(n *node, emptyBase64OK bool) (typ, content, link string) {
	typ, given := n.attrs["type"]
	if !given {
		typ = "raw"
	}
	text := c.text(n)
	switch typ {
	case "raw":
		return typ, strings.TrimSpace(text), ""
	case "base64":
		s := strings.TrimSpace(text)
		if s == "" && emptyBase64OK {
			return typ, "", ""
		}
		// Python's base64.decodebytes, which Oz uses: characters outside
		// the alphabet are dropped, and the padding must be right.
		s = base64Junk.ReplaceAllString(s, "")
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || s == "" {
			c.fail(n, "invalid base64 content")
		}
		return typ, string(b), ""
	case "url":
		// Oz reads a url file when it parses the TDL: file:// from
		// disk, anything else with requests, which takes http(s) only.
		u := strings.TrimSpace(text)
		pu, err := url.Parse(u)
		switch {
		case err != nil || u == "":
			c.fail(n, "invalid URL %q", u)
		case pu.Scheme == "file":
			// A relative one is relative to where Oz runs, which kiln
			// cannot know; an absolute one must be there.
			if p := pu.Host + pu.Path; filepath.IsAbs(p) {
				if _, err := os.Stat(p); err != nil {
					c.fail(n, "url %s: %v", u, err)
				}
			}
		case (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
			c.fail(n, "invalid URL %q: want http, https or file", u)
		}
		return typ, "", u
	}
	c.fail(n, "invalid type %q (raw, base64 or url)", typ)
	return typ, "", ""
}

func (c *checker) files(n *node, t *Template) {
	c.attrs(n, nil, nil)
	c.elements(n, nil, nil, []string{"file"})
	for _, f := range n.children {
		c.attrs(f, []string{"name"}, []string{"type"})
		if c.err != nil {
			return
		}
		typ, content, link := c.content(f, true)
		t.Files = append(t.Files, File{Name: f.attrs["name"], Type: typ, Content: content, URL: link})
	}
}

var positionRE = regexp.MustCompile(`^[0-9]*$`)

func (c *checker) commands(n *node) []Command {
	c.attrs(n, nil, nil)
	c.elements(n, nil, nil, []string{"command"})
	var cmds []Command
	withPos := 0
	for _, e := range n.children {
		c.attrs(e, []string{"name"}, []string{"position", "type"})
		if c.err != nil {
			return nil
		}
		typ, content, link := c.content(e, false)
		cmd := Command{Name: e.attrs["name"], Type: typ, Content: content, URL: link}
		if typ != "url" && content == "" && c.err == nil {
			c.fail(e, "empty commands are not allowed")
		}
		if pos, ok := e.attrs["position"]; ok {
			if !positionRE.MatchString(pos) || pos == "" {
				c.fail(e, "position must be a whole number, not %q", pos)
				return nil
			}
			cmd.Position, _ = strconv.Atoi(pos)
			withPos++
		}
		cmds = append(cmds, cmd)
	}
	if c.err != nil || withPos == 0 {
		return cmds
	}
	if withPos != len(cmds) {
		c.fail(n, "either all commands carry a position or none do")
		return nil
	}
	sort.SliceStable(cmds, func(i, j int) bool { return cmds[i].Position < cmds[j].Position })
	for i, cmd := range cmds {
		if cmd.Position != i+1 {
			c.fail(n, "command positions must run 1, 2, 3... with no duplicates or gaps (found %d where %d was expected)", cmd.Position, i+1)
			return nil
		}
	}
	return cmds
}

var boolRE = regexp.MustCompile(`^(?i:true|false|yes|no)$`)

func (c *checker) boolean(n *node, def bool) bool {
	if n == nil {
		return def
	}
	s := c.leaf(n)
	if !boolRE.MatchString(s) {
		c.fail(n, "invalid boolean %q (true, false, yes or no)", s)
		return def
	}
	s = strings.ToLower(s)
	return s == "true" || s == "yes"
}

func (c *checker) repositories(n *node, t *Template) {
	c.attrs(n, nil, nil)
	c.elements(n, nil, nil, []string{"repository"})
	for _, r := range n.children {
		c.attrs(r, []string{"name"}, nil)
		c.elements(r, []string{"url"}, []string{"signed", "persisted", "sslverify"}, nil)
		if c.err != nil {
			return
		}
		urlNode := r.child("url")
		repo := Repository{
			Name:      r.attrs["name"],
			URL:       strings.TrimSpace(c.leaf(urlNode)),
			Signed:    c.boolean(r.child("signed"), false),
			Persisted: c.boolean(r.child("persisted"), true),
			SSLVerify: c.boolean(r.child("sslverify"), false),
		}
		// Oz refuses a repository on localhost, which its guest cannot
		// reach. kiln's guest reaches it through kiln's proxy, which runs
		// on this host: the repo line is rewritten to the proxy like any
		// other, so it is accepted (docs/kickstart-compat.md).
		t.Repositories = append(t.Repositories, repo)
	}
}

var diskSizeRE = regexp.MustCompile(`^([0-9]*) *([kKmMgGtTpPeEzZyY]?[iI]?[bB]?)$`)

// ParseDiskSize reads a TDL disk size: a bare number is GiB, as are
// "G" and "T" (GiB and TiB, for compatibility); otherwise the unit is SI
// ("10TB") or IEC ("16GiB"), or "B" for bytes.
func ParseDiskSize(s string) (*big.Int, error) {
	m := diskSizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || m[1] == "" {
		return nil, fmt.Errorf("invalid disk size %q: give a whole number with an optional SI or IEC unit, e.g. 10TB or 16GiB", s)
	}
	n, _ := new(big.Int).SetString(m[1], 10)
	unit := strings.ToUpper(m[2])
	pow := func(base, exp int64) *big.Int { return new(big.Int).Exp(big.NewInt(base), big.NewInt(exp), nil) }
	prefixes := "KMGTPEZY"
	switch {
	case unit == "" || unit == "G":
		return n.Mul(n, pow(1024, 3)), nil
	case unit == "T":
		return n.Mul(n, pow(1024, 4)), nil
	case unit == "B":
		return n, nil
	case len(unit) == 2 && unit[1] == 'B' && strings.IndexByte(prefixes, unit[0]) >= 0:
		return n.Mul(n, pow(1000, int64(strings.IndexByte(prefixes, unit[0])+1))), nil
	case len(unit) == 3 && unit[1:] == "IB" && strings.IndexByte(prefixes, unit[0]) >= 0:
		return n.Mul(n, pow(1024, int64(strings.IndexByte(prefixes, unit[0])+1))), nil
	}
	return nil, fmt.Errorf("invalid disk size %q: give a whole number with an optional SI or IEC unit, e.g. 10TB or 16GiB", s)
}
