package kickstart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// genCase is one generated kickstart: its class (what was done to it),
// the syntax version, its text, and the files beside it it includes.
type genCase struct {
	class   string
	version Version
	text    string
	extra   map[string]string // name beside ks.cfg -> content
}

// diffVersions are the versions every case is generated for.
var diffVersions = []Version{RHEL7, RHEL8, RHEL9, RHEL10, fedoraVersion(38), F40, fedoraVersion(42), fedoraVersion(43)}

// sampleValue is a value of the option's type that the type accepts.
func sampleValue(o *optionSpec) string {
	switch o.typ {
	case typeInt:
		return "1"
	case typeFloat:
		return "1.5"
	case typeBool:
		return "yes"
	case typeChoice:
		return o.choices[0]
	}
	return "x"
}

// baseLine is the command with its required options and positionals.
func baseLine(c *commandSpec) string {
	parts := []string{c.name}
	for _, p := range c.positionals {
		for i := 0; i < p.min; i++ {
			parts = append(parts, "/"+strings.Trim(p.name, "<>?*.")+fmt.Sprint(i))
		}
	}
	for _, o := range c.options {
		if o.required {
			parts = append(parts, o.names[0]+"="+sampleValue(o))
		}
	}
	return strings.Join(parts, " ")
}

// generateCommands writes the cases kiln's grammar table implies for v:
// every option missing, twice, empty, of the wrong type, each choice and
// one outside them, numbers at their edges; required arguments missing;
// commands twice, unknown options, removed and deprecated commands.
func generateCommands(g grammar, v Version) []genCase {
	var out []genCase
	add := func(class string, lines ...string) {
		out = append(out, genCase{class: class, version: v, text: strings.Join(lines, "\n") + "\n"})
	}
	var names []string
	for n := range g {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := g.lookup(v, n)
		if c == nil || c.name != n {
			continue
		}
		base := baseLine(c)
		if c.removed {
			add("command/removed", base)
			continue
		}
		add("command/base", base)
		add("command/twice", base, base)
		add("command/unknown-option", base+" --no-such-option")
		add("command/extra-positional", base+" extra-arg")
		for _, p := range c.positionals {
			if p.min > 0 {
				add("positional/missing", c.name)
				break
			}
		}
		for _, o := range c.options {
			name := o.names[0]
			without := strings.Replace(base, " "+name+"="+sampleValue(o), "", 1)
			if o.required {
				add("option/required-missing", without)
			}
			if !o.takesValue {
				add("flag/present", without+" "+name)
				add("flag/twice", without+" "+name+" "+name)
				add("flag/with-value", without+" "+name+"=yes")
				continue
			}
			val := sampleValue(o)
			add("option/present", without+" "+name+"="+val)
			add("option/separate-value", without+" "+name+" "+val)
			add("option/twice", without+" "+name+"="+val+" "+name+"="+val)
			add("option/empty-eq", without+" "+name+"=")
			add("option/empty-quoted", without+" "+name+` ""`)
			if !o.optional {
				add("option/no-value", without+" "+name)
			}
			for _, alias := range o.names[1:] {
				add("option/alias", without+" "+alias+"="+val)
			}
			switch o.typ {
			case typeInt:
				for _, x := range []string{"abc", "-1", "0", "99999999999999999999", "1.5"} {
					add("option/int-"+x, without+" "+name+"="+x)
				}
			case typeFloat:
				add("option/float-bad", without+" "+name+"=abc")
			case typeBool:
				for _, x := range []string{"no", "maybe"} {
					add("option/bool-"+x, without+" "+name+"="+x)
				}
			case typeChoice:
				for _, ch := range o.choices {
					add("option/choice", without+" "+name+"="+ch)
				}
				add("option/choice-outside", without+" "+name+"=no-such-choice")
			}
		}
	}
	// Commands that exclude each other.
	for _, pair := range [][2]string{{"autopart", "part / --size=1"}, {"autopart", "reqpart"}, {"autopart", "raid / --level=1 --device=md0 raid.1"},
		{"url --url=http://h/", "cdrom"}, {"url --url=http://h/", "harddrive --partition=sda1 --dir=/x"}, {"cdrom", "nfs --server=h --dir=/x"},
		{"text", "graphical"}, {"text", "cmdline"}, {"poweroff", "reboot"}, {"autopart", "logvol / --vgname=v --name=r --size=1"},
		{"rootpw --lock", "rootpw --plaintext x"}, {"url --mirrorlist=http://h/", "url --url=http://h/"}, {"liveimg --url=http://h/i", "url --url=http://h/"},
		{"ostreesetup --osname=a --url=http://h/ --ref=r", "url --url=http://h/"}, {"firstboot --enable", "firstboot --disable"},
		{"part / --size=1", "part / --size=2"}, {"part swap --size=1", "part swap --size=1"},
		{"part pv.01 --size=1", "part pv.01 --size=1"}, {"part none --size=1", "part none --size=1"}, {"part raid.1 --size=1", "part raid.1 --size=1"}, {"network --device=eth0", "network --device=eth0"},
		{"user --name=a", "user --name=a"}, {"group --name=a", "group --name=a"}, {"sshkey --username=a k", "sshkey --username=a k"}} {
		add("command/exclusive", pair[0], pair[1])
	}
	return out
}

