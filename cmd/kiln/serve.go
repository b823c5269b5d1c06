package main

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kiln-build/kiln/ksserve"
	"github.com/kiln-build/kiln/ksserve/cache"
	"github.com/kiln-build/kiln/ksserve/tftp"
	"github.com/kiln-build/kiln/pkg/builder"
	"github.com/kiln-build/kiln/pkg/kickstart"
	"github.com/kiln-build/kiln/pkg/preseed"
)

const serveUsage = `Usage:
  kiln serve --ks FILE [--iso ISO]... [--mirror NAME=URL]... [--files DIR] [--listen ADDR]
             [--advertise HOST | --url URL] [--allow CIDR]... [--tftp ADDR] [--append ARGS] [--offline]
  kiln serve --preseed FILE [--mirror NAME=URL]... [--files DIR] [--listen ADDR] [--advertise HOST | --url URL] [--allow CIDR]...

Serves a kickstart, a caching proxy of each mirror it uses, and a directory
of files, for PXE and physical installs. The kickstart's url, repo,
liveimg and ostreesetup lines, the servers its scripts fetch from, and any
--mirror URL named in it are rewritten to point at the proxy; a mirror
list or metalink is fetched here and served with the chosen mirror's proxy
as its one entry; the installed system gets the original URLs back.

With --iso, the whole network install: the ISO's files are served as an
HTTP install tree, read from the image in place (no mount, no copy, no
root), with an iPXE script, a GRUB netboot grub.cfg, the kernel and initrd,
and iPXE's chainload binaries (from Debian's ipxe package). --iso twice
serves a boot ISO and a package DVD. --tftp serves the boot files by TFTP
too, for PXE ROMs. kiln runs no DHCP: it prints the lines to add to
dnsmasq, ISC dhcpd or Kea.

With --preseed, the same for Debian's installer: the preseed at
/TOKEN/preseed.cfg, its mirror (mirror/http/*) pointing at the proxy, which
checks every package against the archive's index; boot d-i with the
printed "auto=true priority=critical url=...".

Everything is served under a random token in the path, and only on
loopback unless --listen says otherwise; --allow limits the clients.
Without --url or --advertise, each client is sent back to the address it
came by. It stops cleanly on Ctrl-C or SIGTERM.

Examples:
  kiln serve --ks my-rocky9.ks --files ./files
  kiln serve --ks my-rocky9.ks --iso Rocky-9.5-x86_64-dvd.iso --listen 0.0.0.0:8080 \
    --tftp 0.0.0.0:69 --allow 192.168.1.0/24 --mirror files=http://your-file-server.local/`

