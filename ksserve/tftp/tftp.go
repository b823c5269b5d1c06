// Package tftp is a read-only TFTP server: RFC 1350, with option
// negotiation (RFC 2347) and the blksize (RFC 2348), timeout and tsize
// (RFC 2349) options, for PXE ROMs that fetch their first boot file by
// nothing else.
//
// It is written here because no kept Go TFTP library is available to
// this project: pin/tftp is not served by the module proxy, and pack.ag/tftp
// has had no release since 2018. TestClients checks it against the
// tftp-hpa and atftp clients.
package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Opcodes (RFC 1350 section 5, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes (RFC 1350 appendix, RFC 2347).
const (
	errUndefined    uint16 = 0
	errNotFound     uint16 = 1
	errAccess       uint16 = 2
	errIllegal      uint16 = 4
	errOptionDenied uint16 = 8
)

// defaultBlockSize is RFC 1350's block; maxBlockSize is RFC 2348's
// largest, bounded here by what one UDP datagram on Ethernet carries
// unfragmented, which is what PXE ROMs ask for anyway.
const (
	defaultBlockSize = 512
	minBlockSize     = 8
	maxBlockSize     = 1468
)

// File is a file the server sends.
type File interface {
	io.Reader
	io.Closer
}

// Server serves files by TFTP. Its zero value is not usable: set Open.
type Server struct {
	// Open returns the file name, as the client asked for it, and its
	// size (-1 if unknown); local is the server address the client
	// reached, for files that name the server. fs.ErrNotExist for
	// anything it does not serve.
	Open func(name string, local net.IP) (File, int64, error)
	// Allow, if set, says which clients may fetch anything.
	Allow func(net.IP) bool
	// MaxTransfers bounds the transfers at once; more are refused as
	// busy. Default 64.
	MaxTransfers int
	// Timeout is how long to wait for an ACK before sending again, unless
	// the client asks for another (RFC 2349); Retries bounds the resends
	// of one packet. Defaults 1 s and 5.
	Timeout time.Duration
	Retries int
	// Log gets one line per transfer.
	Log *slog.Logger
}

// Serve answers read requests on conn until ctx ends. Each transfer runs
// from a port of its own, as RFC 1350 says (a transfer identifier).
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	max := s.MaxTransfers
	if max <= 0 {
		max = 64
	}
	sem := make(chan struct{}, max)
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	local := net.IP(nil)
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
		local = ua.IP
	}
	buf := make([]byte, 2048)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp: reading a request: %w", err)
		}
		client, ok := addr.(*net.UDPAddr)
		if !ok {
			continue
		}
		if s.Allow != nil && !s.Allow(client.IP) {
			s.log().Warn("tftp: refused a client outside --allow", "client", client.String())
			continue
		}
		req := append([]byte(nil), buf[:n]...)
		select {
		case sem <- struct{}{}:
		default:
			sendError(conn, addr, errUndefined, "server busy")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.transfer(ctx, conn, client, local, req)
		}()
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// request is a parsed RRQ or WRQ (RFC 1350 section 5, RFC 2347).
type request struct {
	op       uint16
	filename string
	mode     string
	options  map[string]string // lower-case names
	order    []string
}

func parseRequest(b []byte) (*request, error) {
	if len(b) < 2 {
		return nil, errors.New("short packet")
	}
	r := &request{op: binary.BigEndian.Uint16(b), options: map[string]string{}}
	if r.op != opRRQ && r.op != opWRQ {
		return r, fmt.Errorf("opcode %d is not a request", r.op)
	}
	fields := bytes.Split(b[2:], []byte{0})
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return r, errors.New("a request's strings must each end in NUL")
	}
	fields = fields[:len(fields)-1]
	r.filename, r.mode = string(fields[0]), strings.ToLower(string(fields[1]))
	if r.filename == "" {
		return r, errors.New("no file name")
	}
	rest := fields[2:]
	if len(rest)%2 != 0 {
		return r, errors.New("an option without a value")
	}
	for i := 0; i < len(rest); i += 2 {
		k := strings.ToLower(string(rest[i]))
		if _, dup := r.options[k]; !dup {
			r.order = append(r.order, k)
		}
		r.options[k] = string(rest[i+1])
	}
	return r, nil
}

// transfer sends one file from a socket of its own.
func (s *Server) transfer(ctx context.Context, listener net.PacketConn, client *net.UDPAddr, local net.IP, pkt []byte) {
	start := time.Now()
	req, err := parseRequest(pkt)
	if err != nil {
		sendError(listener, client, errIllegal, err.Error())
		return
	}
	var laddr *net.UDPAddr
	if local != nil {
		laddr = &net.UDPAddr{IP: local}
	}
	conn, err := net.DialUDP("udp", laddr, client)
	if err != nil {
		s.log().Warn("tftp: no socket for a transfer", "client", client.String(), "err", err)
		return
	}
	defer conn.Close()
	if local == nil {
		local = conn.LocalAddr().(*net.UDPAddr).IP
	}
	if req.op == opWRQ {
		sendError(conn, nil, errAccess, "read-only server")
		return
	}
	if req.mode != "octet" && req.mode != "netascii" {
		sendError(conn, nil, errIllegal, "mode "+req.mode+" is not supported")
		return
	}
	f, size, err := s.Open(req.filename, local)
	if err != nil {
		code, msg := errUndefined, "cannot read the file"
		if errors.Is(err, fs.ErrNotExist) {
			code, msg = errNotFound, "file not found"
		}
		sendError(conn, nil, code, msg)
		s.log().Info("tftp", "client", client.String(), "file", req.filename, "status", msg)
		return
	}
	defer f.Close()
	t := &sender{conn: conn, timeout: s.Timeout, retries: s.Retries, blockSize: defaultBlockSize}
	if t.timeout <= 0 {
		t.timeout = time.Second
	}
	if t.retries <= 0 {
		t.retries = 5
	}
	var src io.Reader = f
	if req.mode == "netascii" {
		src = &netASCII{r: f}
		size = -1 // unknown until converted
	}
	n, err := t.send(ctx, req, src, size)
	attrs := []any{"client", client.String(), "file", req.filename, "bytes", n, "blksize", t.blockSize, "ms", time.Since(start).Milliseconds()}
	if err != nil {
		s.log().Warn("tftp: transfer failed", append(attrs, "err", err)...)
		return
	}
	s.log().Info("tftp", attrs...)
}

