// Package preseed reads and edits Debian installer preseed files: debconf
// selections, one per line, "OWNER QUESTION TYPE VALUE".
//
// It reads them as debconf-set-selections(1) does (debconf 1.5.82,
// /usr/bin/debconf-set-selections): a line ending in a backslash is joined
// to the next with the backslash removed; blank lines and lines whose
// first non-blank character is # are skipped; a trailing carriage return
// is dropped; the value is what follows the type and one blank, so further
// leading blanks belong to it. A line with fewer than three fields is a
// parse error, named by the number of the last physical line read, as
// debconf counts it; a seen flag for a question no earlier line answers is
// an error too (debconf finds no such question). An unknown type is a
// warning and the line is skipped.
package preseed

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Types are the selection types debconf knows; "seen" sets a flag.
var Types = []string{"select", "boolean", "string", "multiselect", "note", "password", "text", "title"}

// Selection is one answer.
type Selection struct {
	Owner    string // "d-i", or the package owning the question
	Question string // "mirror/http/hostname"
	Type     string // one of Types, or "seen"
	Value    string
	// Line is the physical line the selection ends on, 1-based, as
	// debconf-set-selections reports it; zero for a selection added by
	// Set.
	Line int
}

// SyntaxError is a line debconf-set-selections refuses.
type SyntaxError struct {
	File string
	Line int
	Text string
	Why  string // what is wrong; default, too few fields
}

func (e *SyntaxError) Error() string {
	if e.Why != "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Why)
	}
	return fmt.Sprintf("%s:%d: parse error: %q is not OWNER QUESTION TYPE [VALUE]", e.File, e.Line, e.Text)
}

// item is a selection with the text it was read from, or a comment or
// blank; rendering keeps the user's own text for what was not changed.
type item struct {
	raw     string // the physical lines, as read (without the final newline)
	sel     *Selection
	changed bool
	skipped bool // an unknown type: debconf ignores the line
}

// File is a parsed preseed.
type File struct {
	Name     string
	items    []item
	Warnings []string // "FILE:LINE: ..." for lines debconf skips
}

// Parse reads a preseed file. name is used in errors.
func Parse(name string, data []byte) (*File, error) {
	f := &File{Name: name}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i := 0; i < len(lines); i++ {
		raw := lines[i]
		text := munge(raw)
		// Perl's "! eof": there is more input after this line.
		for strings.HasSuffix(text, `\`) && i+1 < len(lines) {
			text = strings.TrimSuffix(text, `\`)
			i++
			raw += lines[i]
			text += munge(lines[i])
		}
		it := item{raw: strings.TrimSuffix(raw, "\n")}
		if blankOrComment.MatchString(text) {
			f.items = append(f.items, it)
			continue
		}
		m := selectionLine.FindStringSubmatch(text)
		if m == nil {
			return nil, &SyntaxError{File: name, Line: i + 1, Text: text}
		}
		s := &Selection{Owner: m[1], Question: m[2], Type: m[3], Value: m[4], Line: i + 1}
		it.sel = s
		if s.Type == "seen" && !f.answers(s.Question) {
			// debconf-set-selections: "Cannot find a question for ...".
			return nil, &SyntaxError{File: name, Line: i + 1, Text: text,
				Why: fmt.Sprintf("a seen flag for %s, which no earlier line answers", s.Question)}
		}
		if !known(s.Type) {
			it.skipped = true
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: unknown type %q; debconf skips the line", name, i+1, s.Type))
		}
		f.items = append(f.items, it)
	}
	return f, nil
}

var (
	blankOrComment = regexp.MustCompile(`^\s*$|^\s*#`)
	// As debconf-set-selections: /^\s*(\S+)\s+(\S+)\s+(\S+)(?:\s(.*))?/.
	selectionLine = regexp.MustCompile(`^\s*(\S+)\s+(\S+)\s+(\S+)(?:\s(.*))?`)
)

// munge is debconf-set-selections' mungeline: the newline and then one
// carriage return go.
func munge(line string) string {
	line = strings.TrimSuffix(line, "\n")
	return strings.TrimSuffix(line, "\r")
}

// answers reports whether an earlier selection answers question.
func (f *File) answers(question string) bool {
	_, ok := f.Get(question)
	return ok
}

func known(t string) bool {
	if t == "seen" {
		return true
	}
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Selections returns the selections debconf would load, in order.
func (f *File) Selections() []Selection {
	var out []Selection
	for _, it := range f.items {
		if it.sel != nil && !it.skipped {
			out = append(out, *it.sel)
		}
	}
	return out
}

// Get returns the answer to question that debconf ends with: the last.
func (f *File) Get(question string) (Selection, bool) {
	for i := len(f.items) - 1; i >= 0; i-- {
		if s := f.items[i].sel; s != nil && !f.items[i].skipped && s.Question == question && s.Type != "seen" {
			return *s, true
		}
	}
	return Selection{}, false
}

// Value is Get's value, or "".
func (f *File) Value(question string) string {
	s, _ := f.Get(question)
	return s.Value
}

// Set makes value the answer to question: the last answer given is
// replaced in place, and any earlier ones are left as they are, since
// the last wins; with none, the selection is appended.
func (f *File) Set(owner, question, typ, value string) {
	for i := len(f.items) - 1; i >= 0; i-- {
		it := &f.items[i]
		if s := it.sel; s != nil && !it.skipped && s.Question == question && s.Type != "seen" {
			s.Type, s.Value, it.changed = typ, value, true
			return
		}
	}
	f.items = append(f.items, item{sel: &Selection{Owner: owner, Question: question, Type: typ, Value: value}, changed: true})
}

// Clone returns a copy that can be changed without changing f.
func (f *File) Clone() *File {
	c := &File{Name: f.Name, items: make([]item, len(f.items)), Warnings: append([]string(nil), f.Warnings...)}
	for i, it := range f.items {
		c.items[i] = it
		if it.sel != nil {
			s := *it.sel
			c.items[i].sel = &s
		}
	}
	return c
}

// Render writes the file: the user's own text for what was not changed,
// and one line for each selection that was.
func (f *File) Render() []byte {
	var b bytes.Buffer
	for _, it := range f.items {
		if it.changed {
			s := it.sel
			// A value that ends in a backslash would join the next line.
			fmt.Fprintf(&b, "%s %s %s %s\n", s.Owner, s.Question, s.Type, s.Value)
			continue
		}
		b.WriteString(it.raw)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
