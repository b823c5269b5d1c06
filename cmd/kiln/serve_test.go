package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestServeEndToEnd runs "kiln serve" in-process and fetches from it with
// curl, as an installer on a lab network would.
func TestServeEndToEnd(t *testing.T) {
	curl := testutil.RequireTool(t, "curl")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/rocky/9/BaseOS/x86_64/os/Packages/a.rpm":
			io.WriteString(w, "rpm payload")
		case "/files/configs/app.conf":
			io.WriteString(w, "key = value\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	dir := t.TempDir()
	ks := filepath.Join(dir, "my.ks")
	os.WriteFile(ks, []byte("text\nrootpw --plaintext s3cret\nurl --url="+up.URL+"/rocky/9/BaseOS/x86_64/os/\n%post\ncurl -o /etc/app.conf "+up.URL+"/files/configs/app.conf\n%end\n"), 0o600)
	filesDir := filepath.Join(dir, "files")
	os.MkdirAll(filesDir, 0o755)
	os.WriteFile(filepath.Join(filesDir, "setup.sh"), []byte("#!/bin/sh\necho setup\n"), 0o755)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--ks", ks, "--files", filesDir, "--cache-dir", filepath.Join(dir, "cache"),
			"--mirror", "files=" + up.URL + "/files/"}, nil, pw, &errb)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var cmdline, addr string
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "serving on "); ok {
			addr = a
		}
		if strings.HasPrefix(strings.TrimSpace(line), "inst.ks=") {
			cmdline = strings.TrimSpace(line)
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("by default kiln serve listens on %q, not loopback", addr)
	}
	ksURL := strings.TrimPrefix(strings.Fields(cmdline)[0], "inst.ks=")
	out, err := exec.Command(curl, "-fsS", ksURL).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", ksURL, err)
	}
	served := string(out)
	base := strings.TrimSuffix(ksURL, "ks.cfg")
	for _, want := range []string{"url --url=" + base + "mirror/install/", "curl -o /etc/app.conf " + base + "mirror/files/configs/app.conf", "%post --nochroot"} {
		if !strings.Contains(served, want) {
			t.Errorf("served kickstart lacks %q:\n%s", want, served)
		}
	}
	for path, want := range map[string]string{
		"mirror/install/Packages/a.rpm": "rpm payload",
		"mirror/files/configs/app.conf": "key = value\n",
		"files/setup.sh":                "#!/bin/sh\necho setup\n",
	} {
		got, err := exec.Command(curl, "-fsS", base+path).Output()
		if err != nil || string(got) != want {
			t.Errorf("curl %s: %q, %v", path, got, err)
		}
	}
	wrong := strings.Replace(ksURL, "/ks.cfg", "x/ks.cfg", 1)
	if err := exec.Command(curl, "-fsS", wrong).Run(); err == nil {
		t.Error("a wrong token was served")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("kiln serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("kiln serve did not stop")
	}
	if strings.Contains(errb.String(), "s3cret") {
		t.Errorf("the root password reached the log:\n%s", errb.String())
	}
}

func TestCacheCommand(t *testing.T) {
	dir := t.TempDir()
	obj := filepath.Join(dir, "objects", "ab")
	os.MkdirAll(obj, 0o755)
	os.WriteFile(filepath.Join(obj, "url-xab"), make([]byte, 5000), 0o644)
	code, out, _ := kiln(t, "", "cache", "--cache-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "1 objects, 4.9 KiB") {
		t.Errorf("cache: %d %q", code, out)
	}
	code, out, _ = kiln(t, "", "cache", "clean", "--cache-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "0 objects") {
		t.Errorf("cache clean: %d %q", code, out)
	}
	if code, _, _ := kiln(t, "", "cache", "clean", "--max-size", "lots", "--cache-dir", dir); code != 2 {
		t.Errorf("bad --max-size: exit %d", code)
	}
}

