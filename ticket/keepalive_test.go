package ticket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// The tests of this file hold redemptions over kept-alive connections to
// the invariant that a ticket is never presented twice.

// fallbackMsg is Login's log line when a redemption got no answer on a
// reused connection.
const fallbackMsg = "redemption got no answer on a reused connection: asking for a new ticket"

// kaUser is the i-th user of these tests: each its own sessions, so the
// parallel-session cap never refuses.
func kaUser(i int) identity.User { return identity.User{Directory: "ACME", ID: fmt.Sprintf("ka%d", i)} }

// waitProxyConns waits (5s at most) until the simulator's proxy side has
// n open connections.
func waitProxyConns(t *testing.T, sim *qliksim.Sim, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sim.AwaitOpenProxyConns(ctx, n); err != nil {
		t.Fatal(err)
	}
}

// fallbacksByUser counts Login's fallback log lines per user.
func fallbacksByUser(logs *observer.ObservedLogs) map[string]int {
	n := map[string]int{}
	for _, e := range logs.FilterMessage(fallbackMsg).All() {
		n[e.ContextMap()["user"].(string)]++
	}
	return n
}

// Fallbacks allowed by a variant of TestLoginKeepAliveVariants.
const (
	noFallback    = iota // no redemption can meet a closed connection
	dropFallback         // one per redemption the simulator dropped
	raceFallbacks        // any number: an idle close may cross a redemption
)

// TestLoginKeepAliveVariants logs users in one after another, then
// concurrently, against each way a proxy side treats the connection of
// a redemption. Every login succeeds with its own user's session; no
// ticket is presented twice; every user was issued one ticket per login
// plus one per fallback (a redemption without answer on a reused
// connection), where the variant allows those; connections are reused
// where the proxy lets them be.
func TestLoginKeepAliveVariants(t *testing.T) {
	const bigResource = "/resources/assets/big.js"
	tests := []struct {
		name string
		sim  func(*qliksim.Config)
		cfg  func(*Config)
		// arm runs before the logins, between after the sequential ones.
		arm, between func(*testing.T, *qliksim.Sim)
		// reuse: fewer connections accepted than logins; otherwise one
		// per redemption.
		reuse     bool
		fallbacks int
	}{
		{name: "keep-alive", reuse: true, fallbacks: noFallback},
		{
			name: "idle timeout 300ms",
			sim:  func(c *qliksim.Config) { c.ProxyIdleTimeout = 300 * time.Millisecond },
			// The server's idle timer closes the pooled connections.
			between: func(t *testing.T, sim *qliksim.Sim) { waitProxyConns(t, sim, 0) },
			reuse:   true, fallbacks: raceFallbacks,
		},
		{
			name:  "connection close",
			sim:   func(c *qliksim.Config) { c.RedeemConnection = qliksim.RedeemClose },
			reuse: false, fallbacks: noFallback,
		},
		{
			name: "redeem resource over the drain bound",
			sim: func(c *qliksim.Config) {
				c.StaticResources = []qliksim.StaticResource{{Path: bigResource, Size: maxDrain + 1}}
			},
			cfg:   func(c *Config) { c.RedeemPath = bigResource },
			reuse: false, fallbacks: noFallback,
		},
		{
			name:  "restart mid-request",
			arm:   func(t *testing.T, sim *qliksim.Sim) { sim.DropRedemptions(2, true) },
			reuse: true, fallbacks: dropFallback,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newSim(t, tt.sim)
			cfg := simConfig(t, sim, "", "X-Qlik-Session")
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			c, logs := newClient(t, cfg, nil)
			if tt.arm != nil {
				tt.arm(t, sim)
			}
			type login struct {
				user   identity.User
				cookie *http.Cookie
				err    error
			}
			var logins []login
			for i := range 4 {
				k, err := c.Login(context.Background(), kaUser(i))
				logins = append(logins, login{kaUser(i), k, err})
			}
			if tt.between != nil {
				tt.between(t, sim)
			}
			const workers, each = 8, 2
			results := make([][]login, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for range each {
						k, err := c.Login(context.Background(), kaUser(w))
						results[w] = append(results[w], login{kaUser(w), k, err})
					}
				})
			}
			wg.Wait()
			for _, r := range results {
				logins = append(logins, r...)
			}

			// Every login has its own session, its user's.
			owner := map[string]string{}
			for _, s := range sim.Sessions() {
				owner[s.ID] = s.User.String()
			}
			perUser := map[string]int{}
			seen := map[string]bool{}
			for _, l := range logins {
				perUser[l.user.String()]++
				if l.err != nil {
					t.Errorf("Login(%s): %v", l.user, l.err)
					continue
				}
				if got := owner[l.cookie.Value]; got != l.user.String() || seen[l.cookie.Value] {
					t.Errorf("Login(%s): the cookie is the session of %q (seen before: %t), want a new session of its own", l.user, got, seen[l.cookie.Value])
				}
				seen[l.cookie.Value] = true
			}
			// No ticket presented twice, none left unpresented.
			tickets := 0
			for tk, n := range sim.TicketPresentations() {
				tickets++
				if n != 1 {
					t.Errorf("a ticket was presented %d times, want exactly 1", n)
				}
				assertNoSecrets(t, logs, nil, tk)
			}
			// One ticket per login, one more per fallback.
			fallbacks := fallbacksByUser(logs)
			total := 0
			for u, n := range perUser {
				total += fallbacks[u]
				if fallbacks[u] > n {
					t.Errorf("%s: %d fallbacks in %d logins, want at most one per login", u, fallbacks[u], n)
				}
				if got, want := sim.Counts(u).TicketsIssued, n+fallbacks[u]; got != want {
					t.Errorf("%s: %d tickets issued for %d logins and %d fallbacks, want %d", u, got, n, fallbacks[u], want)
				}
			}
			if tickets != len(logins)+total {
				t.Errorf("%d tickets issued for %d logins and %d fallbacks", tickets, len(logins), total)
			}
			switch drops := sim.DroppedRedemptions(); tt.fallbacks {
			case noFallback:
				if total != 0 {
					t.Errorf("%d fallbacks, want none: no connection was closed under a redemption", total)
				}
			case dropFallback:
				if total != drops || drops == 0 {
					t.Errorf("%d fallbacks for %d dropped redemptions, want one each (and a drop)", total, drops)
				}
			}
			conns := sim.ProxyConns().Accepted
			// Each fallback redeems on a connection of its own.
			if tt.reuse && conns-int64(total) >= int64(len(logins)) {
				t.Errorf("%d connections accepted for %d logins and %d fallbacks, want fewer than the logins besides the fallbacks' own (kept alive)", conns, len(logins), total)
			}
			if !tt.reuse && conns != int64(tickets) {
				t.Errorf("%d connections accepted for %d redemptions, want one each", conns, tickets)
			}
			t.Logf("%d logins, %d tickets, %d connections, %d fallbacks", len(logins), tickets, conns, total)
		})
	}
}

