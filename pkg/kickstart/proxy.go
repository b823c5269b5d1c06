package kickstart

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

// upstreamName is what a proxy may call an upstream.
var upstreamName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Upstreams names the upstreams a proxy serves the kickstart from, each
// base URL by its NetSource name: the url line as "install", each repo by
// its --name, a liveimg's directory as "liveimg", an OSTree repository as
// "ostree". Mirror lists and metalinks name no base until one of their
// mirrors is chosen (ksserve.ResolveLists), and sources no proxy can
// serve are left out (NetSource.Proxyable).
func Upstreams(f *File) map[string]string {
	m := map[string]string{}
	for _, s := range f.NetworkSources() {
		if ok, _ := s.Proxyable(); !ok || s.Name == "" || !upstreamName.MatchString(s.Name) {
			continue
		}
		if u := s.UpstreamURL(); u != "" {
			m[s.Name] = u
		}
	}
	return m
}

// scriptURL finds http(s) URLs in script bodies.
var scriptURL = regexp.MustCompile(`https?://[A-Za-z0-9.\-]+(:[0-9]+)?/`)

// ScriptUpstreams names the servers a kickstart's %pre and %post scripts
// fetch from (a file server that %post curls, say) that no upstream in
// have already covers: each origin ("http://host:port/") once, named
// "script-HOST-PORT". The kickstart is the user's configuration, so what
// its scripts fetch is as allowed as what its repo lines name.
func ScriptUpstreams(f *File, have map[string]string) map[string]string {
	out := map[string]string{}
	for _, sc := range f.Scripts() {
		if sc.Kind != SectionPre && sc.Kind != SectionPost && sc.Kind != SectionPreInstall {
			continue
		}
		for _, origin := range scriptURL.FindAllString(sc.Body, -1) {
			covered := false
			for _, m := range []map[string]string{have, out} {
				for _, u := range m {
					covered = covered || u == origin
				}
			}
			if covered {
				continue
			}
			_, hostPort, _ := strings.Cut(strings.TrimSuffix(origin, "/"), "://")
			name := "script-" + strings.ReplaceAll(hostPort, ":", "-")
			if upstreamName.MatchString(name) {
				out[name] = origin
			}
		}
	}
	return out
}

// Prefix is one rewrite: an upstream URL prefix and the proxy URL that
// replaces it.
type Prefix struct {
	Upstream, Proxy string
	// Whole says the rewrite names one file (a mirror list), not a
	// directory; it is undone on the installed system too.
	Whole bool
}

// Rewrite maps u to the proxy when a mirror serves it.
func Rewrite(ps []Prefix, u string) string {
	for _, p := range ps {
		if strings.HasPrefix(u, p.Upstream) {
			return p.Proxy + strings.TrimPrefix(u, p.Upstream)
		}
	}
	return u
}

// PrepareForProxy turns the user's kickstart into the copy served to the
// build VM: every URL a mirror serves, in commands and in scripts, points
// at the proxy; and a final %post --nochroot restores the user's URLs on
// the installed system. original is the user's kickstart as they wrote it.
func PrepareForProxy(f *File, original []byte, ps []Prefix) {
	f.RewriteURLs(func(u string) string { return Rewrite(ps, u) })
	for _, p := range ps {
		if strings.HasSuffix(p.Upstream, "/") {
			f.ReplaceInScripts(p.Upstream, p.Proxy)
		}
	}
	f.AppendScript(Script{Kind: SectionPost, NoChroot: true, Body: RestoreScript(original, ps)})
}

// RestoreScript is a %post --nochroot body that leaves the installed
// system (at /mnt/sysroot) as if no proxy had been used: the user's own
// kickstart as /root/original-ks.cfg, and the real mirror URLs in the
// repo files and /root/anaconda-ks.cfg.
func RestoreScript(original []byte, ps []Prefix) string {
	var sb strings.Builder
	sb.WriteString("# Added by kiln: undo the build proxy's URLs on the installed system.\n")
	sb.WriteString("sysroot=/mnt/sysroot\n[ -d \"$sysroot/root\" ] || sysroot=/mnt/sysimage\n")
	sb.WriteString("base64 -d > \"$sysroot/root/original-ks.cfg\" <<'KILN_EOF'\n")
	enc := base64.StdEncoding.EncodeToString(original)
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	sb.WriteString(enc + "\nKILN_EOF\nchmod 600 \"$sysroot/root/original-ks.cfg\"\n")
	sb.WriteString("for f in \"$sysroot\"/etc/yum.repos.d/*.repo \"$sysroot/root/anaconda-ks.cfg\"; do\n  [ -f \"$f\" ] || continue\n")
	for _, p := range ps {
		if !strings.HasSuffix(p.Upstream, "/") && !p.Whole {
			continue
		}
		fmt.Fprintf(&sb, "  sed -i 's|%s|%s|g' \"$f\"\n", sedPattern(p.Proxy), sedReplacement(p.Upstream))
	}
	sb.WriteString("done\n")
	// Anaconda's anaconda-ks.cfg holds the served copy's scripts, and
	// kiln's own (this one and the package report) name the build's
	// token and guest address: a machine reinstalled from that file
	// must not get them. Each begins with the "# Added by kiln" line.
	sb.WriteString("ks=\"$sysroot/root/anaconda-ks.cfg\"\nif [ -f \"$ks\" ]; then\n")
	sb.WriteString("  awk '" + stripKilnSections + "' \"$ks\" > \"$ks.kiln\" && cat \"$ks.kiln\" > \"$ks\"\n  rm -f \"$ks.kiln\"\nfi\n")
	return sb.String()
}

// stripKilnSections is an awk program that drops every script section
// whose first body line is kiln's marker, from its header to its %end.
const stripKilnSections = `skip { if ($0 == "%end") skip = 0; next }
held != "" { if ($0 ~ /^# Added by kiln/) { held = ""; skip = 1; next } print held; held = "" }
/^%(pre|pre-install|post|onerror|traceback)([ \t]|$)/ { held = $0; next }
{ print }
END { if (held != "") print held }`

// SedCommand is sed's "s|FROM|TO|g" for literal strings, quoted for a
// single-quoted shell word.
func SedCommand(from, to string) string {
	return "s|" + sedPattern(from) + "|" + sedReplacement(to) + "|g"
}

// sedPattern escapes s as a literal basic regular expression inside a
// single-quoted 's|...|' command.
func sedPattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `|`, `\|`, `'`, `'\''`, ".", `\.`, "*", `\*`, "[", `\[`, "^", `\^`, "$", `\$`)
	return r.Replace(s)
}

// sedReplacement escapes s as a literal replacement.
func sedReplacement(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `|`, `\|`, `&`, `\&`, `'`, `'\''`)
	return r.Replace(s)
}
