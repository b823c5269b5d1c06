package kickstart

import (
	_ "embed"
	"fmt"
	"strings"
	"sync"
)

//go:embed grammar.txt
var grammarText string

// valueType is what an option's value must look like.
type valueType int

const (
	typeString valueType = iota
	typeInt
	typeFloat
	typeBool
	typeChoice
)

// optionSpec describes one --option of a command at one version.
type optionSpec struct {
	names      []string // every spelling, "--size" first
	takesValue bool
	optional   bool // the value may be left out (nargs='?')
	typ        valueType
	choices    []string
	required   bool
	deprecated bool
}

// positionalSpec describes one positional argument.
type positionalSpec struct {
	name     string
	min, max int  // max < 0: unbounded
	raw      bool // the rest of the line, not checked
	ignored  bool // accepted with a warning that it has no effect
}

// commandSpec is the syntax of one command at one version.
type commandSpec struct {
	name        string
	removed     bool
	deprecated  bool
	positionals []positionalSpec
	options     []*optionSpec
}

type versionRange struct{ lo, hi Version }

type grammarRow struct {
	ranges []versionRange
	spec   *commandSpec
}

// grammar maps a command name to its rows.
type grammar map[string][]grammarRow

// loadGrammar parses grammar.txt once; the result is never modified.
var loadGrammar = sync.OnceValues(func() (grammar, error) {
	return parseGrammar(grammarText)
})

func parseGrammar(text string) (grammar, error) {
	g := grammar{}
	for i, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			return nil, fmt.Errorf("grammar.txt:%d: want NAMES VERSIONS SIGNATURE", i+1)
		}
		ranges, err := parseRanges(fields[1])
		if err != nil {
			return nil, fmt.Errorf("grammar.txt:%d: %w", i+1, err)
		}
		names := strings.Split(fields[0], ",")
		spec, err := parseSignature(names[0], fields[2:])
		if err != nil {
			return nil, fmt.Errorf("grammar.txt:%d: %w", i+1, err)
		}
		for _, n := range names {
			g[n] = append(g[n], grammarRow{ranges: ranges, spec: spec})
		}
	}
	return g, nil
}

func parseRanges(s string) ([]versionRange, error) {
	var rs []versionRange
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := ParseVersion(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = ParseVersion(hi); err != nil {
				return nil, err
			}
		}
		rs = append(rs, versionRange{a, b})
	}
	return rs, nil
}

func parseSignature(name string, toks []string) (*commandSpec, error) {
	spec := &commandSpec{name: name}
	for _, t := range toks {
		switch {
		case t == "removed":
			spec.removed = true
		case t == "deprecated":
			spec.deprecated = true
		case t == "-":
		case strings.HasPrefix(t, "<"):
			p := positionalSpec{min: 1, max: 1}
			body := strings.TrimSuffix(strings.TrimPrefix(t, "<"), ">")
			if strings.HasSuffix(body, "~") {
				p.ignored = true
				body = strings.TrimSuffix(body, "~")
			}
			switch {
			case strings.HasSuffix(body, "..."):
				p.raw, p.min, p.max = true, 0, -1
				body = strings.TrimSuffix(body, "...")
			case strings.HasSuffix(body, "*"):
				p.min, p.max = 0, -1
				body = strings.TrimSuffix(body, "*")
			case strings.HasSuffix(body, "?"):
				p.min = 0
				body = strings.TrimSuffix(body, "?")
			}
			p.name = body
			spec.positionals = append(spec.positionals, p)
		default:
			o := &optionSpec{}
			for len(t) > 0 && (t[0] == '!' || t[0] == '~') {
				if t[0] == '!' {
					o.required = true
				} else {
					o.deprecated = true
				}
				t = t[1:]
			}
			names, val, hasVal := strings.Cut(t, "=")
			o.names = strings.Split(names, "|")
			if hasVal {
				o.takesValue = true
				if strings.HasPrefix(val, "?") {
					o.optional = true
					val = val[1:]
				}
				switch {
				case val == "str":
				case val == "int":
					o.typ = typeInt
				case val == "float":
					o.typ = typeFloat
				case val == "bool":
					o.typ = typeBool
				case strings.HasPrefix(val, "("):
					o.typ = typeChoice
					o.choices = strings.Split(strings.Trim(val, "()"), ",")
				default:
					return nil, fmt.Errorf("option %s: unknown value type %q", names, val)
				}
			}
			spec.options = append(spec.options, o)
		}
	}
	return spec, nil
}

// lookup returns the syntax of name at version v, or nil when the command
// does not exist there.
func (g grammar) lookup(v Version, name string) *commandSpec {
	for _, row := range g[name] {
		for _, r := range row.ranges {
			if v >= r.lo && v <= r.hi {
				return row.spec
			}
		}
	}
	return nil
}

// option finds the spec for an option as written, allowing the unambiguous
// prefixes that Anaconda's argument parser accepts (--only for --only-use).
func (c *commandSpec) option(written string) (*optionSpec, string, error) {
	for _, o := range c.options {
		for _, n := range o.names {
			if n == written {
				return o, n, nil
			}
		}
	}
	var found *optionSpec
	var foundName string
	var matches []string
	for _, o := range c.options {
		for _, n := range o.names {
			if strings.HasPrefix(n, written) {
				if found != o {
					matches = append(matches, n)
				}
				found, foundName = o, n
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, "", nil
	case 1:
		return found, foundName, nil
	}
	return nil, "", fmt.Errorf("ambiguous option: %s could match %s", written, strings.Join(matches, ", "))
}
