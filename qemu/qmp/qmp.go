// Package qmp is a client for the QEMU Machine Protocol.
//
// It is small on purpose and differs from go-qemu's in the ways that
// matter to a supervisor: every command carries an id and its reply is
// matched by that id; replies of any size are read (go-qemu's reader dies
// past 64 KiB); events go to subscribers through buffered channels and are
// dropped, and counted, when a subscriber is slow, so the reader never
// blocks (go-qemu deadlocks when its event channel is not drained); and
// every call takes a context.
//
// Reference: QEMU's QMP specification (docs/interop/qmp-spec.rst) and the
// QAPI schema for the commands and events used here.
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Error is an error reply from QEMU.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *Error) Error() string { return fmt.Sprintf("qmp: %s: %s", e.Class, e.Desc) }

// ErrClosed is returned by calls on a closed client, or when the
// connection ends while a call waits for its reply.
var ErrClosed = errors.New("qmp: connection closed")

// Event is an asynchronous message from QEMU.
type Event struct {
	Name      string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// Time returns when QEMU emitted the event.
func (e Event) Time() time.Time {
	return time.Unix(e.Timestamp.Seconds, e.Timestamp.Microseconds*1000)
}

// message is any line QEMU sends.
type message struct {
	QMP       json.RawMessage `json:"QMP"`
	Event     string          `json:"event"`
	ID        string          `json:"id"`
	Return    json.RawMessage `json:"return"`
	Error     *Error          `json:"error"`
	Data      json.RawMessage `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type reply struct {
	ret json.RawMessage
	err error
}

// Client is a QMP connection. It is safe for concurrent use.
type Client struct {
	conn    net.Conn
	writeMu sync.Mutex
	nextID  atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan reply
	subs    []*subscription
	closed  bool
	readErr error
	done    chan struct{}

	dropped atomic.Uint64
}

type subscription struct {
	ch chan Event
}

// EventBuffer is how many events a subscriber may fall behind before
// further events to it are dropped.
const EventBuffer = 256

// Greeting is QEMU's version, from the greeting banner.
type Greeting struct {
	QMP struct {
		Version struct {
			QEMU struct {
				Major int `json:"major"`
				Minor int `json:"minor"`
				Micro int `json:"micro"`
			} `json:"qemu"`
			Package string `json:"package"`
		} `json:"version"`
		Capabilities []string `json:"capabilities"`
	} `json:"QMP"`
}

// Version returns "major.minor.micro".
func (g Greeting) Version() string {
	v := g.QMP.Version.QEMU
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro)
}

// Connect reads the greeting on conn, negotiates capabilities and starts
// the reader. The context bounds the handshake only.
func Connect(ctx context.Context, conn net.Conn) (*Client, Greeting, error) {
	var g Greeting
	c := &Client{conn: conn, pending: map[string]chan reply{}, done: make(chan struct{})}
	r := bufio.NewReaderSize(conn, 64<<10)
	dec := json.NewDecoder(r)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	if err := dec.Decode(&g); err != nil {
		stop()
		conn.Close()
		return nil, g, fmt.Errorf("qmp: reading greeting: %w", ctxErr(ctx, err))
	}
	if len(g.QMP.Capabilities) == 0 && g.QMP.Version.QEMU.Major == 0 {
		stop()
		conn.Close()
		return nil, g, errors.New("qmp: reading greeting: not a QMP greeting")
	}
	if !stop() {
		conn.Close()
		return nil, g, fmt.Errorf("qmp: handshake: %w", ctx.Err())
	}
	go c.read(dec)
	if err := c.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		c.Close()
		return nil, g, fmt.Errorf("qmp: negotiating capabilities: %w", err)
	}
	return c, g, nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// read dispatches replies and events until the connection ends.
func (c *Client) read(dec *json.Decoder) {
	var err error
	for {
		var m message
		if err = dec.Decode(&m); err != nil {
			break
		}
		switch {
		case m.Event != "":
			ev := Event{Name: m.Event, Data: m.Data}
			ev.Timestamp.Seconds = m.Timestamp.Seconds
			ev.Timestamp.Microseconds = m.Timestamp.Microseconds
			c.dispatchEvent(ev)
		case m.ID != "":
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch == nil {
				continue // a reply to a call that gave up
			}
			if m.Error != nil {
				ch <- reply{err: m.Error}
			} else {
				ch <- reply{ret: m.Return}
			}
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	} else {
		err = fmt.Errorf("qmp: reading: %w", err)
	}
	c.mu.Lock()
	c.readErr = err
	c.closed = true
	for id, ch := range c.pending {
		ch <- reply{err: err}
		delete(c.pending, id)
	}
	for _, s := range c.subs {
		close(s.ch)
	}
	c.subs = nil
	c.mu.Unlock()
	close(c.done)
}

func (c *Client) dispatchEvent(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.subs {
		select {
		case s.ch <- ev:
		default:
			c.dropped.Add(1)
		}
	}
}

// Execute runs command with args (marshalled to JSON; nil for none) and
// decodes the reply's "return" into result (nil to discard it).
func (c *Client) Execute(ctx context.Context, command string, args, result any) error {
	id := strconv.FormatUint(c.nextID.Add(1), 10)
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id}
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("qmp: %s: encoding arguments: %w", command, err)
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.closed {
		err := c.readErr
		c.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return fmt.Errorf("qmp: %s: %w", command, err)
	}
	c.pending[id] = ch
	c.mu.Unlock()

	c.writeMu.Lock()
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetWriteDeadline(dl)
	}
	_, err = c.conn.Write(append(line, '\n'))
	c.conn.SetWriteDeadline(time.Time{})
	c.writeMu.Unlock()
	if err != nil {
		c.forget(id)
		return fmt.Errorf("qmp: %s: writing: %w", command, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("qmp: %s: %w", command, r.err)
		}
		if result != nil && len(r.ret) > 0 {
			if err := json.Unmarshal(r.ret, result); err != nil {
				return fmt.Errorf("qmp: %s: decoding reply: %w", command, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return fmt.Errorf("qmp: %s: %w", command, ctx.Err())
	}
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Subscribe returns a channel of every event from now on. It is closed
// when the connection ends. A subscriber that falls EventBuffer events
// behind loses the newer ones (see Dropped).
func (c *Client) Subscribe() <-chan Event {
	s := &subscription{ch: make(chan Event, EventBuffer)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(s.ch)
		return s.ch
	}
	c.subs = append(c.subs, s)
	return s.ch
}

// Dropped returns how many events were dropped for slow subscribers.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close ends the connection.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}
