package ksserve

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The server's defences, tried on Serve as a client would: raw bytes on a
// loopback connection.

// rawExchange writes req on a new connection and returns everything the
// server sends until it closes the connection or goes quiet for wait.
func rawExchange(t *testing.T, addr, req string, wait time.Duration) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		c.SetReadDeadline(time.Now().Add(wait))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

// statuses lists the status codes of the responses in a raw exchange.
func statuses(raw string) []int {
	var codes []int
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

// TestSmuggling sends requests whose framing two parsers could read two
// ways, each with a hidden request for the kickstart in what should be
// its body: the server must answer 400 and never serve the hidden one.
func TestSmuggling(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.Reports = true })
	ks := e.srv.KickstartPath()
	report := e.srv.ReportPath("packages")
	hidden := "GET " + ks + " HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct{ name, head string }{
		{"space before colon in Content-Length", "Content-Length : %d\r\n"},
		{"space before colon in Transfer-Encoding", "Transfer-Encoding : chunked\r\nContent-Length: %d\r\n"},
		{"space before colon in Connection", "Connection : close\r\nContent-Length: %d\r\n"},
		{"Content-Length and Transfer-Encoding", "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n"},
		{"two Content-Lengths", "Content-Length: 0\r\nContent-Length: %d\r\n"},
		{"obs-fold in Content-Length", "Content-Length: 0\r\n %d\r\n"},
		{"a tab before the colon", "Content-Length\t: %d\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := "POST " + report + " HTTP/1.1\r\nHost: x\r\n" + fmt.Sprintf(tc.head, len(hidden)) + "\r\n" + hidden
			raw := rawExchange(t, e.ts.Addr, req, 2*time.Second)
			if strings.Contains(raw, "SECRET") {
				t.Fatalf("the hidden request was served:\n%s", raw)
			}
			codes := statuses(raw)
			if len(codes) == 0 || codes[0] != 400 {
				t.Errorf("responses %v, want a 400\n%s", codes, raw)
			}
		})
	}
}

// TestPipelining sends three requests in one write, as apt does: three
// answers, in order.
func TestPipelining(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.FilesDir = t.TempDir() })
	for i, s := range []string{"one", "two", "three"} {
		os.WriteFile(filepath.Join(e.srv.cfg.FilesDir, fmt.Sprintf("%d.txt", i)), []byte(s), 0o644)
	}
	var req strings.Builder
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&req, "GET %s%d.txt HTTP/1.1\r\nHost: x\r\n\r\n", e.srv.FilesPath(), i)
	}
	raw := rawExchange(t, e.ts.Addr, req.String(), time.Second)
	br := bufio.NewReader(strings.NewReader(raw))
	for i, want := range []string{"one", "two", "three"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v\n%s", i, err, raw)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("response %d: %d %q, want %q", i, resp.StatusCode, b, want)
		}
	}
}

// TestBadTargets: a request target the server cannot route still gets an
// answer, a 4xx, never a silent close.
func TestBadTargets(t *testing.T) {
	e := newEnv(t, "", func(c *Config) { c.FilesDir = t.TempDir() })
	for _, target := range []string{
		e.srv.FilesPath() + "a\x00b", e.srv.FilesPath() + "a\x7fb", e.srv.FilesPath() + "%zz", e.srv.FilesPath() + "%",
		e.srv.MirrorPath("BaseOS") + "%g0", "*", "no-slash",
	} {
		raw := rawExchange(t, e.ts.Addr, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2*time.Second)
		codes := statuses(raw)
		if len(codes) != 1 || codes[0] < 400 || codes[0] >= 500 {
			t.Errorf("GET %q: responses %v\n%q", target, codes, raw)
		}
	}
}

// quickLimits are DefaultLimits with the timeouts short enough to watch.
func quickLimits() Limits {
	l := DefaultLimits()
	l.ReadHeader, l.Read, l.Idle, l.WriteIdle = 300*time.Millisecond, 600*time.Millisecond, 600*time.Millisecond, 400*time.Millisecond
	return l
}

// closedWithin reports whether the server closes c within d, reading and
// dropping whatever it sends.
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// TestSlowClients: a header that never ends, a body that never ends, an
// idle kept-alive connection, and a client that never reads its response
// are each dropped once their limit passes.
func TestSlowClients(t *testing.T) {
	files := t.TempDir()
	big := bytes.Repeat([]byte("kiln"), 16<<20) // 64 MiB: more than the socket buffers hold
	os.WriteFile(filepath.Join(files, "big"), big, 0o644)
	srv, err := New(Config{Kickstart: []byte("ks"), FilesDir: files, Reports: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServerLimits(t, srv, quickLimits())
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ts.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("header", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET "+srv.KickstartPath()+" HTTP/1.1\r\nHost: x\r\n")
		for i := 0; i < 3; i++ {
			time.Sleep(100 * time.Millisecond) // a slowloris trickle
			io.WriteString(c, "X-A: b\r\n")
		}
		if !closedWithin(c, 3*time.Second) {
			t.Error("a header that never ends held its connection")
		}
	})
	t.Run("body", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "POST "+srv.ReportPath("p")+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
		if !closedWithin(c, 3*time.Second) {
			t.Error("a body that never ends held its connection")
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET "+srv.KickstartPath()+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if !closedWithin(c, 3*time.Second) {
			t.Error("an idle kept-alive connection was kept")
		}
	})
	t.Run("http1.0 keep-alive", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET "+srv.KickstartPath()+" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		if !closedWithin(c, 3*time.Second) {
			t.Error("an idle HTTP/1.0 keep-alive connection was kept")
		}
	})
	t.Run("never reads", func(t *testing.T) {
		c := dial()
		io.WriteString(c, "GET "+srv.FilesPath()+"big HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(2 * time.Second) // past WriteIdle, reading nothing
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if err == nil && n > int64(len(big)) {
			t.Errorf("a client that never read got all %d bytes; the write deadline did not cut it off", n)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("the connection of a client that never read is still open after %d bytes", n)
		}
	})
}

// TestLimitListenerKeepsSendfile: the connections Serve hands net/http
// must still be io.ReaderFroms (the sendfile(2) path) and half-closable;
// golang.org/x/net/netutil's LimitListener loses both, which cost cache
// hits a third of their speed. And the limit holds: a connection past it
// waits until one closes.
func TestLimitListenerKeepsSendfile(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitListener(inner, 1)
	defer l.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c1, _ := net.Dial("tcp", inner.Addr().String())
	defer c1.Close()
	s1 := <-accepted
	if _, ok := s1.(io.ReaderFrom); !ok {
		t.Error("an accepted connection is not an io.ReaderFrom: net/http would not use sendfile")
	}
	if _, ok := s1.(interface{ CloseWrite() error }); !ok {
		t.Error("an accepted connection cannot be half-closed")
	}
	c2, _ := net.Dial("tcp", inner.Addr().String())
	defer c2.Close()
	select {
	case <-accepted:
		t.Fatal("a second connection was accepted past the limit of 1")
	case <-time.After(200 * time.Millisecond):
	}
	s1.Close()
	select {
	case s2 := <-accepted:
		s2.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the second connection was not accepted after the first closed")
	}
}
