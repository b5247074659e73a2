package proxy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/redistest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// The fault matrix: for each failure of Qlik or the session store, what a
// user gets, how often QPS is called, and that sensegate recovers by
// itself and leaves no goroutine or memory behind. QPS timeouts are short
// so that the suite stays fast, but long enough for a mutual-TLS handshake
// on a loaded 2-core CI machine under the race detector (400 ms was not:
// a 5xx attempt timed out before it reached the simulator).
const (
	faultQPSTimeout = 1500 * time.Millisecond
	faultRetries    = 1 // so a login makes at most 2 ticket requests
	faultBackoff    = 5 * time.Millisecond
)

// faultEnv is env with the QPS client's timeout, retries and backoff
// short, sensegate's logs observed, and users on a client of their own.
type faultEnv struct {
	*env
	client *http.Client // the users' client: its own transport, so its idle connections can be closed
	logs   *observer.ObservedLogs
}

// newFaultEnv is newEnvWith(ec, opts) with the QPS client's retries and
// backoff short and its timeout faultQPSTimeout unless ec sets one (tests
// that do not time QPS out give concurrent logins more room). Sensegate's
// logs go to the test and are observed, unless ec brings a logger of its
// own (zap.NewNop() for loops whose logs would fill memory).
func newFaultEnv(t *testing.T, ec envConfig, opts ...envOption) *faultEnv {
	t.Helper()
	if ec.tickets.Timeout == 0 {
		ec.tickets.Timeout = faultQPSTimeout
	}
	ec.tickets.Retries, ec.tickets.Backoff = faultRetries, faultBackoff
	core, logs := observer.New(zapcore.DebugLevel)
	if ec.log == nil {
		ec.log = zaptest.NewLogger(t, zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, core) })))
	}
	fe := &faultEnv{env: newEnvWith(t, ec, opts...), logs: logs}
	fe.client = &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	t.Cleanup(fe.client.CloseIdleConnections)
	return fe
}

// closeIdle closes the idle connections of the users' client, of
// sensegate to Qlik and of sensegate to QPS, so that only goroutines
// that should not exist remain.
func (fe *faultEnv) closeIdle() {
	fe.client.CloseIdleConnections()
	fe.tickets.CloseIdleConnections()
	fe.qlikTr.CloseIdleConnections()
	fe.h.CloseIdleConnections()
}

