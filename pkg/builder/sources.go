package builder

import (
	"fmt"

	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

// Source is one network source of the kickstart and how the build VM,
// which reaches only kiln, reaches it: for --dry-run and the manifest.
type Source struct {
	Where string `json:"where"` // the kickstart's file:line
	Kind  string `json:"kind"`  // kickstart.Source*
	Name  string `json:"name,omitempty"`
	URL   string `json:"url"` // credentials removed
	// Mirror is the mirror a list's chosen (after the build began).
	Mirror string `json:"mirror,omitempty"`
	How    string `json:"how"`
}

// checkSources refuses, before anything is fetched or booted, a source
// the build VM could not reach: it reaches only kiln, and kiln serves
// http and https.
func (b *builder) checkSources() error {
	for _, s := range b.ks.NetworkSources() {
		if ok, why := s.Proxyable(); !ok {
			return inputErrorf("%s: %s %s: %s; the build VM reaches only kiln", s.Where(), s.Kind, cache.Redact(s.URL), why)
		}
		if s.List != "" && b.o.Offline {
			return inputErrorf("%s: %s %s: --offline, and kiln must fetch the list to choose a mirror", s.Where(), s.List, cache.Redact(s.URL))
		}
	}
	return nil
}

// sources says how each network source is reached; lists are the
// resolved mirror lists, nil before the build fetched them.
func (b *builder) sources(lists []ksserve.MirrorList) []Source {
	chosen := map[string]string{}
	for _, ml := range lists {
		chosen[ml.Where+" "+ml.URL] = ml.Mirror
	}
	var out []Source
	for _, s := range b.ks.NetworkSources() {
		src := Source{Where: s.Where(), Kind: s.Kind, Name: s.Name, URL: cache.Redact(s.URL)}
		switch {
		case s.Kind == kickstart.SourceInclude:
			src.How = "fetched by kiln before the boot and inlined in the served kickstart"
		case s.List != "":
			src.How = fmt.Sprintf("%s fetched by kiln, which chooses a mirror and serves the installer a %s of one entry: the proxy of that mirror as %q", s.List, s.List, s.Name)
			if m, ok := chosen[s.Where()+" "+s.URL]; ok {
				src.Mirror = cache.Redact(m)
			}
		case s.Kind == kickstart.SourceLiveImg && s.Checksum != "":
			src.How = fmt.Sprintf("proxied as %q, checked against --checksum", s.Name)
		default:
			src.How = fmt.Sprintf("proxied as %q", s.Name)
		}
		out = append(out, src)
	}
	return out
}
