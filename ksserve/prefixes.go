package ksserve

import (
	"sort"
	"strings"

	"github.com/kiln-build/kiln/pkg/kickstart"
)

// Prefixes returns the rewrites for a guest that reaches this server at
// base (e.g. "http://10.0.2.100"), longest upstream first so that a
// nested mirror wins over its parent.
func (s *Server) Prefixes(base string) []kickstart.Prefix {
	base = strings.TrimSuffix(base, "/")
	var ps []kickstart.Prefix
	for name, u := range s.mirrors {
		up := u.String()
		ps = append(ps, kickstart.Prefix{Upstream: up, Proxy: base + s.MirrorPath(name)})
		// A URL without the trailing slash names the same directory.
		ps = append(ps, kickstart.Prefix{Upstream: strings.TrimSuffix(up, "/"), Proxy: strings.TrimSuffix(base+s.MirrorPath(name), "/")})
	}
	for name, ml := range s.lists {
		ps = append(ps, kickstart.Prefix{Upstream: ml.URL, Proxy: base + s.ListPath(name), Whole: true})
	}
	sort.Slice(ps, func(i, j int) bool {
		if len(ps[i].Upstream) != len(ps[j].Upstream) {
			return len(ps[i].Upstream) > len(ps[j].Upstream)
		}
		return ps[i].Upstream < ps[j].Upstream
	})
	return ps
}
