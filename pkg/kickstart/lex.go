package kickstart

import "errors"

var errNoClosingQuote = errors.New("no closing quotation")

// splitLine splits a command line the way Python's shlex.split(line,
// comments=True) does, which is what Anaconda uses: POSIX quoting, a
// backslash escapes the next character outside quotes and only \ and "
// inside double quotes, and # starts a comment even in the middle of a word.
func splitLine(line string) ([]string, error) {
	var (
		args    []string
		cur     []byte
		inWord  bool
		quote   byte // 0, '\'' or '"'
		escaped bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case escaped:
			if quote == '"' && c != '"' && c != '\\' {
				cur = append(cur, '\\')
			}
			cur = append(cur, c)
			escaped = false
		case quote != 0:
			switch {
			case c == quote:
				quote = 0
			case c == '\\' && quote == '"':
				escaped = true
			default:
				cur = append(cur, c)
			}
		case c == '\\':
			if i+1 == len(line) {
				// shlex treats a final backslash as an escape of EOF.
				return nil, errors.New("no escaped character")
			}
			inWord, escaped = true, true
		case c == '\'' || c == '"':
			inWord, quote = true, c
		case c == '#':
			if inWord {
				args = append(args, string(cur))
			}
			return args, nil
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			if inWord {
				args = append(args, string(cur))
				cur, inWord = cur[:0:0], false
			}
		default:
			inWord = true
			cur = append(cur, c)
		}
	}
	if quote != 0 || escaped {
		return nil, errNoClosingQuote
	}
	if inWord {
		args = append(args, string(cur))
	}
	return args, nil
}

// quoteArg quotes s so that splitLine reads it back as one argument.
func quoteArg(s string) string {
	if s == "" {
		return `""`
	}
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '/' || c == ':' || c == '=' || c == ',' || c == '@' || c == '+' || c == '%' || c == '^') {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, `'"'"'`...)
			continue
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
