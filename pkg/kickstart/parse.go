package kickstart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kiln-build/kiln/internal/httpget"
)

// Diagnostic is one error or warning, tied to the line it is about.
type Diagnostic struct {
	File    string // the file the line is in: an included file where the mistake lies there
	Line    int    // 1-based; 0 when the problem is the file as a whole
	Msg     string
	Warning bool
	// Notice marks a warning that says what kiln could not check, rather
	// than a problem in the file; strict checking does not count it.
	Notice bool
}

// String formats the diagnostic as "file:line: message".
func (d Diagnostic) String() string {
	kind := ""
	if d.Warning {
		kind = "warning: "
	}
	if d.Line == 0 {
		return fmt.Sprintf("%s: %s%s", d.File, kind, d.Msg)
	}
	return fmt.Sprintf("%s:%d: %s%s", d.File, d.Line, kind, d.Msg)
}

// Options control Parse.
type Options struct {
	// Version is the syntax to check against. Zero means: the file's
	// "#version=" comment, else DefaultVersion.
	Version Version
	// ReadFile reads local %include and %ksappend targets; nil means os.ReadFile.
	ReadFile func(name string) ([]byte, error)
	// HTTPClient fetches http(s) %include and %ksappend targets; nil means a
	// client with a 30 second timeout.
	HTTPClient *http.Client
	// Context bounds network fetches; nil means context.Background().
	Context context.Context
}

// Line is one physical line of input.
type Line struct {
	File string // where the line came from
	Num  int    // 1-based line number in File
	Text string // the line with its line ending, exactly as read
}

// content is the line without its line ending.
func (l Line) content() string {
	return strings.TrimRight(l.Text, "\r\n")
}

// Node is one element of a kickstart: a *Blank (blank or comment line), a
// *Command or a *Section.
type Node interface{ render(*strings.Builder) }

// Blank is a blank line or a comment.
type Blank struct{ Line Line }

func (b *Blank) render(sb *strings.Builder) { sb.WriteString(b.Line.Text) }

// Include records a %include or %ksappend line and the file it pulled in.
// The line itself is replaced by that file's lines in File.Nodes.
type Include struct {
	Line   Line
	Target string // resolved path or URL
}

// File is a parsed kickstart.
type File struct {
	Name        string
	Version     Version
	Nodes       []Node    // in order, with includes resolved in place
	Includes    []Include // every %include and %ksappend that was resolved
	Diagnostics []Diagnostic
}

// Errors returns the diagnostics that are errors.
func (f *File) Errors() []Diagnostic { return f.filter(false) }

// Warnings returns the diagnostics that are warnings.
func (f *File) Warnings() []Diagnostic { return f.filter(true) }

func (f *File) filter(warn bool) []Diagnostic {
	var ds []Diagnostic
	for _, d := range f.Diagnostics {
		if d.Warning == warn {
			ds = append(ds, d)
		}
	}
	return ds
}

// Err returns nil when the file has no errors, or an error listing them all.
func (f *File) Err() error {
	errs := f.Errors()
	if len(errs) == 0 {
		return nil
	}
	var msgs []string
	for _, d := range errs {
		msgs = append(msgs, d.String())
	}
	return &InvalidError{Diagnostics: errs, msg: strings.Join(msgs, "\n")}
}

// InvalidError is returned for a kickstart with errors.
type InvalidError struct {
	Diagnostics []Diagnostic
	msg         string
}

func (e *InvalidError) Error() string { return e.msg }

// ParseFile reads and parses the kickstart at path.
func ParseFile(path string, opts Options) (*File, error) {
	read := opts.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	data, err := read(path)
	if err != nil {
		return nil, fmt.Errorf("reading kickstart: %w", err)
	}
	return Parse(path, data, opts), nil
}

var versionComment = regexp.MustCompile(`^#\s*version\s*=\s*(\S+)`)

// Parse parses a kickstart held in memory. name is used in diagnostics and
// to resolve relative %include paths. Parse always returns a File; its
// Diagnostics say what is wrong.
func Parse(name string, data []byte, opts Options) *File {
	p := &parser{opts: opts, f: &File{Name: name}}
	if p.opts.ReadFile == nil {
		p.opts.ReadFile = os.ReadFile
	}
	lines := splitLines(name, data)
	p.f.Version = opts.Version
	if p.f.Version == 0 {
		p.f.Version = DefaultVersion
		for _, l := range lines {
			if m := versionComment.FindStringSubmatch(l.content()); m != nil {
				if v, err := ParseVersion(m[1]); err == nil {
					p.f.Version = v
				} else {
					p.warn(l, "%v; checking against %s", err, DefaultVersion)
				}
				break
			}
		}
	}
	g, err := loadGrammar()
	if err != nil {
		// The grammar is embedded and tested; this cannot happen in a
		// released binary, but say so rather than panic.
		p.f.Diagnostics = append(p.f.Diagnostics, Diagnostic{File: name, Msg: "internal error: " + err.Error()})
		return p.f
	}
	p.g = g
	p.stack = []string{name}
	for _, l := range lines {
		if !utf8.ValidString(l.Text) {
			// pykickstart reads UTF-8 and fails on anything else, and so
			// does Anaconda.
			p.errorf(l, "the line is not valid UTF-8")
			break
		}
	}
	p.pre = preScripts(lines)
	p.expand(lines, 0)
	p.run()
	p.sortDiagnostics()
	if len(p.f.Includes) == 0 && len(bytes.TrimSpace(data)) == 0 {
		// ksvalidator refuses a file with nothing in it; Anaconda runs
		// it, asking for everything.
		p.f.Diagnostics = append(p.f.Diagnostics, Diagnostic{File: name, Msg: "the file is empty", Warning: true})
	}
	return p.f
}

