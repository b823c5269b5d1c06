package kickstart

import "strings"

// SectionKind says which section a Section is.
type SectionKind int

// The sections of a kickstart.
const (
	SectionUnknown SectionKind = iota
	SectionPackages
	SectionPre
	SectionPreInstall
	SectionPost
	SectionOnError
	SectionTraceback
	SectionAddon
	SectionAnaconda
	SectionCertificate
)

// Section is a %name ... %end block.
type Section struct {
	Kind    SectionKind
	Name    string // as written: "%post"
	Header  Line
	Args    []string // tokens after the name
	Options []Opt
	Body    []Line
	End     *Line // nil when the section was not closed
	edited  bool
}

// Value returns the last value of header option name.
func (s *Section) Value(name string) (string, bool) {
	v := optValues(s.Options, name)
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// Has reports whether header option name was given.
func (s *Section) Has(name string) bool {
	_, ok := s.Value(name)
	return ok
}

// Text returns the body as one string, without the header and %end.
func (s *Section) Text() string {
	var sb strings.Builder
	for _, l := range s.Body {
		sb.WriteString(l.Text)
	}
	return sb.String()
}

func (s *Section) render(sb *strings.Builder) {
	if s.edited {
		parts := []string{s.Name}
		for _, a := range s.Args {
			parts = append(parts, quoteArg(a))
		}
		sb.WriteString(strings.Join(parts, " ") + "\n")
	} else {
		sb.WriteString(s.Header.Text)
	}
	for _, l := range s.Body {
		sb.WriteString(l.Text)
	}
	if s.End != nil {
		sb.WriteString(s.End.Text)
	} else if s.edited {
		sb.WriteString("%end\n")
	}
}

// isScript reports whether the section holds a script.
func (s *Section) isScript() bool {
	switch s.Kind {
	case SectionPre, SectionPreInstall, SectionPost, SectionOnError, SectionTraceback:
		return true
	}
	return false
}
