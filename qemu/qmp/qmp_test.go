package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

const greeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2"}, "capabilities": ["oob"]}}` + "\n"

// fakeServer speaks QMP on one end of a pipe. handle gets each command and
// writes whatever it likes; errors go to errc, never to t from here.
type fakeServer struct {
	conn net.Conn
	r    *bufio.Reader
	errc chan error
}

type request struct {
	Execute   string          `json:"execute"`
	Arguments json.RawMessage `json:"arguments"`
	ID        string          `json:"id"`
}

func newPair(t *testing.T, handle func(s *fakeServer, req request)) (*Client, *fakeServer) {
	t.Helper()
	cc, sc := net.Pipe()
	s := &fakeServer{conn: sc, r: bufio.NewReader(sc), errc: make(chan error, 1)}
	go func() {
		if _, err := sc.Write([]byte(greeting)); err != nil {
			s.errc <- err
			return
		}
		for {
			line, err := s.r.ReadBytes('\n')
			if err != nil {
				return
			}
			var req request
			if err := json.Unmarshal(line, &req); err != nil {
				s.errc <- fmt.Errorf("bad request %q: %v", line, err)
				return
			}
			if req.Execute == "qmp_capabilities" {
				s.send(`{"return": {}, "id": %q}`, req.ID)
				continue
			}
			handle(s, req)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, g, err := Connect(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if g.Version() != "7.2.22" {
		t.Errorf("version = %s", g.Version())
	}
	t.Cleanup(func() { c.Close(); sc.Close() })
	return c, s
}

func (s *fakeServer) send(format string, args ...any) {
	s.conn.Write([]byte(fmt.Sprintf(format, args...) + "\n"))
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTypedCommands(t *testing.T) {
	c, _ := newPair(t, func(s *fakeServer, req request) {
		switch req.Execute {
		case "query-status":
			s.send(`{"return": {"status": "running", "singlestep": false, "running": true}, "id": %q}`, req.ID)
		case "query-kvm":
			s.send(`{"return": {"enabled": false, "present": true}, "id": %q}`, req.ID)
		case "query-blockstats":
			s.send(`{"return": [{"device": "", "qdev": "/machine/peripheral/disk0/virtio-backend", "stats": {"wr_operations": 7, "rd_operations": 3, "wr_bytes": 4096}}], "id": %q}`, req.ID)
		case "screendump":
			var a struct{ Filename, Format string }
			json.Unmarshal(req.Arguments, &a)
			if a.Format != "png" || a.Filename != "/x.png" {
				s.send(`{"error": {"class": "GenericError", "desc": "bad args %s"}, "id": %q}`, req.Arguments, req.ID)
				return
			}
			s.send(`{"return": {}, "id": %q}`, req.ID)
		default:
			s.send(`{"error": {"class": "CommandNotFound", "desc": "The command %s has not been found"}, "id": %q}`, req.Execute, req.ID)
		}
	})
	ctx := ctx5(t)
	st, err := c.QueryStatus(ctx)
	if err != nil || !st.Running || st.Status != "running" {
		t.Errorf("QueryStatus = %+v, %v", st, err)
	}
	k, err := c.QueryKVM(ctx)
	if err != nil || k.Enabled || !k.Present {
		t.Errorf("QueryKVM = %+v, %v", k, err)
	}
	bs, err := c.QueryBlockstats(ctx)
	if err != nil || len(bs) != 1 || bs[0].Stats.WrOperations != 7 || bs[0].Stats.WrBytes != 4096 {
		t.Errorf("QueryBlockstats = %+v, %v", bs, err)
	}
	if err := c.Screendump(ctx, "/x.png"); err != nil {
		t.Errorf("Screendump: %v", err)
	}
	err = c.Execute(ctx, "nonesuch", nil, nil)
	var qe *Error
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("unknown command: %v", err)
	}
}

func TestRepliesMatchedByID(t *testing.T) {
	// The server answers the second command first.
	held := make(chan request, 1)
	c, _ := newPair(t, func(s *fakeServer, req request) {
		if req.Execute == "first" {
			held <- req
			return
		}
		s.send(`{"return": "second-result", "id": %q}`, req.ID)
		first := <-held
		s.send(`{"return": "first-result", "id": %q}`, first.ID)
	})
	ctx := ctx5(t)
	res := make(chan string, 1)
	go func() {
		var r string
		c.Execute(ctx, "first", nil, &r)
		res <- r
	}()
	for len(held) == 0 {
		runtime.Gosched()
	}
	var r string
	if err := c.Execute(ctx, "second", nil, &r); err != nil || r != "second-result" {
		t.Errorf("second = %q, %v", r, err)
	}
	if r := <-res; r != "first-result" {
		t.Errorf("first = %q", r)
	}
}

func TestLargeReply(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	c, _ := newPair(t, func(s *fakeServer, req request) {
		s.send(`{"return": %q, "id": %q}`, big, req.ID)
	})
	var r string
	if err := c.Execute(ctx5(t), "big", nil, &r); err != nil || len(r) != len(big) {
		t.Errorf("1 MiB reply: len %d, %v", len(r), err)
	}
}

func TestUndrainedEventsNeverBlock(t *testing.T) {
	c, _ := newPair(t, func(s *fakeServer, req request) {
		for i := 0; i < 3*EventBuffer; i++ {
			s.send(`{"event": "RESET", "data": {"guest": true, "reason": "guest-reset"}, "timestamp": {"seconds": 1, "microseconds": 2}}`)
		}
		s.send(`{"return": {}, "id": %q}`, req.ID)
	})
	events := c.Subscribe() // never read until after the call
	if err := c.Execute(ctx5(t), "noisy", nil, nil); err != nil {
		t.Fatal(err)
	}
	if c.Dropped() == 0 {
		t.Error("no events were dropped for the slow subscriber")
	}
	ev := <-events
	if ev.Name != "RESET" || ev.Time().Unix() != 1 {
		t.Errorf("event = %+v", ev)
	}
	var d struct{ Reason string }
	if err := ev.Decode(&d); err != nil || d.Reason != "guest-reset" {
		t.Errorf("event data = %+v, %v", d, err)
	}
}

func TestStalledServer(t *testing.T) {
	c, _ := newPair(t, func(s *fakeServer, req request) {})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.Execute(ctx, "query-status", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled server: %v", err)
	}
}

func TestConnectionLost(t *testing.T) {
	c, s := newPair(t, func(s *fakeServer, req request) { s.conn.Close() })
	events := c.Subscribe()
	err := c.Execute(ctx5(t), "query-status", nil, nil)
	if !errors.Is(err, ErrClosed) {
		t.Errorf("lost connection: %v", err)
	}
	if _, ok := <-events; ok {
		t.Error("event channel not closed")
	}
	if err := c.Execute(ctx5(t), "query-status", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("call after close: %v", err)
	}
	_ = s
}

func TestGarbage(t *testing.T) {
	cc, sc := net.Pipe()
	defer sc.Close()
	go sc.Write([]byte("this is not json\n"))
	_, _, err := Connect(ctx5(t), cc)
	if err == nil {
		t.Fatal("garbage greeting accepted")
	}
	cc2, sc2 := net.Pipe()
	defer sc2.Close()
	go sc2.Write([]byte(`{"hello": "world"}` + "\n"))
	if _, _, err := Connect(ctx5(t), cc2); err == nil {
		t.Fatal("non-QMP greeting accepted")
	}
	// Garbage after the handshake fails pending calls rather than hanging.
	c, _ := newPair(t, func(s *fakeServer, req request) { s.send("{{{ not json") })
	if err := c.Execute(ctx5(t), "x", nil, nil); err == nil {
		t.Error("garbage reply accepted")
	}
}

func TestSilentGreeting(t *testing.T) {
	cc, sc := net.Pipe()
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := Connect(ctx, cc); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent server: %v", err)
	}
}
