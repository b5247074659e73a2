package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport carries the common requests to Qlik, those without a body
// (GET, HEAD, OPTIONS), over HTTP/1.1 connections of its own, and hands
// every other request to std, the *http.Transport whose settings it
// follows: the dialer, TLS config and handshake timeout,
// ResponseHeaderTimeout, IdleConnTimeout, MaxIdleConns and
// MaxIdleConnsPerHost, MaxResponseHeaderBytes and the proxy from the
// environment (a request that would go through a proxy goes to std).
//
// It exists for throughput: http.Transport hands each request to two
// goroutines of the connection's (a writer and a reader) and back, and a
// reverse proxy on a small machine spends a good part of its time in
// those handoffs (docs/performance.md). Here the request's own goroutine
// writes the request and reads the answer: no goroutine, channel or
// select per request.
//
// What goes on the wire is what http.Transport would send: the request is
// written by http.Request.Write (the writer Transport uses, with its Host
// check and header sanitising) after the same header validation, and the
// answer is parsed by http.ReadResponse, Transport's parser (its framing
// checks: conflicting Content-Length, Transfer-Encoding). Unlike
// Transport it adds no "Accept-Encoding: gzip" of its own (so it never
// decompresses for a client that did not ask for compression), offers no
// HTTP/2 over TLS (no ALPN), leaves resp.TLS shared by the answers of one
// connection, and of an httptrace.ClientTrace calls Got1xxResponse only
// (ReverseProxy's, which passes interim answers on). A connection goes back to the pool only once its
// answer was read to the end, with nothing after it; one that has
// anything to read while idle (an answer nobody asked for, or the
// server's close) is dropped before it is used again, so an upstream
// cannot desynchronise requests and answers. A request on a pooled
// connection that the server had closed is sent again on another, as
// Transport does: only requests without a body of an idempotent method
// come here. The request's context ends the round trip and the body read
// (the connection is closed).
type h1Transport struct {
	std *http.Transport
	tls *tls.Config // std's without ALPN, cloned for each TLS connection

	mu      sync.Mutex
	idle    map[poolKey][]*h1Conn // most recently used last
	nidle   int
	sweep   *time.Timer // armed while idle holds connections
	closing bool        // CloseIdleConnections ran: keep nothing more until the next request
}

// poolKey names the connections of one upstream: its scheme and host[:port].
type poolKey struct{ scheme, host string }

// maxInterim bounds the 1xx answers read before the final one.
const maxInterim = 16

// defaultMaxHeaderBytes is http.Transport's bound on an answer's header
// when MaxResponseHeaderBytes is 0.
const defaultMaxHeaderBytes = 10 << 20

// Buffers of the connections, taken from pools while a request uses its
// connection: an idle connection holds none.
var (
	h1Readers sync.Pool // *bufio.Reader
	h1Writers sync.Pool // *bufio.Writer
)

const h1BufSize = 4 << 10 // http.Transport's default

func newH1Transport(std *http.Transport) *h1Transport {
	t := &h1Transport{std: std, idle: map[poolKey][]*h1Conn{}}
	cfg := std.TLSClientConfig
	if cfg == nil {
		cfg = &tls.Config{}
	}
	t.tls = cfg.Clone()
	t.tls.NextProtos = nil
	return t
}

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.fits(req) {
		return t.std.RoundTrip(req)
	}
	if err := validateHeaders(req.Header); err != "" {
		return nil, fmt.Errorf("net/http: invalid header %s", err)
	}
	key := poolKey{req.URL.Scheme, req.URL.Host}
	ctx := req.Context()
	for {
		c, err := t.conn(ctx, key)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		c.close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		// A pooled connection the server closed as the request went:
		// nothing came back, and the request may be sent again (Transport
		// retries the same). A timeout is an answer too slow, not this.
		if !c.reused || c.nread > 0 || isTimeout(err) {
			return nil, err
		}
	}
}

