package kickstart

import (
	"fmt"
	"slices"
	"strings"
)

// Render returns the kickstart as text: the input bytes for every line that
// was not edited, with %include and %ksappend replaced by what they name.
func (f *File) Render() []byte {
	var sb strings.Builder
	for _, n := range f.Nodes {
		n.render(&sb)
	}
	return []byte(sb.String())
}

// newLine makes a Line for text that kiln adds; it names kiln as its source.
func newLine(text string) Line {
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return Line{File: "(added by kiln)", Text: text}
}

// ensureNewline makes sure the last node ends with a newline, so that text
// appended after it starts on a line of its own.
func (f *File) ensureNewline() {
	if len(f.Nodes) == 0 {
		return
	}
	var sb strings.Builder
	f.Nodes[len(f.Nodes)-1].render(&sb)
	if s := sb.String(); s != "" && !strings.HasSuffix(s, "\n") {
		f.Nodes = append(f.Nodes, &Blank{Line: Line{File: "(added by kiln)", Text: "\n"}})
	}
}

// AddCommand parses line as a command at the file's version and appends it
// after the last command (before the first section, where kickstarts keep
// their commands).
func (f *File) AddCommand(line string) (*Command, error) {
	args, err := splitLine(line)
	if err != nil || len(args) == 0 {
		return nil, fmt.Errorf("adding command %q: not a command line", line)
	}
	g, err := loadGrammar()
	if err != nil {
		return nil, err
	}
	c := &Command{Name: args[0], Line: newLine(line), Args: args[1:]}
	spec := g.lookup(f.Version, c.Name)
	if spec == nil || spec.removed {
		return nil, fmt.Errorf("adding command %q: %s is not a %s command", line, c.Name, f.Version)
	}
	pos, opts, _, err := parseArgs(spec, c.Args)
	if err != nil {
		return nil, fmt.Errorf("adding command %q: %w", line, err)
	}
	c.Positionals, c.Options = pos, opts
	at := len(f.Nodes)
	for i, n := range f.Nodes {
		if _, ok := n.(*Section); ok {
			at = i
			break
		}
	}
	if at == len(f.Nodes) {
		f.ensureNewline()
		at = len(f.Nodes)
	}
	f.Nodes = append(f.Nodes[:at], append([]Node{c}, f.Nodes[at:]...)...)
	return c, nil
}

// RemoveCommand removes c from the file.
func (f *File) RemoveCommand(c *Command) {
	for i, n := range f.Nodes {
		if n == Node(c) {
			f.Nodes = append(f.Nodes[:i], f.Nodes[i+1:]...)
			return
		}
	}
}

// SetShutdown makes the install end with action ("poweroff", "reboot",
// "halt" or "shutdown"). The first existing shutdown command is replaced in
// place and any others removed; without one, the command is added. It
// reports whether anything changed.
func (f *File) SetShutdown(action string) (bool, error) {
	cur, _ := f.Shutdown()
	existing := f.Commands(shutdownCommands...)
	if cur == action && len(existing) == 1 {
		return false, nil
	}
	if len(existing) == 0 {
		_, err := f.AddCommand(action)
		return err == nil, err
	}
	first := existing[0]
	for _, c := range existing[1:] {
		f.RemoveCommand(c)
	}
	first.Name = action
	first.edited = true
	return true, nil
}

// RewriteURLs passes every URL of the installation source and the repos to
// fn, and stores what it returns. It returns how many URLs changed.
func (f *File) RewriteURLs(fn func(u string) string) int {
	n := 0
	for _, c := range f.Commands("url", "repo", "liveimg", "ostreesetup") {
		for _, opt := range []string{"--url", "--baseurl", "--mirrorlist", "--metalink"} {
			v, ok := c.Value(opt)
			if !ok {
				continue
			}
			if nv := fn(v); nv != v {
				c.SetOption(opt, nv)
				n++
			}
		}
	}
	return n
}

