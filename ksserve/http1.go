package ksserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Serve's connection loop. An installer makes thousands of plain requests
// on a few kept-alive connections: GET or HEAD, HTTP/1.1, no body. net/http
// answers each with the header and the body in separate write(2)s through
// a 4 KiB buffer, and keeps a background reader per connection; for a
// repository's many small packages those costs made kiln's cache hits
// slower than nginx's. This loop parses requests with http.ReadRequest and
// answers a small response with one writev(2), a large one with its header
// and then sendfile(2). Any other request (a body, Expect, HTTP/1.0, a
// malformed or oversized header) hands its connection, bytes already read
// included, to a net/http server for the rest of the connection's life, so
// the corner cases stay net/http's.

const (
	// maxHeader bounds one request's header, as net/http's default does.
	maxHeader = http.DefaultMaxHeaderBytes + 4096
	// respBuffer is how much body a response holds back so that header
	// and body leave in one write: a repository's metadata and small
	// packages fit.
	respBuffer = 64 << 10
	// idleTimeout closes a kept-alive connection nobody uses; clients
	// reopen one without a fuss.
	idleTimeout = 5 * time.Minute
	// headerTimeout bounds reading a request's header once it has begun.
	headerTimeout = 30 * time.Second
)

// Serve runs h on l until ctx ends, then shuts down: requests in flight
// get up to grace to finish, and are cut off after that.
func Serve(ctx context.Context, h http.Handler, l net.Listener, grace time.Duration) error {
	s := newConnServer(h, l.Addr())
	go s.fallback.Serve(s.handoff)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
		case <-stop:
		}
		l.Close()
		s.shutdown(grace)
	}()
	err := s.accept(l)
	close(stop)
	<-done
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// connServer is the loop's state: the connections it serves and the
// net/http server it hands the others to.
type connServer struct {
	h        http.Handler
	date     dateCache
	fallback *http.Server
	handoff  *chanListener

	ctx    context.Context // the parent of every request's context
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[net.Conn]bool // true while the connection serves a request
	closing bool
	wg      sync.WaitGroup
}

func newConnServer(h http.Handler, addr net.Addr) *connServer {
	ctx, cancel := context.WithCancel(context.Background())
	return &connServer{
		h:        h,
		fallback: &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout},
		handoff:  &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})},
		ctx:      ctx,
		cancel:   cancel,
		conns:    map[net.Conn]bool{},
	}
}

func (s *connServer) accept(l net.Listener) error {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.track(c, false) {
			c.Close()
			continue
		}
		go s.serveConn(c)
	}
}

// track records c's state; it reports false once the server is closing,
// when c must not start a request.
func (s *connServer) track(c net.Conn, active bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if _, ok := s.conns[c]; !ok {
		s.wg.Add(1)
	}
	s.conns[c] = active
	return true
}

func (s *connServer) forget(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// shutdown closes idle connections, lets busy ones finish their request
// for up to grace, and then closes the rest.
func (s *connServer) shutdown(grace time.Duration) {
	s.mu.Lock()
	s.closing = true
	for c, active := range s.conns {
		if !active {
			c.Close()
		}
	}
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	fallbackDone := make(chan struct{})
	go func() {
		defer close(fallbackDone)
		if s.fallback.Shutdown(sctx) != nil {
			s.fallback.Close()
		}
	}()
	idle := make(chan struct{})
	go func() { s.wg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-sctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-idle
	}
	<-fallbackDone
	s.cancel()
}

func (s *connServer) serveConn(c net.Conn) {
	defer s.forget(c)
	// One context and one response per connection, not per request: a
	// hit is a few microseconds of work, and allocations are a tenth.
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	w := &response{header: http.Header{}, date: &s.date}
	remote := c.RemoteAddr().String()
	rec := &recorder{r: c}
	br := bufio.NewReaderSize(rec, 16<<10)
	// Setting a deadline costs a timer update; on a busy connection the
	// idle deadline is renewed once a minute, not per request.
	var deadline time.Time
	for {
		rec.start(br.Buffered())
		if now := time.Now(); deadline.Sub(now) < idleTimeout-time.Minute {
			deadline = now.Add(idleTimeout)
			c.SetReadDeadline(deadline)
		}
		if _, err := br.Peek(1); err != nil {
			c.Close()
			return
		}
		if !s.track(c, true) {
			c.Close()
			return
		}
		if b, _ := br.Peek(br.Buffered()); !bytes.Contains(b, []byte("\r\n\r\n")) {
			// The header is not all here: it gets headerTimeout to come.
			deadline = time.Now().Add(headerTimeout)
			c.SetReadDeadline(deadline)
		}
		req, err := http.ReadRequest(br)
		var ne net.Error
		switch {
		case err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)):
			c.Close()
			return
		case err != nil || !plain(req):
			// net/http answers it: a 400 or 431 for a bad header, or the
			// request itself.
			s.handoff.give(&replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(bytes.Clone(rec.buf)), c)})
			return
		}
		// A plain request has no body, so the handler never reads from c
		// and the read deadline cannot cut it off.
		if !s.serveRequest(ctx, c, remote, w, req) {
			c.Close()
			return
		}
		if !s.track(c, false) {
			c.Close()
			return
		}
	}
}