// fits reports whether req is one h1Transport carries: an http or https
// request without a body, of an idempotent method, that is not an
// upgrade, asks for no 100-continue and goes to its host directly.
func (t *h1Transport) fits(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, "":
	default:
		return false
	}
	if req.URL == nil || req.Header == nil || req.URL.Host == "" || (req.Body != nil && req.Body != http.NoBody) ||
		req.ContentLength != 0 || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 || req.Cancel != nil {
		return false
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	std := t.std
	if std.DisableKeepAlives || std.MaxConnsPerHost > 0 || std.DialTLSContext != nil || std.DialTLS != nil || std.Dial != nil && std.DialContext == nil {
		return false
	}
	if std.Proxy != nil {
		if u, err := std.Proxy(req); u != nil || err != nil {
			return false
		}
	}
	return true
}

// aLongTimeAgo is a deadline that has passed: a read with it does not wait.
var aLongTimeAgo = time.Unix(1, 0)

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// validateHeaders is http.Transport's check of the header of an outgoing
// request: it returns what is wrong, "" when nothing is.
func validateHeaders(hdr http.Header) string {
	for k, vv := range hdr {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Sprintf("field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				// Not the value: it may be a secret.
				return fmt.Sprintf("field value for %q", k)
			}
		}
	}
	return ""
}

// conn returns a pooled connection to key that has nothing to read, or a
// new one.
func (t *h1Transport) conn(ctx context.Context, key poolKey) (*h1Conn, error) {
	for {
		c := t.take(key)
		if c == nil {
			break
		}
		if c.quiet() {
			c.reused = true
			return c, nil
		}
		c.close()
	}
	return t.dial(ctx, key)
}

// take removes the most recently used idle connection to key from the
// pool, dropping those idle longer than IdleConnTimeout.
func (t *h1Transport) take(key poolKey) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closing = false
	cs := t.idle[key]
	if len(cs) == 0 {
		return nil
	}
	c := cs[len(cs)-1]
	cs[len(cs)-1] = nil
	t.idle[key] = cs[:len(cs)-1]
	t.nidle--
	return c
}

// put returns c to the pool, or closes it when the pool is full.
func (t *h1Transport) put(c *h1Conn) {
	perHost := t.std.MaxIdleConnsPerHost
	if perHost == 0 {
		perHost = http.DefaultMaxIdleConnsPerHost
	}
	c.idleSince = time.Now()
	t.mu.Lock()
	cs := t.idle[c.key]
	if t.closing || len(cs) >= perHost || t.std.MaxIdleConns > 0 && t.nidle >= t.std.MaxIdleConns {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle[c.key] = append(cs, c)
	t.nidle++
	if t.nidle == 1 && t.std.IdleConnTimeout > 0 {
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.std.IdleConnTimeout, t.sweepIdle)
		} else {
			t.sweep.Reset(t.std.IdleConnTimeout)
		}
	}
	t.mu.Unlock()
}

// sweepIdle closes the connections idle longer than IdleConnTimeout, and
// comes back while some are left.
func (t *h1Transport) sweepIdle() {
	timeout := t.std.IdleConnTimeout
	cutoff := time.Now().Add(-timeout)
	var old []*h1Conn
	t.mu.Lock()
	for key, cs := range t.idle {
		// Oldest first: the stale ones are a prefix.
		n := 0
		for n < len(cs) && cs[n].idleSince.Before(cutoff) {
			n++
		}
		if n == 0 {
			continue
		}
		old = append(old, cs[:n]...)
		rest := append(cs[:0], cs[n:]...)
		clear(cs[len(rest):])
		t.idle[key] = rest
		t.nidle -= n
		if len(rest) == 0 {
			delete(t.idle, key)
		}
	}
	if t.nidle > 0 {
		t.sweep.Reset(timeout / 2)
	}
	t.mu.Unlock()
	for _, c := range old {
		c.close()
	}
}