func runServe(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "serve", serveUsage)
	ksFile := fs.String("ks", "", "the kickstart to serve")
	preseedFile := fs.String("preseed", "", "a Debian preseed to serve instead, for d-i's url= boot argument")
	ver := fs.String("version", "", "kickstart syntax version (default: the file's #version=, else RHEL9)")
	mirrors := fs.StringArray("mirror", nil, "proxy another upstream: NAME=URL (repeatable)")
	files := fs.String("files", "", "serve this directory under /TOKEN/files/")
	isos := fs.StringArray("iso", nil, "serve this installer ISO as an install tree, with network boot files (repeatable)")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	publicURL := fs.String("url", "", "the URL clients reach this server at (default: the address each request came by)")
	advertise := fs.String("advertise", "", "the host name or address clients reach this server by (with the listening port)")
	allow := fs.StringArray("allow", nil, "only serve clients in this CIDR (repeatable; default: any that can connect)")
	tftpAddr := fs.String("tftp", "", "also serve the boot files by TFTP on this address (e.g. 0.0.0.0:69)")
	appendArgs := fs.String("append", "", "more installer kernel arguments for the boot files (e.g. console=ttyS0)")
	offline := fs.Bool("offline", false, "serve mirrors from the cache only")
	cacheDir := fs.String("cache-dir", "", "mirror cache (default ~/.cache/kiln/mirror)")
	ca := fs.String("ca", "", "PEM CA bundle for HTTPS mirrors")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*ksFile == "") == (*preseedFile == "") || fs.NArg() != 0 {
		return usagef("serve: give --ks FILE or --preseed FILE, and nothing else")
	}
	if *preseedFile != "" {
		if len(*isos) > 0 || *tftpAddr != "" {
			return usagef("serve: --iso and --tftp serve an Anaconda installer; with --preseed, boot d-i with the printed url=")
		}
		return servePreseed(ctx, e, *preseedFile, *mirrors, *files, *listen, *publicURL, *advertise, *allow, *offline, *cacheDir, *ca)
	}
	if *publicURL != "" && *advertise != "" {
		return usagef("serve: --url and --advertise both say how clients reach kiln; give one")
	}
	if *tftpAddr != "" && len(*isos) == 0 {
		return usagef("serve: --tftp serves the boot files of an --iso; give one")
	}
	var nets []*net.IPNet
	for _, a := range *allow {
		_, n, err := net.ParseCIDR(a)
		if err != nil {
			return usagef("serve: --allow %q: want a CIDR such as 192.168.1.0/24", a)
		}
		nets = append(nets, n)
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
	var trees []*ksserve.ISO
	for _, p := range *isos {
		t, err := ksserve.OpenISO(p)
		if err != nil {
			return &invalidError{err: fmt.Errorf("--iso %w", err)}
		}
		defer t.Close()
		trees = append(trees, t)
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
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", *listen, err)
	}
	defer l.Close()
	addr := l.Addr().(*net.TCPAddr)
	// The URL the served documents name kiln by: fixed when the user
	// says, else each client's own way in.
	fixed := strings.TrimSuffix(*publicURL, "/")
	if *advertise != "" {
		fixed = "http://" + net.JoinHostPort(*advertise, strconv.Itoa(addr.Port))
	}
	cfg := ksserve.Config{Mirrors: ups, Lists: lists, Expected: f.ExpectedSums(), FilesDir: *files, Cache: srvCache, Offline: *offline, Log: e.log,
		ISOs: trees, Base: fixed}
	if len(trees) > 0 {
		cfg.Boot = &ksserve.Boot{Append: *appendArgs}
	}
	srv, err := ksserve.New(cfg)
	if err != nil {
		if errors.Is(err, ksserve.ErrNotInstallTree) {
			return &invalidError{err: fmt.Errorf("--iso: %w", err)}
		}
		return usagef("serve: %v", err)
	}
	defer srv.Close()
	if !addr.IP.IsLoopback() {
		e.log.Warn("listening beyond loopback: anyone who can reach this address and learns a URL below can read the kickstart, which holds the root password", "addr", addr.String())
	}
	bases := []string{fixed}
	if fixed == "" {
		bases = hostBases(addr)
	}
	ksBase := fixed
	if ksBase == "" {
		ksBase = ksserve.AnyHost
	}
	kickstart.PrepareForProxy(f, original, srv.Prefixes(ksBase))
	// The server was built before the kickstart could be rewritten with
	// its token; serve the rewritten copy.
	srv.SetKickstart(f.Render())

	var tftpConn net.PacketConn
	if *tftpAddr != "" {
		if tftpConn, err = net.ListenPacket("udp", *tftpAddr); err != nil {
			return fmt.Errorf("--tftp %s: %w (port 69 needs root or CAP_NET_BIND_SERVICE)", *tftpAddr, err)
		}
		defer tftpConn.Close()
	}
	if len(trees) > 0 && !srv.HasIPXE() {
		e.log.Warn(ksserve.ErrNoIPXE.Error() + "; iPXE clients and GRUB still boot from the script and grub.cfg")
	}
	printServing(e, srv, addr, bases, ups, *files, tftpConn)
	if len(nets) > 0 {
		l = ksserve.AllowListener(l, nets, e.log)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ksserve.Serve(gctx, srv, l, 10*time.Second) })
	if tftpConn != nil {
		ts := &tftp.Server{Log: e.log, Open: func(name string, local net.IP) (tftp.File, int64, error) {
			bf, ok := srv.TFTPFile(name)
			if !ok {
				return nil, 0, iofs.ErrNotExist
			}
			base := fixed
			if base == "" {
				base = "http://" + net.JoinHostPort(local.String(), strconv.Itoa(addr.Port))
			}
			file, err := srv.OpenBootFile(bf, base)
			if err != nil {
				return nil, 0, err
			}
			return file, file.Size, nil
		}}
		if len(nets) > 0 {
			ts.Allow = func(ip net.IP) bool { return ksserve.Allowed(nets, ip) }
		}
		g.Go(func() error { return ts.Serve(gctx, tftpConn) })
	}
	err = g.Wait()
	st := srv.Stats()
	e.log.Info("stopped", "upstream_bytes", st.UpstreamBytes, "cache_bytes", st.CacheBytes, "objects", len(st.Objects))
	return err
}

// hostBases are the URLs kiln is reached at on addr: the address itself,
// or on a wildcard address each of the host's own.
func hostBases(addr *net.TCPAddr) []string {
	port := strconv.Itoa(addr.Port)
	if !addr.IP.IsUnspecified() {
		return []string{"http://" + net.JoinHostPort(addr.IP.String(), port)}
	}
	var v4, v6, loop []string
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		as, _ := ifc.Addrs()
		for _, a := range as {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLinkLocalUnicast() || (addr.IP.To4() != nil && ipn.IP.To4() == nil) {
				continue
			}
			u := "http://" + net.JoinHostPort(ipn.IP.String(), port)
			switch {
			case ipn.IP.IsLoopback():
				loop = append(loop, u)
			case ipn.IP.To4() != nil:
				v4 = append(v4, u)
			default:
				v6 = append(v6, u)
			}
		}
	}
	return append(append(v4, v6...), loop...)
}