// TestServeUnderDescriptorPressure runs kiln serve as its own process with
// 64 file descriptors (prlimit) and opens far more idle connections than
// that: accept fails with EMFILE, and kiln must back off, not exit, and
// serve again once the pressure ends. The mirror's password must not
// reach its output either.
func TestServeUnderDescriptorPressure(t *testing.T) {
	prlimit := testutil.RequireTool(t, "prlimit")
	curl := testutil.RequireTool(t, "curl")
	dir := t.TempDir()
	bin := buildKiln(t, dir)
	ks := filepath.Join(dir, "my.ks")
	os.WriteFile(ks, []byte("text\nrootpw --plaintext s3cret\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, prlimit, "--nofile=64:64", bin, "serve", "--ks", ks, "--cache-dir", filepath.Join(dir, "cache"),
		"--mirror", "private=http://kiln-user:mirror-pw@127.0.0.1:1/")
	stdout, _ := cmd.StdoutPipe()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var out bytes.Buffer
	sc := bufio.NewScanner(io.TeeReader(stdout, &out))
	var addr, ksURL string
	for sc.Scan() && ksURL == "" {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "serving on "); ok {
			addr = a
		}
		if u, ok := strings.CutPrefix(line, "inst.ks="); ok {
			ksURL = u
		}
	}
	go func() { io.Copy(&out, stdout); exited <- cmd.Wait() }()
	if ksURL == "" {
		t.Fatalf("kiln serve printed no inst.ks=:\n%s\n%s", out.String(), errb.String())
	}
	var conns []net.Conn
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // the listen queue is full too
		}
		conns = append(conns, c)
	}
	// Pressure on: every descriptor taken, accept failing.
	time.Sleep(time.Second)
	if fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)); len(fds) < 64 || len(conns) <= 64 {
		t.Fatalf("no pressure: kiln serve holds %d descriptors, %d connections made", len(fds), len(conns))
	}
	select {
	case err := <-exited:
		t.Fatalf("kiln serve exited under descriptor pressure: %v\n%s", err, errb.String())
	default:
	}
	for _, c := range conns {
		c.Close()
	}
	if got, err := exec.Command(curl, "-fsS", "--max-time", "20", "--retry", "5", "--retry-all-errors", "--retry-delay", "1", ksURL).Output(); err != nil || !strings.Contains(string(got), "s3cret") {
		t.Errorf("after the pressure ended: %v %q\n%s", err, got, errb.String())
	}
	cancel()
	<-exited
	if strings.Contains(out.String()+errb.String(), "mirror-pw") {
		t.Errorf("the mirror's password reached kiln serve's output:\n%s\n%s", out.String(), errb.String())
	}
}

// TestServeMemoryUnder200Clients has 200 clients at once fetch an 8 MiB
// object through kiln serve, all following its one download, then all
// again from the cache: kiln serve's peak resident memory (VmHWM) stays
// bounded, far below what holding the object per client would take.
func TestServeMemoryUnder200Clients(t *testing.T) {
	const clients, size = 200, 8 << 20
	obj := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for off := 0; off < size; off += 1 << 20 {
			w.Write(obj[off : off+1<<20])
			time.Sleep(50 * time.Millisecond) // slow enough that every client joins the download
		}
	}))
	defer up.Close()
	dir := t.TempDir()
	bin := buildKiln(t, dir)
	ks := filepath.Join(dir, "my.ks")
	os.WriteFile(ks, []byte("text\n"), 0o600)
	cmd := exec.Command(bin, "--json", "serve", "--ks", ks, "--cache-dir", filepath.Join(dir, "cache"), "--mirror", "m="+up.URL+"/")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	var ev struct{ Mirrors map[string]string }
	line, _ := bufio.NewReader(stdout).ReadBytes('\n')
	if err := json.Unmarshal(line, &ev); err != nil || ev.Mirrors["m"] == "" {
		t.Fatalf("kiln serve said %q", line)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(ev.Mirrors["m"] + "Packages/big.rpm")
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				if n, err := io.Copy(io.Discard, resp.Body); err != nil || n != size {
					t.Errorf("round %d: %d bytes, %v", round, n, err)
				}
			}()
		}
		wg.Wait()
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	var hwm int64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &hwm)
		}
	}
	t.Logf("kiln serve's peak RSS with %d clients: %d MiB", clients, hwm>>10)
	if hwm == 0 || hwm > 128<<10 {
		t.Errorf("kiln serve's peak RSS is %d KiB with %d clients of a %d MiB object", hwm, clients, size>>20)
	}
}

// buildKiln builds this command into dir, for tests that need kiln as a
// process of its own.
func buildKiln(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "kiln")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
