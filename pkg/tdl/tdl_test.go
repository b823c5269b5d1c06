package tdl

import (
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/kickstart"
)

func TestParseFull(t *testing.T) {
	tpl, err := ParseFile("testdata/full.tdl")
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Name != "full" || tpl.OS.Name != "AlmaLinux" || tpl.OS.RootPW != "t0p-secret" || tpl.OS.KernelParam != "console=ttyS0" {
		t.Errorf("template = %+v", tpl)
	}
	if tpl.Install.Type != "iso" || tpl.Install.ISO != "file:///srv/iso/alma.iso" || tpl.Install.SHA256Sum != "http://mirror.example/alma/CHECKSUM" || len(tpl.Install.Extras) != 1 {
		t.Errorf("install = %+v", tpl.Install)
	}
	if tpl.DiskSize.Cmp(big.NewInt(20<<30)) != 0 || !tpl.DiskSizeGiven {
		t.Errorf("disk size = %v", tpl.DiskSize)
	}
	if len(tpl.Repositories) != 2 || tpl.Repositories[0].Persisted || !tpl.Repositories[1].Persisted || tpl.Repositories[1].SSLVerify {
		t.Errorf("repositories = %+v", tpl.Repositories)
	}
	if len(tpl.Files) != 3 || tpl.Files[0].Content != "key = value" || tpl.Files[1].Content != "hello\n" || tpl.Files[2].URL != "http://files.example/scripts/setup.sh" {
		t.Errorf("files = %+v", tpl.Files)
	}
	if len(tpl.Commands) != 2 || tpl.Commands[0].Name != "a" || tpl.Commands[1].Name != "b" {
		t.Errorf("commands not in position order: %+v", tpl.Commands)
	}
	v, err := tpl.KickstartVersion()
	if err != nil || v != kickstart.RHEL9 {
		t.Errorf("KickstartVersion = %v, %v", v, err)
	}
}

func TestDefaultDiskSize(t *testing.T) {
	tpl, err := ParseFile("testdata/rocky9.tdl")
	if err != nil {
		t.Fatal(err)
	}
	if tpl.DiskSize.Cmp(big.NewInt(10<<30)) != 0 || tpl.DiskSizeGiven {
		t.Errorf("default disk size = %v (given=%v), want an explicit 10 GiB", tpl.DiskSize, tpl.DiskSizeGiven)
	}
}

func TestKickstartVersion(t *testing.T) {
	tests := []struct {
		name, version string
		want          kickstart.Version
		err           bool
	}{
		{"Rocky-9", "9", kickstart.RHEL9, false},
		{"Rocky", "8.10", kickstart.RHEL8, false},
		{"RHEL-10", "10", kickstart.RHEL10, false},
		{"CentOS-Stream", "9", kickstart.RHEL9, false},
		{"AlmaLinux", "9", kickstart.RHEL9, false},
		{"Fedora", "40", kickstart.F40, false},
		{"Ubuntu", "22.04", 0, true},
		{"Rocky", "nine", 0, true},
	}
	for _, tt := range tests {
		tpl := &Template{OS: OS{Name: tt.name, Version: tt.version}}
		got, err := tpl.KickstartVersion()
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s %s: got %v, %v; want %v (error %v)", tt.name, tt.version, got, err, tt.want, tt.err)
		}
	}
}

