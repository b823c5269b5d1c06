package ksserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an upstream that counts the connections it accepts.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte(strings.Repeat("c", 100)))
			w.(http.Flusher).Flush()
			w.Write([]byte(strings.Repeat("d", 100)))
		case "/notmod":
			w.WriteHeader(http.StatusNotModified)
		case "/big":
			w.Header().Set("Content-Length", "1000000")
			w.Write(make([]byte, 1000000))
		case "/slow":
			time.Sleep(2 * time.Second)
		case "/post":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		default:
			io.WriteString(w, "plain")
		}
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, &conns
}

func TestTransportKeepsConnections(t *testing.T) {
	ts, conns := countingServer(t)
	client, err := NewUpstreamClient("")
	if err != nil {
		t.Fatal(err)
	}
	get := func(method, p string, read int) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+p, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, p, err)
		}
		if read < 0 {
			io.Copy(io.Discard, resp.Body)
		} else {
			io.CopyN(io.Discard, resp.Body, int64(read))
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name, method, path string
		read               int // bytes of the body read; -1 for all
		newConns           int32
	}{
		{"first", "GET", "/", -1, 1},
		{"reused", "GET", "/", -1, 0},
		{"chunked", "GET", "/chunked", -1, 0},
		{"head", "HEAD", "/big", -1, 0},
		{"not modified", "GET", "/notmod", -1, 0},
		{"abandoned body", "GET", "/big", 1000, 0},
		{"after an abandoned body", "GET", "/", -1, 1},
	}
	for _, tt := range tests {
		before := conns.Load()
		get(tt.method, tt.path, tt.read)
		if got := conns.Load() - before; got != tt.newConns {
			t.Errorf("%s: %d new connections, want %d", tt.name, got, tt.newConns)
		}
	}
	// The upstream drops its idle connections: the next GET goes again
	// on a new one instead of failing.
	ts.CloseClientConnections()
	before := conns.Load()
	if resp := get("GET", "/", -1); resp.StatusCode != 200 {
		t.Errorf("after the upstream closed: %d", resp.StatusCode)
	}
	if got := conns.Load() - before; got != 1 {
		t.Errorf("after the upstream closed: %d new connections, want 1", got)
	}
	// A body goes through http.Transport.
	resp, err := client.Post(ts.URL+"/post", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "body" {
		t.Errorf("POST: %q", b)
	}
}

func TestTransportCancel(t *testing.T) {
	ts, _ := countingServer(t)
	client, _ := NewUpstreamClient("")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/slow", nil)
	start := time.Now()
	if _, err := client.Do(req); err == nil {
		t.Fatal("a cancelled request succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("cancelling took %v", d)
	}
}
