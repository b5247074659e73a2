package proxy

import (
	"fmt"
	"io"
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
// body, a flush) must be done within d (15/16 d at least), or it fails and
// the connection (with HTTP/2, the stream) is closed. So a client that stops reading is cut off after d, while a long
// download that keeps moving is not bounded, unlike http.Server's
// WriteTimeout, which bounds the whole response. It is nginx's
// send_timeout. Websocket upgrades pass through untouched: the relay sets
// its own deadlines on every write. d <= 0 returns h.
//
// It must wrap the ResponseWriter of net/http's server (the outermost
// handler), which can set write deadlines; a ResponseWriter that cannot
// is served without a bound.
func LimitWrites(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return &writeLimiter{h: h, d: d, pool: sync.Pool{New: func() any { return new(stallWriter) }}}
}

type writeLimiter struct {
	h    http.Handler
	d    time.Duration
	pool sync.Pool // of *stallWriter
}

// writeDeadliner is the ability of net/http's ResponseWriters (HTTP/1 and
// HTTP/2) that http.ResponseController.SetWriteDeadline uses.
type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

func (l *writeLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dl, ok := w.(writeDeadliner)
	if !ok {
		l.h.ServeHTTP(w, r)
		return
	}
	// A kept-alive connection still has the deadline of its previous
	// response, which may have passed: nothing may inherit it, least of
	// all a hijacked websocket.
	dl.SetWriteDeadline(time.Time{})
	if r.Header.Get("Upgrade") != "" {
		l.h.ServeHTTP(w, r)
		return
	}
	sw := l.pool.Get().(*stallWriter)
	*sw = stallWriter{ResponseWriter: w, dl: dl, d: l.d}
	l.h.ServeHTTP(sw, r)
	// Handlers do not use their ResponseWriter once they returned.
	*sw = stallWriter{}
	l.pool.Put(sw)
}

// stallWriter moves the write deadline d ahead before every write.
type stallWriter struct {
	http.ResponseWriter
	dl  writeDeadliner
	d   time.Duration
	set time.Time // when the deadline was last moved
}

// extend moves the deadline to d from now, unless it is that far already
// but for a sixteenth of d: moving it costs a message to the connection's
// goroutine over HTTP/2, and a stall is then cut after 15/16 d to d.
func (s *stallWriter) extend() {
	now := time.Now()
	if now.Sub(s.set) < s.d/16 {
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

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (s *stallWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var (
	_ http.Flusher                    = (*stallWriter)(nil)
	_ interface{ FlushError() error } = (*stallWriter)(nil)
)

// LimitBodyReads returns h with a bound on stalled request bodies: every
// read of a request body from the client must make progress within d
// (15/16 d at least), or it fails, so a client that sends headers and then
// trickles or stops its body cannot hold a connection, a handler and an
// upstream request forever. A slow upload that keeps moving is not
// bounded. It is nginx's client_body_timeout. Requests without a body and
// upgrades pass through untouched. d <= 0 returns h.
//
// The bound ends with the body: once it has been read to its end,
// net/http watches the connection for the client going away (clearing
// the deadline as it starts), and a deadline set after that would end a
// long response. A handler that leaves a body unread leaves the bound in
// place, so net/http's discarding of the rest cannot hang on a stalled
// client.
//
// It must wrap the ResponseWriter of net/http's server (the outermost
// handler), which can set read deadlines.
func LimitBodyReads(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return &bodyLimiter{h: h, d: d}
}

type bodyLimiter struct {
	h http.Handler
	d time.Duration
}

// readDeadliner is the ability of net/http's ResponseWriters that
// http.ResponseController.SetReadDeadline uses.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

func (l *bodyLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dl, ok := w.(readDeadliner)
	if !ok || r.Body == nil || r.Body == http.NoBody || r.Header.Get("Upgrade") != "" {
		l.h.ServeHTTP(w, r)
		return
	}
	r.Body = &stallReader{ReadCloser: r.Body, dl: dl, d: l.d}
	l.h.ServeHTTP(w, r)
}

// stallReader moves the read deadline d ahead before every read of the
// body until its end, and clears it there. Bodies are read by one goroutine
// at a time (io.Reader), so it needs no lock.
type stallReader struct {
	io.ReadCloser
	dl   readDeadliner
	d    time.Duration
	set  time.Time // when the deadline was last moved
	done bool      // the body was read to its end
}

func (s *stallReader) Read(p []byte) (int, error) {
	if !s.done {
		// As stallWriter.extend: a move at most every sixteenth of d.
		if now := time.Now(); now.Sub(s.set) >= s.d/16 {
			s.set = now
			s.dl.SetReadDeadline(now.Add(s.d))
		}
	}
	n, err := s.ReadCloser.Read(p)
	if err == io.EOF && !s.done {
		s.done = true
		s.dl.SetReadDeadline(time.Time{})
	}
	return n, err
}
