package tdl

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// node is one XML element with the line it starts on.
type node struct {
	name     string
	attrs    map[string]string
	attrList []string // attribute names in order, to report unknown ones
	text     strings.Builder
	children []*node
	line     int
	path     string
	ns       string // the element's namespace, "" for a TDL's own
}

func (n *node) content() string { return n.text.String() }

// child returns the only child called name, or nil.
func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	return nil
}

// xincludeNS is the XInclude namespace (W3C XInclude 1.0, section 3).
const xincludeNS = "http://www.w3.org/2001/XInclude"

// maxIncludeDepth bounds nested XIncludes, which could loop.
const maxIncludeDepth = 16

// parseXML reads data into a tree. It rejects anything after the root and
// any DOCTYPE, which keeps entity tricks out. xi:include elements are
// replaced by the documents they name, relative to dir, or by their
// xi:fallback, as lxml's xinclude() does for Oz before it validates.

func parseXMLIn(data []byte, dir string, depth int) (*node, error) {
	// A byte order mark is no text outside the root.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := d.InputPos()
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &Error{Line: se.Line, Msg: "not well-formed XML: " + se.Msg}
			}
			return nil, &Error{Line: line, Msg: "reading XML: " + err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, attrs: map[string]string{}, line: line, ns: t.Name.Space}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" {
					continue // a prefix's declaration, not an attribute
				}
				n.attrs[a.Name.Local] = a.Value
				n.attrList = append(n.attrList, a.Name.Local)
			}
			if t.Name.Space != "" && t.Name.Space != xincludeNS && len(stack) > 0 && stack[len(stack)-1].ns != xincludeNS {
				return nil, &Error{Line: line, Msg: fmt.Sprintf("element %s is in namespace %s, which a TDL does not use", t.Name.Local, t.Name.Space)}
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, &Error{Line: line, Msg: "more than one root element"}
				}
				root = n
				n.path = "/" + n.name
			} else {
				parent := stack[len(stack)-1]
				n.path = parent.path + "/" + n.name
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if n.ns == xincludeNS && n.name == "include" {
				if len(stack) == 0 {
					return nil, &Error{Line: n.line, Msg: "xi:include cannot be the root element"}
				}
				parent := stack[len(stack)-1]
				parent.children = parent.children[:len(parent.children)-1]
				repl, err := xinclude(n, dir, depth)
				if err != nil {
					return nil, err
				}
				for _, r := range repl {
					repath(r, parent.path)
					parent.children = append(parent.children, r)
				}
			}
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(t)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, &Error{Line: line, Msg: "text outside the template element"}
			}
		case xml.Directive:
			return nil, &Error{Line: line, Msg: "DOCTYPE and other directives are not allowed in a TDL"}
		}
	}
	if root == nil {
		return nil, &Error{Line: 1, Msg: "no template element: the file is empty"}
	}
	return root, nil
}

// xinclude is what an xi:include element stands for: the root of the
// document its href names, else its xi:fallback's content.
func xinclude(n *node, dir string, depth int) ([]*node, error) {
	if depth >= maxIncludeDepth {
		return nil, &Error{Line: n.line, Msg: fmt.Sprintf("xi:include nested more than %d deep", maxIncludeDepth)}
	}
	href := n.attrs["href"]
	if parse := n.attrs["parse"]; parse != "" && parse != "xml" {
		return nil, &Error{Line: n.line, Msg: fmt.Sprintf("xi:include parse=%q: only xml is supported", parse)}
	}
	var fallback *node
	for _, c := range n.children {
		if c.ns == xincludeNS && c.name == "fallback" {
			fallback = c
		}
	}
	p := href
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	data, err := os.ReadFile(p)
	if err == nil && href != "" {
		root, perr := parseXMLIn(data, filepath.Dir(p), depth+1)
		if perr != nil {
			e := &Error{File: p, Msg: perr.Error()}
			if pe, ok := perr.(*Error); ok {
				e.Line, e.Msg = pe.Line, pe.Msg
			}
			return nil, e
		}
		return []*node{root}, nil
	}
	if fallback != nil {
		return fallback.children, nil
	}
	return nil, &Error{Line: n.line, Msg: fmt.Sprintf("xi:include of %q: %v", href, err)}
}

// repath sets the element paths of an included subtree under parent.
func repath(n *node, parent string) {
	n.path = parent + "/" + n.name
	for _, c := range n.children {
		repath(c, n.path)
	}
}

// Error is a problem in a TDL, at an element and line.
type Error struct {
	File string
	Path string // element path, e.g. /template/os/arch
	Line int
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Path != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Path, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}