// plain reports whether this loop serves req itself.
func plain(req *http.Request) bool {
	return req.ProtoMajor == 1 && req.ProtoMinor == 1 &&
		(req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		req.ContentLength == 0 && len(req.TransferEncoding) == 0 && req.Host != "" &&
		len(req.Header["Expect"]) == 0 && len(req.Header["Upgrade"]) == 0
}

// serveRequest runs the handler and reports whether the connection may
// carry another request.
func (s *connServer) serveRequest(ctx context.Context, c net.Conn, remote string, w *response, req *http.Request) (keep bool) {
	req = req.WithContext(ctx)
	req.RemoteAddr = remote
	clear(w.header)
	*w = response{conn: c, head: req.Method == http.MethodHead, header: w.header, hdr: w.hdr[:0], date: w.date,
		declared: -1, closeAfter: req.Close}
	defer w.release()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				log.Printf("ksserve: panic serving %s: %v\n%s", req.RemoteAddr, v, debug.Stack())
			}
			keep = false
		}
	}()
	s.h.ServeHTTP(w, req)
	if err := w.finish(); err != nil {
		return false
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	return !w.closeAfter && !closing
}

// response is the loop's http.ResponseWriter. It holds the body back, up
// to respBuffer, until the handler is done or writes more; then the
// header goes out with what it holds, and a response whose length nobody
// set gets a Content-Length, or chunked encoding if it outgrew the buffer.
type response struct {
	conn        net.Conn
	head        bool // HEAD: the body is counted, never sent
	header      http.Header
	status      int
	wroteHeader bool
	committed   bool    // the header is on the wire
	buf         *[]byte // the body held back, from respPool
	declared    int64   // the handler's Content-Length, or -1
	written     int64   // body bytes the handler wrote
	chunked     bool
	closeAfter  bool
	err         error      // the first write error; the connection is done
	hdr         []byte     // the header being sent, kept for the next response
	date        *dateCache // the server's
}

// dateCache formats the Date field once a second, not once a response.
type dateCache struct {
	mu   sync.Mutex
	sec  int64
	text string
}

func (d *dateCache) now() string {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if sec := now.Unix(); sec != d.sec {
		d.sec, d.text = sec, now.UTC().Format(http.TimeFormat)
	}
	return d.text
}

var respPool = sync.Pool{New: func() any { b := make([]byte, 0, respBuffer); return &b }}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || code < 200 {
		// 1xx responses are not used here; a second status is a
		// handler's bug that net/http would ignore too.
		return
	}
	w.wroteHeader, w.status = true, code
	w.header.Del("Transfer-Encoding")
	if cl := w.header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			w.header.Del("Content-Length")
		} else {
			w.declared = n
		}
	}
}

// bodyAllowed reports whether a response with this status has a body.
func (w *response) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	if !w.committed {
		if w.buf == nil {
			w.buf = respPool.Get().(*[]byte)
		}
		if len(*w.buf)+len(p) <= cap(*w.buf) {
			*w.buf = append(*w.buf, p...)
			return len(p), nil
		}
		if err := w.commit(false, p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := w.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteFinal writes p as the rest of the body. Unlike Write, it sends p
// where it is, with the header and whatever is held in one writev(2),
// never copying it into the buffer: for a small package in a mapped
// pack, the bytes go from the page cache to the socket in one copy.
func (w *response) WriteFinal(p []byte) error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.committed || w.head || !w.bodyAllowed() || (w.declared >= 0 && w.written+int64(len(p)) != w.declared) {
		_, err := w.Write(p)
		return err
	}
	w.written += int64(len(p))
	return w.commit(true, p)
}

// ReadFrom sends a file with sendfile(2) when the length is known.
func (w *response) ReadFrom(r io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.head || w.declared < 0 || !w.bodyAllowed() {
		return io.Copy(writerOnly{w}, r)
	}
	if !w.committed {
		if err := w.commit(false, nil); err != nil {
			return 0, err
		}
	}
	if w.err != nil {
		return 0, w.err
	}
	left := w.declared - w.written
	lr, ok := r.(*io.LimitedReader)
	if !ok || lr.N > left {
		// More than declared would corrupt the connection; the limit
		// turns it into a short response, which finish reports.
		lr = &io.LimitedReader{R: r, N: left}
	}
	n, err := io.Copy(w.conn, lr)
	w.written += n
	if err != nil {
		w.err = err
	}
	return n, err
}

// writerOnly hides ReadFrom, so io.Copy does not recurse into it.
type writerOnly struct{ io.Writer }

// Flush sends the header and what the body holds.
func (w *response) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
}