func TestParseDiskSize(t *testing.T) {
	gib := int64(1 << 30)
	tests := []struct {
		in   string
		want string
	}{
		{"10", big.NewInt(10 * gib).String()},
		{"10G", big.NewInt(10 * gib).String()},
		{"10T", big.NewInt(10 * gib * 1024).String()},
		{"16GiB", big.NewInt(16 * gib).String()},
		{"10TB", "10000000000000"},
		{"10000000 B", "10000000"},
		{"10ZB", "10000000000000000000000"},
		{"2EiB", "2305843009213693952"},
		{"512 mib", big.NewInt(512 << 20).String()},
	}
	for _, tt := range tests {
		got, err := ParseDiskSize(tt.in)
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseDiskSize(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"10E", "T10", "", "G", "10 XB", "1.5G", "-1"} {
		if _, err := ParseDiskSize(bad); err == nil {
			t.Errorf("ParseDiskSize(%q) succeeded", bad)
		}
	}
}

const head = `<template><name>x</name><os><name>Fedora</name><version>40</version><arch>x86_64</arch><install type='url'><url>http://m/</url></install></os>`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, path, msg string
		line                 int
	}{
		{"empty", ``, "", "empty", 1},
		{"not xml", `<template>`, "", "not well-formed", 1},
		{"wrong root", `<templ/>`, "/templ", "expecting element template", 1},
		{"no os", "<template>\n<name>x</name>\n</template>", "/template", "missing required element os", 1},
		{"duplicate name", head + `<name>y</name></template>`, "/template/name", "only once", 1},
		{"bad arch", "<template><name>x</name><os><name>F</name><version>1</version>\n<arch>sparc</arch><install type='url'><url>u</url></install></os></template>", "/template/os/arch", "invalid arch", 2},
		{"bad install type", `<template><name>x</name><os><name>F</name><version>1</version><arch>i386</arch><install type='ftp'><url>u</url></install></os></template>`, "/template/os/install", "invalid install type", 1},
		{"two sums", `<template><name>x</name><os><name>F</name><version>1</version><arch>i386</arch><install type='iso'><iso>a</iso><md5sum>m</md5sum><sha1sum>s</sha1sum></install></os></template>`, "/template/os/install/sha1sum", "only one of", 1},
		{"bad version attr", `<template version="2.0"><name>x</name></template>`, "/template", "invalid template version", 1},
		{"bad bool", head + `<repositories><repository name='r'><url>http://r/</url><signed>foo</signed></repository></repositories></template>`, "/template/repositories/repository/signed", "invalid boolean", 1},
		{"repo no url", head + `<repositories><repository name='r'></repository></repositories></template>`, "/template/repositories/repository", "missing required element url", 1},
		{"package no name", head + `<packages><package/></packages></template>`, "/template/packages/package", "missing required attribute name", 1},
		{"bad base64", head + `<files><file name='/f' type='base64'>abc-</file></files></template>`, "/template/files/file", "invalid base64", 1},
		{"empty base64 command", head + `<commands><command name='c' type='base64'></command></commands></template>`, "/template/commands/command", "invalid base64", 1},
		{"empty command", head + `<commands><command name='c'>  </command></commands></template>`, "/template/commands/command", "empty commands", 1},
		{"bad file type", head + `<files><file name='/f' type='zip'>x</file></files></template>`, "/template/files/file", "invalid type", 1},
		{"mixed positions", head + `<commands><command name='a' position='1'>x</command><command name='b'>y</command></commands></template>`, "/template/commands", "all commands carry a position or none", 1},
		{"duplicate positions", head + `<commands><command name='a' position='1'>x</command><command name='b' position='1'>y</command></commands></template>`, "/template/commands", "no duplicates or gaps", 1},
		{"extras not last", `<template><name>x</name><os><name>F</name><version>1</version><arch>i386</arch><install type='iso'><extras><file source='a' destination='/b'/></extras><iso>a</iso></install></os></template>`, "/template/os/install/extras", "must come last", 1},
		{"attribute on extras", `<template><name>x</name><os><name>F</name><version>1</version><arch>i386</arch><install type='iso'><iso>a</iso><extras x='1'><file source='a' destination='/b'/></extras></install></os></template>`, "/template/os/install/extras", "not allowed", 1},
		{"foreign element", `<template xmlns:x="urn:x"><name>x</name><x:name>y</x:name></template>`, "", "namespace", 1},
		{"xinclude missing", `<template xmlns:xi="http://www.w3.org/2001/XInclude"><name>x</name><xi:include href="/no/such.xml"/></template>`, "", "xi:include", 1},
		{"bad disk size", head + `<disk><size>10E</size></disk></template>`, "/template/disk/size", "invalid disk size", 1},
		{"unknown element", head + `<bogus/></template>`, "/template/bogus", "not allowed", 1},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]><template/>`, "", "DOCTYPE", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			if e.Path != tt.path || e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("error = %q (path %q line %d), want path %q line %d containing %q", e.Error(), e.Path, e.Line, tt.path, tt.line, tt.msg)
			}
		})
	}
}

// TestOzAccepts are cases where kiln once disagreed with Oz's own parser
// (TestDifferential): Oz accepts them, and so does kiln.
func TestOzAccepts(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "os.xml"), []byte(`<os><name>RHEL-9</name><version>9</version><arch>x86_64</arch><install type="url"><url>http://h/</url></install></os>`), 0o644)
	for name, doc := range map[string]string{
		"byte order mark": "\ufeff" + head + "</template>",
		"prefix declared": `<template xmlns:x="urn:x"><name>x</name><os><name>F</name><version>1</version><arch>i386</arch><install type='url'><url>u</url></install></os></template>`,
		"xinclude":        `<template xmlns:xi="http://www.w3.org/2001/XInclude"><name>t</name><xi:include href="os.xml"/></template>`,
		"xinclude fallback": `<template xmlns:xi="http://www.w3.org/2001/XInclude"><name>t</name><xi:include href="nope.xml"><xi:fallback>` +
			`<os><name>F</name><version>1</version><arch>i386</arch><install type='url'><url>u</url></install></os></xi:fallback></xi:include></template>`,
		// Oz refuses it; kiln's proxy, on this host, serves it to the guest.
		"localhost repo": head + `<repositories><repository name='r'><url>http://localhost/r/</url></repository></repositories></template>`,
	} {
		p := filepath.Join(dir, "t.tdl")
		os.WriteFile(p, []byte(doc), 0o644)
		tpl, err := ParseFile(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if name == "xinclude" && (tpl.OS.Name != "RHEL-9" || tpl.Install.URL != "http://h/") {
			t.Errorf("xinclude: %+v %+v", tpl.OS, tpl.Install)
		}
	}
}