// sender is one transfer's state.
type sender struct {
	conn      *net.UDPConn
	timeout   time.Duration
	retries   int
	blockSize int
}

// errAborted is a client's ERROR packet in place of an ACK.
var errAborted = errors.New("the client aborted")

func (t *sender) send(ctx context.Context, req *request, src io.Reader, size int64) (int64, error) {
	// Options (RFC 2347): answer those understood, in an OACK, which the
	// client acknowledges as block 0.
	var oack []string
	for _, k := range req.order {
		v := req.options[k]
		switch k {
		case "blksize":
			n, err := strconv.Atoi(v)
			if err != nil || n < minBlockSize {
				continue
			}
			t.blockSize = min(n, maxBlockSize)
			oack = append(oack, k, strconv.Itoa(t.blockSize))
		case "timeout":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 255 {
				continue
			}
			t.timeout = time.Duration(n) * time.Second
			oack = append(oack, k, v)
		case "tsize":
			if size >= 0 {
				oack = append(oack, k, strconv.FormatInt(size, 10))
			}
		}
	}
	if len(oack) > 0 {
		p := []byte{0, opOACK}
		for _, s := range oack {
			p = append(append(p, s...), 0)
		}
		if err := t.exchange(ctx, p, 0); err != nil {
			return 0, err
		}
	}
	buf := make([]byte, 4+t.blockSize)
	var sent int64
	// Block numbers wrap after 65535, as tftp-hpa and iPXE expect for
	// files over 32 MiB at 512-byte blocks.
	for block := uint16(1); ; block++ {
		binary.BigEndian.PutUint16(buf[0:], opDATA)
		binary.BigEndian.PutUint16(buf[2:], block)
		n, err := io.ReadFull(src, buf[4:])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			sendError(t.conn, nil, errUndefined, "read error")
			return sent, err
		}
		if err := t.exchange(ctx, buf[:4+n], block); err != nil {
			return sent, err
		}
		sent += int64(n)
		if n < t.blockSize {
			return sent, nil
		}
	}
}

// exchange sends p until the client acknowledges block, resending on
// each timeout up to the retries. A duplicate ACK of an earlier block is
// ignored, not answered: answering it doubles every later packet (the
// Sorcerer's Apprentice bug, RFC 1123 4.2.3.1).
func (t *sender) exchange(ctx context.Context, p []byte, block uint16) error {
	ack := make([]byte, 516)
	for try := 0; try <= t.retries; try++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := t.conn.Write(p); err != nil {
			return err
		}
		deadline := time.Now().Add(t.timeout)
		t.conn.SetReadDeadline(deadline)
		for {
			n, err := t.conn.Read(ack)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend
				}
				return err
			}
			if n < 4 {
				continue
			}
			switch binary.BigEndian.Uint16(ack) {
			case opACK:
				if binary.BigEndian.Uint16(ack[2:]) == block {
					return nil
				}
			case opERROR:
				return fmt.Errorf("%w: %q", errAborted, bytes.TrimRight(ack[4:n], "\x00"))
			}
		}
	}
	return fmt.Errorf("no acknowledgement of block %d after %d tries", block, t.retries+1)
}

// sendError sends an ERROR packet: to addr on a listener, or on a
// connected socket when addr is nil.
func sendError(c net.PacketConn, addr net.Addr, code uint16, msg string) {
	p := []byte{0, opERROR, byte(code >> 8), byte(code)}
	p = append(append(p, msg...), 0)
	if addr == nil {
		if uc, ok := c.(*net.UDPConn); ok {
			uc.Write(p)
		}
		return
	}
	c.WriteTo(p, addr)
}

// netASCII converts to RFC 764's network ASCII, as RFC 1350 asks for
// mode netascii: LF becomes CR LF, and a bare CR becomes CR NUL.
type netASCII struct {
	r       io.Reader
	pending []byte
	buf     [4096]byte
}

func (n *netASCII) Read(p []byte) (int, error) {
	if len(n.pending) == 0 {
		k, err := n.r.Read(n.buf[:])
		if k == 0 {
			return 0, err
		}
		out := make([]byte, 0, 2*k)
		for _, c := range n.buf[:k] {
			switch c {
			case '\n':
				out = append(out, '\r', '\n')
			case '\r':
				out = append(out, '\r', 0)
			default:
				out = append(out, c)
			}
		}
		n.pending = out
	}
	k := copy(p, n.pending)
	n.pending = n.pending[k:]
	return k, nil
}