// AppendScript adds a script section at the end of the file.
func (f *File) AppendScript(s Script) {
	name := map[SectionKind]string{
		SectionPre: "%pre", SectionPreInstall: "%pre-install", SectionPost: "%post",
		SectionOnError: "%onerror", SectionTraceback: "%traceback",
	}[s.Kind]
	if name == "" {
		name, s.Kind = "%post", SectionPost
	}
	var args []string
	if s.Interpreter != "" {
		args = append(args, "--interpreter="+s.Interpreter)
	}
	if s.Log != "" {
		args = append(args, "--log="+s.Log)
	}
	if s.NoChroot {
		args = append(args, "--nochroot")
	}
	if s.ErrorOnFail {
		args = append(args, "--erroronfail")
	}
	sec := &Section{Kind: s.Kind, Name: name, Args: args, edited: true}
	g, err := loadGrammar()
	if err == nil {
		if spec := g.lookup(f.Version, name); spec != nil {
			_, sec.Options, _, _ = parseArgs(spec, args)
		}
	}
	for _, l := range strings.SplitAfter(s.Body, "\n") {
		if l != "" {
			sec.Body = append(sec.Body, newLine(l))
		}
	}
	f.ensureNewline()
	f.Nodes = append(f.Nodes, sec)
}

// AddPackages adds package lines (names, @groups, -exclusions) to the last
// %packages section, creating one when there is none.
func (f *File) AddPackages(items ...string) {
	if len(items) == 0 {
		return
	}
	ss := f.Sections(SectionPackages)
	var s *Section
	if len(ss) == 0 {
		s = &Section{Kind: SectionPackages, Name: "%packages", edited: true}
		f.ensureNewline()
		f.Nodes = append(f.Nodes, s)
	} else {
		s = ss[len(ss)-1]
		if n := len(s.Body); n > 0 && !strings.HasSuffix(s.Body[n-1].Text, "\n") {
			s.Body[n-1].Text += "\n"
		}
	}
	for _, it := range items {
		s.Body = append(s.Body, newLine(it))
	}
}

// ReplaceInScripts replaces old with new in the bodies of every script
// section, returning how many lines changed. kiln uses it to point a
// script's downloads at the build's proxy in the served copy only.
func (f *File) ReplaceInScripts(old, new string) int {
	if old == "" {
		return 0
	}
	n := 0
	for _, s := range f.Sections() {
		if !s.isScript() {
			continue
		}
		for i, l := range s.Body {
			if strings.Contains(l.Text, old) {
				s.Body[i].Text = strings.ReplaceAll(l.Text, old, new)
				n++
			}
		}
	}
	return n
}

// Clone returns a copy of f that shares nothing mutable with it, so that
// a caller can edit the copy (apply a TDL, point URLs at a proxy) and
// leave the user's file as it was parsed.
func (f *File) Clone() *File {
	c := *f
	c.Includes = slices.Clone(f.Includes)
	c.Diagnostics = slices.Clone(f.Diagnostics)
	c.Nodes = make([]Node, len(f.Nodes))
	for i, n := range f.Nodes {
		switch n := n.(type) {
		case *Command:
			cc := *n
			cc.Args, cc.Positionals, cc.Options = slices.Clone(n.Args), slices.Clone(n.Positionals), cloneOpts(n.Options)
			c.Nodes[i] = &cc
		case *Section:
			cs := *n
			cs.Args, cs.Options, cs.Body = slices.Clone(n.Args), cloneOpts(n.Options), slices.Clone(n.Body)
			if n.End != nil {
				end := *n.End
				cs.End = &end
			}
			c.Nodes[i] = &cs
		case *Blank:
			cb := *n
			c.Nodes[i] = &cb
		default:
			c.Nodes[i] = n
		}
	}
	return &c
}

func cloneOpts(opts []Opt) []Opt {
	out := slices.Clone(opts)
	for i := range out {
		out[i].names = slices.Clone(opts[i].names)
	}
	return out
}
