package ksserve

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// transport is the upstream client's http.RoundTripper. It makes a GET or
// HEAD in the caller's goroutine: it writes the request and reads the
// response on a kept-alive HTTP/1.1 connection of its own. http.Transport
// runs a reader and a writer goroutine per connection and hands each
// request and response between them and the caller; a cache miss on a
// small package was mostly those hand-offs, each a wakeup of another
// thread. Anything else (a body, a proxy, a scheme other than http and
// https) goes to the http.Transport it wraps. Redirects stay the
// http.Client's.
type transport struct {
	fallback *http.Transport
	dialer   *net.Dialer
	tls      *tls.Config // HTTP/1.1 only: the connections speak nothing else

	mu   sync.Mutex
	idle map[string][]*upConn // by scheme and address
}

// maxIdlePerHost bounds the connections kept per upstream.
const maxIdlePerHost = 32

// upConn is one kept-alive upstream connection.
type upConn struct {
	key   string
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	since time.Time // idle since
	used  bool      // it has carried a request before this one
}

func newTransport(fallback *http.Transport, dialer *net.Dialer) *transport {
	conf := fallback.TLSClientConfig.Clone()
	conf.NextProtos = []string{"http/1.1"}
	return &transport{
		fallback: fallback,
		dialer:   dialer,
		tls:      conf,
		idle:     map[string][]*upConn{},
	}
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) || (req.Body != nil && req.Body != http.NoBody) ||
		(req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" || req.Close {
		return t.fallback.RoundTrip(req)
	}
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[req.URL.Scheme]
	}
	key := req.URL.Scheme + "://" + net.JoinHostPort(host, port)
	for attempt := 0; ; attempt++ {
		pc, err := t.conn(req.Context(), key, req.URL.Scheme, host, port)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(pc, req)
		if err == nil {
			return resp, nil
		}
		pc.conn.Close()
		// A kept-alive connection the server closed while idle fails
		// before any answer: a GET may go again on a new one, as
		// http.Transport does.
		if !pc.used || attempt > 0 || req.Context().Err() != nil {
			return nil, err
		}
	}
}

// exchange sends req on pc and reads the response's header.
func (t *transport) exchange(pc *upConn, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(req.Context(), func() { pc.conn.SetDeadline(time.Now()) })
	if err := req.Write(pc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	if d := t.fallback.ResponseHeaderTimeout; d > 0 {
		pc.conn.SetReadDeadline(time.Now().Add(d))
	}
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		stop()
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	pc.conn.SetReadDeadline(time.Time{})
	keep := !resp.Close
	if resp.Body == http.NoBody || resp.ContentLength == 0 || req.Method == http.MethodHead {
		// Nothing follows the header: the connection is free now.
		resp.Body.Close()
		resp.Body = http.NoBody
		if stop() && keep {
			t.put(pc)
		} else {
			pc.conn.Close()
		}
		return resp, nil
	}
	resp.Body = &upBody{t: t, pc: pc, body: resp.Body, keep: keep, stop: stop}
	return resp, nil
}

// upBody is a response body that gives its connection back once read to
// its end, and closes it if abandoned before.
type upBody struct {
	t    *transport
	pc   *upConn
	body io.ReadCloser
	keep bool
	stop func() bool
	once sync.Once
	eof  bool
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
		b.done()
	} else if err != nil {
		b.once.Do(func() { b.stop(); b.pc.conn.Close() })
	}
	return n, err
}

func (b *upBody) Close() error {
	b.done()
	return nil
}

func (b *upBody) done() {
	b.once.Do(func() {
		if b.stop() && b.eof && b.keep {
			b.t.put(b.pc)
			return
		}
		b.pc.conn.Close()
	})
}

// conn returns an idle connection to key, or a new one.
func (t *transport) conn(ctx context.Context, key, scheme, host, port string) (*upConn, error) {
	t.mu.Lock()
	for list := t.idle[key]; len(list) > 0; list = t.idle[key] {
		pc := list[len(list)-1]
		t.idle[key] = list[:len(list)-1]
		if time.Since(pc.since) < t.fallback.IdleConnTimeout {
			t.mu.Unlock()
			pc.used = true
			return pc, nil
		}
		pc.conn.Close()
	}
	t.mu.Unlock()
	c, err := t.dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	if scheme == "https" {
		conf := t.tls.Clone()
		if conf.ServerName == "" {
			conf.ServerName = host
		}
		tc := tls.Client(c, conf)
		hctx, cancel := context.WithTimeout(ctx, t.fallback.TLSHandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", host, err)
		}
		c = tc
	}
	return &upConn{key: key, conn: c, br: bufio.NewReaderSize(c, 32<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

// put keeps pc for the next request to its upstream.
func (t *transport) put(pc *upConn) {
	if pc.br.Buffered() > 0 {
		// The server sent more than the response: nothing to trust.
		pc.conn.Close()
		return
	}
	pc.since = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle[pc.key]) >= maxIdlePerHost {
		pc.conn.Close()
		return
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
}

// CloseIdleConnections closes the kept-alive connections.
func (t *transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, list := range t.idle {
		for _, pc := range list {
			pc.conn.Close()
		}
		delete(t.idle, key)
	}
	t.fallback.CloseIdleConnections()
}
