package kickstart

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parseString(t *testing.T, v Version, text string) *File {
	t.Helper()
	return Parse("test.ks", []byte(text), Options{Version: v})
}

func TestSplitLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{`part / --size=1`, []string{"part", "/", "--size=1"}, false},
		{`a b#c d`, []string{"a", "b"}, false},
		{`a "b#c" d`, []string{"a", "b#c", "d"}, false},
		{`a b\ c`, []string{"a", "b c"}, false},
		{`a "x\y" 'q\z'`, []string{"a", `x\y`, `q\z`}, false},
		{`a "x\"y"`, []string{"a", `x"y`}, false},
		{`repo --name="App Stream" --baseurl=http://m/`, []string{"repo", "--name=App Stream", "--baseurl=http://m/"}, false},
		{`a "unterminated`, nil, true},
		{`a \`, nil, true},
		{`  # only a comment`, nil, false},
		{`a ""`, []string{"a", ""}, false},
	}
	for _, tt := range tests {
		got, err := splitLine(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("splitLine(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") || len(got) != len(tt.want) {
			t.Errorf("splitLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestQuoteArgRoundTrip(t *testing.T) {
	for _, s := range []string{"plain", "a b", "it's", `x"y`, "", "#hash", `back\slash`, "$HOME"} {
		got, err := splitLine("cmd " + quoteArg(s))
		if err != nil || len(got) != 2 || got[1] != s {
			t.Errorf("quoteArg(%q) = %s reads back as %q (%v)", s, quoteArg(s), got, err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
	}{
		{"RHEL9", RHEL9}, {"rhel9", RHEL9}, {"RHEL9.4", RHEL9}, {"F40", F40},
		{"fedora40", F40}, {"FC3", FC3}, {"RHEL10", RHEL10}, {"RHEL8", RHEL8},
		{"DEVEL", F45}, {"F7", F7}, {"F29", fedoraVersion(29)}, {"F30", fedoraVersion(30)},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if err == nil {
			back, err := ParseVersion(got.String())
			if err != nil || back != got {
				t.Errorf("ParseVersion(%v.String()) = %v, %v", got, back, err)
			}
		}
	}
	for _, bad := range []string{"", "RHEL2", "F99", "ubuntu22", "RHEL"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
	if !(RHEL9 > fedoraVersion(34) && RHEL9 < fedoraVersion(35)) {
		t.Error("RHEL9 is not between F34 and F35")
	}
}

func TestGrammarCoversEveryVersion(t *testing.T) {
	g, err := loadGrammar()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range Versions() {
		for _, cmd := range []string{"lang", "rootpw", "part", "%packages", "%post"} {
			if s := g.lookup(v, cmd); s == nil || s.removed {
				t.Errorf("%s: %s missing", v, cmd)
			}
		}
	}
	if s := g.lookup(RHEL9, "install"); s == nil || !s.removed {
		t.Error("install is not removed in RHEL9")
	}
	if s := g.lookup(RHEL8, "install"); s == nil || s.removed {
		t.Error("install should still parse in RHEL8")
	}
}

// diag is what a test expects of one diagnostic.
type diag struct {
	line    int
	warning bool
	substr  string
}

func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		ks   string
		want []diag
	}{
		{"valid minimal", RHEL9, "text\nlang en_US.UTF-8\nrootpw --lock\nautopart\n", nil},
		{"removed install", RHEL9, "install\ntext\n", []diag{{1, false, "install has been removed from the RHEL9 kickstart syntax: delete the line"}}},
		{"install deprecated in RHEL8", RHEL8, "install\n", []diag{{1, true, "install command has been deprecated"}}},
		{"unknown command", RHEL9, "text\nfrobnicate --now\n", []diag{{2, false, "unknown command: frobnicate"}}},
		{"size with unit", RHEL9, "part / --size=10G\n", []diag{{1, false, "argument --size: invalid int value: '10G'"}}},
		{"bad choice", RHEL9, "network --bootproto=foo\n", []diag{{1, false, "invalid choice: 'foo'"}}},
		{"missing required positional", RHEL9, "lang\n", []diag{{1, false, "required: <lang>"}}},
		{"missing required option", RHEL9, "logvol / --name=root --size=1\n", []diag{{1, false, "required: --vgname"}}},
		{"expected one argument", RHEL9, "part / --size\n", []diag{{1, false, "argument --size: expected one argument"}}},
		{"flag with value", RHEL9, "part / --grow=yes\n", []diag{{1, false, "ignored explicit argument '***'"}}},
		{"flag with value, no secrets", RHEL9, "firewall --enabled=yes\n", []diag{{1, false, "ignored explicit argument 'yes'"}}},
		{"unrecognized", RHEL9, "zerombr yes\n", []diag{{1, false, "unrecognized arguments: yes"}}},
		{"zerombr yes old", F7, "zerombr yes\n", []diag{{1, true, "no effect"}}},
		{"conflict", RHEL9, "autopart\npart / --size=100\n", []diag{{2, false, "the part and autopart commands can't be used at the same time"}}},
		{"url none", RHEL9, "url --proxy=http://p/\n", []diag{{1, false, "one of --url, --mirrorlist or --metalink"}}},
		{"url two", RHEL9, "url --url=http://a/ --mirrorlist=http://b/\n", []diag{{1, false, "only one of --url, --mirrorlist"}}},
		{"rootpw missing", RHEL9, "rootpw --plaintext\n", []diag{{1, false, "single argument is expected"}}},
		{"duplicate repo", RHEL9, "repo --name=a --baseurl=http://x/\nrepo --name=a --baseurl=http://y/\n", []diag{{2, true, "a repo with the name a has already been defined"}}},
		{"duplicate mountpoint", RHEL9, "part / --size=1\npart /boot --size=1\npart / --size=2\n", []diag{{3, true, "mountpoint / has already"}}},
		{"deprecated option", F40, "%packages --instLangs=en\n%end\n", []diag{{1, true, "--instLangs option has been deprecated"}}},
		{"prefix option", RHEL9, "ignoredisk --only=vda\n", nil},
		{"ambiguous prefix", RHEL9, "part / --pbkdf-=1\n", []diag{{1, false, "ambiguous option"}}},
		{"value with space looks like option", RHEL9, "part / --mkfsoptions \"-O ^has_journal\"\n", nil},
		{"stray end", RHEL9, "text\n%end\n", []diag{{2, false, "unknown kickstart section: %end"}}},
		{"unknown section", RHEL9, "%bogus\n%end\n", []diag{{1, false, "unknown kickstart section: %bogus"}}},
		{"unclosed section", RHEL9, "%post\necho hi\n", []diag{{2, false, "section %post does not end with %end"}}},
		{"section runs into section", RHEL9, "%post\necho\n%packages\n@core\n%end\n", []diag{{3, false, "section %post does not end with %end"}}},
		{"bad packages option", RHEL9, "%packages --nosuch\n%end\n", []diag{{1, false, "%packages: unrecognized arguments: --nosuch"}}},
		{"nocore too new for RHEL6", RHEL6, "%packages --nocore\n%end\n", []diag{{1, false, "unrecognized arguments: --nocore"}}},
		{"no closing quote", RHEL9, "lang \"en_US\n", []diag{{1, false, "no closing quotation"}}},
		{"all errors reported", RHEL9, "bogus1\ntext\nbogus2\n", []diag{{1, false, "bogus1"}, {3, false, "bogus2"}}},
		{"script body not parsed", RHEL9, "%post\nthis is not --a command\n%end\n", nil},
		{"addon anything", RHEL9, "%addon com_redhat_kdump --enable --reserve-mb=auto\n%end\n", nil},
		{"timezone two zones", RHEL9, "timezone Europe/Paris Asia/Taipei\n", []diag{{1, false, "one or zero arguments"}}},
		{"authconfig warns on RHEL8", RHEL8, "authconfig --enableshadow\n", []diag{{1, true, "authconfig command will be deprecated"}}},
		{"logging port without host", RHEL9, "logging --port=514\n", []diag{{1, false, "--port without --host"}}},
		{"raid without level", RHEL9, "raid / --device=md0 raid.01 raid.02\n", []diag{{1, false, "without RAID level"}}},
		{"deprecated command", RHEL9, "method\n", []diag{{1, true, "method command has been deprecated"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := parseString(t, tt.v, tt.ks)
			if len(f.Diagnostics) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(f.Diagnostics), len(tt.want), dump(f.Diagnostics))
			}
			for i, w := range tt.want {
				d := f.Diagnostics[i]
				if d.Line != w.line || d.Warning != w.warning || !strings.Contains(d.Msg, w.substr) {
					t.Errorf("diagnostic %d = %s (warning=%v), want line %d warning=%v containing %q", i, d, d.Warning, w.line, w.warning, w.substr)
				}
				if d.File != "test.ks" {
					t.Errorf("diagnostic %d names file %q", i, d.File)
				}
			}
		})
	}
}

func dump(ds []Diagnostic) string {
	var sb strings.Builder
	for _, d := range ds {
		sb.WriteString("  " + d.String() + "\n")
	}
	return sb.String()
}

func TestScenarioKickstart(t *testing.T) {
	f, err := ParseFile("testdata/my-rocky9.ks", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != RHEL9 {
		t.Errorf("version = %v, want the RHEL9 default", f.Version)
	}
	errs := f.Errors()
	if len(errs) != 1 || errs[0].String() != "testdata/my-rocky9.ks:1: install has been removed from the RHEL9 kickstart syntax: delete the line: installation is the default, and url, cdrom, harddrive, nfs or liveimg name the source" {
		t.Errorf("errors = \n%s", dump(errs))
	}
	if src := f.InstallSource(); src == nil || src.Kind != "url" || src.URL != "http://your-mirror-server.local/rocky/9/BaseOS/x86_64/os/" {
		t.Errorf("install source = %+v", src)
	}
	repos := f.Repos()
	if len(repos) != 2 || repos[0].Name != "AppStream" || repos[1].BaseURL != "http://your-mirror-server.local/custom-rpms/" {
		t.Errorf("repos = %+v", repos)
	}
	p := f.Packages()
	if p == nil || strings.Join(p.Groups, ",") != "core,standard" || strings.Join(p.Packages, ",") != "httpd,nginx,custom-package-1,custom-package-2" {
		t.Errorf("packages = %+v", p)
	}
	sc := f.Scripts()
	if len(sc) != 1 || sc[0].Kind != SectionPost || sc[0].Log != "/root/ks-post.log" || !strings.Contains(sc[0].Body, "useradd -m -s /bin/bash customuser\n") {
		t.Errorf("scripts = %+v", sc)
	}
	if r := f.RootPW(); r == nil || r.Password != "yourpassword" || r.IsCrypted {
		t.Errorf("rootpw = %+v", r)
	}
	if a, _ := f.Shutdown(); a != "" {
		t.Errorf("shutdown = %q, want none", a)
	}
	pt := f.Partitioning()
	if !pt.ZeroMBR || pt.AutoPart == nil || pt.ClearPart == nil {
		t.Errorf("partitioning = %+v", pt)
	}
	data, _ := os.ReadFile("testdata/my-rocky9.ks")
	if got := f.Render(); !bytes.Equal(got, data) {
		t.Errorf("render differs from input:\n%s", got)
	}
}

func TestVersionComment(t *testing.T) {
	f := Parse("v.ks", []byte("# a comment\n#version=RHEL8\ninstall\n"), Options{})
	if f.Version != RHEL8 || len(f.Errors()) != 0 {
		t.Errorf("version = %v, diagnostics:\n%s", f.Version, dump(f.Diagnostics))
	}
	f = Parse("v.ks", []byte("#version=RHEL8\ninstall\n"), Options{Version: RHEL9})
	if f.Version != RHEL9 || len(f.Errors()) != 1 {
		t.Errorf("an explicit version must win over the comment: %v\n%s", f.Version, dump(f.Diagnostics))
	}
	f = Parse("v.ks", []byte("#version=BOGUS9\ntext\n"), Options{})
	if f.Version != DefaultVersion || len(f.Warnings()) != 1 {
		t.Errorf("bad version comment: %v\n%s", f.Version, dump(f.Diagnostics))
	}
}

func TestInclude(t *testing.T) {
	f, err := ParseFile("testdata/include/main.ks", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Diagnostics) != 0 {
		t.Fatalf("diagnostics:\n%s", dump(f.Diagnostics))
	}
	want := "#version=RHEL9\ntext\nzerombr\nclearpart --all\npart / --size=4096 --grow\nrootpw --lock\n%packages\n@core\nvim-minimal\n-plymouth\n%end\n"
	if got := string(f.Render()); got != want {
		t.Errorf("render =\n%s\nwant\n%s", got, want)
	}
	if p := f.Packages(); p == nil || strings.Join(p.Packages, ",") != "vim-minimal" || strings.Join(p.Excluded, ",") != "plymouth" {
		t.Errorf("packages from include = %+v", p)
	}
	// An error in an included file names that file and its line.
	f = Parse("main.ks", []byte("%include sub.ks\n"), Options{ReadFile: func(name string) ([]byte, error) {
		return []byte("text\nbogus\n"), nil
	}})
	if errs := f.Errors(); len(errs) != 1 || errs[0].String() != "sub.ks:2: unknown command: bogus" {
		t.Errorf("errors:\n%s", dump(errs))
	}
}

func TestIncludeCycle(t *testing.T) {
	f, err := ParseFile("testdata/include/cycle-a.ks", Options{})
	if err != nil {
		t.Fatal(err)
	}
	errs := f.Errors()
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "makes a cycle") || errs[0].File != filepath.Join("testdata/include", "cycle-b.ks") {
		t.Errorf("errors:\n%s", dump(f.Diagnostics))
	}
}

// TestIncludeMissing: a missing %include fails as it fails pykickstart,
// unless a %pre names the path; then it is a warning naming that %pre,
// which --strict counts, and the line survives for Anaconda.
func TestIncludeMissing(t *testing.T) {
	f := parseString(t, RHEL9, "%include /tmp/part-include\n")
	if es := f.Errors(); len(es) != 1 || es[0].Line != 1 || !strings.Contains(es[0].Msg, "no such file") {
		t.Errorf("no %%pre writes it:\n%s", dump(f.Diagnostics))
	}
	f = parseString(t, RHEL9, "%pre\necho 'part / --size=1' > /tmp/part-include\n%end\n%include /tmp/part-include\n")
	ws := f.Warnings()
	if len(f.Errors()) != 0 || len(ws) != 1 || ws[0].Notice || !strings.Contains(ws[0].Msg, "the %pre at line 1") || strictOK(f) {
		t.Errorf("a %%pre writes it:\n%s", dump(f.Diagnostics))
	}
	if got := string(f.Render()); !strings.HasSuffix(got, "%include /tmp/part-include\n") {
		t.Errorf("render = %q", got)
	}
}

func TestRenderIsByteIdentical(t *testing.T) {
	files, _ := filepath.Glob("testdata/render/*.ks")
	files = append(files, "testdata/my-rocky9.ks")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f := Parse(name, data, Options{})
		if len(f.Errors()) != 0 && !strings.Contains(name, "rocky9") {
			t.Errorf("%s: errors:\n%s", name, dump(f.Errors()))
		}
		if got := f.Render(); !bytes.Equal(got, data) {
			t.Errorf("%s: render = %q, want %q", name, got, data)
		}
	}
}

func TestEdits(t *testing.T) {
	src := "text\nreboot --eject\nurl --url=http://mirror/os/\nrepo --name=x --baseurl=http://mirror/x/\n%packages\n@core\n%end\nhalt\n"
	f := parseString(t, RHEL9, src)
	if len(f.Diagnostics) != 0 {
		t.Fatalf("diagnostics:\n%s", dump(f.Diagnostics))
	}
	changed, err := f.SetShutdown("poweroff")
	if err != nil || !changed {
		t.Fatalf("SetShutdown = %v, %v", changed, err)
	}
	n := f.RewriteURLs(func(u string) string { return strings.Replace(u, "http://mirror/", "http://10.0.2.2:8080/m/", 1) })
	if n != 2 {
		t.Errorf("RewriteURLs changed %d URLs, want 2", n)
	}
	f.AddPackages("httpd", "-plymouth")
	f.AppendScript(Script{Kind: SectionPost, Log: "/root/x.log", Body: "echo done\n"})
	want := "text\npoweroff --eject\nurl --url=http://10.0.2.2:8080/m/os/\nrepo --name=x --baseurl=http://10.0.2.2:8080/m/x/\n%packages\n@core\nhttpd\n-plymouth\n%end\n%post --log=/root/x.log\necho done\n%end\n"
	got := string(f.Render())
	if got != want {
		t.Errorf("render =\n%s\nwant\n%s", got, want)
	}
	// What kiln writes must itself parse cleanly.
	g := parseString(t, RHEL9, got)
	if len(g.Diagnostics) != 0 {
		t.Errorf("edited kickstart does not parse:\n%s", dump(g.Diagnostics))
	}
	if a, _ := g.Shutdown(); a != "poweroff" {
		t.Errorf("shutdown after edit = %q", a)
	}
}

func TestSetShutdownAdds(t *testing.T) {
	f := parseString(t, RHEL9, "text\n%post\necho\n%end")
	if _, err := f.SetShutdown("poweroff"); err != nil {
		t.Fatal(err)
	}
	if got, want := string(f.Render()), "text\npoweroff\n%post\necho\n%end"; got != want {
		t.Errorf("render = %q, want %q", got, want)
	}
	f = parseString(t, RHEL9, "text")
	f.SetShutdown("poweroff")
	if got, want := string(f.Render()), "text\npoweroff\n"; got != want {
		t.Errorf("render = %q, want %q", got, want)
	}
	f = parseString(t, RHEL9, "poweroff\n")
	if changed, _ := f.SetShutdown("poweroff"); changed {
		t.Error("SetShutdown changed a kickstart that already powers off")
	}
}

func TestSecretsNeverInDiagnostics(t *testing.T) {
	for _, ks := range []string{
		"rootpw --plaintext s3cr3t-pw extra\n",
		"rootpw --bogus s3cr3t-pw\n",
		"user --name=a --password=s3cr3t-pw --bogus\n",
		"part / --passphrase=s3cr3t-pw --size=x\n",
		"sshpw --username=a s3cr3t-pw --nope\n",
	} {
		f := parseString(t, RHEL9, ks)
		if len(f.Diagnostics) == 0 {
			t.Errorf("%q: expected a diagnostic", ks)
		}
		for _, d := range f.Diagnostics {
			if strings.Contains(d.String(), "s3cr3t") {
				t.Errorf("%q: diagnostic leaks the secret: %s", ks, d)
			}
		}
	}
}

func TestIncludeOverHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ks/parts.ks":
			io.WriteString(w, "part / --size=1024\n%include more.ks\n")
		case "/ks/more.ks":
			io.WriteString(w, "bogus-command\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	f := parseString(t, RHEL9, "text\n%include "+srv.URL+"/ks/parts.ks\n%ksappend "+srv.URL+"/ks/missing.ks\n")
	errs := f.Errors()
	if len(errs) != 2 {
		t.Fatalf("errors:\n%s", dump(f.Diagnostics))
	}
	var nested, missing bool
	for _, e := range errs {
		nested = nested || (e.File == srv.URL+"/ks/more.ks" && e.Line == 1 && strings.Contains(e.Msg, "bogus-command"))
		missing = missing || (e.File == "test.ks" && e.Line == 3 && strings.Contains(e.Msg, "404"))
	}
	if !nested || !missing {
		t.Errorf("errors:\n%s", dump(errs))
	}
	if got := string(f.Render()); !strings.HasPrefix(got, "text\npart / --size=1024\nbogus-command\n") {
		t.Errorf("render = %q", got)
	}
}
