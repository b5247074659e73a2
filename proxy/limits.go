package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// MaxOwnBody bounds the request body of sensegate's own endpoints (under
// ReservedPrefix: login forms, logout), which take small forms at most.
// Qlik's and the routes' bodies stream through unbounded, except for the
// part kept for a replay (Options.ReplayLimit).
const MaxOwnBody = 64 << 10

// limitOwnBody caps the body of a request to sensegate's own endpoints at
// MaxOwnBody: a body declared larger is refused with 413 at once, and
// reading past the cap fails with *http.MaxBytesError, which the
// endpoints that read bodies answer with 413. It reports whether the
// request may go on.
func (h *Handler) limitOwnBody(w http.ResponseWriter, r *http.Request) bool {
	if r.ContentLength > MaxOwnBody {
		writeError(w, r, h.log, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body too large: sensegate's own endpoints take at most %d bytes", MaxOwnBody)})
		return false
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, MaxOwnBody)
	}
	return true
}

// LimitWrites returns h with a bound on stalled writes: every write of a
// response to the client (the status line and headers, each piece of the
// body, a flush, and what net/http writes once the handler returned) must
// be done within d (15/16 d at least), or it fails and the connection
// (with HTTP/2, the stream) is closed. So a client that stops reading is
// cut off after d, while a long download that keeps moving is not
// bounded, unlike http.Server's WriteTimeout, which bounds the whole
// response. It is nginx's send_timeout. The bound is lifted when the
// handler hijacks the connection (a websocket upgrade), whose relay sets
// its own deadlines; an Upgrade header alone lifts nothing. d <= 0
// returns h.
//
// It must wrap the ResponseWriter of net/http's server (the outermost
// handler), which can set write deadlines; a ResponseWriter that cannot
// is served without a bound.
func LimitWrites(h http.Handler, d time.Duration) http.Handler {
	return LimitStalls(h, StallLimits{Write: d})
}

// LimitBodyReads returns h with a bound on stalled request bodies: every
// read of a request body from the client must make progress within d
// (15/16 d at least), or it fails, so a client that sends headers and then
// trickles or stops its body cannot hold a connection, a handler and an
// upstream request forever. A slow upload that keeps moving is not
// bounded. It is nginx's client_body_timeout. Requests without a body
// pass through untouched, and the bound is lifted when the handler
// hijacks the connection (a websocket upgrade); an Upgrade header alone
// lifts nothing. d <= 0 returns h.
//
// Over HTTP/1 the bound starts with the handler, not with its first read:
// a handler that answers without reading the body (401, 404, 413...)
// leaves net/http to discard up to 256 KiB of it before the connection
// can serve another request (chunkWriter.writeHeader, then the body's
// Close in finishRequest), with no deadline of its own, so a client that
// announces a body and never sends it would hold the connection for good.
// With the bound, that discard ends d after the handler started or last
// read, and a failed discard closes the connection. (Answering with
// "Connection: close" would not do: the body's Close still discards,
// unless the request itself asked to close.) HTTP/2 needs none of this:
// it resets the stream of an unread body.
//
// The bound ends with the body: once it has been read to its end,
// net/http watches the connection for the client going away (clearing
// the deadline as it starts), and a deadline set after that would end a
// long response. It ends with the handler too: a reader that outlives it
// (ReverseProxy's transport writes the body upstream on a goroutine of
// its own) sets no deadline on a connection that has moved on to the
// next request, nor on an HTTP/2 stream that is gone.
//
// It must wrap the ResponseWriter of net/http's server (the outermost
// handler), which can set read deadlines.
func LimitBodyReads(h http.Handler, d time.Duration) http.Handler {
	return LimitStalls(h, StallLimits{Body: d})
}

// StallLimits are the bounds of LimitStalls. A zero or negative one is
// off.
type StallLimits struct {
	// Write bounds each write of a response (LimitWrites).
	Write time.Duration
	// Body bounds each read of a request body (LimitBodyReads).
	Body time.Duration
}

// LimitStalls returns h with both bounds, LimitWrites' and
// LimitBodyReads', kept by one wrapper of the ResponseWriter. Like them,
// it must be the outermost handler. Without either bound it returns h.
func LimitStalls(h http.Handler, l StallLimits) http.Handler {
	if l.Write <= 0 && l.Body <= 0 {
		return h
	}
	return &limiter{h: h, l: l, pool: sync.Pool{New: func() any { return new(stallWriter) }}}
}

type limiter struct {
	h    http.Handler
	l    StallLimits
	pool sync.Pool // of *stallWriter
}

// deadliner is the ability of net/http's ResponseWriters (HTTP/1 and
// HTTP/2) that http.ResponseController's deadline methods use.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// deadlinerOf finds w's deadliner, looking through wrappers as
// http.ResponseController does, so that limiters can be stacked.
func deadlinerOf(w http.ResponseWriter) (deadliner, bool) {
	for {
		switch t := w.(type) {
		case deadliner:
			return t, true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil, false
		}
	}
}

