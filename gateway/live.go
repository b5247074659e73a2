package gateway

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"

	"go.uber.org/zap"
)

// Live is what a reloading server serves: the current gateway, replaced
// atomically by Swap. Requests in flight finish on the gateway they
// started on, and so do the connections they hijacked (relayed
// websockets, whose handler returns while the socket lives on); once the
// last of them has ended, a replaced gateway is closed and forgotten
// (Caddy's Handler.Cleanup). It is safe for concurrent use.
type Live struct {
	log *zap.Logger
	cur atomic.Pointer[served]

	mu      sync.Mutex
	retired map[*served]struct{} // replaced, not drained yet
}

// served is a gateway as Live serves it, with its count of requests in
// flight and hijacked connections open.
type served struct {
	l *Live
	g *Gateway
	// state is twice that count, plus one once the gateway is replaced.
	// When it falls to 1 (replaced, nothing in flight) it stays there:
	// nothing acquires the gateway again, and it is closed.
	state atomic.Int64
}

// NewLive returns a Live serving g. log receives the errors of closing
// replaced gateways (nil discards them).
func NewLive(g *Gateway, log *zap.Logger) *Live {
	if log == nil {
		log = zap.NewNop()
	}
	l := &Live{log: log, retired: map[*served]struct{}{}}
	l.cur.Store(&served{l: l, g: g})
	return l
}

// ServeHTTP implements http.Handler on the current gateway.
func (l *Live) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := l.acquire()
	defer s.release()
	if r.Header.Get("Upgrade") != "" {
		// Only upgrades hijack their connection; other requests keep
		// their ResponseWriter and what it implements.
		w = &hijackWriter{ResponseWriter: w, s: s}
	}
	s.g.ServeHTTP(w, r)
}

// acquire returns the current gateway, counted in flight.
func (l *Live) acquire() *served {
	for {
		// A gateway that cannot be acquired was replaced and drained:
		// the current one is already another.
		if s := l.cur.Load(); s.acquire() {
			return s
		}
	}
}

// Current returns the gateway serving new requests.
func (l *Live) Current() *Gateway { return l.cur.Load().g }

// Swap makes g the current gateway. The one it replaces is closed at once
// when nothing is in flight on it, else when the last request or hijacked
// connection ends.
func (l *Live) Swap(g *Gateway) {
	l.mu.Lock()
	prev := l.cur.Swap(&served{l: l, g: g})
	l.retired[prev] = struct{}{}
	l.mu.Unlock()
	if prev.state.Or(1) == 0 {
		prev.drained()
	}
}

// all returns the current gateway and the replaced ones not drained yet.
func (l *Live) all() []*Gateway {
	l.mu.Lock()
	defer l.mu.Unlock()
	gws := []*Gateway{l.cur.Load().g}
	for s := range l.retired {
		gws = append(gws, s.g)
	}
	return gws
}

// Shutdown closes the websockets of the current gateway and of every
// replaced one not drained yet (Gateway.Shutdown), which then drain.
func (l *Live) Shutdown(ctx context.Context) error {
	gws := l.all()
	errs := make(chan error, len(gws))
	for _, g := range gws {
		go func() { errs <- g.Shutdown(ctx) }()
	}
	var err error
	for range gws {
		err = errors.Join(err, <-errs)
	}
	return err
}

// Close closes the current gateway and every replaced one not drained
// yet, whatever is still in flight: call it once the server stopped.
func (l *Live) Close() error {
	gws := l.all()
	l.mu.Lock()
	clear(l.retired)
	l.mu.Unlock()
	var err error
	for _, g := range gws {
		err = errors.Join(err, g.Close())
	}
	return err
}

// retiredCount returns the number of replaced gateways not drained yet.
func (l *Live) retiredCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.retired)
}

// acquire counts one more request in flight, unless the gateway was
// replaced and drained.
func (s *served) acquire() bool {
	for {
		v := s.state.Load()
		if v == 1 {
			return false
		}
		if s.state.CompareAndSwap(v, v+2) {
			return true
		}
	}
}

// hold counts one more hijacked connection; the caller holds the gateway
// already, so it cannot drain meanwhile.
func (s *served) hold() { s.state.Add(2) }

// release ends one request or hijacked connection, and closes the
// gateway when it was the last of a replaced one.
func (s *served) release() {
	if s.state.Add(-2) == 1 {
		s.drained()
	}
}

// drained closes a replaced gateway with nothing in flight, and forgets
// it.
func (s *served) drained() {
	s.l.mu.Lock()
	delete(s.l.retired, s)
	s.l.mu.Unlock()
	if err := s.g.Close(); err != nil {
		s.l.log.Warn("closing a replaced gateway", zap.Error(err))
	}
}

// hijackWriter is the ResponseWriter of an upgrade request: a connection
// it hijacks holds the gateway until it is closed.
type hijackWriter struct {
	http.ResponseWriter
	s *served
}

// Hijack implements http.Hijacker, which gorilla/websocket's Upgrader
// asserts (http.ResponseController and ReverseProxy's upgrades find it
// too).
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.s.hold()
	return &heldConn{Conn: c, s: w.s}, brw, nil
}

// FlushError implements the flushing of http.ResponseController.
func (w *hijackWriter) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (w *hijackWriter) Flush() { w.FlushError() }

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (w *hijackWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// heldConn is a hijacked connection that releases its gateway when
// closed, once however often it is closed.
type heldConn struct {
	net.Conn
	s    *served
	once sync.Once
}

// SyscallConn passes the connection's own on (syscall.Conn), so that the
// relay can wait for a websocket's next message on the socket without
// holding a read buffer (proxy's idleConn); a connection without one
// (TLS) says so, and is read as it is.
func (c *heldConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errNoSyscallConn
	}
	return sc.SyscallConn()
}

// errNoSyscallConn is SyscallConn's error for a connection without a
// socket of its own to give.
var errNoSyscallConn = errors.New("gateway: the hijacked connection has no syscall.Conn")

func (c *heldConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.s.release)
	return err
}

var (
	_ http.Handler                    = (*Live)(nil)
	_ http.Hijacker                   = (*hijackWriter)(nil)
	_ syscall.Conn                    = (*heldConn)(nil)
	_ http.Flusher                    = (*hijackWriter)(nil)
	_ interface{ FlushError() error } = (*hijackWriter)(nil)
)
