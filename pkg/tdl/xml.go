package tdl

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
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

// parseXML reads data into a tree. It rejects anything after the root and
// any DOCTYPE, which keeps entity tricks out.
func parseXML(data []byte) (*node, error) {
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
			n := &node{name: t.Name.Local, attrs: map[string]string{}, line: line}
			for _, a := range t.Attr {
				n.attrs[a.Name.Local] = a.Value
				n.attrList = append(n.attrList, a.Name.Local)
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
			stack = stack[:len(stack)-1]
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
