package tdl

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// xnode is a TDL element for the generator: a tree it can mutate and
// write back.
type xnode struct {
	name  string
	attrs [][2]string
	text  string
	kids  []*xnode
}

func el(name string, attrs [][2]string, text string, kids ...*xnode) *xnode {
	return &xnode{name: name, attrs: attrs, text: text, kids: kids}
}

func (n *xnode) clone() *xnode {
	c := &xnode{name: n.name, attrs: append([][2]string(nil), n.attrs...), text: n.text}
	for _, k := range n.kids {
		c.kids = append(c.kids, k.clone())
	}
	return c
}

func (n *xnode) write(b *strings.Builder, indent string) {
	b.WriteString(indent + "<" + n.name)
	for _, a := range n.attrs {
		fmt.Fprintf(b, " %s=\"%s\"", a[0], a[1])
	}
	if n.text == "" && len(n.kids) == 0 {
		b.WriteString("/>\n")
		return
	}
	b.WriteString(">")
	b.WriteString(n.text)
	if len(n.kids) > 0 {
		b.WriteString("\n")
		for _, k := range n.kids {
			k.write(b, indent+"  ")
		}
		b.WriteString(indent)
	}
	b.WriteString("</" + n.name + ">\n")
}

func (n *xnode) String() string {
	var b strings.Builder
	n.write(&b, "")
	return b.String()
}

// walk visits every node with its path of child indexes from the root.
func (n *xnode) walk(path []int, fn func(*xnode, []int)) {
	fn(n, path)
	for i, k := range n.kids {
		k.walk(append(append([]int(nil), path...), i), fn)
	}
}

// at returns the node at path in a tree, and its parent.
func (n *xnode) at(path []int) (node, parent *xnode) {
	node = n
	for _, i := range path {
		parent, node = node, node.kids[i]
	}
	return node, parent
}

