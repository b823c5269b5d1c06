package anaconda

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/integration/fixtures"
	"github.com/kiln-build/kiln/internal/testutil"
)

func TestResolveAndInstall(t *testing.T) {
	testutil.RequireTool(t, "rpmbuild")
	testutil.RequireTool(t, "createrepo_c")
	bb, _ := os.ReadFile(testutil.RequireFile(t, "/bin/busybox"))
	root := t.TempDir()
	if err := fixtures.Mirror(root, bb, nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()
	ctx := context.Background()
	var repos []*Repo
	for name, p := range map[string]string{"BaseOS": "/rocky/9/BaseOS/x86_64/os/", "AppStream": "/rocky/9/AppStream/x86_64/os/", "custom": "/custom-rpms/"} {
		r, err := LoadRepo(ctx, srv.Client(), name, srv.URL+p)
		if err != nil {
			t.Fatal(err)
		}
		repos = append(repos, r)
	}
	pkgs, err := Resolve(repos, []string{"httpd", "nginx", "custom-package-1"}, []string{"core", "standard"}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	want := "bash,curl,custom-package-1,custom-package-2,filesystem,httpd,nginx,openssh-server,rpm,shadow-utils,systemd,vim-minimal"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("resolved %s, want %s", got, want)
	}
	_, err = Resolve(repos, []string{"nosuch"}, nil, nil, false)
	var me *MissingError
	if !errors.As(err, &me) || me.Names[0] != "nosuch" {
		t.Errorf("a missing package: %v", err)
	}
	if _, err := Resolve(repos, []string{"nosuch", "httpd"}, nil, nil, true); err != nil {
		t.Errorf("--ignoremissing: %v", err)
	}
	target := t.TempDir()
	for _, p := range pkgs {
		if _, err := Install(ctx, srv.Client(), p, target); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(target, "opt/custom/bin/custom-one"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("custom-one: %v %v", st, err)
	}
	if l, err := os.Readlink(filepath.Join(target, "usr/bin/sh")); err != nil || l != "busybox" {
		t.Errorf("/usr/bin/sh -> %q, %v", l, err)
	}
	// A package whose bytes do not match the metadata is refused.
	bad := *pkgs[0]
	bad.SHA256 = strings.Repeat("0", 64)
	if _, err := Install(ctx, srv.Client(), &bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("tampered package: %v", err)
	}
}