// generateSections covers section headers and their options, sections
// never closed, nested or stray, and %include and %ksappend.
func generateSections(v Version) []genCase {
	var out []genCase
	add := func(class, text string, extra map[string]string) {
		out = append(out, genCase{class: class, version: v, text: text, extra: extra})
	}
	headers := map[string][]string{
		"%packages":    {"", "--nobase", "--nocore", "--default", "--excludedocs", "--ignoremissing", "--instLangs=en", "--inst-langs=en", "--multilib", "--excludeWeakdeps", "--exclude-weakdeps", "--timeout=10", "--retries=2", "--timeout=abc", "--retries=", "--ignorebroken", "--resolvedeps", "--ignoredeps", "--bogus", "extra"},
		"%pre":         {"", "--interpreter=/bin/sh", "--interpreter /usr/bin/python3", "--erroronfail", "--log=/tmp/x.log", "--logfile=/tmp/x", "--interpreter=", "--bogus", "--nochroot", "extra"},
		"%pre-install": {"", "--interpreter=/bin/sh", "--erroronfail", "--log=/tmp/x", "--bogus"},
		"%post":        {"", "--nochroot", "--interpreter=/bin/bash", "--erroronfail", "--log=/root/x.log", "--logfile=/root/x", "--bogus", "--nochroot=yes", "extra"},
		"%onerror":     {"", "--interpreter=/bin/sh", "--log=/tmp/x", "--bogus"},
		"%traceback":   {"", "--interpreter=/bin/sh", "--bogus"},
		"%addon":       {"com_redhat_kdump --enable", "com_redhat_kdump", "", "org_fedora_oscap"},
		"%anaconda":    {"", "--bogus"},
		"%certificate": {"--filename=ca.pem --dir=/etc/pki", "--filename=ca.pem", "", "--dir=/x"},
		"%bogus":       {""},
	}
	var keys []string
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, h := range keys {
		body := "echo hi\n"
		switch h {
		case "%packages":
			body = "@core\nhttpd\n-nano\n"
		case "%anaconda":
			body = "pwpolicy root --minlen=6\n"
		case "%certificate":
			body = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
		case "%addon":
			body = "\n"
		}
		for _, opt := range headers[h] {
			hdr := strings.TrimSpace(h + " " + opt)
			add("section/header", "text\n"+hdr+"\n"+body+"%end\n", nil)
		}
		add("section/unclosed", "text\n"+h+"\n"+body, nil)
		add("section/twice", "text\n"+h+"\n"+body+"%end\n"+h+"\n"+body+"%end\n", nil)
		add("section/nested", "text\n"+h+"\n"+body+"%post\necho\n%end\n%end\n", nil)
		add("section/end-args", "text\n"+h+"\n"+body+"%end extra\n", nil)
	}
	add("section/stray-end", "text\n%end\n", nil)
	add("section/command-after", "%packages\n@core\n%end\ntext\n", nil)
	for _, kw := range []string{"%include", "%ksappend"} {
		k := strings.TrimPrefix(kw, "%")
		add(k+"/missing-absolute", "text\n"+kw+" /no/such/file.ks\n", nil)
		add(k+"/missing-relative", "text\n"+kw+" no-such.ks\n", nil)
		add(k+"/relative", "text\n"+kw+" part.ks\n", map[string]string{"part.ks": "lang en_US.UTF-8\n"})
		add(k+"/relative-bad", "text\n"+kw+" part.ks\n", map[string]string{"part.ks": "lang\n"})
		add(k+"/http-unreachable", "text\n"+kw+" http://127.0.0.1:9/x.ks\n", nil)
		add(k+"/no-argument", "text\n"+kw+"\n", nil)
		add(k+"/cycle", "text\n"+kw+" a.ks\n", map[string]string{"a.ks": kw + " b.ks\n", "b.ks": kw + " a.ks\n"})
		add(k+"/self", "text\n"+kw+" ks.cfg\n", nil)
		add(k+"/pre-written", "%pre\necho 'part / --size=1' > /tmp/part-include\n%end\n"+kw+" /tmp/part-include\n", nil)
		add(k+"/in-section", "%packages\n"+kw+" part.ks\n%end\n", map[string]string{"part.ks": "httpd\n"})
	}
	return out
}