// TestLoginFallbackOnReusedConnection: a restart mid-request on a reused
// connection (the proxy reads the redemption and closes without an
// answer). Login asks for a second ticket and redeems it on a new
// connection; the first ticket was presented exactly once.
func TestLoginFallbackOnReusedConnection(t *testing.T) {
	sim, c, logs := simClient(t, nil, nil)
	mustLogin(t, c, kaUser(0))
	sim.DropRedemptions(1, true)
	// A login may still dial a new connection (the pooled one not back
	// yet): log in until one meets the drop.
	var (
		u      identity.User
		cookie *http.Cookie
	)
	for i := 1; sim.DroppedRedemptions() == 0; i++ {
		if i > 20 {
			t.Fatal("20 logins and no redemption on a reused connection")
		}
		u = kaUser(i)
		cookie = mustLogin(t, c, u)
	}
	if status, body := get(t, sim, "/hub/", cookie); status != http.StatusOK || !strings.Contains(body, u.String()) {
		t.Errorf("GET /hub/ with the cookie = %d %q, want %s's hub", status, body, u)
	}
	if got := sim.Counts(u.String()); got.TicketsIssued != 2 || got.TicketsRedeemed != 1 || got.SessionsCreated != 1 {
		t.Errorf("sim counts of %s = %+v, want 2 tickets issued, 1 redeemed, 1 session", u, got)
	}
	for tk, n := range sim.TicketPresentations() {
		if n != 1 {
			t.Errorf("a ticket was presented %d times, want exactly once", n)
		}
		assertNoSecrets(t, logs, nil, tk)
	}
	// The second redemption came on a new connection.
	var after bool
	var places []int64
	for _, e := range sim.Events(0) {
		if e.Variant == qliksim.VariantDropRedemption {
			after = true
			continue
		}
		if after && e.Kind == "http" && e.Path == DefaultRedeemPath {
			places = append(places, e.ConnRequest)
		}
	}
	if len(places) != 1 || places[0] != 1 {
		t.Errorf("redemptions after the drop, by place on their connection: %v, want one, a connection's first", places)
	}
	entries := logs.FilterMessage(fallbackMsg).All()
	if len(entries) != 1 || entries[0].Level != zapcore.InfoLevel || entries[0].ContextMap()["user"] != u.String() {
		t.Errorf("fallback log entries %+v, want one at info naming %s", entries, u)
	}
	assertNoSecrets(t, logs, nil, cookie.Value)
}