// get sends GET path as user ("ACME\user" at Qlik) and returns the answer
// with its body read; hdr are extra header name, value pairs.
func (fe *faultEnv) get(t *testing.T, user, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", fe.front.URL+path, nil)
	req.Header.Set("X-Forwarded-User", user)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := fe.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s as %s: %v", path, user, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// wantHub requires the hub as user, served by Qlik to that user.
func (fe *faultEnv) wantHub(t *testing.T, user, when string) {
	t.Helper()
	resp, body := fe.get(t, user, "/hub/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `ACME\`+user) {
		t.Errorf("%s: GET /hub/ as %s = %d %q, want the hub as ACME\\%s", when, user, resp.StatusCode, body, user)
	}
}

// wantError requires a JSON error of sensegate with the request id in the
// header and the body, and Retry-After exactly when status is 503.
func wantError(t *testing.T, what string, resp *http.Response, body string, status int) {
	t.Helper()
	var js struct {
		Error     string `json:"error"`
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal([]byte(body), &js); err != nil {
		t.Errorf("%s: body %q is not sensegate's JSON error: %v", what, body, err)
	}
	id := resp.Header.Get(HeaderRequestID)
	if resp.StatusCode != status || js.Status != status || id == "" || js.RequestID != id || js.Error == "" {
		t.Errorf("%s = %d %q (%s %q), want %d with the request id in %s and the body", what, resp.StatusCode, body, HeaderRequestID, id, status, HeaderRequestID)
	}
	ra := resp.Header.Get("Retry-After")
	if status == http.StatusServiceUnavailable && ra != fmt.Sprint(loginRetryAfter) {
		t.Errorf("%s: Retry-After %q, want %d", what, ra, loginRetryAfter)
	}
	if status != http.StatusServiceUnavailable && ra != "" {
		t.Errorf("%s: Retry-After %q on %d, want none: retrying does not help", what, ra, status)
	}
	if strings.Contains(body, "localhost") || strings.Contains(body, "127.0.0.1") {
		t.Errorf("%s: body %q names an upstream", what, body)
	}
}

// qpsTicketCalls counts the ticket requests the simulator received for
// user after event seq.
func qpsTicketCalls(sim *qliksim.Sim, seq int64) int {
	n := 0
	for _, e := range sim.Events(seq) {
		if e.Kind == "qps" && strings.HasSuffix(e.Path, "/ticket") {
			n++
		}
	}
	return n
}

// waitTicketCalls polls (bounded) until the simulator has logged want
// ticket requests after seq, and returns how many it logged: a call it
// did not answer is logged when its handler ends, just after sensegate
// gave up on it.
func waitTicketCalls(sim *qliksim.Sim, seq int64, want int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := qpsTicketCalls(sim, seq)
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastEvent is the sequence number of the simulator's newest event.
func lastEvent(sim *qliksim.Sim) int64 {
	ev := sim.Events(0)
	if len(ev) == 0 {
		return 0
	}
	return ev[len(ev)-1].Seq
}

// failedAttempts counts the ticket requests sensegate logged as failed
// for user, whether or not they reached QPS.
func (fe *faultEnv) failedAttempts(user string) int {
	return fe.logs.FilterMessage("qlik request failed").FilterField(zap.String("op", "ticket")).FilterField(zap.String("user", `ACME\`+user)).Len()
}

// noLeaks fails t if goroutines started since snapshot are still running
// once idle connections are closed, after a bounded wait for them to end.
func (fe *faultEnv) noLeaks(t *testing.T, snapshot ...goleak.Option) {
	t.Helper()
	fe.closeIdle()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := goleak.Find(snapshot...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines left after the fault: %v", err)
			return
		}
		fe.closeIdle()
	}
}

// startLeakCheck settles the connections made so far and snapshots the
// goroutines.
func (fe *faultEnv) startLeakCheck() goleak.Option {
	fe.closeIdle()
	return goleak.IgnoreCurrent()
}

// Faults of QPS that pass. A user with a session goes on working; a user
// who needs a login gets 503 with Retry-After and the request id after at
// most 1+retries ticket requests; once the fault clears, the next request
// logs in, with no restart.
func TestFaultQPSTransient(t *testing.T) {
	fe := newFaultEnv(t, envConfig{})
	fe.wantHub(t, "warm", "before the faults")
	tests := []struct {
		name string
		set  func() error
		// reaches is whether the ticket requests reach the simulator's
		// handler (a closed port does not).
		reaches bool
	}{
		{"down", func() error { return fe.sim.SetQPSFault(qliksim.FaultDown) }, false},
		{"slow past the timeout", func() error { return fe.sim.SetQPSSlow(5 * faultQPSTimeout) }, true},
		{"5xx", func() error { return fe.sim.SetQPSFault(qliksim.Fault5xx) }, true},
		{"connection closed", func() error { return fe.sim.SetQPSFault(qliksim.FaultClose) }, true},
		{"invalid JSON", func() error { return fe.sim.SetQPSFault(qliksim.FaultBadJSON) }, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snapshot := fe.startLeakCheck()
			user := fmt.Sprint("new", i)
			if err := tt.set(); err != nil {
				t.Fatal(err)
			}
			fe.wantHub(t, "warm", "during the fault, with a session")
			seq := lastEvent(fe.sim)
			resp, body := fe.get(t, user, "/hub/")
			wantError(t, "GET /hub/ as a user without a session", resp, body, http.StatusServiceUnavailable)
			if !strings.Contains(body, "temporarily unavailable") {
				t.Errorf("error %q, want it to say the trouble is temporary", body)
			}
			want := 1 + faultRetries
			if n := fe.failedAttempts(user); n != want {
				t.Errorf("ticket requests sensegate made for one user request = %d, want %d (1 + retries)", n, want)
			}
			wantAtQPS := 0
			if tt.reaches {
				wantAtQPS = want
			}
			if n := waitTicketCalls(fe.sim, seq, wantAtQPS); n != wantAtQPS {
				t.Errorf("ticket requests QPS received for one user request = %d, want %d", n, wantAtQPS)
			}

			if err := fe.sim.SetQPSFault(qliksim.FaultNone); err != nil {
				t.Fatal(err)
			}
			fe.wantHub(t, user, "after the fault cleared")
			if c := fe.sim.Counts(`ACME\` + user); c.SessionsCreated != 1 || c.LiveSessions != 1 {
				t.Errorf("after recovery: %+v, want 1 login and 1 live session", c)
			}
			fe.wantHub(t, "warm", "after the fault cleared")
			fe.noLeaks(t, snapshot)
		})
	}
	if n := fe.sim.Counts(`ACME\warm`).SessionsCreated; n != 1 {
		t.Errorf("logins of the user with a session = %d, want 1: the faults did not touch it", n)
	}
}

// The same failure, as a browser navigation and as a websocket upgrade:
// an HTML page with the request id, and a refused handshake with the
// status and Retry-After.
func TestFaultQPSTransientBrowserAndWebsocket(t *testing.T) {
	fe := newFaultEnv(t, envConfig{})
	fe.sim.SetQPSFault(qliksim.Fault5xx)
	resp, body := fe.get(t, "alice", "/hub/", "Accept", "text/html,application/xhtml+xml")
	id := resp.Header.Get(HeaderRequestID)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || id == "" || !strings.Contains(body, id) {
		t.Errorf("browser navigation with QPS failing = %d (Retry-After %q, %s) %q, want an HTML 503 page with Retry-After and request id %q",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), body, id)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(fe.front.URL, "http")+"/app/engineData", http.Header{"X-Forwarded-User": {"alice"}, "Origin": {fe.front.URL}})
	if c != nil {
		c.Close()
		t.Fatal("websocket upgrade with QPS failing succeeded, want it refused")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get(HeaderRequestID) == "" {
		t.Errorf("websocket upgrade with QPS failing: %v %+v, want 503 with Retry-After and a request id", err, resp)
	}
}

// Misconfiguration: sensegate does not trust Qlik's server certificate
// (qlik.ca is another site's root). 502 without Retry-After, one ticket
// attempt (retrying cannot help), an operator message in the log.
func TestFaultWrongServerCertificate(t *testing.T) {
	other, err := qliksim.WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := other.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	fe := newFaultEnv(t, envConfig{tickets: ticket.Config{RootCAs: roots}})
	snapshot := fe.startLeakCheck()
	fe.wantHandshakeRefused(t, "when Qlik's certificate is not trusted")
	if fe.logs.FilterMessage("qlik request failed").FilterFieldKey("error").Filter(func(e observer.LoggedEntry) bool {
		return strings.Contains(fmt.Sprint(e.ContextMap()["error"]), "qlik.ca")
	}).Len() == 0 {
		t.Error("no log entry names qlik.ca, want the operator told what to fix")
	}
	fe.noLeaks(t, snapshot)
}

// Misconfiguration: QPS refuses sensegate's client certificate, whether
// it is another site's (from the start) or the site stopped trusting it
// (FaultCertRejected, e.g. its certificates were regenerated). 502
// without Retry-After after one attempt; users with a session go on.
func TestFaultClientCertificateRejected(t *testing.T) {
	t.Run("another site's", func(t *testing.T) {
		other, err := qliksim.WriteCerts(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ticket.LoadClientCert(other.Client, other.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		fe := newFaultEnv(t, envConfig{tickets: ticket.Config{ClientCert: cert}})
		snapshot := fe.startLeakCheck()
		resp, body := fe.get(t, "alice", "/hub/")
		wantError(t, "GET /hub/ with a client certificate QPS does not trust", resp, body, http.StatusBadGateway)
		if n := fe.failedAttempts("alice"); n != 1 {
			t.Errorf("ticket attempts = %d, want 1 (no retry on a refused certificate)", n)
		}
		fe.noLeaks(t, snapshot)
	})
	t.Run("no longer trusted", func(t *testing.T) {
		fe := newFaultEnv(t, envConfig{})
		fe.wantHub(t, "warm", "before the fault")
		snapshot := fe.startLeakCheck()
		fe.sim.SetQPSFault(qliksim.FaultCertRejected)
		fe.wantHub(t, "warm", "with QPS refusing the certificate, with a session")
		fe.wantHandshakeRefused(t, "with QPS refusing the certificate")
		fe.sim.SetQPSFault(qliksim.FaultNone)
		fe.wantHub(t, "alice", "once QPS trusts the certificate again")
		fe.noLeaks(t, snapshot)
	})
}

// Qlik restarting several times while users keep sending requests: every
// request succeeds (the one that meets a restart is replayed on a new
// session), and each user logs in once more per restart. Each restart
// waits until every user has had a request succeed since the previous
// one, so that no request can meet two restarts (its replay would then
// get 502: a request is replayed once).
func TestFaultQlikRestartsUnderLoad(t *testing.T) {
	fe := newFaultEnv(t, envConfig{tickets: ticket.Config{Timeout: 10 * time.Second}})
	const users, restarts = 12, 3
	snapshot := fe.startLeakCheck()
	var (
		gen      atomic.Int64 // restarts so far
		seen     [users]atomic.Int64
		requests atomic.Int64
		failures atomic.Int64
		progress = make(chan struct{}, 1)
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	notify := func() {
		select {
		case progress <- struct{}{}:
		default:
		}
	}
	const task = "7b9c2d3e-0003-4f2a-8e4b-000000000003" // a reload task everyone sees
	for i := range users {
		seen[i].Store(-1) // no success yet
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprint("load", i)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				g := gen.Load()
				method, path := "GET", "/hub/"
				if n%2 == 1 {
					method, path = "POST", "/qrs/task/"+task+"/start?xrfkey="+xrf
				}
				req, _ := http.NewRequest(method, fe.front.URL+path, nil)
				req.Header.Set("X-Forwarded-User", user)
				req.Header.Set("X-Qlik-Xrfkey", xrf)
				resp, err := fe.client.Do(req)
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					notify()
					t.Errorf("%s %s as %s: %v", method, path, user, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					failures.Add(1)
					notify()
					t.Errorf("%s %s as %s = %d %q, want success", method, path, user, resp.StatusCode, body)
					return
				}
				if seen[i].Load() < g {
					seen[i].Store(g)
					notify()
				}
			}
		}()
	}
	allSeen := func(g int64) bool {
		for i := range seen {
			if seen[i].Load() < g {
				return false
			}
		}
		return true
	}
	deadline := time.After(30 * time.Second)
	for k := int64(0); k <= restarts; k++ {
		for !allSeen(k) && failures.Load() == 0 {
			select {
			case <-progress:
			case <-deadline:
				t.Fatalf("users stopped succeeding after %d restarts", k)
			}
		}
		if failures.Load() != 0 {
			break
		}
		if k < restarts {
			fe.sim.ExpireAll()
			gen.Store(k + 1)
		}
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failures.Load(), requests.Load())
	}
	for i := range users {
		u := fmt.Sprintf(`ACME\load%d`, i)
		// One login, then one per restart; a ticket request retried
		// after a slow answer may add a ticket that expires unused.
		c := fe.sim.Counts(u)
		if c.SessionsCreated != 1+restarts || c.LiveSessions != 1 || c.TicketsIssued > (1+restarts)*(1+faultRetries) {
			t.Errorf("%s: %+v, want %d logins (one, then one per restart), 1 live session, at most %d tickets", u, c, 1+restarts, (1+restarts)*(1+faultRetries))
		}
	}
	t.Logf("%d requests over %d restarts", requests.Load(), restarts)
	fe.noLeaks(t, snapshot)
}

// Redis down and back. While it is down, a user whose session the
// replica read within store.local_cache_ttl goes on from the local cache;
// everyone else gets 503 with Retry-After, and QPS is not called (no
// login without the store, which keeps one login per user across
// replicas). Once Redis is back (empty: it lost the sessions) requests
// succeed again, each user logging in once more, with no restart.
func TestFaultRedisDownAndBack(t *testing.T) {
	rdb := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := session.DialRedis(ctx, session.RedisConfig{Addr: rdb.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	clock := fakeclock.New()
	const localTTL = time.Second
	jar, err := session.NewRedis(rc, session.RedisOptions{Prefix: rdb.Prefix(), Keys: [][]byte{key}, Idle: 30 * time.Minute, LocalTTL: localTTL, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	fe := newFaultEnv(t, envConfig{jars: []session.Store{jar}, tickets: ticket.Config{Timeout: 10 * time.Second}})
	fe.wantHub(t, "alice", "before the outage")
	fe.wantHub(t, "alice", "before the outage, again") // read from Redis: now in the local cache
	snapshot := fe.startLeakCheck()

	rdb.Stop()
	fe.wantHub(t, "alice", "Redis down, session in the local cache")
	seq := lastEvent(fe.sim)
	start := time.Now()
	resp, body := fe.get(t, "bob", "/hub/")
	wantError(t, "GET /hub/ as a new user with Redis down", resp, body, http.StatusServiceUnavailable)
	if took := time.Since(start); took > time.Second {
		t.Errorf("the 503 with Redis down took %s, want it within 1s (a few refused dials)", took)
	}
	clock.Advance(localTTL + time.Millisecond)
	resp, body = fe.get(t, "alice", "/hub/")
	wantError(t, "GET /hub/ with Redis down, local cache expired", resp, body, http.StatusServiceUnavailable)
	if n := qpsTicketCalls(fe.sim, seq); n != 0 {
		t.Errorf("ticket requests at QPS with Redis down = %d, want 0", n)
	}

	rdb.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := fe.get(t, "alice", "/hub/")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /hub/ as alice 10s after Redis came back = %d %q, want 200", resp.StatusCode, body)
		}
		wantError(t, "GET /hub/ while Redis comes back", resp, body, http.StatusServiceUnavailable)
		time.Sleep(20 * time.Millisecond)
	}
	fe.wantHub(t, "bob", "after Redis came back")
	for user, want := range map[string]int{`ACME\alice`: 2, `ACME\bob`: 1} {
		if n := fe.sim.Counts(user).SessionsCreated; n != want {
			t.Errorf("logins of %s = %d, want %d (Redis came back empty)", user, n, want)
		}
	}
	// The restarted redis-server's process is the test's, not a leak.
	fe.noLeaks(t, goleak.IgnoreAnyFunction("github.com/sensegate/sensegate/tooling/redistest.startOn.func1"),
		goleak.IgnoreAnyFunction("os/exec.(*Cmd).writerDescriptor.func1"), snapshot)
}

// Repeating the faults many times does not grow the heap: nothing is kept
// per failed login. The bound is generous (GC and pools vary), but a
// connection, buffer or goroutine kept per failed request exceeds it.
func TestFaultsKeepNoMemory(t *testing.T) {
	fe := newFaultEnv(t, envConfig{log: zap.NewNop(), tickets: ticket.Config{Timeout: 10 * time.Second}},
		func(c *qliksim.Config, _ *Options) { c.MaxEvents = 64 })
	faults := []qliksim.QPSFault{qliksim.Fault5xx, qliksim.FaultClose, qliksim.FaultBadJSON, qliksim.FaultDown}
	round := func() {
		for i, f := range faults {
			if err := fe.sim.SetQPSFault(f); err != nil {
				t.Fatal(err)
			}
			user := fmt.Sprint("mem", i%2)
			resp, body := fe.get(t, user, "/hub/")
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("GET /hub/ with fault %s = %d %q, want 503", f, resp.StatusCode, body)
			}
		}
	}
	heap := func() (uint64, int) {
		fe.closeIdle()
		runtime.GC()
		runtime.GC() // the second frees what sync.Pools let go in the first
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse, runtime.NumGoroutine()
	}
	for range 5 { // warm up: pools, connection state, the event log
		round()
	}
	h0, g0 := heap()
	const rounds = 25
	for range rounds {
		round()
	}
	h1, g1 := heap()
	const bound = 1 << 20 // 10 KiB per failed request; a steady run grows by a few KiB in all
	t.Logf("heap in use %d → %d KiB, goroutines %d → %d, after %d failed requests", h0>>10, h1>>10, g0, g1, rounds*len(faults))
	if h1 > h0+bound {
		t.Errorf("heap in use grew by %d KiB over %d failed requests, want under %d KiB", (h1-h0)>>10, rounds*len(faults), bound>>10)
	}
	fe.sim.SetQPSFault(qliksim.FaultNone)
	fe.wantHub(t, "mem0", "after the fault loop")
}

// wantHandshakeRefused asks for the hub as alice, who has no session,
// while the TLS handshake with QPS fails (what says why): 502, after one
// ticket attempt (a certificate error is not retried) that never reached
// QPS.
func (fe *faultEnv) wantHandshakeRefused(t *testing.T, what string) {
	t.Helper()
	seq := lastEvent(fe.sim)
	resp, body := fe.get(t, "alice", "/hub/")
	wantError(t, "GET /hub/ "+what, resp, body, http.StatusBadGateway)
	if n := fe.failedAttempts("alice"); n != 1 {
		t.Errorf("ticket attempts = %d, want 1 (no retry on a certificate error)", n)
	}
	if n := qpsTicketCalls(fe.sim, seq); n != 0 {
		t.Errorf("ticket requests at QPS = %d, want 0 (the handshake fails)", n)
	}
}
