// Package ksserve serves a build's installer everything it fetches over
// the network, from one place kiln controls: the rendered kickstart, a
// caching proxy for each configured mirror, and a directory of files for
// %post scripts. Each is an http.Handler under one Server.
//
// # Capability URLs
//
// Everything is served under a random per-build token: /TOKEN/ks.cfg,
// /TOKEN/mirror/NAME/..., /TOKEN/files/... . Any other path, and any wrong
// token, gets 404. The kickstart holds a root password, so knowing the
// token is what lets a client read it; the token never appears in logs.
//
// # How the installer reaches the mirrors: URL rewriting
//
// kiln rewrites the URLs of the served kickstart (url, repo, and any
// configured upstream named in a script) to point at the proxy, rather
// than acting as a forward proxy through inst.proxy=. Rewriting works for
// HTTPS upstreams (the guest speaks plain HTTP to kiln, kiln speaks TLS to
// the mirror with the user's CA), needs no DNS for the mirror's name in a
// guest that reaches nothing but kiln, and covers %post's curl as well as
// Anaconda's own downloads. So that the installed system keeps the user's
// URLs, RestoreScript gives a %post --nochroot for the end of the served
// kickstart that puts the user's original kickstart in
// /root/original-ks.cfg and maps proxy URLs back to the real mirror in
// the repo files and in /root/anaconda-ks.cfg.
//
// # The cache
//
// Objects live in package ksserve/cache, whose one entry point is Get:
// from the cache, or from the one upstream fetch of the object that every
// concurrent request, in this process or another kiln's, shares. This
// package decides the policy: objects whose name fixes their content
// (RPMs, .debs, images/, checksum-named repodata, OSTree objects) are
// kept forever; metadata (repomd.xml, .treeinfo, Release files) is
// revalidated with a conditional GET once per build and then pinned in
// memory, so a build sees one consistent snapshot of each repo. The sums
// repomd.xml, primary.xml and .treeinfo list, and a liveimg's --checksum,
// are handed to Get, which never gives a client the whole of an object
// that fails its sum (see the cache package).
//
// # Sources the kickstart names
//
// A mirror list or metalink is fetched by kiln (ResolveLists), which
// chooses the first mirror that answers and serves the installer, at
// /TOKEN/list/NAME, a list whose one entry is that mirror's proxy.
//
// # Serving
//
// Server is an http.Handler; Serve runs it under net/http's server with
// Limits: header, body and idle timeouts, a write deadline that moves with
// each chunk a response sends, a bound on connections, and net/http's
// back-off when accept fails for want of file descriptors. Large bodies
// leave by sendfile(2).
package ksserve