// TestLoginFallbackFails: when the second redemption fails too (here
// dropped on its new connection), Login returns that failure's kind,
// saying why there was a second ticket; each ticket went out once.
func TestLoginFallbackFails(t *testing.T) {
	sim := newSim(t, nil)
	c, logs := newClient(t, simConfig(t, sim, "", "X-Qlik-Session"), func(e zapcore.Entry) {
		if e.Message == fallbackMsg {
			sim.DropRedemptions(1, false) // the new connection's too
		}
	})
	mustLogin(t, c, kaUser(0))
	sim.DropRedemptions(1, true)
	var err error
	for i := 1; sim.DroppedRedemptions() == 0; i++ {
		if i > 20 {
			t.Fatal("20 logins and no redemption on a reused connection")
		}
		_, err = c.Login(context.Background(), kaUser(i))
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnreachable) || e.Op != "redeem" || e.Attempts != 1 ||
		!strings.Contains(e.Msg, "a second ticket: the first ticket's redemption got no answer on a reused connection") {
		t.Fatalf("Login with both redemptions dropped = %v, want ErrUnreachable from the second redemption saying why", err)
	}
	if n := sim.DroppedRedemptions(); n != 2 {
		t.Errorf("%d redemptions dropped, want 2", n)
	}
	for tk, n := range sim.TicketPresentations() {
		if n != 1 {
			t.Errorf("a ticket was presented %d times, want exactly once", n)
		}
		assertNoSecrets(t, logs, []string{err.Error()}, tk)
	}
}

// redeemPooled redeems tk and waits (bounded) until its connection is
// back in the pool, which net/http does asynchronously once the answer
// has been read, so that the next request finds it there.
func redeemPooled(t *testing.T, c *Client, tk string) {
	t.Helper()
	idle := make(chan error, 1)
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{PutIdleConn: func(err error) { idle <- err }})
	if _, err := c.Redeem(ctx, tk); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	select {
	case err := <-idle:
		if err != nil {
			t.Fatalf("the connection did not go back to the pool: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not go back to the pool within 10s")
	}
}

// TestRedeemWireHasNoBody reads the redemptions as a server sees them: a
// GET with neither a body nor Content-Length nor Transfer-Encoding (the
// Body that keeps net/http from re-sending it is probed and dropped),
// and, on a kept-alive connection, the next request right after the
// header block.
func TestRedeemWireHasNoBody(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, cfg := fakeQPS(t, func(http.ResponseWriter, *http.Request) {})
	cfg.ProxyURL = mustURL(t, "http://"+ln.Addr().String())
	c, _ := newClient(t, cfg, nil)

	type request struct {
		conn  int
		lines []string
	}
	got := make(chan request, 10)
	serverDone := make(chan struct{})
	var handlers sync.WaitGroup
	go func() {
		defer close(serverDone)
		for n := 1; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			handlers.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				for {
					// Each header block must start right where the last
					// one ended: any body would come in between.
					var lines []string
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							if len(lines) > 0 || line != "" {
								got <- request{n, append(lines, "ERROR "+err.Error()+" after "+line)}
							}
							return
						}
						if line == "\r\n" {
							break
						}
						lines = append(lines, strings.TrimRight(line, "\r\n"))
					}
					got <- request{n, lines}
					fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nSet-Cookie: X-Qlik-Session=s; Path=/\r\nContent-Length: 4\r\n\r\nbody")
				}
			})
		}
	}()

	for _, tk := range []string{"T1CKET", "T2CKET"} {
		redeemPooled(t, c, tk)
	}
	c.CloseIdleConnections() // the server reads EOF where a body would be
	for i, tk := range []string{"T1CKET", "T2CKET"} {
		var r request
		select {
		case r = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d not received", i+1)
		}
		if want := "GET /resources/autogenerated/qlik-styles.css?qlikTicket=" + tk + " HTTP/1.1"; r.lines[0] != want || r.conn != 1 {
			t.Errorf("request %d on connection %d starts %q, want %q on connection 1 (bytes after the previous header block?)", i+1, r.conn, r.lines[0], want)
		}
		for _, l := range r.lines[1:] {
			name, _, _ := strings.Cut(strings.ToLower(l), ":")
			if name == "content-length" || name == "transfer-encoding" || name == "connection" || strings.HasPrefix(l, "ERROR") {
				t.Errorf("request %d: header line %q, want no Content-Length, Transfer-Encoding or Connection", i+1, l)
			}
		}
	}
	// Each connection ends at EOF (closed idle) or its 10 s deadline.
	ln.Close()
	<-serverDone
	handlers.Wait()
	close(got)
	for r := range got {
		t.Errorf("after the two redemptions the server read %q on connection %d, want nothing (EOF)", r.lines, r.conn)
	}
}