// generateFiles covers whole files of odd shape.
func generateFiles(v Version) []genCase {
	base := "text\nlang en_US.UTF-8\nkeyboard us\ntimezone UTC\nrootpw --plaintext pw\n%packages\n@core\n%end\n"
	var out []genCase
	add := func(class, text string) { out = append(out, genCase{class: class, version: v, text: text}) }
	add("file/empty", "")
	add("file/comments", "# a comment\n#version=RHEL9\n   # indented\n")
	add("file/whitespace", "  \n\t\n\n")
	add("file/base", base)
	add("file/crlf", strings.ReplaceAll(base, "\n", "\r\n"))
	add("file/bom", "\ufeff"+base)
	add("file/nul", "text\nlang en_US\x00.UTF-8\n")
	add("file/nul-comment", "# \x00\ntext\n")
	add("file/long-comment", "#"+strings.Repeat("x", 100000)+"\ntext\n")
	add("file/long-line", "bootloader --append=\""+strings.Repeat("a=b ", 20000)+"\"\n")
	add("file/no-final-newline", strings.TrimSuffix(base, "\n"))
	add("file/continuation", "part / \\\n --size=1\n")
	add("file/quotes-unbalanced", "bootloader --append=\"a b\n")
	add("file/tab-separated", "part\t/\t--size=1\n")
	add("file/latin1", "lang en_US.UTF-8\n# caf\xe9\n")
	return out
}

// mutate makes variants of a corpus file: each of a sample of its lines
// deleted, duplicated, and moved to the end, and two options' values
// swapped.
func mutate(text string, v Version, rng *rand.Rand, n int) []genCase {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 2 {
		return nil
	}
	var out []genCase
	add := func(class string, ls []string) {
		out = append(out, genCase{class: class, version: v, text: strings.Join(ls, "")})
	}
	for k := 0; k < n; k++ {
		i := rng.IntN(len(lines))
		del := append(append([]string(nil), lines[:i]...), lines[i+1:]...)
		add("mutation/delete", del)
		dup := append(append(append([]string(nil), lines[:i+1]...), lines[i]), lines[i+1:]...)
		add("mutation/duplicate", dup)
		moved := append(append([]string(nil), del...), lines[i])
		add("mutation/move", moved)
	}
	// Swap the values of two options in one file.
	var opts []int
	for i, l := range lines {
		if strings.Contains(l, "--") && strings.Contains(l, "=") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			opts = append(opts, i)
		}
	}
	if len(opts) >= 2 {
		a, b := opts[rng.IntN(len(opts))], opts[rng.IntN(len(opts))]
		va, vb := optValue(lines[a]), optValue(lines[b])
		if va != "" && vb != "" && va != vb {
			sw := append([]string(nil), lines...)
			sw[a] = strings.Replace(lines[a], "="+va, "="+vb, 1)
			sw[b] = strings.Replace(lines[b], "="+vb, "="+va, 1)
			add("mutation/swap-values", sw)
		}
	}
	return out
}

