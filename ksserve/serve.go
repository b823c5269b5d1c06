package ksserve

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits are the server's bounds on its clients. An installer makes plain
// requests on a few kept-alive connections and reads each response as
// fast as its disk takes it; a client slower than these holds a
// connection for nothing.
type Limits struct {
	// ReadHeader bounds reading a request's header (slowloris).
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included.
	Read time.Duration
	// Idle closes a kept-alive connection nobody uses.
	Idle time.Duration
	// WriteIdle bounds one write of a response: the deadline moves with
	// every chunk, so a large body takes as long as it keeps moving, and
	// a client that stops reading is dropped.
	WriteIdle time.Duration
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
	// MaxConns bounds the connections served at once; more wait in the
	// listen queue. Every connection is a file descriptor, and a client
	// that opens them without end must not take all of the process's.
	MaxConns int
}

// DefaultLimits are what kiln build and kiln serve run with. The largest
// body kiln takes is a 16 MiB package report.
func DefaultLimits() Limits {
	return Limits{ReadHeader: 20 * time.Second, Read: 2 * time.Minute, Idle: 2 * time.Minute,
		WriteIdle: time.Minute, MaxHeaderBytes: 64 << 10, MaxConns: 1024}
}

// writeChunk is how much of a file one sendfile(2) sends between moves of
// the write deadline.
const writeChunk = 4 << 20

// Serve runs h on l with DefaultLimits until ctx ends, then shuts down:
// requests in flight get up to grace to finish, and are cut off after
// that. It returns nil after a shutdown ctx asked for.
func Serve(ctx context.Context, h http.Handler, l net.Listener, grace time.Duration) error {
	return ServeLimits(ctx, h, l, grace, DefaultLimits())
}

// ServeLimits is Serve with other limits.
func ServeLimits(ctx context.Context, h http.Handler, l net.Listener, grace time.Duration, lim Limits) error {
	srv := NewHTTPServer(h, lim)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(limitListener(l, lim.MaxConns)) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NewHTTPServer is the http.Server Serve runs: h within lim. net/http
// backs off and retries when accept fails for want of file descriptors.
func NewHTTPServer(h http.Handler, lim Limits) *http.Server {
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(&progressWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: lim.WriteIdle}, r)
		}),
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		// Client mistakes (bad requests, resets) are not the operator's
		// concern.
		ErrorLog: log.New(io.Discard, "", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// connKey is the context key of a request's connection.
type connKey struct{}

// writeCorked writes a small response whole with the connection corked
// (TCP_CORK), so its header and body leave in one segment: net/http's
// 4 KiB buffer would send them in two, and the client then wakes twice.
// nginx's tcp_nopush does the same.
func writeCorked(w http.ResponseWriter, r *http.Request, b []byte) {
	tc, ok := r.Context().Value(connKey{}).(*limitedTCP)
	var raw syscall.RawConn
	if ok {
		raw, _ = tc.SyscallConn()
	}
	cork := func(on int) {
		if raw != nil {
			raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, on) })
		}
	}
	cork(1)
	w.Write(b)
	http.NewResponseController(w).Flush()
	cork(0)
}

// progressWriter moves the connection's write deadline as a response
// goes out, so that a response's time is bounded by its progress, not its
// size. Moving it costs a timer update, so it moves at the response's
// first write and then at most once a second.
type progressWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	idle  time.Duration
	moved time.Time
}

func (p *progressWriter) extend() {
	now := time.Now()
	if now.Sub(p.moved) < time.Second {
		return
	}
	p.moved = now
	p.rc.SetWriteDeadline(now.Add(p.idle))
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.extend()
	return p.ResponseWriter.Write(b)
}

