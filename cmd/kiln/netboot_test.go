package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// netbootISO writes a small installer ISO: a .treeinfo naming the boot
// files, and a BaseOS repository.
func netbootISO(t *testing.T, dir string) (image, tree string) {
	t.Helper()
	testutil.RequireTool(t, "xorriso")
	tree = filepath.Join(dir, "tree")
	for name, content := range map[string]string{
		"images/pxeboot/vmlinuz":     strings.Repeat("kernel", 100000),
		"images/pxeboot/initrd.img":  strings.Repeat("initrd", 300000),
		"images/install.img":         "stage2",
		"BaseOS/repodata/repomd.xml": "<repomd/>",
		".treeinfo": "[general]\nfamily = Rocky Linux\nversion = 9.5\nvariants = BaseOS\n[variant-BaseOS]\nrepository = BaseOS\n" +
			"[images-x86_64]\nkernel = images/pxeboot/vmlinuz\ninitrd = images/pxeboot/initrd.img\n[stage2]\nmainimage = images/install.img\n",
	} {
		p := filepath.Join(tree, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(content), 0o644)
	}
	image = filepath.Join(dir, "dvd.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-R", "-J", "-V", "TEST_DVD", "-o", image, tree).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return image, tree
}

// TestServeISOInputs: what kiln serve --iso refuses, and how.
func TestServeISOInputs(t *testing.T) {
	testutil.RequireTool(t, "xorriso")
	dir := t.TempDir()
	ks := writeFile(t, "my.ks", "text\nrootpw --plaintext s3cret\n")
	junk := filepath.Join(dir, "junk.iso")
	os.WriteFile(junk, bytes.Repeat([]byte{1}, 200000), 0o644)
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "readme.txt"), []byte("hi"), 0o644)
	dataISO := filepath.Join(dir, "data.iso")
	if out, err := exec.Command("xorriso", "-as", "mkisofs", "-R", "-o", dataISO, data).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	image, _ := netbootISO(t, dir)
	cache := filepath.Join(dir, "cache")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--iso", junk}, 3, junk},
		{[]string{"--iso", dataISO}, 3, "not an installer ISO"},
		{[]string{"--iso", filepath.Join(dir, "missing.iso")}, 3, "missing.iso"},
		{[]string{"--tftp", "127.0.0.1:0"}, 2, "--tftp"},
		{[]string{"--iso", image, "--allow", "10.0.0.1"}, 2, "--allow"},
		{[]string{"--iso", image, "--url", "http://a/", "--advertise", "b"}, 2, "--advertise"},
	} {
		code, _, stderr := kiln(t, "", append([]string{"serve", "--ks", ks, "--cache-dir", cache}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, stderr)
		}
	}
}

// serveJSON runs kiln serve in-process with --json and returns its
// serving event.
func serveJSON(t *testing.T, args ...string) (map[string]any, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--json", "serve"}, args...), nil, pw, &errb)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("kiln serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("kiln serve did not stop")
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["event"] == "serving" {
			go io.Copy(io.Discard, pr)
			return ev, &errb
		}
	}
	t.Fatalf("no serving event\n%s", errb.String())
	return nil, nil
}

// TestServeAllowAndWildcard: --allow closes connections from elsewhere;
// on a wildcard address the URLs name the host's own addresses.
func TestServeAllowAndWildcard(t *testing.T) {
	curl := testutil.RequireTool(t, "curl")
	dir := t.TempDir()
	image, _ := netbootISO(t, dir)
	ks := writeFile(t, "my.ks", "text\nrootpw --plaintext s3cret\n")
	ev, _ := serveJSON(t, "--ks", ks, "--iso", image, "--cache-dir", filepath.Join(dir, "c1"), "--allow", "192.0.2.0/24")
	if out, err := exec.Command(curl, "-fsS", ev["kickstart_url"].(string)).CombinedOutput(); err == nil {
		t.Errorf("a client outside --allow got the kickstart:\n%s", out)
	}
	ev, _ = serveJSON(t, "--ks", ks, "--iso", image, "--cache-dir", filepath.Join(dir, "c2"), "--allow", "127.0.0.0/8", "--listen", "0.0.0.0:0")
	urls, _ := json.Marshal(ev["urls"])
	if strings.Contains(string(urls), "[::]") || strings.Contains(string(urls), "0.0.0.0") || !strings.Contains(string(urls), "http://127.0.0.1:") {
		t.Errorf("URLs on a wildcard address: %s", urls)
	}
	for _, u := range ev["urls"].([]any) {
		m := u.(map[string]any)
		if !strings.Contains(m["base"].(string), "127.0.0.1") {
			continue
		}
		out, err := exec.Command(curl, "-fsS", m["ipxe_script"].(string)).Output()
		if err != nil || !strings.Contains(string(out), "inst.ks="+m["kickstart_url"].(string)) {
			t.Errorf("the iPXE script by %s: %v\n%s", m["base"], err, out)
		}
	}
}

