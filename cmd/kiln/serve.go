package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/pkg/kickstart"
)

const serveUsage = `Usage:
  kiln serve --ks FILE [--mirror NAME=URL]... [--files DIR] [--listen ADDR] [--url URL] [--offline]

Serves a kickstart, a caching proxy of each mirror it uses, and a directory
of files, for PXE and physical installs. The kickstart's url, repo,
liveimg and ostreesetup lines, the servers its scripts fetch from, and any
--mirror URL named in it are rewritten to point at the proxy; a mirror
list or metalink is fetched here and served with the chosen mirror's proxy
as its one entry; the installed system gets the original URLs back.
Everything is served under a random token in the path, and only on
loopback unless --listen says otherwise. It prints the inst.ks= to boot
with, and stops cleanly on Ctrl-C or SIGTERM.

Examples:
  kiln serve --ks my-rocky9.ks --files ./files
  kiln serve --ks my-rocky9.ks --listen 0.0.0.0:8080 --url http://192.168.1.10:8080 \
    --mirror files=http://your-file-server.local/`

func runServe(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "serve", serveUsage)
	ksFile := fs.String("ks", "", "the kickstart to serve (required)")
	ver := fs.String("version", "", "kickstart syntax version (default: the file's #version=, else RHEL9)")
	mirrors := fs.StringArray("mirror", nil, "proxy another upstream: NAME=URL (repeatable)")
	files := fs.String("files", "", "serve this directory under /TOKEN/files/")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	publicURL := fs.String("url", "", "the URL clients reach this server at (default: http://LISTEN-ADDRESS)")
	offline := fs.Bool("offline", false, "serve mirrors from the cache only")
	cacheDir := fs.String("cache-dir", "", "mirror cache (default ~/.cache/kiln/mirror)")
	ca := fs.String("ca", "", "PEM CA bundle for HTTPS mirrors")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ksFile == "" || fs.NArg() != 0 {
		return usagef("serve: --ks FILE is required, and nothing else")
	}
	v, err := parseVersionFlag(*ver)
	if err != nil {
		return err
	}
	original, err := os.ReadFile(*ksFile)
	if err != nil {
		return &invalidError{err: fmt.Errorf("reading kickstart: %w", err)}
	}
	f := kickstart.Parse(*ksFile, original, kickstart.Options{Version: v, Context: ctx})
	report(e, f.Diagnostics)
	if len(f.Errors()) > 0 {
		return &invalidError{err: fmt.Errorf("%s has errors; not serving it", *ksFile), reported: true}
	}
	ups := kickstart.Upstreams(f)
	if err := addMirrors(ups, *mirrors); err != nil {
		return err
	}
	for name, u := range kickstart.ScriptUpstreams(f, ups) {
		ups[name] = u
	}
	srvCache, client, err := openCache(*cacheDir, *ca)
	if err != nil {
		return err
	}
	defer srvCache.Close()
	srcs := f.NetworkSources()
	for _, s := range srcs {
		if ok, why := s.Proxyable(); !ok {
			e.log.Warn("not proxied: the installer must reach it itself", "where", s.Where(), "kind", s.Kind, "url", cache.Redact(s.URL), "why", why)
		}
	}
	var lists []ksserve.MirrorList
	if !*offline {
		if lists, err = ksserve.ResolveLists(ctx, client, srcs); err != nil {
			return fmt.Errorf("resolving the kickstart's mirror lists: %w", err)
		}
	}
	srv, err := ksserve.New(ksserve.Config{Mirrors: ups, Lists: lists, Expected: f.ExpectedSums(), FilesDir: *files, Cache: srvCache, Offline: *offline, Log: e.log})
	if err != nil {
		return usagef("serve: %v", err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	if host, _, _ := net.SplitHostPort(l.Addr().String()); !net.ParseIP(host).IsLoopback() {
		e.log.Warn("listening beyond loopback: anyone who can reach this address and learns the token can read the kickstart", "addr", l.Addr().String())
	}
	base := *publicURL
	if base == "" {
		base = "http://" + l.Addr().String()
	}
	base = strings.TrimSuffix(base, "/")
	kickstart.PrepareForProxy(f, original, srv.Prefixes(base))
	// The server was built before the kickstart could be rewritten with
	// its token; serve the rewritten copy.
	srv.SetKickstart(f.Render())

	ksURL := base + srv.KickstartPath()
	cmdline := "inst.ks=" + ksURL
	if _, ok := ups["install"]; ok {
		cmdline += " inst.repo=" + base + srv.MirrorPath("install")
	}
	if e.json {
		mm := map[string]string{}
		for n := range ups {
			mm[n] = base + srv.MirrorPath(n)
		}
		ev := map[string]any{"event": "serving", "address": l.Addr().String(), "kickstart_url": ksURL, "kernel_cmdline": cmdline, "mirrors": mm}
		if *files != "" {
			ev["files_url"] = base + srv.FilesPath()
		}
		writeJSON(e.stdout, ev)
	} else {
		fmt.Fprintf(e.stdout, "serving on %s\n\nBoot the installer with:\n  %s\n\n", l.Addr(), cmdline)
		fmt.Fprintln(e.stdout, "No inst.proxy= is needed: the served kickstart's URLs point at this server.")
		for n, u := range ups {
			fmt.Fprintf(e.stdout, "mirror %-10s %s -> %s\n", n, cache.Redact(u), base+srv.MirrorPath(n))
		}
		if *files != "" {
			fmt.Fprintf(e.stdout, "files            %s -> %s\n", *files, base+srv.FilesPath())
		}
	}
	err = ksserve.Serve(ctx, srv, l, 10*time.Second)
	st := srv.Stats()
	e.log.Info("stopped", "upstream_bytes", st.UpstreamBytes, "cache_bytes", st.CacheBytes, "objects", len(st.Objects))
	return err
}

// addMirrors adds each --mirror NAME=URL to ups.
func addMirrors(ups map[string]string, flags []string) error {
	for _, m := range flags {
		name, u, ok := strings.Cut(m, "=")
		if !ok || name == "" || u == "" {
			return usagef("--mirror %q: want NAME=URL", cache.Redact(m))
		}
		ups[name] = u
	}
	return nil
}

// openCache opens the mirror cache and the client it fetches with.
func openCache(dir, ca string) (*cache.Cache, *http.Client, error) {
	if dir == "" {
		d, err := cache.DefaultDir()
		if err != nil {
			return nil, nil, fmt.Errorf("finding the cache directory: %w (use --cache-dir)", err)
		}
		dir = d
	}
	client, err := ksserve.NewUpstreamClient(ca)
	if err != nil {
		return nil, nil, &invalidError{err: err}
	}
	c, err := cache.Open(dir, client)
	return c, client, err
}
