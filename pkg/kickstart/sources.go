package kickstart

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// The kinds of NetSource.
const (
	SourceTree     = "url"         // url --url: the install tree
	SourceRepo     = "repo"        // repo --baseurl
	SourceLiveImg  = "liveimg"     // liveimg --url: an image to unpack
	SourceOSTree   = "ostreesetup" // ostreesetup --url: an OSTree repository
	SourceInclude  = "include"     // %include or %ksappend of a URL
	SourceNFS      = "nfs"         // nfs, or an nfs:// URL
	SourceRegistry = "registry"    // ostreecontainer and bootc: a container image
	SourceOther    = "other"       // a URL of a scheme a proxy cannot serve (ftp)
)

// NetSource is one thing the kickstart has the installer fetch over the
// network, and where it says so.
type NetSource struct {
	Kind string
	// Name is what a proxy calls the upstream: "install" for the tree,
	// the repo's --name, "liveimg", "ostree"; empty for an include.
	Name string
	// URL is the base URL (a directory, ending in "/"), the list's URL
	// when List is set, the image's for liveimg, or the included file's.
	URL string
	// List is "mirrorlist" or "metalink" when URL is a list of mirrors.
	List string
	// Checksum is liveimg's --checksum (sha256).
	Checksum string
	// Unresolved says an include could not be fetched when the file was
	// read.
	Unresolved bool
	Line       Line
}

// Where is the source's "file:line".
func (s NetSource) Where() string { return fmt.Sprintf("%s:%d", s.Line.File, s.Line.Num) }

// NetworkSources lists every network source the kickstart names, in order:
// the install source, repos, images, trees and the URLs it includes.
// Sources without a network location (cdrom, harddrive, file:) are left
// out.
func (f *File) NetworkSources() []NetSource {
	var out []NetSource
	add := func(c *Command, kind, name string) {
		for _, opt := range []string{"--url", "--baseurl", "--mirrorlist", "--metalink"} {
			v, ok := c.Value(opt)
			if !ok || v == "" {
				continue
			}
			s := NetSource{Kind: kind, Name: name, URL: v, Line: c.Line}
			if opt == "--mirrorlist" || opt == "--metalink" {
				s.List = strings.TrimPrefix(opt, "--")
			}
			switch scheme := urlScheme(v); {
			case scheme == "nfs":
				s.Kind = SourceNFS
			case scheme == "http" || scheme == "https":
				if s.List == "" && kind != SourceLiveImg && !strings.HasSuffix(s.URL, "/") {
					s.URL += "/"
				}
			case scheme == "file" || scheme == "hd" || scheme == "cdrom" || scheme == "":
				continue // on the installer's own media
			default:
				s.Kind = SourceOther
			}
			if kind == SourceLiveImg {
				s.Checksum, _ = c.Value("--checksum")
			}
			out = append(out, s)
		}
	}
	if src := f.InstallSource(); src != nil {
		switch src.Kind {
		case "url":
			add(src.Command, SourceTree, "install")
		case "liveimg":
			add(src.Command, SourceLiveImg, "liveimg")
		case "ostreesetup":
			add(src.Command, SourceOSTree, "ostree")
		case "nfs":
			out = append(out, NetSource{Kind: SourceNFS, URL: src.URL, Line: src.Command.Line})
		case "ostreecontainer", "bootc":
			u, _ := src.Command.Value("--url")
			if u == "" {
				u, _ = src.Command.Value("--source-imgref")
			}
			out = append(out, NetSource{Kind: SourceRegistry, URL: u, Line: src.Command.Line})
		}
	}
	for _, r := range f.Repos() {
		add(r.Command, SourceRepo, r.Name)
	}
	for _, inc := range f.Includes {
		if isURL(inc.Target) {
			out = append(out, NetSource{Kind: SourceInclude, URL: inc.Target, Line: inc.Line})
		}
	}
	for _, n := range f.Nodes {
		b, ok := n.(*Blank)
		if !ok {
			continue
		}
		args, err := splitLine(b.Line.content())
		if err != nil || len(args) < 2 || (args[0] != "%include" && args[0] != "%ksappend") || !isURL(args[1]) {
			continue
		}
		out = append(out, NetSource{Kind: SourceInclude, URL: args[1], Unresolved: true, Line: b.Line})
	}
	return out
}

func urlScheme(s string) string {
	scheme, _, ok := strings.Cut(s, ":")
	if !ok || strings.ContainsAny(scheme, "/.") {
		return ""
	}
	return strings.ToLower(scheme)
}

// Proxyable says whether a proxy of http(s) upstreams can serve s, and
// why not when it cannot.
func (s NetSource) Proxyable() (bool, string) {
	switch s.Kind {
	case SourceNFS:
		return false, "NFS cannot be served through kiln's HTTP proxy"
	case SourceRegistry:
		return false, "a container registry cannot be served through kiln's HTTP proxy"
	case SourceOther:
		return false, fmt.Sprintf("%s URLs cannot be served through kiln's HTTP proxy; use http or https", urlScheme(s.URL))
	case SourceInclude:
		if s.Unresolved {
			return false, "kiln could not fetch it to inline it"
		}
	}
	return true, ""
}

// UpstreamURL is the base a proxy fetches s from: its URL, the directory
// of a liveimg image; empty for lists and includes, which name no base of
// their own.
func (s NetSource) UpstreamURL() string {
	switch {
	case s.List != "", s.Kind == SourceInclude:
		return ""
	case s.Kind == SourceLiveImg:
		u, err := url.Parse(s.URL)
		if err != nil {
			return ""
		}
		if d := path.Dir(u.Path); d != "/" {
			u.Path = d + "/"
		} else {
			u.Path = "/"
		}
		u.RawQuery, u.Fragment = "", ""
		return u.String()
	}
	return s.URL
}

// ExpectedSums are the sha256 sums the kickstart gives for what it
// fetches, by URL: each liveimg's --checksum.
func (f *File) ExpectedSums() map[string]string {
	m := map[string]string{}
	for _, s := range f.NetworkSources() {
		if s.Kind == SourceLiveImg && s.Checksum != "" {
			m[s.URL] = strings.ToLower(strings.TrimPrefix(s.Checksum, "sha256:"))
		}
	}
	return m
}