// TestServeTFTP runs kiln serve --tftp on port 69 in a user and network
// namespace of the test's own, where binding it needs no root on the
// host, and fetches the boot files with tftp-hpa's and atftp's clients.
func TestServeTFTP(t *testing.T) {
	for _, tool := range []string{"unshare", "ip", "tftp", "atftp"} {
		testutil.RequireTool(t, tool)
	}
	dir := t.TempDir()
	image, tree := netbootISO(t, dir)
	bin := buildKiln(t, dir)
	ks := writeFile(t, "my.ks", "text\nrootpw --plaintext s3cret\n")
	script := `set -e
ip link set lo up
mkfifo "$D/events"
"$KILN" --json serve --ks "$KS" --iso "$ISO" --cache-dir "$D/cache" --tftp 127.0.0.1:69 >"$D/events" 2>"$D/stderr" &
pid=$!
exec 3<"$D/events"
read -r ev <&3
tok=$(printf '%s' "$ev" | sed 's|.*"kickstart_url":"http://[^/]*/\([0-9a-f]*\)/ks.cfg".*|\1|')
cd "$D"
tftp -m binary 127.0.0.1 -c get "$tok/boot/vmlinuz" hpa-vmlinuz
tftp -m binary 127.0.0.1 -c get "/$tok/boot/boot.ipxe" hpa-boot.ipxe
atftp --option "blksize 1432" --option "tsize 0" -g -r "$tok/boot/initrd.img" -l atftp-initrd.img 127.0.0.1
atftp -g -r "$tok/boot/undionly.kpxe" -l atftp-undionly.kpxe 127.0.0.1 || true
tftp -m binary 127.0.0.1 -c get "$tok/ks.cfg" no-ks >hpa-ks.out 2>&1 || true
tftp -m binary 127.0.0.1 -c get "wrongtoken/boot/vmlinuz" no-tok >hpa-tok.out 2>&1 || true
tftp -m binary 127.0.0.1 -c put hpa-vmlinuz "$tok/boot/new" >hpa-put.out 2>&1 || true
printf '%s' "$ev" >event.json
kill $pid
wait $pid || true
cat <&3 >"$D/log.jsonl"
`
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--net", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "D="+dir, "KILN="+bin, "KS="+ks, "ISO="+image)
	if out, err := cmd.CombinedOutput(); err != nil {
		se, _ := os.ReadFile(filepath.Join(dir, "stderr"))
		t.Fatalf("%v\n%s\nkiln serve:\n%s", err, out, se)
	}
	same := func(got, want string) {
		g, _ := os.ReadFile(filepath.Join(dir, got))
		w, _ := os.ReadFile(want)
		if len(w) == 0 || !bytes.Equal(g, w) {
			t.Errorf("%s: %d bytes, want %d of %s", got, len(g), len(w), want)
		}
	}
	same("hpa-vmlinuz", filepath.Join(tree, "images/pxeboot/vmlinuz"))
	same("atftp-initrd.img", filepath.Join(tree, "images/pxeboot/initrd.img"))
	if _, err := os.Stat("/usr/lib/ipxe/undionly.kpxe"); err == nil {
		same("atftp-undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe")
	} else if testutil.InCI() {
		t.Error("Debian's ipxe package is not installed")
	}
	var ev map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "event.json"))
	json.Unmarshal(b, &ev)
	script2, _ := os.ReadFile(filepath.Join(dir, "hpa-boot.ipxe"))
	// Over TFTP the script names kiln's HTTP server by the address the
	// machine reached TFTP at.
	if ks, _ := ev["kickstart_url"].(string); ks == "" || !strings.Contains(string(script2), "inst.ks="+ks) {
		t.Errorf("boot.ipxe over TFTP (kickstart at %v):\n%s", ev["kickstart_url"], script2)
	}
	for file, want := range map[string]string{"hpa-ks.out": "not found", "hpa-tok.out": "not found", "hpa-put.out": "read-only"} {
		b, _ := os.ReadFile(filepath.Join(dir, file))
		if !strings.Contains(strings.ToLower(string(b)), want) {
			t.Errorf("%s: %q, want %q", file, b, want)
		}
	}
	// With --json the log is JSON lines on stdout.
	log, _ := os.ReadFile(filepath.Join(dir, "log.jsonl"))
	if !strings.Contains(string(log), `"msg":"tftp","client":"127.0.0.1:`) || strings.Contains(string(log), "s3cret") {
		t.Errorf("kiln serve's log:\n%s", log)
	}
}