// optValue is the value of the first --opt=value on a line.
func optValue(l string) string {
	for _, f := range strings.Fields(l) {
		if strings.HasPrefix(f, "--") {
			if _, v, ok := strings.Cut(f, "="); ok && v != "" {
				return v
			}
		}
	}
	return ""
}

// oracleVerdict is one mode's verdict from the oracle script.
type oracleVerdict struct {
	Verdict  string   `json:"verdict"`
	Line     int      `json:"line"`
	Message  string   `json:"message"`
	Warnings []string `json:"warnings"`
}

type oracleResult struct {
	Path    string        `json:"path"`
	Version string        `json:"version"`
	Parse   oracleVerdict `json:"parse"`
	Strict  oracleVerdict `json:"strict"`
}

// TestDifferential generates kickstarts from kiln's grammar, odd files,
// sections and includes, and mutations of the corpus, and compares kiln's
// verdicts on each with pykickstart's: its parser as Anaconda runs it,
// and as ksvalidator does. It runs when KILN_PYKICKSTART names a checkout
// of pykickstart's source (outside this repository); KILN_KS_CORPUS adds
// the corpus mutations. Disagreements go to KILN_DIFF_OUT (default: the
// test's temporary directory), one per line.
func TestDifferential(t *testing.T) {
	pyks := os.Getenv("KILN_PYKICKSTART")
	if pyks == "" {
		t.Skip("KILN_PYKICKSTART is not set; this differential test is opt-in")
	}
	g, err := loadGrammar()
	if err != nil {
		t.Fatal(err)
	}
	var cases []genCase
	for _, v := range diffVersions {
		cases = append(cases, generateCommands(g, v)...)
		cases = append(cases, generateSections(v)...)
		cases = append(cases, generateFiles(v)...)
	}
	if corpus := os.Getenv("KILN_KS_CORPUS"); corpus != "" {
		rng := rand.New(rand.NewPCG(7, 11))
		for _, r := range readTSV(t, filepath.Join(corpus, "ks", "VERDICTS.tsv")) {
			v, err := ParseVersion(r["version"])
			if err != nil || r["role"] != "top" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(corpus, "ks", r["file"]))
			if err != nil || bytes.Contains(b, []byte("%include")) || bytes.Contains(b, []byte("%ksappend")) {
				continue // includes name files beside the original
			}
			cases = append(cases, mutate(string(b), v, rng, 4)...)
		}
	}
	dir := t.TempDir()
	tc := make([]testutil.Case, len(cases))
	for i, c := range cases {
		tc[i] = testutil.Case{Text: c.text, Extra: c.extra}
	}
	paths := testutil.WriteCases(t, dir, "ks.cfg", tc)
	var jobs bytes.Buffer
	for i, c := range cases {
		json.NewEncoder(&jobs).Encode(map[string]string{"path": paths[i], "version": c.version.String()})
	}
	oracle := map[string]oracleResult{}
	for _, l := range testutil.RunOracle(t, "python3", "testdata/oracle/pykickstart_oracle.py", pyks, jobs.Bytes()) {
		var r oracleResult
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatal(err)
		}
		oracle[r.Path] = r
	}
	type tally struct{ n, parse, strict, rejected, caught, line int }
	deliberateN := 0
	byVersion, byClass := map[string]*tally{}, map[string]*tally{}
	get := func(m map[string]*tally, k string) *tally {
		if m[k] == nil {
			m[k] = &tally{}
		}
		return m[k]
	}
	var report strings.Builder
	for i, c := range cases {
		r, ok := oracle[paths[i]]
		if !ok {
			t.Fatalf("the oracle gave no verdict for %s", paths[i])
		}
		f, err := ParseFile(paths[i], Options{Version: c.version})
		if err != nil {
			t.Fatal(err)
		}
		parseOK, strict := len(f.Errors()) == 0, strictOK(f)
		class := c.class
		if j := strings.Index(class, "/"); j > 0 && strings.HasPrefix(class, "option/") {
			class = "option/" + strings.SplitN(class[j+1:], "-", 2)[0]
		}
		tallies := []*tally{get(byClass, class)}
		if !deliberate[c.class] {
			// The figures per version leave out the deliberate
			// differences (docs/kickstart-compat.md), counted below.
			tallies = append(tallies, get(byVersion, c.version.String()))
		}
		for _, tl := range tallies {
			tl.n++
			if parseOK == (r.Parse.Verdict == "ok") {
				tl.parse++
			}
			if strict == (r.Strict.Verdict == "ok") {
				tl.strict++
			}
			if r.Parse.Verdict != "ok" {
				tl.rejected++
				if !parseOK {
					tl.caught++
					if sameLine(f, paths[i], r.Parse.Line) {
						tl.line++
					}
				}
			}
		}
		kilnFirst := ""
		if ds := f.Errors(); len(ds) > 0 {
			kilnFirst = ds[0].String()
		} else if ws := f.Warnings(); len(ws) > 0 {
			kilnFirst = ws[0].String()
		}
		lineBad := r.Parse.Verdict != "ok" && !parseOK && !sameLine(f, paths[i], r.Parse.Line)
		if parseOK != (r.Parse.Verdict == "ok") || strict != (r.Strict.Verdict == "ok") || lineBad {
			if deliberate[c.class] {
				deliberateN++
			}
			fmt.Fprintf(&report, "%s\t%s\t%s\tpykickstart parse=%s strict=%s line %d: %s\tkiln parse=%v strict=%v: %s\t%q\n",
				filepath.Base(filepath.Dir(paths[i])), c.version, c.class, r.Parse.Verdict, r.Strict.Verdict, r.Parse.Line,
				firstNonEmpty(r.Parse.Message, r.Strict.Message), parseOK, strict, kilnFirst, trimCase(c.text))
		}
	}
	outPath := os.Getenv("KILN_DIFF_OUT")
	if outPath == "" {
		outPath = filepath.Join(dir, "disagreements.tsv")
	}
	os.WriteFile(outPath, []byte(report.String()), 0o644)
	pct := func(a, b int) float64 {
		if b == 0 {
			return 100
		}
		return 100 * float64(a) / float64(b)
	}
	logTally := func(what string, m map[string]*tally) {
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			tl := m[k]
			t.Logf("%-8s %-28s %6d cases: parse %.2f%%, strict %.2f%%, rejected %d, kiln rejects %.2f%% of them, at the same line %.2f%%",
				what, k, tl.n, pct(tl.parse, tl.n), pct(tl.strict, tl.n), tl.rejected, pct(tl.caught, tl.rejected), pct(tl.line, tl.rejected))
		}
	}
	logTally("version", byVersion)
	logTally("class", byClass)
	t.Logf("%d cases, %d of them deliberate differences (%v); disagreements in %s", len(cases), deliberateN, deliberateClasses(), outPath)
	for v, tl := range byVersion {
		if pct(tl.parse, tl.n) < 99.5 || pct(tl.strict, tl.n) < 99.5 || tl.caught != tl.rejected {
			t.Errorf("%s: parse %.2f%%, strict %.2f%%, kiln rejects %d of the %d pykickstart rejects", v, pct(tl.parse, tl.n), pct(tl.strict, tl.n), tl.caught, tl.rejected)
		}
	}
}

// deliberate are the classes of case where kiln differs from pykickstart
// on purpose: a file a %pre writes is a warning, not an error.
var deliberate = map[string]bool{"include/pre-written": true, "ksappend/pre-written": true}

func deliberateClasses() []string {
	var out []string
	for c := range deliberate {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// sameLine says kiln's first error is at pykickstart's line. pykickstart
// numbers the lines of a %ksappend'ed file as part of the whole, and
// reports a missing %include at line 0; kiln names the included file and
// its own line, and the %include line: those are not compared.
func sameLine(f *File, top string, line int) bool {
	e := f.Errors()[0]
	return line == 0 || e.File != top || e.Line == line
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// trimCase is a case's text short enough for one line of the report.
func trimCase(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