func TestApply(t *testing.T) {
	tpl, err := ParseFile("testdata/full.tdl")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := tpl.BaseKickstart()
	if err != nil {
		t.Fatal(err)
	}
	if err := tpl.Apply(ks); err != nil {
		t.Fatal(err)
	}
	out := string(ks.Render())
	back := kickstart.Parse("applied.ks", []byte(out), kickstart.Options{Version: kickstart.RHEL9})
	if len(back.Diagnostics) != 0 {
		t.Fatalf("applied kickstart has diagnostics:\n%v\n%s", back.Diagnostics, out)
	}
	if r := back.RootPW(); r == nil || r.Password != "t0p-secret" {
		t.Errorf("rootpw = %+v", r)
	}
	repos := back.Repos()
	if len(repos) != 2 || repos[0].Install || !repos[1].Install || !repos[1].NoVerifySSL {
		t.Errorf("repos = %+v", repos)
	}
	p := back.Packages()
	if p == nil || strings.Join(p.Packages, ",") != "httpd,custom-package-1" || strings.Join(p.Groups, ",") != "core" {
		t.Errorf("packages = %+v", p)
	}
	scripts := back.Scripts()
	if len(scripts) != 4 {
		t.Fatalf("got %d scripts, want 4 (files, precommand, two commands):\n%s", len(scripts), out)
	}
	if !strings.Contains(scripts[0].Body, "base64 -d > /etc/motd") || !strings.Contains(scripts[0].Body, "curl -fsSL -o /usr/local/bin/setup.sh http://files.example/scripts/setup.sh") {
		t.Errorf("files script:\n%s", scripts[0].Body)
	}
	for i, want := range []string{"echo pre", "echo one", "echo two"} {
		if !strings.Contains(scripts[i+1].Body, want) {
			t.Errorf("script %d = %q, want %q", i+1, scripts[i+1].Body, want)
		}
	}
	if a, _ := back.Shutdown(); a != "poweroff" {
		t.Errorf("shutdown = %q", a)
	}
	if src := back.InstallSource(); src == nil || src.Kind != "cdrom" {
		t.Errorf("install source = %+v", src)
	}
}

func TestApplyKeepsKickstartChoices(t *testing.T) {
	tpl, err := Parse([]byte(head + `<repositories><repository name='AppStream'><url>http://other/</url></repository></repositories></template>`))
	if err != nil {
		t.Fatal(err)
	}
	tpl.OS.RootPW = "from-tdl"
	ks := kickstart.Parse("base.ks", []byte("rootpw --iscrypted $6$x\nrepo --name=AppStream --baseurl=http://mine/\n"), kickstart.Options{Version: kickstart.RHEL9})
	if err := tpl.Apply(ks); err != nil {
		t.Fatal(err)
	}
	if r := ks.RootPW(); r.Password != "$6$x" {
		t.Errorf("the kickstart's rootpw was replaced: %+v", r)
	}
	if rs := ks.Repos(); len(rs) != 1 || rs[0].BaseURL != "http://mine/" {
		t.Errorf("the kickstart's repo was replaced: %+v", rs)
	}
}