// tdlBases are whole templates the mutations start from: an install
// from a URL with everything Oz's schema allows, an ISO install with
// extras, and the least a template may hold.
func tdlBases() map[string]*xnode {
	full := el("template", [][2]string{{"version", "1.0"}}, "",
		el("name", nil, "t"),
		el("description", nil, "a template"),
		el("os", nil, "",
			el("name", nil, "RHEL-9"), el("version", nil, "9"), el("arch", nil, "x86_64"),
			el("install", [][2]string{{"type", "url"}}, "", el("url", nil, "http://mirror.example/rhel9/")),
			el("rootpw", nil, "pw"), el("key", nil, "KEY")),
		el("disk", nil, "", el("size", nil, "10")),
		el("packages", nil, "", el("package", [][2]string{{"name", "httpd"}}, ""),
			el("package", [][2]string{{"name", "custom"}}, "", el("repository", nil, "r"), el("file", nil, "custom.rpm"), el("arguments", nil, "--x"))),
		el("repositories", nil, "", el("repository", [][2]string{{"name", "r"}}, "",
			el("url", nil, "http://mirror.example/r/"), el("signed", nil, "no"), el("persisted", nil, "yes"), el("sslverify", nil, "no"))),
		el("files", nil, "", el("file", [][2]string{{"name", "/etc/a"}}, "hello"),
			el("file", [][2]string{{"name", "/etc/b"}, {"type", "base64"}}, "aGVsbG8="),
			el("file", [][2]string{{"name", "/etc/c"}, {"type", "url"}}, "http://files.example/c")),
		el("commands", nil, "", el("command", [][2]string{{"name", "one"}, {"position", "1"}}, "echo one"),
			el("command", [][2]string{{"name", "two"}, {"type", "base64"}}, "ZWNobyB0d28=")),
		el("precommands", nil, "", el("precommand", [][2]string{{"name", "p"}}, "echo pre")),
	)
	iso := el("template", nil, "",
		el("name", nil, "t"),
		el("os", nil, "",
			el("name", nil, "Rocky-9"), el("version", nil, "9"), el("arch", nil, "x86_64"),
			el("install", [][2]string{{"type", "iso"}}, "", el("iso", nil, "http://mirror.example/rocky.iso"),
				el("md5sum", nil, "0123456789abcdef0123456789abcdef"),
				el("extras", nil, "", el("directory", [][2]string{{"source", "file:///tmp"}, {"destination", "/x"}}, ""),
					el("file", [][2]string{{"source", "http://files.example/k.ks"}, {"destination", "/ks.cfg"}}, ""))),
			el("rootpw", nil, "pw")),
	)
	minimal := el("template", nil, "",
		el("name", nil, "t"),
		el("os", nil, "",
			el("name", nil, "Fedora-40"), el("version", nil, "40"), el("arch", nil, "x86_64"),
			el("install", [][2]string{{"type", "url"}}, "", el("url", nil, "https://mirror.example/f40/"))),
	)
	osURL := func(name, version, u string, extra ...*xnode) *xnode {
		kids := append([]*xnode{el("url", nil, u)}, extra...)
		return el("os", nil, "", el("name", nil, name), el("version", nil, version), el("arch", nil, "x86_64"),
			el("install", [][2]string{{"type", "url"}}, "", kids...))
	}
	urlExtras := el("template", nil, "", el("name", nil, "t"),
		osURL("CentOS-Stream-9", "9", "http://mirror.example/cs9/", el("extras", nil, "", el("file", [][2]string{{"source", "http://files.example/a"}, {"destination", "/a"}}, ""))))
	files := el("template", nil, "", el("name", nil, "t"), osURL("AlmaLinux-9", "9", "http://mirror.example/alma9/"),
		el("files", nil, "", el("file", [][2]string{{"name", "/etc/motd"}, {"type", "raw"}}, "hi"), el("file", [][2]string{{"name", "/etc/x"}, {"type", "url"}}, "file:///etc/hostname")),
		el("commands", nil, "", el("command", [][2]string{{"name", "a"}}, "true"), el("command", [][2]string{{"name", "b"}}, "false")))
	repos := el("template", nil, "", el("name", nil, "t"), osURL("RHEL-8", "8", "http://mirror.example/rhel8/"),
		el("repositories", nil, "", el("repository", [][2]string{{"name", "a"}}, "", el("url", nil, "https://r.example/a/")),
			el("repository", [][2]string{{"name", "b"}}, "", el("url", nil, "https://r.example/b/"), el("signed", nil, "yes"))),
		el("packages", nil, "", el("package", [][2]string{{"name", "a"}}, ""), el("package", [][2]string{{"name", "b"}}, "")))
	sha := el("template", [][2]string{{"version", "1.0"}}, "", el("name", nil, "t"), el("description", nil, "d"),
		el("os", nil, "", el("name", nil, "Fedora-40"), el("version", nil, "40"), el("arch", nil, "aarch64"),
			el("install", [][2]string{{"type", "iso"}}, "", el("iso", nil, "https://mirror.example/f40.iso"), el("sha256sum", nil, "https://mirror.example/CHECKSUM")),
			el("rootpw", nil, "pw")),
		el("disk", nil, "", el("size", nil, "20G")))
	icicle := el("template", nil, "", el("name", nil, "t"),
		el("os", nil, "", el("name", nil, "RHEL-7"), el("version", nil, "7"), el("arch", nil, "x86_64"),
			el("install", [][2]string{{"type", "url"}}, "", el("url", nil, "http://mirror.example/rhel7/")),
			el("kernelparam", nil, "console=ttyS0"), el("icicle", nil, "", el("extra_command", nil, "rpm -qa")), el("rootpw", nil, "pw")),
		el("disk", nil, "", el("size", nil, "8192MiB")))
	debian := el("template", nil, "", el("name", nil, "deb"), el("description", nil, "Debian"),
		el("os", nil, "", el("name", nil, "Debian"), el("version", nil, "12"), el("arch", nil, "x86_64"),
			el("install", [][2]string{{"type", "iso"}}, "", el("iso", nil, "file:///srv/debian-12.iso"), el("sha1sum", nil, "0123456789abcdef0123456789abcdef01234567"),
				el("extras", nil, "", el("directory", [][2]string{{"source", "file:///srv/preseed"}, {"destination", "/preseed"}}, "")))),
		el("packages", nil, "", el("package", [][2]string{{"name", "nginx"}}, "")),
		el("commands", nil, "", el("command", [][2]string{{"name", "a"}, {"position", "2"}}, "true"), el("command", [][2]string{{"name", "b"}, {"position", "1"}}, "true")))
	full11 := full.clone()
	full11.attrs = [][2]string{{"version", "1.1"}}
	fullNoVersion := full.clone()
	fullNoVersion.attrs = nil
	return map[string]*xnode{"full": full, "full-1.1": full11, "full-no-version": fullNoVersion, "iso": iso, "minimal": minimal, "url-extras": urlExtras, "files": files, "repos": repos, "sha256": sha,
		"icicle": icicle, "debian": debian}
}

// tdlCase is one generated template and the files beside it.
type tdlCase struct {
	class, text string
	extra       map[string]string
}