// CloseIdleConnections closes the pooled connections (std's too).
// Connections in use are closed once their answers are read.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[poolKey][]*h1Conn{}
	t.nidle = 0
	t.closing = true
	if t.sweep != nil {
		t.sweep.Stop()
	}
	t.mu.Unlock()
	for _, cs := range idle {
		for _, c := range cs {
			c.close()
		}
	}
	t.std.CloseIdleConnections()
}

// dial opens a connection to key with std's dialer, and its TLS config
// and handshake timeout for https.
func (t *h1Transport) dial(ctx context.Context, key poolKey) (*h1Conn, error) {
	addr := key.host
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
		port = "80"
		if key.scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(host, port)
	}
	dial := t.std.DialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &h1Conn{t: t, key: key, conn: raw, limit: -1}
	if key.scheme == "https" {
		cfg := t.tls.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		hctx := ctx
		if d := t.std.TLSHandshakeTimeout; d > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		if err := tc.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, err
		}
		st := tc.ConnectionState()
		c.conn, c.tlsState = tc, &st
	}
	c.abortFn = c.abort
	if sc, ok := raw.(syscallConner); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.raw = rc
			c.peekFn = c.peek
		}
	}
	return c, nil
}

type syscallConner interface {
	SyscallConn() (syscall.RawConn, error)
}

// h1Conn is one connection of an h1Transport. It is used by one request
// at a time: the one that took it from the pool, until its answer has
// been read.
type h1Conn struct {
	t        *h1Transport
	key      poolKey
	conn     net.Conn
	raw      syscall.RawConn // the TCP connection's, for quiet; nil if none
	tlsState *tls.ConnectionState
	br       *bufio.Reader // while in use
	// limit bounds what Read may still return (while an answer's header
	// is read), < 0 for no bound; nread counts the bytes read by the
	// current request.
	limit     int64
	nread     int64
	reused    bool
	idleSince time.Time
	abortFn   func()
	closed    atomic.Bool
	// peekFn is peek, bound once (quiet runs it for every reuse); the
	// peek's outcome is left in peeked and peekErr.
	peekFn  func(fd uintptr) bool
	peekBuf [1]byte
	peeked  int
	peekErr error
}

// Read reads from the connection, for its bufio.Reader.
func (c *h1Conn) Read(p []byte) (int, error) {
	if c.limit >= 0 {
		if c.limit == 0 {
			return 0, fmt.Errorf("qlik answer's header is over %d bytes", c.maxHeader())
		}
		if int64(len(p)) > c.limit {
			p = p[:c.limit]
		}
	}
	n, err := c.conn.Read(p)
	c.nread += int64(n)
	if c.limit >= 0 {
		c.limit -= int64(n)
	}
	return n, err
}

func (c *h1Conn) maxHeader() int64 {
	if m := c.t.std.MaxResponseHeaderBytes; m > 0 {
		return m
	}
	return defaultMaxHeaderBytes
}

// abort ends the request's use of the connection: its context ended.
func (c *h1Conn) abort() { c.close() }

func (c *h1Conn) close() {
	if c.closed.CompareAndSwap(false, true) {
		c.conn.Close()
	}
}

// roundTrip writes req and reads its answer's header. The body, if any,
// is read through the answer, which returns the connection to the pool
// at its end.
func (c *h1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	c.nread = 0
	stop := context.AfterFunc(req.Context(), c.abortFn)
	resp, err := c.exchange(req)
	if err != nil {
		stop()
		c.releaseReader()
		return nil, err
	}
	if resp.Body == http.NoBody {
		// HEAD, 204, 304, Content-Length: 0: the answer is complete.
		c.done(stop, !resp.Close && !req.Close)
		return resp, nil
	}
	resp.Body = &h1Body{c: c, body: resp.Body, stop: stop, keep: !resp.Close && !req.Close}
	return resp, nil
}

