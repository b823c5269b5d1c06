package kickstart

import (
	"regexp"
	"strings"
	"testing"
)

// TestSecretsNeverInGeneratedDiagnostics writes every string option and
// flag of every command that carries secrets, well and badly formed, with
// a secret value, and
// checks that no diagnostic quotes it, and that a short secret does not
// mangle the words around it.
func TestSecretsNeverInGeneratedDiagnostics(t *testing.T) {
	g, err := loadGrammar()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "Zq9SECRETzq"
	mangled := regexp.MustCompile(`\w\*\*\*|\*\*\*\w`)
	n := 0
	for _, v := range diffVersions {
		for name := range secretCommands {
			c := g.lookup(v, name)
			if c == nil || c.removed {
				continue
			}
			var lines []string
			for _, o := range c.options {
				vals := []string{secret, "t", "x" + secret, secret + " " + secret}
				if o.takesValue && o.typ != typeString {
					// The value of a number, yes/no or choice shows (see
					// redact); a short one must still mangle nothing.
					vals = []string{"t"}
				}
				for _, val := range vals {
					q := val
					if strings.Contains(val, " ") {
						q = `"` + val + `"`
					}
					lines = append(lines, name+" "+o.names[0]+"="+q, name+" "+o.names[0]+" "+q+" "+q)
				}
			}
			lines = append(lines, name+" "+secret, name+" "+secret+" "+secret+" --no-such="+secret, name+" --no-such "+secret)
			for _, l := range lines {
				n++
				f := Parse("ks.cfg", []byte(l+"\n"), Options{Version: v})
				for _, d := range f.Diagnostics {
					s := d.String()
					if strings.Contains(s, "SECRET") {
						t.Errorf("%s: %q: the secret is in %q", v, l, s)
					}
					if strings.Contains(l, "=t") || strings.Contains(l, " t") {
						if m := mangled.FindString(s); m != "" {
							t.Errorf("%s: %q: a short secret mangled %q", v, l, s)
						}
					}
				}
			}
		}
	}
	t.Logf("%d lines", n)
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ line, msg, want string }{
		{"rootpw --plaintext=t", "option --plaintext takes no value: 't'", "option --plaintext takes no value: '***'"},
		{"rootpw --iscrypted=HASH x", "unexpected argument HASH, x", "unexpected argument ***, ***"},
		{"sshpw --username=root --plaintext=pw", "--plaintext=pw", "--plaintext=***"},
		{"lang en_US", "bad value en_US", "bad value en_US"},
		{"repo --name=a --proxy=http://u:p@h/", "bad proxy 'http://u:p@h/'", "bad proxy '***'"},
		{"firewall --port=pw", "bad port pw", "bad port pw"},
		{"part / --size=10G --passphrase=10G", "invalid int value: '10G'", "invalid int value: '***'"},
		{"part / --size=10G", "invalid int value: '10G'", "invalid int value: '10G'"},
		{"part / --grow=yes", "ignored explicit argument 'yes'", "ignored explicit argument '***'"},
	} {
		c := &Command{Name: strings.Fields(tc.line)[0], Args: strings.Fields(tc.line)[1:]}
		g, _ := loadGrammar()
		if got := redact(g.lookup(RHEL9, c.Name), c, tc.msg); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.line, got, tc.want)
		}
	}
}
