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
// The mirror cache lives on disk (Cache). Objects whose name fixes their
// content (RPMs, images/, checksum-named repodata) are kept forever;
// metadata (repomd.xml, .treeinfo, .discinfo, unnamed primary.xml) is
// revalidated with a conditional GET once per build and then pinned, so a
// build sees one consistent snapshot of each repo. RPMs and repodata whose
// sha256 the repo metadata lists are verified before they enter the cache,
// and are stored by content, so identical files from two repos are kept
// once. Writes go to a temporary file that is checked and renamed; a
// concurrent request for an object being fetched joins that one fetch and
// is streamed the bytes as they arrive. The cache is shared by every kiln on
// the host: a process that misses an object takes the object's lock (a
// one-byte OFD record lock in the cache's lock file, at an offset from the
// object's key), so a second process missing it at the same moment waits
// and then serves the first one's copy instead of fetching it again.
// Small objects share pack files, which a hit reads through a read-only
// mapping rather than with a read(2) each.
//
// # Serving
//
// Server is an http.Handler and works under any server. Serve, which kiln
// build and kiln serve use, runs it in a connection loop of its own for
// the plain requests an installer makes (GET or HEAD, HTTP/1.1, no body):
// a response's header and a small body leave in one writev(2), a large
// body by sendfile(2). Every other request hands its connection to
// net/http's server, bytes already read included, for the rest of the
// connection's life.
package ksserve