// exchange sends req and reads its final answer, passing interim (1xx)
// answers to the request's httptrace.ClientTrace.
func (c *h1Conn) exchange(req *http.Request) (*http.Response, error) {
	bw, _ := h1Writers.Get().(*bufio.Writer)
	if bw == nil {
		bw = bufio.NewWriterSize(c.conn, h1BufSize)
	} else {
		bw.Reset(c.conn)
	}
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	h1Writers.Put(bw)
	if err != nil {
		return nil, err
	}
	if c.br, _ = h1Readers.Get().(*bufio.Reader); c.br == nil {
		c.br = bufio.NewReaderSize(c, h1BufSize)
	} else {
		c.br.Reset(c)
	}
	timed := c.t.std.ResponseHeaderTimeout > 0
	if timed {
		// It bounds the wait for the header only: it is cleared before
		// the body is read (below). The context's end closes the
		// connection, which no deadline undoes.
		c.conn.SetReadDeadline(time.Now().Add(c.t.std.ResponseHeaderTimeout))
	}
	trace := httptrace.ContextClientTrace(req.Context())
	c.limit = c.maxHeader()
	defer func() { c.limit = -1 }()
	for range maxInterim {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			if isTimeout(err) {
				return nil, fmt.Errorf("timeout awaiting response headers: %w", err)
			}
			return nil, err
		}
		code := resp.StatusCode
		if code == http.StatusSwitchingProtocols {
			// Only upgrade requests may be answered so, and they are std's.
			return nil, errors.New("qlik switched protocols on a request that asked for no upgrade")
		}
		if code >= 200 {
			resp.TLS = c.tlsState
			if timed && !(resp.Body == http.NoBody || resp.ContentLength >= 0 && int64(c.br.Buffered()) >= resp.ContentLength) {
				// The body is read from the connection. A body already
				// in the buffer is not, nor is the next answer's header
				// read before the next exchange sets its own deadline.
				c.conn.SetReadDeadline(time.Time{})
			}
			return resp, nil
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
			c.limit = c.maxHeader()
		}
	}
	return nil, fmt.Errorf("qlik sent more than %d interim answers", maxInterim)
}

// done ends a request's use of c: back to the pool when keep, the
// request's context had not ended (stop) and nothing follows the answer;
// closed otherwise.
func (c *h1Conn) done(stop func() bool, keep bool) {
	if !stop() || !keep || c.br.Buffered() > 0 || c.closed.Load() {
		c.releaseReader()
		c.close()
		return
	}
	c.releaseReader()
	c.t.put(c)
}

func (c *h1Conn) releaseReader() {
	if c.br != nil {
		c.br.Reset(nil)
		h1Readers.Put(c.br)
		c.br = nil
	}
}

// h1Body is an answer's body: at its end the connection goes back to the
// pool; closed before, the connection is closed (what is left of the body
// is not read). Close may come while a Read waits: it closes the
// connection, which ends the Read.
type h1Body struct {
	c    *h1Conn
	body io.ReadCloser // http.ReadResponse's
	stop func() bool
	keep bool
	mu   sync.Mutex
	end  error // once the connection was let go, what reads return: io.EOF, or errBodyDone
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	end := b.end
	b.mu.Unlock()
	if end != nil {
		return 0, end
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err, true)
	}
	return n, err
}

// errBodyDone is the error of a read after the body was closed.
var errBodyDone = errors.New("proxy: read on a closed Qlik answer body")

func (b *h1Body) Close() error {
	b.finish(errBodyDone, false)
	return nil
}

// finish lets go of the connection, once: back to the pool when the
// whole body was read (err io.EOF), closed otherwise. reader says whether
// it runs on the reading goroutine: only then may the connection's reader
// go back to its pool (a Read may be using it).
func (b *h1Body) finish(err error, reader bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end != nil {
		return
	}
	if err == io.EOF {
		b.end = io.EOF
		b.c.done(b.stop, b.keep)
		return
	}
	b.end = errBodyDone
	b.stop()
	if reader {
		b.c.releaseReader()
	}
	b.c.close()
}
