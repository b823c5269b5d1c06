package ksserve

import (
	"bufio"
	"bytes"
	"context"
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

// connTestServer runs Serve with a handler that exercises each way a
// response can be framed, and returns its address.
func connTestServer(t *testing.T) (addr string, stop func() error) {
	t.Helper()
	big := bytes.Repeat([]byte("0123456789abcdef"), respBuffer/16+100)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, big, 0o644); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) })
	mux.HandleFunc("/notmod", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	mux.HandleFunc("/final", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.(finalWriter).WriteFinal([]byte("final"))
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "short")
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/post", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, len(b))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "slow")
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, mux, l, 2*time.Second) }()
	var stopped bool
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return l.Addr().String(), stop
}

// rawConn is one client connection speaking HTTP/1.1 by hand.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response to a request with method m.
func (rc *rawConn) read(m string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: m})
	if err != nil {
		rc.t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection.
func (rc *rawConn) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.br.ReadByte()
	return err == io.EOF
}

func get(p string) string { return "GET " + p + " HTTP/1.1\r\nHost: x\r\n\r\n" }

func TestConnServerFraming(t *testing.T) {
	addr, _ := connTestServer(t)
	big := strings.Repeat("0123456789abcdef", respBuffer/16+100)
	tests := []struct {
		name, method, path string
		status             int
		body               string
		length             int64 // -1: chunked
	}{
		{"buffered", "GET", "/small", 200, "hello", 5},
		{"outgrows the buffer", "GET", "/big", 200, big, -1},
		{"sendfile", "GET", "/file", 200, big, int64(len(big))},
		{"head", "HEAD", "/file", 200, "", int64(len(big))},
		{"no body", "GET", "/notmod", 304, "", -1},
		{"final", "GET", "/final", 200, "final", 5},
		{"not found", "GET", "/nothing", 404, "404 page not found\n", 19},
	}
	// All on one connection: each response must leave it ready for the
	// next request.
	rc := dialRaw(t, addr)
	for _, tt := range tests {
		rc.send(tt.method + " " + tt.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := rc.read(tt.method)
		if resp.StatusCode != tt.status || body != tt.body {
			t.Errorf("%s: %d, %d bytes; want %d, %d bytes", tt.name, resp.StatusCode, len(body), tt.status, len(tt.body))
		}
		chunked := len(resp.TransferEncoding) > 0
		switch {
		case tt.length == -1 && tt.status == 200 && !chunked:
			t.Errorf("%s: not chunked (Content-Length %d)", tt.name, resp.ContentLength)
		case tt.length >= 0 && resp.ContentLength != tt.length:
			t.Errorf("%s: Content-Length %d, want %d", tt.name, resp.ContentLength, tt.length)
		}
		if resp.Header.Get("Date") == "" {
			t.Errorf("%s: no Date", tt.name)
		}
	}
}

func TestConnServerPipelined(t *testing.T) {
	addr, _ := connTestServer(t)
	rc := dialRaw(t, addr)
	rc.send(get("/small") + get("/final") + get("/small"))
	for _, want := range []string{"hello", "final", "hello"} {
		if _, body := rc.read("GET"); body != want {
			t.Errorf("body %q, want %q", body, want)
		}
	}
}

// Requests the loop does not serve itself go to net/http with the bytes
// already read; the connection then stays net/http's.
func TestConnServerHandsOff(t *testing.T) {
	addr, _ := connTestServer(t)
	t.Run("body", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd" + get("/small"))
		if _, body := rc.read("POST"); body != "POST 4" {
			t.Errorf("POST: %q", body)
		}
		if _, body := rc.read("GET"); body != "hello" {
			t.Errorf("GET after POST: %q", body)
		}
	})
	t.Run("expect", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("POST /post HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
		line, _ := rc.br.ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("no 100 Continue: %q", line)
		}
		rc.br.ReadString('\n')
		rc.send("xyz")
		if _, body := rc.read("POST"); body != "POST 3" {
			t.Errorf("POST: %q", body)
		}
	})
	t.Run("http/1.0", func(t *testing.T) {
		rc := dialRaw(t, addr)
		rc.send("GET /small HTTP/1.0\r\n\r\n")
		if _, body := rc.read("GET"); body != "hello" {
			t.Errorf("body %q", body)
		}
		if !rc.closed() {
			t.Error("an HTTP/1.0 connection stays open")
		}
	})
	for _, tt := range []struct{ name, req string }{
		{"bad request line", "GET\r\n\r\n"},
		{"no host", "GET /small HTTP/1.1\r\n\r\n"},
		{"bad header", "GET /small HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send(tt.req)
			if resp, _ := rc.read("GET"); resp.StatusCode != 400 {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
		})
	}
	t.Run("header too large", func(t *testing.T) {
		rc := dialRaw(t, addr)
		// The server answers before it has read it all: write it on the side.
		go io.WriteString(rc.c, "GET /small HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 2<<20)+"\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("status %d, want 431", resp.StatusCode)
		}
	})
}

func TestConnServerEndsConnections(t *testing.T) {
	addr, _ := connTestServer(t)
	for _, tt := range []struct {
		name, path, extra string
		response          bool
	}{
		{"connection close", "/small", "Connection: close\r\n", true},
		{"short body", "/short", "", true},
		{"abort", "/abort", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, addr)
			rc.send("GET " + tt.path + " HTTP/1.1\r\nHost: x\r\n" + tt.extra + "\r\n")
			if tt.response {
				resp, err := http.ReadResponse(rc.br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.ReadAll(resp.Body)
			}
			if !rc.closed() {
				t.Error("the connection stays open")
			}
		})
	}
}

func TestConnServerShutdown(t *testing.T) {
	addr, stop := connTestServer(t)
	idle := dialRaw(t, addr)
	idle.send(get("/small"))
	idle.read("GET")
	busy := dialRaw(t, addr)
	busy.send(get("/slow"))
	time.Sleep(50 * time.Millisecond) // let /slow start
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The request in flight finishes, then its connection closes; the
	// idle one closes at once.
	resp, body := busy.read("GET")
	if body != "slow" || resp.Header.Get("Connection") != "close" && !busy.closed() {
		t.Errorf("in flight: %q, Connection %q", body, resp.Header.Get("Connection"))
	}
	if !idle.closed() {
		t.Error("an idle connection stays open after shutdown")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after shutdown")
	}
}