// TestRedeemNotResentOnReusedConnection: a server that reads a
// redemption on a kept-alive connection and closes it without an answer
// (net/http's Transport would re-send an idempotent GET with no body
// then) receives it once, and Redeem reports it as no answer on a
// reused connection.
func TestRedeemNotResentOnReusedConnection(t *testing.T) {
	var n counter
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		if n.inc() == 2 {
			panic(http.ErrAbortHandler) // read, then the connection closed
		}
		http.SetCookie(w, &http.Cookie{Name: "X-Qlik-Session", Value: "s1", Path: "/"})
	})
	cfg.Retries = 3
	c, logs := newClient(t, cfg, nil)
	redeemPooled(t, c, "T1CKET")
	var reused []bool // per connection the redemption was given
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }})
	_, err := c.Redeem(ctx, "T2CKET")
	if len(reused) == 0 || !reused[0] {
		t.Fatalf("the second redemption went on connections reused %v, want the pooled one first", reused)
	}
	if n.get() != 2 || len(reused) != 1 {
		t.Fatalf("the server received %d requests, the second redemption %d sends (reused %v): want 2 and 1, the ticket not re-sent", n.get(), len(reused), reused)
	}
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnreachable) || e.Attempts != 1 || !lostOnReusedConn(err) {
		t.Fatalf("Redeem on a connection closed after reading it = %v, want ErrUnreachable on a reused connection after 1 attempt", err)
	}
	assertNoSecrets(t, logs, []string{err.Error()}, "T1CKET", "T2CKET")
}

// TestCloseIdleConnectionsClosesRedemptionConns: the pooled redemption
// connections end with CloseIdleConnections (the gateway calls it on
// close).
func TestCloseIdleConnectionsClosesRedemptionConns(t *testing.T) {
	sim, c, _ := simClient(t, nil, nil)
	for i := range 3 {
		mustLogin(t, c, kaUser(i))
	}
	if sim.ProxyConns().Open == 0 {
		t.Fatal("no redemption connection kept open")
	}
	c.CloseIdleConnections()
	waitProxyConns(t, sim, 0)
}

// TestRedeemSpeaksHTTP1: a Qlik proxy offering HTTP/2 still gets its
// redemptions over HTTP/1.1, whose re-sending rules the no-resend form of
// a redemption relies on, on the first connection and on a reused one.
func TestRedeemSpeaksHTTP1(t *testing.T) {
	var (
		mu     sync.Mutex
		protos []string
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto)
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "X-Qlik-Session", Value: "s1", Path: "/"})
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, cfg := fakeQPS(t, func(http.ResponseWriter, *http.Request) {})
	cfg.ProxyURL = mustURL(t, srv.URL)
	cfg.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c, _ := newClient(t, cfg, nil)
	redeemPooled(t, c, "T1CKET")
	redeemPooled(t, c, "T2CKET")
	mu.Lock()
	defer mu.Unlock()
	if len(protos) != 2 || protos[0] != "HTTP/1.1" || protos[1] != "HTTP/1.1" {
		t.Fatalf("redemptions arrived as %v, want two HTTP/1.1 requests", protos)
	}
}
