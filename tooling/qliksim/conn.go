package qliksim

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the proxy side's connections: how many were accepted,
// which request came on a kept-alive one, and what real sites do with
// the connection of a ticket redemption (Config.ProxyIdleTimeout,
// Config.RedeemConnection, Sim.DropRedemptions).

// ConnStats counts the proxy side's connections.
type ConnStats struct {
	// Accepted is every connection accepted since Start.
	Accepted int64 `json:"accepted"`
	// Open is the accepted connections the server has not closed yet,
	// idle ones included. A connection upgraded to a websocket leaves the
	// count (net/http no longer manages it).
	Open int `json:"open"`
}

// proxyConn is one accepted proxy-side connection.
type proxyConn struct {
	seq      int64        // accept order, from 1 (Event.Conn)
	requests atomic.Int64 // requests read on it so far
}

type proxyConnKey struct{}

// connTracker counts the proxy side's connections; its methods are the
// http.Server hooks ConnContext and ConnState. It is safe for concurrent
// use.
type connTracker struct {
	accepted atomic.Int64

	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func newConnTracker() *connTracker { return &connTracker{open: map[net.Conn]struct{}{}} }

// connContext numbers a new connection and puts it into the context of
// its requests.
func (t *connTracker) connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, proxyConnKey{}, &proxyConn{seq: t.accepted.Add(1)})
}

// connState keeps the set of open connections.
func (t *connTracker) connState(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch st {
	case http.StateNew:
		t.open[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(t.open, c)
	}
}

func (t *connTracker) stats() ConnStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return ConnStats{Accepted: t.accepted.Load(), Open: len(t.open)}
}

// connRequest counts r on its connection and returns the connection's
// number and r's place on it (1: the connection's first request). Both
// are 0 outside the proxy listener (a handler called directly).
func connRequest(r *http.Request) (conn, nth int64) {
	pc, ok := r.Context().Value(proxyConnKey{}).(*proxyConn)
	if !ok {
		return 0, 0
	}
	return pc.seq, pc.requests.Add(1)
}

// ProxyConns returns the proxy side's connection counts, for tests that
// check a client keeps its connections alive (fewer accepted than
// requests) or lets them go.
func (s *Sim) ProxyConns() ConnStats { return s.proxyConns.stats() }

// AwaitOpenProxyConns polls ProxyConns until n connections are open or ctx
// ends, and returns the last counts. net/http reports a close when its
// connection goroutine has ended, just after the client saw it: a test
// that closed connections waits here rather than reading the counts once.
func (s *Sim) AwaitOpenProxyConns(ctx context.Context, n int) (ConnStats, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st := s.ProxyConns()
		if st.Open == n {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("proxy side connections %+v, want %d open: %w", st, n, ctx.Err())
		case <-tick.C:
		}
	}
}

// DropRedemptions makes the proxy side read each of the next n ticket
// redemptions (a GET carrying qlikTicket, not a websocket upgrade) and
// close its connection without answering: a Qlik proxy restarting, or a
// load balancer failing, mid-request. The ticket counts as presented and
// is consumed, as when QPS read it before it went down: presenting it
// again is refused. With reusedOnly, only a redemption on a connection
// that carried a request before counts (and is dropped): the race a
// client that keeps connections alive meets, where it cannot tell
// whether the proxy read the ticket. n <= 0 disarms it. Each drop is
// logged as an "http" event with status 0 and Variant
// VariantDropRedemption, and counted by DroppedRedemptions.
func (s *Sim) DropRedemptions(n int, reusedOnly bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops, s.dropReusedOnly = max(n, 0), reusedOnly
}

// VariantDropRedemption is the Event.Variant of a redemption dropped by
// DropRedemptions.
const VariantDropRedemption = "drop-redemption"

// DroppedRedemptions returns how many redemptions DropRedemptions has
// dropped since the simulator started.
func (s *Sim) DroppedRedemptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// takeDrop reports whether a redemption on a connection that was reused
// (or not) is to be dropped, and counts it.
func (s *Sim) takeDrop(reused bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drops == 0 || s.dropReusedOnly && !reused {
		return false
	}
	s.drops--
	s.dropped++
	return true
}

// redemptionConn applies Config.RedeemConnection and DropRedemptions to
// a redemption request. It reports false when the request was dropped
// (and logged): the handler must then end with panic(http.ErrAbortHandler),
// which makes net/http close the connection without an answer.
func (s *Sim) redemptionConn(w http.ResponseWriter, r *http.Request, pr *proxyRequest, ticket string) bool {
	if s.takeDrop(pr.connRequest > 1) {
		s.st.consumeTicket(ticket)
		pr.variant = VariantDropRedemption
		s.recordHTTP(r, pr, 0)
		return false
	}
	if s.cfg.RedeemConnection == RedeemClose {
		// net/http closes the connection after this answer.
		w.Header().Set("Connection", "close")
		pr.variant = "redeem-connection=" + RedeemClose
	}
	return true
}