// sortDiagnostics puts the diagnostics in the order of the lines they are
// about, as the file reads with its includes in place: some checks run
// after the file is read (a section's header after its body), and the
// first diagnostic must be the first problem, which is the one
// pykickstart, stopping there, reports.
func (p *parser) sortDiagnostics() {
	type pos struct {
		file string
		num  int
	}
	order := map[pos]int{}
	for i, l := range p.flat {
		if _, ok := order[pos{l.File, l.Num}]; !ok {
			order[pos{l.File, l.Num}] = i
		}
	}
	key := func(d Diagnostic) int {
		if i, ok := order[pos{d.File, d.Line}]; ok {
			return i
		}
		return -1 // the file as a whole, or a line not read
	}
	sort.SliceStable(p.f.Diagnostics, func(i, j int) bool { return key(p.f.Diagnostics[i]) < key(p.f.Diagnostics[j]) })
}

// splitLines cuts data into lines, keeping each line's ending.
func splitLines(name string, data []byte) []Line {
	var lines []Line
	n := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var text []byte
		if i < 0 {
			text, data = data, nil
		} else {
			text, data = data[:i+1], data[i+1:]
		}
		n++
		lines = append(lines, Line{File: name, Num: n, Text: string(text)})
	}
	return lines
}

type parser struct {
	opts  Options
	f     *File
	g     grammar
	stack []string // the include chain, for cycle detection
	flat  []Line   // every line after include expansion, for the state machine
	state checkState
	pre   []preScript // the top file's %pre scripts, which may write includes
}

// preScript is a %pre script's header line and body, as written.
type preScript struct {
	header Line
	body   string
}

