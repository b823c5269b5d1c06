package kickstart

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNetworkSources(t *testing.T) {
	inc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "rootpw --lock") }))
	defer inc.Close()
	for _, tc := range []struct {
		name, ks string
		want     string // kind name url list checksum, one source a line
		refused  string
	}{
		{"tree", "url --url=http://m/os", "url install http://m/os/", ""},
		{"tree mirrorlist", "url --mirrorlist=http://m/list?repo=os", "url install http://m/list?repo=os mirrorlist", ""},
		{"repos", "repo --name=a --baseurl=https://m/a/\nrepo --name=b --metalink=https://m/metalink?repo=b\nrepo --name=c --mirrorlist=http://m/c",
			"repo a https://m/a/\nrepo b https://m/metalink?repo=b metalink\nrepo c http://m/c mirrorlist", ""},
		{"media are not network", "cdrom\nrepo --name=d --baseurl=file:///run/install/repo/AppStream", "", ""},
		{"liveimg", "liveimg --url=http://m/images/rootfs.tar.xz --checksum=abc", "liveimg liveimg http://m/images/rootfs.tar.xz  abc", ""},
		{"ostree", "ostreesetup --osname=f --remote=f --url=http://m/ostree/repo --ref=f/x86_64", "ostreesetup ostree http://m/ostree/repo/", ""},
		{"nfs command", "nfs --server=n --dir=/os", "nfs  nfs:n:/os", "NFS"},
		{"nfs repo", "repo --name=n --baseurl=nfs://n/os", "nfs n nfs://n/os", "NFS"},
		{"ftp", "url --url=ftp://f/os/", "other install ftp://f/os/", "ftp URLs"},
		{"container", "ostreecontainer --url=quay.io/x/y:1", "registry  quay.io/x/y:1", "container registry"},
		{"include", "%include " + inc.URL + "/part.ks", "include  " + inc.URL + "/part.ks", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Parse("t.ks", []byte("#version=RHEL9\ntext\n"+tc.ks+"\n"), Options{})
			if f.Err() != nil {
				t.Fatal(f.Err())
			}
			var lines []string
			refused := ""
			for _, s := range f.NetworkSources() {
				lines = append(lines, strings.TrimRight(strings.Join([]string{s.Kind, s.Name, s.URL, s.List, s.Checksum}, " "), " "))
				if ok, why := s.Proxyable(); !ok {
					refused = why
				}
				if s.Line.Num < 3 {
					t.Errorf("%s: line %d", s.Kind, s.Line.Num)
				}
			}
			if got := strings.Join(lines, "\n"); got != tc.want {
				t.Errorf("sources:\n%s\nwant:\n%s", got, tc.want)
			}
			if !strings.Contains(refused, tc.refused) || (tc.refused == "") != (refused == "") {
				t.Errorf("refused %q, want %q", refused, tc.refused)
			}
		})
	}
}

func TestUpstreamURL(t *testing.T) {
	for in, want := range map[NetSource]string{
		{Kind: SourceLiveImg, URL: "http://m/a/b/img.tar.xz?x=1"}:    "http://m/a/b/",
		{Kind: SourceLiveImg, URL: "http://m/img.tar.xz"}:            "http://m/",
		{Kind: SourceRepo, URL: "http://m/r/"}:                       "http://m/r/",
		{Kind: SourceRepo, URL: "http://m/list", List: "mirrorlist"}: "",
	} {
		if got := in.UpstreamURL(); got != want {
			t.Errorf("%+v: %q, want %q", in, got, want)
		}
	}
}
