package ksserve

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// liveServer is h under Serve, the server kiln build and kiln serve run,
// on a loopback port: every test of the handler goes through it.
type liveServer struct {
	URL  string // http://127.0.0.1:PORT
	Addr string
	stop func()
}

func startServer(t testing.TB, h http.Handler) *liveServer {
	t.Helper()
	return startServerLimits(t, h, DefaultLimits())
}

func startServerLimits(t testing.TB, h http.Handler, lim Limits) *liveServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeLimits(ctx, h, l, time.Second, lim) }()
	s := &liveServer{URL: "http://" + l.Addr().String(), Addr: l.Addr().String()}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// Close stops the server and waits for Serve to return.
func (s *liveServer) Close() { s.stop() }