// ipv4Base is the first of bases with an IPv4 address, for DHCPv4's
// lines; else the first.
func ipv4Base(bases []string) string {
	for _, b := range bases {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(b, "http://"))
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.To4() != nil {
			return b
		}
	}
	return bases[0]
}

// printServing says where everything is: the boot lines for each way in,
// the mirrors and files, and the DHCP lines for network boot.
func printServing(e *env, srv *ksserve.Server, addr *net.TCPAddr, bases []string, ups map[string]string, files string, tftpConn net.PacketConn) {
	netboot := len(srv.BootFiles()) > 0
	cmdline := func(base string) string {
		if netboot {
			return srv.BootArgs(base)
		}
		c := "inst.ks=" + base + srv.KickstartPath()
		if _, ok := ups["install"]; ok {
			c += " inst.repo=" + base + srv.MirrorPath("install")
		}
		return c
	}
	tftpIP := ""
	if tftpConn != nil {
		ua := tftpConn.LocalAddr().(*net.UDPAddr)
		tftpIP = ua.IP.String()
		if ua.IP.IsUnspecified() {
			tftpIP, _, _ = net.SplitHostPort(strings.TrimPrefix(ipv4Base(bases), "http://"))
		}
	}
	if e.json {
		var urls []map[string]string
		for _, b := range bases {
			u := map[string]string{"base": b, "kickstart_url": b + srv.KickstartPath(), "kernel_cmdline": cmdline(b)}
			if netboot {
				u["ipxe_script"] = b + srv.BootPath("boot.ipxe")
				u["grub_cfg"] = b + srv.BootPath("grub.cfg")
				for i := range srv.ISOs() {
					u["iso"+strconv.Itoa(i)] = b + srv.ISOPath(i)
				}
			}
			urls = append(urls, u)
		}
		mm := map[string]string{}
		for n := range ups {
			mm[n] = bases[0] + srv.MirrorPath(n)
		}
		ev := map[string]any{"event": "serving", "address": addr.String(), "kickstart_url": bases[0] + srv.KickstartPath(),
			"kernel_cmdline": cmdline(bases[0]), "mirrors": mm, "urls": urls}
		if files != "" {
			ev["files_url"] = bases[0] + srv.FilesPath()
		}
		if tftpConn != nil {
			ev["tftp"] = tftpConn.LocalAddr().String()
			ev["tftp_files"] = srv.TFTPNames()
		}
		writeJSON(e.stdout, ev)
		return
	}
	w := e.stdout
	fmt.Fprintf(w, "serving on %s\n\n", addr)
	for _, b := range bases {
		if len(bases) > 1 {
			fmt.Fprintf(w, "via %s:\n", strings.TrimPrefix(b, "http://"))
		}
		if netboot {
			fmt.Fprintf(w, "  iPXE:     chain %s\n  grub.cfg: %s\n", b+srv.BootPath("boot.ipxe"), b+srv.BootPath("grub.cfg"))
		}
		fmt.Fprintf(w, "  boot the installer with:\n    %s\n", cmdline(b))
	}
	fmt.Fprintln(w, "\nNo inst.proxy= is needed: the served kickstart's URLs point at this server.")
	for n, u := range ups {
		fmt.Fprintf(w, "mirror %-10s %s -> %s\n", n, cache.Redact(u), bases[0]+srv.MirrorPath(n))
	}
	if files != "" {
		fmt.Fprintf(w, "files            %s -> %s\n", files, bases[0]+srv.FilesPath())
	}
	for i, t := range srv.ISOs() {
		fmt.Fprintf(w, "install tree     %s -> %s\n", t.Path, bases[0]+srv.ISOPath(i))
	}
	if !netboot {
		return
	}
	if tftpConn != nil {
		fmt.Fprintf(w, "tftp             %s: %s\n", tftpConn.LocalAddr(), strings.Join(srv.TFTPNames(), " "))
	}
	d := ksserve.DHCP{Base: ipv4Base(bases), TFTP: tftpIP}
	fmt.Fprintf(w, "\nkiln runs no DHCP. Add to the site's DHCP server, for BIOS PXE, UEFI PXE and UEFI HTTP boot:\n")
	if tftpConn == nil {
		fmt.Fprintf(w, "(BIOS and UEFI PXE ROMs fetch their first file by TFTP: add --tftp ADDR for those lines.)\n")
	}
	iscGlobal, iscScoped := srv.ISCDhcpd(d)
	fmt.Fprintf(w, "\n--- dnsmasq (dnsmasq.conf) ---\n%s\n--- ISC dhcpd (dhcpd.conf, at its top level) ---\n%s--- ISC dhcpd (at the top level or in the machines' subnet) ---\n%s\n--- Kea (in the Dhcp4 object of kea-dhcp4.conf) ---\n%s",
		srv.Dnsmasq(d), iscGlobal, iscScoped, srv.Kea(d))
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

// servePreseed is kiln serve for Debian: the preseed, the proxy of its
// archive and each --mirror, and --files, for d-i's url= boot argument.
func servePreseed(ctx context.Context, e *env, file string, mirrors []string, files, listen, publicURL, advertise string, allow []string, offline bool, cacheDir, ca string) error {
	if publicURL != "" && advertise != "" {
		return usagef("serve: --url and --advertise both say how clients reach kiln; give one")
	}
	var nets []*net.IPNet
	for _, a := range allow {
		_, n, err := net.ParseCIDR(a)
		if err != nil {
			return usagef("serve: --allow %q: want a CIDR such as 192.168.1.0/24", a)
		}
		nets = append(nets, n)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return &invalidError{err: fmt.Errorf("reading the preseed: %w", err)}
	}
	p, err := preseed.Parse(file, data)
	if err != nil {
		return &invalidError{err: err}
	}
	for _, w := range p.Warnings {
		e.log.Warn(w)
	}
	extra := map[string]string{}
	if err := addMirrors(extra, mirrors); err != nil {
		return err
	}
	ups, name, err := preseed.Upstreams(p, extra)
	if err != nil {
		return &invalidError{err: err}
	}
	srvCache, _, err := openCache(cacheDir, ca)
	if err != nil {
		return err
	}
	defer srvCache.Close()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	defer l.Close()
	addr := l.Addr().(*net.TCPAddr)
	fixed := strings.TrimSuffix(publicURL, "/")
	if advertise != "" {
		fixed = "http://" + net.JoinHostPort(advertise, strconv.Itoa(addr.Port))
	}
	srv, err := ksserve.New(ksserve.Config{Mirrors: ups, FilesDir: files, Cache: srvCache, Offline: offline, Log: e.log, Base: fixed})
	if err != nil {
		return usagef("serve: %v", err)
	}
	defer srv.Close()
	if !addr.IP.IsLoopback() {
		e.log.Warn("listening beyond loopback: anyone who can reach this address and learns a URL below can read the preseed, which holds its passwords", "addr", addr.String())
	}
	base := fixed
	if base == "" {
		base = ksserve.AnyHost
	}
	px := preseed.Proxy{HostPort: strings.TrimPrefix(base, "http://"), MirrorDir: srv.MirrorPath(name), Prefixes: srv.Prefixes(base)}
	if files != "" {
		px.Prefixes = append(px.Prefixes, kickstart.Prefix{Upstream: builder.FilesPlaceholder + "/", Proxy: base + srv.FilesPath()})
	}
	if sec := p.Security(); sec != "" {
		for n, u := range ups {
			if strings.TrimSuffix(u, "/")+"/" == sec {
				px.SecurityDir = srv.MirrorPath(n)
			}
		}
	}
	served := p.Clone()
	preseed.PrepareForProxy(served, px)
	srv.SetPreseed(served.Render())
	bases := []string{fixed}
	if fixed == "" {
		bases = hostBases(addr)
	}
	mm := map[string]string{}
	for n := range ups {
		mm[n] = bases[0] + srv.MirrorPath(n)
	}
	args := "auto=true priority=critical url=" + bases[0] + srv.PreseedPath()
	if e.json {
		ev := map[string]any{"event": "serving", "address": addr.String(), "preseed_url": bases[0] + srv.PreseedPath(), "kernel_cmdline": args, "mirrors": mm}
		if files != "" {
			ev["files_url"] = bases[0] + srv.FilesPath()
		}
		writeJSON(e.stdout, ev)
	} else {
		fmt.Fprintf(e.stdout, "serving %s\n  preseed:  %s\n  boot d-i with: %s\n", addr, bases[0]+srv.PreseedPath(), args)
		names := make([]string, 0, len(mm))
		for n := range mm {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(e.stdout, "  mirror %s: %s (proxy of %s)\n", n, mm[n], cache.Redact(ups[n]))
		}
	}
	if len(nets) > 0 {
		l = ksserve.AllowListener(l, nets, e.log)
	}
	err = ksserve.Serve(ctx, srv, l, 10*time.Second)
	st := srv.Stats()
	e.log.Info("stopped", "upstream_bytes", st.UpstreamBytes, "cache_bytes", st.CacheBytes, "objects", len(st.Objects))
	return err
}