// preScripts finds the %pre scripts of a file. Anaconda runs them before
// it reads %include and %ksappend, so a file they write need not exist
// before the install.
func preScripts(lines []Line) []preScript {
	var out []preScript
	var cur *preScript
	for _, l := range lines {
		word, _ := firstWord(l.content())
		switch {
		case cur != nil && word == "%end":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += l.content() + "\n"
		case word == "%pre":
			cur = &preScript{header: l}
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

func (p *parser) errorf(l Line, format string, args ...any) {
	p.f.Diagnostics = append(p.f.Diagnostics, Diagnostic{File: l.File, Line: l.Num, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warn(l Line, format string, args ...any) {
	p.f.Diagnostics = append(p.f.Diagnostics, Diagnostic{File: l.File, Line: l.Num, Msg: fmt.Sprintf(format, args...), Warning: true})
}

const maxIncludeDepth = 32

// expand resolves %include and %ksappend lines recursively, appending the
// flattened lines to p.flat.
func (p *parser) expand(lines []Line, depth int) {
	for _, l := range lines {
		word, _ := firstWord(l.content())
		if word != "%include" && word != "%ksappend" {
			p.flat = append(p.flat, l)
			continue
		}
		if word == "%ksappend" && depth > 0 {
			// pykickstart appends in one pass over the top file, before
			// parsing: a %ksappend in an included or appended file is
			// never read, and the parser skips the line.
			p.flat = append(p.flat, l)
			continue
		}
		args, err := splitLine(l.content())
		if err != nil || len(args) < 2 || args[1] == "" {
			p.errorf(l, "%s needs a file or URL to include", word)
			p.flat = append(p.flat, l)
			continue
		}
		target := p.resolve(l.File, args[1])
		for _, s := range p.stack {
			// An appended file is not read for more (above), so only
			// %include can loop.
			if s == target && word == "%include" {
				p.errorf(l, "%s of %s makes a cycle: %s", word, args[1], strings.Join(append(p.stack, target), " -> "))
				target = ""
				break
			}
		}
		if target == "" {
			p.flat = append(p.flat, l)
			continue
		}
		if depth >= maxIncludeDepth {
			p.errorf(l, "%s nested more than %d deep", word, maxIncludeDepth)
			p.flat = append(p.flat, l)
			continue
		}
		data, err := p.fetch(target)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// A missing file fails the install, as it fails
				// pykickstart, unless a %pre writes it first: the common
				// "%pre writes /tmp/part-include" pattern.
				if pre := p.writer(args[1]); pre != nil {
					p.warn(l, "%s %s: not found now; the %%pre at line %d is expected to write it at install time", word, args[1], pre.header.Num)
				} else {
					p.errorf(l, "%s %s: no such file", word, args[1])
				}
			} else {
				p.errorf(l, "%s %s: %v", word, args[1], err)
			}
			// Kept as written, for Anaconda to resolve at install time.
			p.flat = append(p.flat, l)
			continue
		}
		p.f.Includes = append(p.f.Includes, Include{Line: l, Target: target})
		inc := splitLines(target, data)
		if n := len(inc); n > 0 && !strings.HasSuffix(inc[n-1].Text, "\n") {
			// Keep the next line of the including file on a line of its own.
			inc[n-1].Text += "\n"
		}
		p.stack = append(p.stack, target)
		p.expand(inc, depth+1)
		p.stack = p.stack[:len(p.stack)-1]
	}
}

// writer is the %pre script that names path, or nil.
func (p *parser) writer(path string) *preScript {
	for i := range p.pre {
		if strings.Contains(p.pre[i].body, path) {
			return &p.pre[i]
		}
	}
	return nil
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

func (p *parser) resolve(from, target string) string {
	if isURL(target) || filepath.IsAbs(target) {
		return target
	}
	if isURL(from) {
		if i := strings.LastIndexByte(from, '/'); i >= 0 {
			return from[:i+1] + target
		}
	}
	return filepath.Join(filepath.Dir(from), target)
}

const maxIncludeSize = 16 << 20

func (p *parser) fetch(target string) ([]byte, error) {
	if !isURL(target) {
		return p.opts.ReadFile(target)
	}
	ctx := p.opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	client := p.opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	data, err := httpget.Get(ctx, client, target, maxIncludeSize)
	var se *httpget.StatusError
	switch {
	case errors.As(err, &se):
		return nil, fmt.Errorf("fetching: %s", se.Status)
	case errors.Is(err, httpget.ErrTooLarge):
		return nil, errors.New("larger than 16 MiB")
	}
	return data, err
}

func firstWord(s string) (string, string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}

func isBlankOrComment(s string) bool {
	t := strings.TrimSpace(s)
	return t == "" || t[0] == '#'
}

// sectionNames are the sections every version accepts: pykickstart does
// not gate sections by version, and neither does Anaconda.
var sectionNames = map[string]SectionKind{
	"%packages":    SectionPackages,
	"%pre":         SectionPre,
	"%pre-install": SectionPreInstall,
	"%post":        SectionPost,
	"%onerror":     SectionOnError,
	"%traceback":   SectionTraceback,
	"%addon":       SectionAddon,
	"%anaconda":    SectionAnaconda,
	"%certificate": SectionCertificate,
}

// run walks the flattened lines: commands, sections and their bodies.
func (p *parser) run() {
	lines := p.flat
	var nodes []Node
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		text := l.content()
		if isBlankOrComment(text) {
			nodes = append(nodes, &Blank{Line: l})
			continue
		}
		args, err := splitLine(text)
		if err != nil {
			p.errorf(l, "%v", err)
			nodes = append(nodes, &Blank{Line: l})
			continue
		}
		if len(args) == 0 {
			nodes = append(nodes, &Blank{Line: l})
			continue
		}
		if args[0] == "%include" || args[0] == "%ksappend" {
			// One that could not be resolved now; kept verbatim.
			nodes = append(nodes, &Blank{Line: l})
			continue
		}
		if strings.HasPrefix(args[0], "%") {
			kind, ok := sectionNames[args[0]]
			if !ok {
				p.errorf(l, "unknown kickstart section: %s", args[0])
				if args[0] == "%end" {
					nodes = append(nodes, &Blank{Line: l})
					continue
				}
				kind = SectionUnknown
			}
			s := &Section{Kind: kind, Name: args[0], Header: l, Args: args[1:]}
			i = p.readSection(s, lines, i+1)
			p.checkSectionHeader(s)
			nodes = append(nodes, s)
			continue
		}
		c := &Command{Name: args[0], Line: l, Args: args[1:]}
		p.parseCommand(c)
		nodes = append(nodes, c)
	}
	p.f.Nodes = nodes
	p.finish()
}

// readSection reads a section's body from lines[i:] and returns the index
// of its last line.
func (p *parser) readSection(s *Section, lines []Line, i int) int {
	for ; i < len(lines); i++ {
		l := lines[i]
		text := l.content()
		trimmed := strings.TrimLeft(text, " \t")
		if strings.HasPrefix(trimmed, "%") {
			word, _ := firstWord(trimmed)
			if word == "%end" {
				end := l
				s.End = &end
				return i
			}
			if _, ok := sectionNames[word]; ok {
				// pykickstart finds it at the header that starts the
				// next section.
				if p.f.Version >= F8 {
					p.errorf(l, "section %s does not end with %%end", s.Name)
				}
				return i - 1
			}
		}
		s.Body = append(s.Body, l)
	}
	last := s.Header
	if len(s.Body) > 0 {
		last = s.Body[len(s.Body)-1]
	}
	if p.f.Version >= F8 {
		p.errorf(last, "section %s does not end with %%end", s.Name)
	}
	return i - 1
}