func (l *limiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dl, ok := deadlinerOf(w)
	bodied := l.l.Body > 0 && r.Body != nil && r.Body != http.NoBody
	if !ok || (l.l.Write <= 0 && !bodied) {
		l.h.ServeHTTP(w, r)
		return
	}
	sw := l.pool.Get().(*stallWriter)
	*sw = stallWriter{ResponseWriter: w, dl: dl, d: l.l.Write}
	// A kept-alive connection still has the deadline of its previous
	// response, which may have passed: the bound starts now (what
	// net/http may write before the handler does, a 100 Continue, is
	// bound too), and the first writes of a prompt answer need not move
	// it again.
	sw.extend()
	var body io.ReadCloser
	if bodied {
		body = r.Body
		sw.body = &stallReader{ReadCloser: body, dl: dl, d: l.l.Body}
		if r.ProtoMajor == 1 {
			sw.body.move(time.Now())
		}
		r.Body = sw.body
	}
	l.h.ServeHTTP(sw, r)
	if sw.body != nil {
		sw.body.stop()
		if r.Body == sw.body {
			// net/http looks at its own body type to skip discarding a
			// body it knows is too large, and to close gracefully.
			r.Body = body
		}
	}
	// Over HTTP/1, net/http writes what the handler left in its buffer
	// (a small answer, all of it) once the handler returned.
	sw.extend()
	// Handlers do not use their ResponseWriter once they returned.
	*sw = stallWriter{}
	l.pool.Put(sw)
}

// stallWriter moves the write deadline d ahead before every write, and
// lifts both bounds when the connection is hijacked.
type stallWriter struct {
	http.ResponseWriter
	dl       deadliner
	d        time.Duration // <= 0: writes are not bounded
	set      time.Time     // when the deadline was last moved
	body     *stallReader  // nil: the body is not bounded
	hijacked bool
}

// extend moves the deadline to d from now, unless it is that far already
// but for a sixteenth of d: moving it costs a message to the connection's
// goroutine over HTTP/2, and a stall is then cut after 15/16 d to d. A
// hijacked connection is its hijacker's.
func (s *stallWriter) extend() {
	if s.d <= 0 || s.hijacked {
		return
	}
	now := time.Now()
	if keepDeadline(now.Sub(s.set), s.d) {
		return
	}
	s.set = now
	s.dl.SetWriteDeadline(now.Add(s.d))
}

func (s *stallWriter) WriteHeader(code int) {
	s.extend()
	s.ResponseWriter.WriteHeader(code)
}

func (s *stallWriter) Write(p []byte) (int, error) {
	s.extend()
	return s.ResponseWriter.Write(p)
}

// FlushError implements the flushing of http.ResponseController.
func (s *stallWriter) FlushError() error {
	s.extend()
	return http.NewResponseController(s.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (s *stallWriter) Flush() { s.FlushError() }

// Hijack implements http.Hijacker, which gorilla/websocket's Upgrader
// asserts (http.ResponseController and ReverseProxy's upgrades find it
// too). A hijacked connection is a websocket whose relay keeps its own
// deadlines, so only now are the bounds lifted: the connection is handed
// over without deadlines (net/http documents that a hijacked connection
// may carry some, and the caller must clear them), and neither bound sets
// one again.
func (s *stallWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	s.hijacked = true
	if s.body != nil {
		s.body.stop()
	}
	c.SetDeadline(time.Time{})
	return c, brw, nil
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var (
	_ http.Flusher                    = (*stallWriter)(nil)
	_ http.Hijacker                   = (*stallWriter)(nil)
	_ interface{ FlushError() error } = (*stallWriter)(nil)
)

// stallReader moves the read deadline d ahead before every read of the
// body until its end, and clears it there. Bodies are read by one goroutine
// at a time (io.Reader), but the handler's goroutine stops the reader, so
// the deadline changes are under a lock.
type stallReader struct {
	io.ReadCloser
	dl  deadliner
	d   time.Duration
	set time.Time // when the deadline was last moved; the reader's alone

	mu   sync.Mutex
	done bool // read to its end, or stopped: the deadline is not the body's
}

func (s *stallReader) Read(p []byte) (int, error) {
	// As stallWriter.extend: a move at most every sixteenth of d.
	if now := time.Now(); !keepDeadline(now.Sub(s.set), s.d) {
		s.move(now)
	}
	n, err := s.ReadCloser.Read(p)
	if err == io.EOF {
		s.mu.Lock()
		if !s.done {
			s.done = true
			s.dl.SetReadDeadline(time.Time{})
		}
		s.mu.Unlock()
	}
	return n, err
}

// move sets the read deadline to d from now, unless the body is done.
func (s *stallReader) move(now time.Time) {
	s.set = now
	s.mu.Lock()
	if !s.done {
		s.dl.SetReadDeadline(now.Add(s.d))
	}
	s.mu.Unlock()
}

// stop ends the body's hold on the read deadline, leaving the deadline as
// it is: when the handler returns (it bounds net/http's discarding of the
// rest) or hijacks the connection (Hijack clears it).
func (s *stallReader) stop() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
}
