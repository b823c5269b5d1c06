package kickstart

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Opt is one option as given on a command or section line.
type Opt struct {
	Name     string // canonical spelling, e.g. --ondisk for --ondrive
	Written  string // as written, e.g. --ondr
	Value    string
	HasValue bool
	names    []string
}

// Command is one kickstart command line.
type Command struct {
	Name        string
	Line        Line
	Args        []string // every token after the name, as split
	Positionals []string
	Options     []Opt
	edited      bool
}

// Has reports whether option name (any spelling) was given.
func (c *Command) Has(name string) bool {
	_, ok := c.Value(name)
	return ok
}

// Value returns the last value given for option name (any spelling).
func (c *Command) Value(name string) (string, bool) {
	v := c.Values(name)
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// Values returns every value given for option name, in order.
func (c *Command) Values(name string) []string {
	return optValues(c.Options, name)
}

func optValues(opts []Opt, name string) []string {
	var vs []string
	for _, o := range opts {
		if o.Name == name || o.Written == name {
			vs = append(vs, o.Value)
			continue
		}
		for _, n := range o.names {
			if n == name {
				vs = append(vs, o.Value)
				break
			}
		}
	}
	return vs
}

// SetOption sets option name to value on the command, replacing earlier
// occurrences, and marks the line for re-rendering.
func (c *Command) SetOption(name, value string) {
	var kept []Opt
	for _, o := range c.Options {
		if o.Name != name && o.Written != name {
			kept = append(kept, o)
		}
	}
	c.Options = append(kept, Opt{Name: name, Written: name, Value: value, HasValue: true})
	c.edited = true
}

func (c *Command) render(sb *strings.Builder) {
	if !c.edited {
		sb.WriteString(c.Line.Text)
		return
	}
	parts := []string{c.Name}
	for _, o := range c.Options {
		if o.HasValue {
			parts = append(parts, o.Written+"="+quoteArg(o.Value))
		} else {
			parts = append(parts, o.Written)
		}
	}
	for _, p := range c.Positionals {
		parts = append(parts, quoteArg(p))
	}
	sb.WriteString(strings.Join(parts, " "))
	sb.WriteString(lineEnding(c.Line.Text))
}

func lineEnding(text string) string {
	switch {
	case strings.HasSuffix(text, "\r\n"):
		return "\r\n"
	default:
		return "\n"
	}
}

// argError is a problem with one line's arguments.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

var negativeNumber = regexp.MustCompile(`^-\d+$|^-\d*\.\d+$`)

// looksLikeOption follows argparse: "-x" and "--x" are options, "-" and
// negative numbers are values.
func looksLikeOption(s string) bool {
	return len(s) > 1 && s[0] == '-' && !negativeNumber.MatchString(s)
}

// isOptionToken classifies a token as argparse does: a known option (or
// an unambiguous prefix of one) is an option; otherwise anything starting
// with "-" is, except negative numbers and words with a space in them.
func isOptionToken(spec *commandSpec, s string) bool {
	if !looksLikeOption(s) {
		return false
	}
	name, _, _ := strings.Cut(s, "=")
	if o, _, err := spec.option(name); o != nil || err != nil {
		return true
	}
	return !strings.Contains(s, " ")
}

// parseArgs matches args against spec the way Anaconda's argparse-based
// parser does. It returns the positionals, the options, the deprecated
// options that were used, and the first error.
func parseArgs(spec *commandSpec, args []string) (pos []string, opts []Opt, deprecated []string, err error) {
	var unknown []string
	raw := len(spec.positionals) > 0 && spec.positionals[0].raw
	for i := 0; i < len(args); i++ {
		a := args[i]
		if raw {
			pos = append(pos, a)
			continue
		}
		if !isOptionToken(spec, a) {
			pos = append(pos, a)
			continue
		}
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		name, value, hasEq := strings.Cut(a, "=")
		o, canon, lookErr := spec.option(name)
		if lookErr != nil {
			return pos, opts, deprecated, &argError{lookErr.Error()}
		}
		if o == nil {
			unknown = append(unknown, a)
			continue
		}
		if o.deprecated {
			deprecated = append(deprecated, o.names[0])
		}
		opt := Opt{Name: o.names[0], Written: name, names: o.names}
		_ = canon
		switch {
		case !o.takesValue:
			if hasEq {
				return pos, opts, deprecated, &argError{fmt.Sprintf("argument %s: ignored explicit argument %s", strings.Join(o.names, "/"), pyRepr(value))}
			}
		case hasEq:
			opt.Value, opt.HasValue = value, true
		case i+1 < len(args) && !isOptionToken(spec, args[i+1]):
			i++
			opt.Value, opt.HasValue = args[i], true
		case o.optional:
		default:
			return pos, opts, deprecated, &argError{fmt.Sprintf("argument %s: expected one argument", strings.Join(o.names, "/"))}
		}
		if opt.HasValue {
			if msg := checkValue(o, opt.Value); msg != "" {
				return pos, opts, deprecated, &argError{fmt.Sprintf("argument %s: %s", strings.Join(o.names, "/"), msg)}
			}
		}
		opts = append(opts, opt)
	}
	// Positionals: each takes what it may, in order; the rest is unrecognized.
	n := 0
	for _, p := range spec.positionals {
		take := p.max
		if take < 0 || take > len(pos)-n {
			take = len(pos) - n
		}
		if p.ignored && take > 0 {
			deprecated = append(deprecated, "arguments to "+spec.name)
		}
		n += take
	}
	if n < len(pos) {
		unknown = append(unknown, pos[n:]...)
	}
	var missing []string
	have := len(pos)
	for _, p := range spec.positionals {
		if have < p.min {
			missing = append(missing, "<"+p.name+">")
		}
		have -= p.min
		if have < 0 {
			have = 0
		}
	}
	for _, o := range spec.options {
		if !o.required {
			continue
		}
		found := false
		for _, g := range opts {
			if g.Name == o.names[0] {
				found = true
			}
		}
		if !found {
			missing = append(missing, strings.Join(o.names, "/"))
		}
	}
	if len(missing) > 0 {
		return pos, opts, deprecated, &argError{"the following arguments are required: " + strings.Join(missing, ", ")}
	}
	if len(unknown) > 0 {
		return pos, opts, deprecated, &argError{"unrecognized arguments: " + strings.Join(unknown, " ")}
	}
	return pos, opts, deprecated, nil
}

var pyInt = regexp.MustCompile(`^\s*[+-]?[0-9]+(_[0-9]+)*\s*$`)

// checkValue returns a message when value does not fit o's type.
func checkValue(o *optionSpec, value string) string {
	switch o.typ {
	case typeInt:
		// Python's int(): any size, a sign, digits grouped by single
		// underscores, blanks around.
		if !pyInt.MatchString(value) {
			return "invalid int value: " + pyRepr(value)
		}
	case typeFloat:
		if _, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
			return "invalid float value: " + pyRepr(value)
		}
	case typeBool:
		switch strings.ToLower(value) {
		case "on", "yes", "true", "1", "off", "no", "false", "0":
		default:
			return "invalid boolean value: " + pyRepr(value)
		}
	case typeChoice:
		for _, c := range o.choices {
			if c == value {
				return ""
			}
		}
		var q []string
		for _, c := range o.choices {
			q = append(q, pyRepr(c))
		}
		return fmt.Sprintf("invalid choice: %s (choose from %s)", pyRepr(value), strings.Join(q, ", "))
	}
	return ""
}

func pyRepr(s string) string { return "'" + s + "'" }
