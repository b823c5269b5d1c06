package anaconda

import (
	"bytes"
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
	"github.com/kiln-build/kiln/pkg/kickstart"
)

// scenarioKS reads the reference scenario's kickstart, pointed at the
// test's mirror (MIRROR) and file server (FILES).
func scenarioKS(t *testing.T) string {
	b, err := os.ReadFile("../../testdata/my-rocky9.ks")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstallScenarioIntoARoot(t *testing.T) {
	if os.Getuid() != 0 {
		if testutil.InCI() {
			t.Fatal("the post-install chroot needs root")
		}
		t.Skip("the post-install chroot needs root")
	}
	testutil.RequireTool(t, "rpmbuild")
	testutil.RequireTool(t, "createrepo_c")
	bb, _ := os.ReadFile(testutil.RequireFile(t, "/bin/busybox"))
	mirrorRoot := t.TempDir()
	if err := fixtures.Mirror(mirrorRoot, bb, nil); err != nil {
		t.Fatal(err)
	}
	mirror := httptest.NewServer(http.FileServer(http.Dir(mirrorRoot)))
	defer mirror.Close()
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/configs/app.conf":
			w.Write([]byte("app = configured\n"))
		case "/scripts/setup.sh":
			w.Write([]byte("#!/bin/sh\necho set up\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer files.Close()
	text := strings.NewReplacer("MIRROR", mirror.URL, "FILES", files.URL).Replace(scenarioKS(t))
	ks := kickstart.Parse("ks.cfg", []byte(text), kickstart.Options{Version: kickstart.RHEL9})
	if err := ks.Err(); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var log bytes.Buffer
	in := &Installer{KS: ks, Original: []byte(text), Root: root, Client: http.DefaultClient, Log: &log}
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { return in.Packages(ctx) },
		in.Configure,
		in.SaveKickstarts,
		func() error { return in.PostScripts(ctx) },
	} {
		if err := step(); err != nil {
			t.Fatalf("%v\nlog:\n%s", err, log.String())
		}
	}
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(root, p))
		return string(b)
	}
	checks := map[string]string{
		"/etc/app.conf":             "app = configured\n",
		"/opt/custom/share/one.txt": "custom package one\n",
		"/etc/custom/two.conf":      "two = 2\n",
		"/etc/hostname":             "rocky9-custom\n",
	}
	for p, want := range checks {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "usr/local/bin/setup.sh")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("setup.sh: %v %v", st, err)
	}
	if !strings.Contains(read("/etc/passwd"), "customuser:x:1000:1000::/home/customuser:/bin/bash") {
		t.Errorf("passwd:\n%s", read("/etc/passwd"))
	}
	if sh := read("/etc/shadow"); !strings.HasPrefix(sh, "root:$6$") {
		t.Errorf("shadow:\n%s", sh)
	}
	for _, u := range []string{"httpd", "nginx"} {
		if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants", u+".service")); err != nil || l != "/usr/lib/systemd/system/"+u+".service" {
			t.Errorf("%s enablement: %q %v", u, l, err)
		}
	}
	if !strings.Contains(read("/root/ks-post.log"), "Created symlink") {
		t.Errorf("ks-post.log:\n%s", read("/root/ks-post.log"))
	}
	if read("/root/original-ks.cfg") != text || !strings.Contains(read("/root/anaconda-ks.cfg"), "poweroff") {
		t.Error("the kickstart copies are wrong")
	}
	if !strings.Contains(log.String(), "Installing custom-package-1.noarch (") {
		t.Errorf("no progress lines:\n%s", log.String())
	}
	// A missing package fails as Anaconda does.
	bad := kickstart.Parse("bad.ks", []byte(strings.Replace(text, "nginx\n", "nosuch-package\n", 1)), kickstart.Options{})
	in2 := &Installer{KS: bad, Root: t.TempDir(), Client: http.DefaultClient, Log: &log}
	var fatal *Fatal
	if err := in2.Packages(ctx); !errors.As(err, &fatal) || !strings.Contains(log.String(), "packaging: Missed: NoSuchPackage: nosuch-package") {
		t.Errorf("missing package: %v", err)
	}
}
