package ksserve

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/kickstart"
)

// TestMirrorLists: kiln fetches a kickstart's mirror list and metalink,
// chooses the first mirror that answers (a metalink's by preference), and
// serves the installer a list whose one entry is the proxy of it; the
// served kickstart points at that list, and the installed system gets the
// user's list back.
func TestMirrorLists(t *testing.T) {
	up := newUpstream(t)
	up.addRepo("/good/BaseOS/", map[string][]byte{"a.rpm": []byte("package a")}, nil)
	up.addRepo("/better/AppStream/", map[string][]byte{"b.rpm": []byte("package b")}, nil)
	up.set("/lists/baseos", []byte("# mirrors\n\nhttp://127.0.0.1:1/dead/BaseOS/\n"+up.URL+"/good/BaseOS\n"))
	up.set("/lists/appstream", []byte(`<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/"><files><file name="repomd.xml">
<verification><hash type="sha256">abc</hash></verification>
<resources maxconnections="1">
<url protocol="http" type="http" preference="50">`+up.URL+`/worse/AppStream/repodata/repomd.xml</url>
<url protocol="rsync" type="rsync" preference="100">rsync://x/AppStream/repodata/repomd.xml</url>
<url protocol="http" type="http" preference="90">`+up.URL+`/better/AppStream/repodata/repomd.xml</url>
</resources></file></files></metalink>`))
	orig := "text\nrepo --name=BaseOS --mirrorlist=" + up.URL + "/lists/baseos\nrepo --name=AppStream --metalink=" + up.URL + "/lists/appstream --install\n"
	f := kickstart.Parse("ml.ks", []byte(orig), kickstart.Options{Version: kickstart.RHEL9})
	client, _ := NewUpstreamClient("")
	lists, err := ResolveLists(context.Background(), client, f.NetworkSources())
	if err != nil {
		t.Fatal(err)
	}
	chosen := map[string]string{}
	for _, ml := range lists {
		chosen[ml.Name] = ml.Mirror
	}
	if chosen["BaseOS"] != up.URL+"/good/BaseOS/" || chosen["AppStream"] != up.URL+"/better/AppStream/" {
		t.Errorf("chosen mirrors: %v", chosen)
	}
	e := newEnvWith(t, up, "", func(c *Config) { c.Mirrors = kickstart.Upstreams(f); c.Lists = lists })
	ps := e.srv.Prefixes(e.ts.URL)
	kickstart.PrepareForProxy(f, []byte(orig), ps)
	served := string(f.Render())
	for _, name := range []string{"BaseOS", "AppStream"} {
		if !strings.Contains(served, e.ts.URL+e.srv.ListPath(name)) {
			t.Errorf("the served kickstart does not point %s at kiln's list:\n%s", name, served)
		}
	}
	// What the installer would do: read the list, then the repo through
	// its one entry.
	code, body := e.get(t, e.srv.ListPath("BaseOS"))
	entries := mirrorListEntries(body)
	if code != 200 || len(entries) != 1 || entries[0] != e.ts.URL+e.srv.MirrorPath("BaseOS") {
		t.Errorf("served mirror list: %d %q", code, body)
	}
	code, body = e.get(t, e.srv.ListPath("AppStream"))
	var ml metalink
	if code != 200 || xml.Unmarshal(body, &ml) != nil || len(ml.Files) != 1 || len(ml.Files[0].URLs) != 1 ||
		ml.Files[0].URLs[0].URL != e.ts.URL+e.srv.MirrorPath("AppStream")+"repodata/repomd.xml" || !strings.Contains(string(body), `<hash type="sha256">abc</hash>`) {
		t.Errorf("served metalink: %d %s", code, body)
	}
	if code, body := e.get(t, e.srv.MirrorPath("BaseOS")+"Packages/a.rpm"); code != 200 || string(body) != "package a" {
		t.Errorf("through the list's mirror: %d %q", code, body)
	}
	if restore := kickstart.RestoreScript([]byte(orig), ps); !strings.Contains(restore, sedReplacementForTest(up.URL+"/lists/appstream")) {
		t.Errorf("the restore script does not put the metalink back:\n%s", restore)
	}
	// A list none of whose mirrors answers is an error naming its line.
	bad := kickstart.Parse("bad.ks", []byte("text\nrepo --name=x --mirrorlist="+up.URL+"/lists/none\n"), kickstart.Options{Version: kickstart.RHEL9})
	up.set("/lists/none", []byte("http://127.0.0.1:1/a/\n"))
	if _, err := ResolveLists(context.Background(), client, bad.NetworkSources()); err == nil || !strings.HasPrefix(err.Error(), "bad.ks:2: mirrorlist") {
		t.Errorf("a dead list: %v", err)
	}
	_ = fmt.Sprint
}

// sedReplacementForTest is how the restore script writes a URL.
func sedReplacementForTest(s string) string { return strings.ReplaceAll(s, "&", `\&`) }

// TestExpectedSums: a liveimg's --checksum is checked as repodata's sums
// are: a wrong image never reaches the installer whole.
func TestExpectedSums(t *testing.T) {
	up := newUpstream(t)
	img := []byte(strings.Repeat("rootfs", 1000))
	up.set("/images/good.tar.xz", img)
	up.set("/images/bad.tar.xz", img)
	e := newEnvWith(t, up, "", func(c *Config) {
		c.Mirrors = map[string]string{"liveimg": up.URL + "/images/"}
		c.Expected = map[string]string{up.URL + "/images/good.tar.xz": sum(img), up.URL + "/images/bad.tar.xz": strings.ToUpper(sum([]byte("other")))}
	})
	if code, body := e.get(t, e.srv.MirrorPath("liveimg")+"good.tar.xz"); code != 200 || string(body) != string(img) {
		t.Errorf("the right image: %d, %d bytes", code, len(body))
	}
	if code, _ := e.get(t, e.srv.MirrorPath("liveimg")+"bad.tar.xz"); code != 502 {
		t.Errorf("a wrong image: %d, want 502", code)
	}
}

func TestClassify(t *testing.T) {
	for p, want := range map[string]kind{
		"Packages/b/bash-5.1.rpm": immutable, "repodata/repomd.xml": metadata, ".treeinfo": metadata,
		"repodata/0123456789abcdef0123456789abcdef-primary.xml.gz": immutable, "images/install.img": immutable,
		"objects/ab/cdef.filez": immutable, "refs/heads/fedora/x86_64": metadata, "deltas/ab/cd/superblock": immutable,
		"pool/main/b/bash/bash_5.2_amd64.deb": immutable, "dists/bookworm/InRelease": metadata,
	} {
		if got := classify(p); got != want {
			t.Errorf("classify(%q) = %v, want %v", p, got, want)
		}
	}
}