// ReadFrom keeps sendfile(2) for files, in chunks between deadline moves;
// net/http takes the sendfile path for a file under one io.LimitedReader,
// so each chunk is one. A file in an ISO goes out run by run of its
// extents.
func (p *progressWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := p.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{p}, r)
	}
	src, remain := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, remain = lr.R, lr.N
	}
	switch v := src.(type) {
	case *os.File:
		return p.sendFile(rf, v, remain)
	case *extentReader:
		var total int64
		for remain != 0 {
			f, n, err := v.nextRun()
			if err != nil || f == nil {
				return total, err
			}
			if remain > 0 && n > remain {
				n = remain
			}
			k, err := p.sendFile(rf, f, n)
			v.advance(k)
			total += k
			if remain > 0 {
				remain -= k
			}
			if err != nil || k < n {
				return total, err
			}
		}
		return total, nil
	}
	return io.Copy(struct{ io.Writer }{p}, r)
}

// sendFile sends remain bytes of f from its offset (all of it when
// remain is negative), a chunk per sendfile(2) and deadline move.
func (p *progressWriter) sendFile(rf io.ReaderFrom, f *os.File, remain int64) (int64, error) {
	var total int64
	for remain != 0 {
		n := int64(writeChunk)
		if remain > 0 && remain < n {
			n = remain
		}
		p.moved = time.Time{} // a chunk may take most of the deadline
		p.extend()
		k, err := rf.ReadFrom(&io.LimitedReader{R: f, N: n})
		total += k
		if remain > 0 {
			remain -= k
		}
		if err != nil {
			return total, err
		}
		if k < n {
			break // the end of the file
		}
	}
	return total, nil
}

func (p *progressWriter) Flush() {
	p.extend()
	p.rc.Flush()
}

// WriteHeader sends no bytes of its own: the first Write or Flush moves
// the deadline before the header leaves.
func (p *progressWriter) WriteHeader(code int) { p.ResponseWriter.WriteHeader(code) }

// Unwrap lets http.ResponseController reach the real writer.
func (p *progressWriter) Unwrap() http.ResponseWriter { return p.ResponseWriter }

// limitListener bounds the connections l has open at once, as
// golang.org/x/net/netutil.LimitListener does. That one wraps each
// connection in a type that hides *net.TCPConn's ReadFrom and CloseWrite:
// net/http then copies every cached file through a 32 KiB buffer instead
// of sendfile(2) (measured: 5,126 read and write calls for 5 x 32 MiB,
// and hits at 0.5-0.8x nginx's; TestLimitListenerKeepsSendfile), and
// cannot half-close before it closes. This one keeps a TCP connection's
// methods.
func limitListener(l net.Listener, n int) net.Listener {
	return &limited{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limited struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{} // closed by Close, so a full Accept returns
	closeOnce sync.Once
}

func (l *limited) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *limited) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	release := sync.OnceFunc(func() { <-l.sem })
	if tc, ok := c.(*net.TCPConn); ok {
		return &limitedTCP{TCPConn: tc, release: release}, nil
	}
	return &limitedConn{Conn: c, release: release}, nil
}

// limitedTCP is a TCP connection that frees its slot when closed; its
// ReadFrom is *net.TCPConn's, so sendfile(2) stays.
type limitedTCP struct {
	*net.TCPConn
	release func()
}

func (c *limitedTCP) Close() error {
	err := c.TCPConn.Close()
	c.release()
	return err
}

type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// AllowListener accepts connections only from clients in nets; any other
// is closed as soon as it is accepted, before a byte is read. The
// connections it returns are l's own, so sendfile(2) stays.
func AllowListener(l net.Listener, nets []*net.IPNet, log *slog.Logger) net.Listener {
	return &allowed{Listener: l, nets: nets, log: log}
}

type allowed struct {
	net.Listener
	nets []*net.IPNet
	log  *slog.Logger
}

func (a *allowed) Accept() (net.Conn, error) {
	for {
		c, err := a.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok && Allowed(a.nets, ta.IP) {
			return c, nil
		}
		if a.log != nil {
			a.log.Warn("refused a client outside --allow", "client", c.RemoteAddr().String())
		}
		c.Close()
	}
}

// Allowed says whether ip is in one of nets.
func Allowed(nets []*net.IPNet, ip net.IP) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