// generateTDLs mutates each base at every element and attribute, and
// writes the values Oz checks at their edges.
func generateTDLs() []tdlCase {
	var out []tdlCase
	add := func(class string, root *xnode) { out = append(out, tdlCase{class: class, text: root.String()}) }
	bases := tdlBases()
	var names []string
	for n := range bases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, bn := range names {
		base := bases[bn]
		add("base/"+bn, base)
		base.walk(nil, func(n *xnode, path []int) {
			what := n.name
			if len(path) > 0 {
				mut := func(class string, fn func(node, parent *xnode, i int)) {
					c := base.clone()
					node, parent := c.at(path)
					fn(node, parent, path[len(path)-1])
					add(class+"/"+what, c)
				}
				mut("element/missing", func(_, p *xnode, i int) { p.kids = append(p.kids[:i], p.kids[i+1:]...) })
				mut("element/empty", func(node, _ *xnode, _ int) { node.text, node.kids = "", nil })
				mut("element/blank", func(node, _ *xnode, _ int) { node.text, node.kids = "  ", nil })
				mut("element/repeated", func(node, p *xnode, i int) {
					p.kids = append(p.kids[:i+1], append([]*xnode{node.clone()}, p.kids[i+1:]...)...)
				})
				mut("element/first", func(node, p *xnode, i int) {
					rest := append(append([]*xnode(nil), p.kids[:i]...), p.kids[i+1:]...)
					p.kids = append([]*xnode{node}, rest...)
				})
				mut("element/unknown-sibling", func(_, p *xnode, i int) {
					p.kids = append(p.kids[:i+1], append([]*xnode{el("bogus", nil, "x")}, p.kids[i+1:]...)...)
				})
				mut("element/unknown-child", func(node, _ *xnode, _ int) { node.kids = append(node.kids, el("bogus", nil, "x")) })
			}
			for ai := range n.attrs {
				amut := func(class string, fn func(node *xnode, ai int)) {
					c := base.clone()
					node, _ := c.at(path)
					fn(node, ai)
					add(class+"/"+what+"@"+n.attrs[ai][0], c)
				}
				amut("attr/missing", func(node *xnode, ai int) { node.attrs = append(node.attrs[:ai], node.attrs[ai+1:]...) })
				amut("attr/empty", func(node *xnode, ai int) { node.attrs[ai][1] = "" })
				amut("attr/bogus", func(node *xnode, ai int) { node.attrs[ai][1] = "bogus" })
			}
			c := base.clone()
			node, _ := c.at(path)
			node.attrs = append(node.attrs, [2]string{"bogus", "x"})
			add("attr/unknown/"+what, c)
		})
		// Values at their edges, by the element's name.
		values := map[string][]string{
			"size":      {"0", "1", "10G", "10GB", "10T", "10TB", "10M", "1.5", "-1", "abc", " 10 ", "10g", "99999999999999999999"},
			"arch":      {"i386", "x86_64", "ppc64le", "aarch64", "s390x", "armv7l", "amd64", "X86_64"},
			"version":   {"9", "9.5", "", "8", "10", "abc"},
			"url":       {"http://h/", "https://h/", "ftp://h/", "file:///nonexistent/", "file:///tmp/", "nfs://h/x", "h/x", "http://localhost/r/", "http://127.0.0.1:9/r/"},
			"signed":    {"yes", "no", "true", "false", "True", "1", "0", "maybe"},
			"persisted": {"yes", "no", "true", "false", "maybe"},
			"sslverify": {"yes", "no", "true", "false", "maybe"},
			"iso":       {"http://h/a.iso", "file:///nonexistent.iso", "ftp://h/a.iso", "a.iso"},
			"md5sum":    {"0123456789abcdef0123456789abcdef", "http://h/MD5SUM", "zz"},
		}
		if bn == "full" {
			values["name"] = []string{"RHEL-9", "Rocky-9", "AlmaLinux-9", "CentOS-Stream-9", "Fedora-40", "RHEL-8", "Debian-12", "Ubuntu-22.04", "Unknown-1", "rhel-9"}
		}
		base.walk(nil, func(n *xnode, path []int) {
			for _, val := range values[n.name] {
				c := base.clone()
				node, _ := c.at(path)
				node.text = val
				add("value/"+n.name, c)
			}
			for ai, a := range n.attrs {
				var vals []string
				switch a[0] {
				case "type":
					vals = []string{"url", "iso", "raw", "base64", "url", "bogus", "URL"}
				case "position":
					vals = []string{"0", "1", "-1", "abc", "99999999999999999999"}
				case "version":
					vals = []string{"1.0", "1.1", "2.0", "0.9", "abc"}
				}
				for _, v := range vals {
					c := base.clone()
					node, _ := c.at(path)
					node.attrs[ai][1] = v
					add("attr-value/"+n.name+"@"+a[0], c)
				}
			}
		})
	}
	// The document as a whole.
	min := bases["minimal"].String()
	for class, text := range map[string]string{
		"doc/xml-declaration": `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + min,
		"doc/namespace":       strings.Replace(min, "<template>", `<template xmlns="http://example.com/ns">`, 1),
		"doc/foreign-ns":      strings.Replace(min, "<template>", `<template xmlns:x="http://example.com/x">`, 1),
		"doc/comment":         "<!-- c -->\n" + min,
		"doc/two-roots":       min + min,
		"doc/not-template":    strings.ReplaceAll(min, "template>", "tmpl>"),
		"doc/empty":           "",
		"doc/not-xml":         "not xml",
		"doc/unclosed":        strings.TrimSuffix(strings.TrimSpace(min), "</template>"),
		"doc/entity":          `<!DOCTYPE template [<!ENTITY n "t">]>` + "\n" + strings.Replace(min, "<name>t</name>", "<name>&n;</name>", 1),
		"doc/cdata":           strings.Replace(min, "<name>t</name>", "<name><![CDATA[t]]></name>", 1),
		"doc/bom":             "\ufeff" + min,
	} {
		out = append(out, tdlCase{class: class, text: text})
	}
	// XInclude, as Oz resolves it before validating.
	xi := `<template xmlns:xi="http://www.w3.org/2001/XInclude"><name>t</name><xi:include href="os.xml"/></template>`
	osXML := `<os><name>RHEL-9</name><version>9</version><arch>x86_64</arch><install type="url"><url>http://h/</url></install></os>`
	out = append(out,
		tdlCase{class: "xinclude/present", text: xi, extra: map[string]string{"os.xml": osXML}},
		tdlCase{class: "xinclude/missing", text: xi},
		tdlCase{class: "xinclude/bad", text: xi, extra: map[string]string{"os.xml": "<os><name>x</name></os>"}},
		tdlCase{class: "xinclude/fallback", text: strings.Replace(xi, `<xi:include href="os.xml"/>`, `<xi:include href="nope.xml"><xi:fallback>`+osXML+`</xi:fallback></xi:include>`, 1)},
	)
	return out
}

// TestDifferential compares kiln's TDL verdicts with Oz's own parser on
// generated templates. It runs when KILN_OZ names a checkout of Oz's
// source (outside this repository) and Debian's python3-lxml is
// installed; disagreements go to KILN_DIFF_OUT.
func TestDifferential(t *testing.T) {
	ozDir := os.Getenv("KILN_OZ")
	if ozDir == "" {
		t.Skip("KILN_OZ is not set; this differential test is opt-in")
	}
	cases := generateTDLs()
	dir := t.TempDir()
	tc := make([]testutil.Case, len(cases))
	for i, c := range cases {
		tc[i] = testutil.Case{Text: c.text, Extra: c.extra}
	}
	files := testutil.WriteCases(t, dir, "t.tdl", tc)
	py := "/usr/bin/python3" // Debian's, with python3-lxml
	if _, err := os.Stat(py); err != nil {
		py = "python3"
	}
	oz := map[string]map[string]string{}
	for _, l := range testutil.RunOracle(t, py, "testdata/oracle/oz_oracle.py", ozDir, []byte(strings.Join(files, "\n")+"\n")) {
		var r map[string]string
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		oz[r["path"]] = r
	}
	type tally struct{ n, agree int }
	byClass := map[string]*tally{}
	var report strings.Builder
	agree := 0
	for i, c := range cases {
		r := oz[files[i]]
		_, kerr := ParseFile(files[i])
		got := "pass"
		if kerr != nil {
			got = "raise"
		}
		class := strings.SplitN(c.class, "/", 3)
		key := class[0] + "/" + class[1]
		if byClass[key] == nil {
			byClass[key] = &tally{}
		}
		byClass[key].n++
		if got == r["verdict"] {
			agree++
			byClass[key].agree++
			continue
		}
		fmt.Fprintf(&report, "%05d\t%s\tOz %s: %s\tkiln %s: %v\t%q\n", i, c.class, r["verdict"], r["message"], got, kerr, c.text)
	}
	outPath := os.Getenv("KILN_DIFF_OUT")
	if outPath == "" {
		outPath = filepath.Join(dir, "disagreements.tsv")
	}
	os.WriteFile(outPath, []byte(report.String()), 0o644)
	var keys []string
	for k := range byClass {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-28s %5d cases, %.2f%% agree", k, byClass[k].n, 100*float64(byClass[k].agree)/float64(byClass[k].n))
	}
	pct := 100 * float64(agree) / float64(len(cases))
	t.Logf("%d templates: kiln agrees with Oz on %.2f%%; disagreements in %s", len(cases), pct, outPath)
	if pct < 99.5 {
		t.Errorf("agreement %.2f%% < 99.5%%", pct)
	}
}
