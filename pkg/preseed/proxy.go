package preseed

import (
	"fmt"
	"strings"

	"github.com/kiln-build/kiln/pkg/kickstart"
)

// Mirror is the archive a preseed gives d-i (mirror/*) as a URL ending in
// "/", or "" when it names none. An unset directory is d-i's default,
// /debian (choose-mirror's mirror/http/directory).
func (f *File) Mirror() string {
	proto := f.Value("mirror/protocol")
	if proto == "" {
		proto = "http"
	}
	host := f.Value("mirror/" + proto + "/hostname")
	if host == "" {
		return ""
	}
	dir := f.Value("mirror/" + proto + "/directory")
	if dir == "" {
		dir = "/debian"
	}
	return proto + "://" + host + "/" + strings.Trim(dir, "/") + "/"
}

// Security is the security archive apt-setup is given
// (apt-setup/security_host), as a URL ending in "/", or "".
func (f *File) Security() string {
	host := f.Value("apt-setup/security_host")
	if host == "" {
		return ""
	}
	dir := f.Value("apt-setup/security_path")
	if dir == "" {
		dir = "/debian-security"
	}
	proto := f.Value("apt-setup/security_protocol")
	if proto == "" {
		proto = "http"
	}
	return proto + "://" + host + "/" + strings.Trim(dir, "/") + "/"
}

// DefaultMirror is the upstream name of the archive d-i installs from,
// unless a configured upstream already serves the preseed's.
const DefaultMirror = "debian"

// Upstreams are what a proxy serving f may fetch from: the
// preseed's mirror (as "debian", unless a --mirror names it already), the
// security mirror it names, and --mirror. It returns the name of the
// upstream d-i installs from.
func Upstreams(p *File, mirrors map[string]string) (map[string]string, string, error) {
	ups := map[string]string{}
	for n, u := range mirrors {
		ups[n] = u
	}
	own := p.Mirror()
	name := ""
	if own != "" {
		for n, u := range ups {
			if strings.TrimSuffix(u, "/")+"/" == own {
				name = n
			}
		}
		if name == "" {
			if _, taken := ups[DefaultMirror]; !taken {
				name = DefaultMirror
				ups[name] = own
			}
		}
	}
	if name == "" {
		if _, ok := ups[DefaultMirror]; !ok {
			return nil, "", fmt.Errorf("%s names no mirror (d-i mirror/http/hostname and mirror/http/directory), and no --mirror %s=URL is given", p.Name, DefaultMirror)
		}
		name = DefaultMirror
	}
	if sec := p.Security(); sec != "" {
		known := false
		for _, u := range ups {
			known = known || strings.TrimSuffix(u, "/")+"/" == sec
		}
		if !known {
			ups["security"] = sec
		}
	}
	return ups, name, nil
}

// Proxy is how a served preseed reaches kiln.
type Proxy struct {
	// HostPort is kiln's server as d-i reaches it; MirrorDir and
	// SecurityDir the paths there of the proxied archive and, when one
	// is proxied, the security archive ("/TOKEN/mirror/debian").
	HostPort, MirrorDir, SecurityDir string
	// Prefixes map each upstream URL to its proxy, longest first.
	Prefixes []kickstart.Prefix
}

// PrepareForProxy turns f into the copy served to d-i: its archive, and
// its security archive when one is proxied, are kiln's proxy over http;
// the URLs the proxy serves in preseed/early_command and late_command are
// the proxy's; and the late command ends by giving the installed system's
// apt sources the user's URLs back. A user's command that fails still
// fails, and says so in d-i's log (CommandFailed).
func PrepareForProxy(f *File, px Proxy) {
	f.Set("d-i", "mirror/country", "string", "manual")
	f.Set("d-i", "mirror/protocol", "string", "http")
	f.Set("d-i", "mirror/http/hostname", "string", px.HostPort)
	f.Set("d-i", "mirror/http/directory", "string", strings.TrimSuffix(px.MirrorDir, "/"))
	f.Set("d-i", "mirror/http/proxy", "string", "")
	if px.SecurityDir != "" {
		f.Set("d-i", "apt-setup/security_protocol", "string", "http")
		f.Set("d-i", "apt-setup/security_host", "string", px.HostPort)
		f.Set("d-i", "apt-setup/security_path", "string", strings.TrimSuffix(px.SecurityDir, "/"))
	}
	if user := f.Value("preseed/early_command"); user != "" {
		f.Set("d-i", "preseed/early_command", "string", Guarded("preseed/early_command", RewriteURLs(user, px.Prefixes)))
	}
	late := Restore(px.Prefixes)
	if user := f.Value("preseed/late_command"); user != "" {
		late = Guarded("preseed/late_command", RewriteURLs(user, px.Prefixes)) + " && " + late
	}
	f.Set("d-i", "preseed/late_command", "string", late)
}

// CommandFailed marks, in d-i's log, a user's preseed command that
// failed: d-i itself only shows a dialog (its preseed_command asks
// preseed/command_failed) and waits.
const CommandFailed = "kiln: preseed command failed:"

// Guarded runs a user's preseed command so that its failure is logged
// with CommandFailed and still fails.
func Guarded(question, cmd string) string {
	return "{ (" + cmd + ") || { logger -t kiln \"preseed command failed: " + question + ", status $?\"; false; }; }"
}

// RewriteURLs maps each URL a proxied upstream serves to the proxy, in
// one pass, so a rewritten URL is never rewritten again.
func RewriteURLs(s string, ps []kickstart.Prefix) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		matched := false
		for _, p := range ps {
			if p.Upstream != "" && !p.Whole && strings.HasPrefix(s[i:], p.Upstream) {
				b.WriteString(p.Proxy)
				i += len(p.Upstream)
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

// Restore is a late command that gives the installed system, at /target,
// the user's URLs back in apt's sources, where apt-setup wrote the
// proxy's.
func Restore(ps []kickstart.Prefix) string {
	var sed []string
	for _, p := range ps {
		if p.Whole || strings.HasPrefix(p.Upstream, "@") {
			continue // a mirror list, or a placeholder such as @KILN_FILES@
		}
		sed = append(sed, "-e '"+kickstart.SedCommand(p.Proxy, p.Upstream)+"'")
	}
	if len(sed) == 0 {
		return "true"
	}
	return `{ for f in /target/etc/apt/sources.list /target/etc/apt/sources.list.d/*; do [ -f "$f" ] && sed -i ` + strings.Join(sed, " ") + ` "$f"; done; true; }`
}
