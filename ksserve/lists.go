package ksserve

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/kiln-build/kiln/internal/httpget"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

// MirrorList is a kickstart's mirror list or metalink, resolved: kiln
// fetched it, chose a mirror, and serves the installer a list whose one
// entry is the proxy of that mirror. A build VM reaches only kiln, so the
// list's own mirrors would be unreachable.
type MirrorList struct {
	Name   string // the upstream the chosen mirror is proxied as
	Kind   string // "mirrorlist" or "metalink"
	URL    string // the list's URL
	Mirror string // the chosen mirror's base URL
	Where  string // the kickstart's file:line
	doc    []byte // a metalink as fetched, to keep its file's hashes
}

// maxList bounds a mirror list or metalink; real ones are a few KiB.
const maxList = 1 << 20

// ResolveLists fetches each list among srcs and chooses, in the list's
// order (a metalink's by preference), the first mirror whose
// repodata/repomd.xml answers.
func ResolveLists(ctx context.Context, client *http.Client, srcs []kickstart.NetSource) ([]MirrorList, error) {
	var out []MirrorList
	for _, s := range srcs {
		if s.List == "" {
			continue
		}
		ml, err := resolveList(ctx, client, s)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", s.Where(), s.List, cache.Redact(s.URL), err)
		}
		out = append(out, ml)
	}
	return out, nil
}

func resolveList(ctx context.Context, client *http.Client, s kickstart.NetSource) (MirrorList, error) {
	doc, err := getSmall(ctx, client, s.URL, maxList)
	if err != nil {
		return MirrorList{}, err
	}
	var candidates []string
	if s.List == "metalink" {
		if candidates, err = metalinkMirrors(doc); err != nil {
			return MirrorList{}, err
		}
	} else {
		candidates = mirrorListEntries(doc)
	}
	if len(candidates) == 0 {
		return MirrorList{}, fmt.Errorf("it lists no http or https mirror")
	}
	var last error
	for _, m := range candidates {
		if _, err := getSmall(ctx, client, m+"repodata/repomd.xml", 16<<20); err != nil {
			last = err
			continue
		}
		return MirrorList{Name: s.Name, Kind: s.List, URL: s.URL, Mirror: m, Where: s.Where(), doc: doc}, nil
	}
	return MirrorList{}, fmt.Errorf("none of its %d mirrors answered; the last: %w", len(candidates), last)
}

// getSmall GETs u, which must answer 200 with at most limit bytes.
func getSmall(ctx context.Context, client *http.Client, u string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := httpget.Get(ctx, client, u, limit)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", cache.Redact(u), err)
	}
	return b, nil
}

// mirrorListEntries reads a plain mirror list: one base URL a line, "#"
// comments, as dnf reads it.
func mirrorListEntries(doc []byte) []string {
	var out []string
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || !(strings.HasPrefix(line, "http://") || strings.HasPrefix(line, "https://")) {
			continue
		}
		if !strings.HasSuffix(line, "/") {
			line += "/"
		}
		out = append(out, line)
	}
	return out
}

// metalink is the part of a Metalink 3.0 document (as yum's metalinks
// are) that names the mirrors of repomd.xml.
type metalink struct {
	Files []struct {
		Name string `xml:"name,attr"`
		URLs []struct {
			Protocol   string `xml:"protocol,attr"`
			Preference int    `xml:"preference,attr"`
			URL        string `xml:",chardata"`
		} `xml:"resources>url"`
	} `xml:"files>file"`
}

// metalinkMirrors returns the bases of the http(s) mirrors of repomd.xml,
// most preferred first.
func metalinkMirrors(doc []byte) ([]string, error) {
	var ml metalink
	if err := xml.Unmarshal(doc, &ml); err != nil {
		return nil, fmt.Errorf("not a metalink: %w", err)
	}
	type cand struct {
		base string
		pref int
	}
	var cs []cand
	for _, f := range ml.Files {
		if f.Name != "repomd.xml" {
			continue
		}
		for _, u := range f.URLs {
			v := strings.TrimSpace(u.URL)
			base, ok := strings.CutSuffix(v, "repodata/repomd.xml")
			if !ok || !(strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://")) {
				continue
			}
			cs = append(cs, cand{base, u.Preference})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].pref > cs[j].pref })
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.base
	}
	return out, nil
}

// resources matches a metalink's list of mirrors.
var resources = regexp.MustCompile(`(?s)<resources[^>]*>.*?</resources>`)

// render is the list served for ml, with the proxy of its mirror at
// mirror (".../TOKEN/mirror/NAME/") its one entry. A metalink keeps the
// rest of its document, so the installer still checks repomd.xml against
// its hashes.
func (ml MirrorList) render(mirror string) []byte {
	if ml.Kind != "metalink" {
		return []byte("# Served by kiln: the proxy of " + cache.Redact(ml.Mirror) + "\n" + mirror + "\n")
	}
	one := `<resources maxconnections="1"><url protocol="http" type="http" location="kiln" preference="100">` + mirror + `repodata/repomd.xml</url></resources>`
	return resources.ReplaceAllLiteral(ml.doc, []byte(one))
}