// commit sends the header, the held body and extra. final says the
// handler is done, so the held body is the whole body.
func (w *response) commit(final bool, extra []byte) error {
	w.committed = true
	h := w.header
	var held []byte
	if w.buf != nil {
		held = *w.buf
	}
	if w.bodyAllowed() {
		if _, ok := h["Content-Type"]; !ok && !w.head && len(held)+len(extra) > 0 {
			sniff := held
			if len(sniff) == 0 {
				sniff = extra
			}
			h.Set("Content-Type", http.DetectContentType(sniff))
		}
		switch {
		case w.declared >= 0:
		case final && (!w.head || w.written > 0):
			h.Set("Content-Length", strconv.FormatInt(w.written, 10))
		case !final && !w.head:
			w.chunked = true
			h.Set("Transfer-Encoding", "chunked")
		}
	}
	if w.closeAfter {
		h.Set("Connection", "close")
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{w.date.now()}
	}
	hb := append(w.hdr[:0], "HTTP/1.1 "...)
	hb = strconv.AppendInt(hb, int64(w.status), 10)
	hb = append(hb, ' ')
	hb = append(hb, http.StatusText(w.status)...)
	hb = append(hb, "\r\n"...)
	hb = appendFields(hb, h)
	hb = append(hb, "\r\n"...)
	w.hdr = hb
	bufs := net.Buffers{hb}
	if w.chunked {
		if n := len(held) + len(extra); n > 0 {
			bufs = append(bufs, []byte(strconv.FormatInt(int64(n), 16)+"\r\n"), held, extra, []byte("\r\n"))
		}
	} else {
		bufs = append(bufs, held, extra)
	}
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
	}
	if _, err := bufs.WriteTo(w.conn); err != nil {
		w.err = err
		return err
	}
	return nil
}

// appendFields appends h's fields. Unlike http.Header.Write it does not
// sort them, which a hit would pay for; like it, it keeps a handler's
// value from starting a field of its own, and drops a name that is not a
// token.
func appendFields(b []byte, h http.Header) []byte {
	for k, vs := range h {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			b = append(b, strings.TrimSpace(v)...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// send writes p after the header is out.
func (w *response) send(p []byte) error {
	var err error
	if w.chunked {
		bufs := net.Buffers{[]byte(strconv.FormatInt(int64(len(p)), 16) + "\r\n"), p, []byte("\r\n")}
		_, err = bufs.WriteTo(w.conn)
	} else {
		_, err = w.conn.Write(p)
	}
	if err != nil {
		w.err = err
	}
	return err
}

// errShortBody ends a connection whose handler wrote less than it
// declared: the client would otherwise wait for the rest.
var errShortBody = errors.New("handler wrote less than its Content-Length")

// finish completes the response once the handler returns.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		if err := w.commit(true, nil); err != nil {
			return err
		}
	} else if w.chunked && w.err == nil {
		if _, err := io.WriteString(w.conn, "0\r\n\r\n"); err != nil {
			w.err = err
		}
	}
	if w.err != nil {
		return w.err
	}
	if w.declared >= 0 && w.written < w.declared && !w.head && w.bodyAllowed() {
		return errShortBody
	}
	return nil
}

func (w *response) release() {
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
		respPool.Put(w.buf)
		w.buf = nil
	}
}

// recorder keeps the bytes read since the current request began, so the
// request can be handed to net/http whole, and bounds them as net/http
// bounds a header.
type recorder struct {
	r   io.Reader
	buf []byte
}

var errHeaderTooLarge = errors.New("request header too large")

func (r *recorder) Read(p []byte) (int, error) {
	room := maxHeader - len(r.buf)
	if room <= 0 {
		return 0, errHeaderTooLarge
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// start begins a request: of what was read, only the unread tail (a
// pipelined request's bytes) belongs to it.
func (r *recorder) start(unread int) {
	n := copy(r.buf, r.buf[len(r.buf)-unread:])
	r.buf = r.buf[:n]
}

// replayConn is a connection handed to net/http: it reads the bytes this
// loop had read first.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite lets net/http close its side gracefully.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// chanListener is the net/http server's listener: the connections this
// loop hands over.
type chanListener struct {
	addr      net.Addr
	ch        chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *chanListener) give(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
