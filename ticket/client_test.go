package ticket

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

func TestLoginTicketDefaultVirtualProxy(t *testing.T) {
	sim, c, logs := simClient(t, nil, nil)

	cookie := mustLogin(t, c, alice)
	if cookie.Name != "X-Qlik-Session" || cookie.Value == "" {
		t.Fatalf("Login cookie = %q (value empty: %t), want X-Qlik-Session with a value", cookie.Name, cookie.Value == "")
	}
	status, body := get(t, sim, "/hub/", &http.Cookie{Name: cookie.Name, Value: cookie.Value})
	if status != http.StatusOK || !strings.Contains(body, `ACME\alice`) {
		t.Errorf("GET /hub/ with the cookie = %d %q, want 200 signed in as ACME\\alice", status, body)
	}
	got := sim.Counts(`ACME\alice`)
	if got.TicketsIssued != 1 || got.TicketsRedeemed != 1 || got.SessionsCreated != 1 {
		t.Errorf("sim counts after one Login = %+v, want exactly 1 ticket issued, redeemed and session created", got)
	}
	if n := sim.TicketsIssued(); n != 1 {
		t.Errorf("TicketsIssued = %d, want 1", n)
	}
	assertNoSecrets(t, logs, nil, cookie.Value)
	if countMsg(logs, "qlik login") != 1 {
		t.Errorf("want one \"qlik login\" log entry, got %d", countMsg(logs, "qlik login"))
	}
}

func TestLoginAttributesReachQlik(t *testing.T) {
	sim, c, _ := simClient(t, nil, nil)
	// alice is seeded in Sales only; the ticket attribute adds Finance.
	u := identity.User{Directory: "ACME", ID: "alice", Attributes: []identity.Attribute{{Key: "Group", Value: "Finance"}, {Key: "Email", Value: ""}}}
	cookie := mustLogin(t, c, u)
	sessions := sim.Sessions()
	if len(sessions) != 1 {
		t.Fatalf("sim sessions = %d, want 1", len(sessions))
	}
	want := []qliksim.Attribute{{Key: "Group", Value: "Finance"}, {Key: "Email", Value: ""}}
	if got := sessions[0].Attributes; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("session attributes = %v, want %v", got, want)
	}
	const key = "abcdefghij012345"
	status, body := get(t, sim, "/qrs/app?xrfkey="+key, cookie, "X-Qlik-Xrfkey", key)
	if status != http.StatusOK || !strings.Contains(body, "Finance Overview") || !strings.Contains(body, "Sales Dashboard") {
		t.Errorf("QRS apps for alice with Group=Finance = %d %s, want Sales Dashboard and Finance Overview", status, body)
	}
}

func TestLoginTicketPrefixedVirtualProxy(t *testing.T) {
	sim := newSim(t, nil)
	c, _ := newClient(t, simConfig(t, sim, "ticket", "X-Qlik-Session-ticket"), nil)
	cookie := mustLogin(t, c, identity.User{Directory: "ACME", ID: "bob"})
	if cookie.Name != "X-Qlik-Session-ticket" {
		t.Errorf("cookie name = %q, want X-Qlik-Session-ticket", cookie.Name)
	}
	if status, body := get(t, sim, "/ticket/hub/", cookie); status != http.StatusOK || !strings.Contains(body, `ACME\bob`) {
		t.Errorf("GET /ticket/hub/ = %d %q, want 200 as ACME\\bob", status, body)
	}
	if s := sim.Sessions(); len(s) != 1 || s[0].Prefix != "ticket" {
		t.Errorf("sim sessions = %+v, want one on prefix ticket", s)
	}
}

func TestLoginSessionMode(t *testing.T) {
	sim, c, logs := simClient(t, nil, func(cfg *Config) { cfg.Mode = ModeSession })
	cookie := mustLogin(t, c, alice)
	if cookie.Name != "X-Qlik-Session" || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(cookie.Value) {
		t.Errorf("cookie = %s=<%d chars>, want X-Qlik-Session with 32 hex chars (128 bits)", cookie.Name, len(cookie.Value))
	}
	s := sim.Sessions()
	if len(s) != 1 || s[0].ID != cookie.Value || s[0].User.String() != `ACME\alice` {
		t.Fatalf("sim sessions = %+v, want one for ACME\\alice with the cookie's id", s)
	}
	if status, body := get(t, sim, "/hub/", cookie); status != http.StatusOK || !strings.Contains(body, `ACME\alice`) {
		t.Errorf("GET /hub/ = %d %q, want 200", status, body)
	}
	if n := sim.TicketsIssued(); n != 0 {
		t.Errorf("TicketsIssued in session mode = %d, want 0", n)
	}
	// A second login gets a different id.
	cookie2 := mustLogin(t, c, alice)
	if cookie2.Value == cookie.Value {
		t.Error("two session-mode logins got the same id")
	}
	assertNoSecrets(t, logs, nil, cookie.Value, cookie2.Value)
}

func TestRedeemCookieNameMismatch(t *testing.T) {
	sim, c, logs := simClient(t, func(c *qliksim.Config) { c.ProxyHTTP = true }, nil)
	_, err := c.Login(context.Background(), alice)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrRejected) || e.Temporary {
		t.Fatalf("Login with the wrong cookie name = %v, want a non-temporary ErrRejected *Error", err)
	}
	for _, want := range []string{`"X-Qlik-Session"`, `"X-Qlik-Session-HTTP"`, "-HTTP"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if e.Attempts != 1 {
		t.Errorf("attempts = %d, want 1 (a presented ticket is not retried)", e.Attempts)
	}
	// The redemption did create a session, under the cookie name Qlik
	// uses: Login ends it, so that it does not count toward the user's
	// parallel sessions until it times out.
	if n := sim.Counts(alice.String()).SessionsCreated; n != 1 {
		t.Fatalf("sim sessions created = %d, want 1 (the ticket did create one)", n)
	}
	if s := sim.Sessions(); len(s) != 0 {
		t.Errorf("sim sessions after the failed login = %+v, want none (ended at QPS)", s)
	}
	var ids []string
	for _, ev := range sim.Events(0) {
		if ev.SessionID != "" {
			ids = append(ids, ev.SessionID)
		}
	}
	if len(ids) == 0 {
		t.Fatal("no event names the session")
	}
	assertNoSecrets(t, logs, []string{err.Error()}, ids...)
}

func TestUnknownPrefix(t *testing.T) {
	sim := newSim(t, nil)
	c, _ := newClient(t, simConfig(t, sim, "nope", "X-Qlik-Session-nope"), nil)
	_, err := c.Login(context.Background(), alice)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || !errors.Is(err, ErrRejected) {
		t.Fatalf("Login on unknown prefix = %v, want ErrRejected with status 404", err)
	}
	if !strings.Contains(err.Error(), `prefix "nope"`) || e.Attempts != 1 || e.Op != "ticket" {
		t.Errorf("error = %q (attempts %d, op %s), want it to name prefix \"nope\" after 1 attempt of op ticket", err, e.Attempts, e.Op)
	}
	if !e.Permanent() {
		t.Error("Permanent = false, want true: only an operator can fix a wrong prefix")
	}
}

func TestTLSErrors(t *testing.T) {
	sim := newSim(t, nil)
	other := otherExport(t)
	foreignCert, err := LoadClientCert(other.Client, other.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	foreignCA, err := other.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"client certificate of another site", func(c *Config) { c.ClientCert = foreignCert }, []string{"client_cert", "client_key"}},
		{"root of another site", func(c *Config) { c.RootCAs = foreignCA }, []string{"qlik.ca", "unknown authority"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := simConfig(t, sim, "", "X-Qlik-Session")
			tt.mutate(&cfg)
			c, _ := newClient(t, cfg, nil)
			_, err := c.Ticket(context.Background(), alice)
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrRejected) || e.Temporary || !e.Permanent() || e.Attempts != 1 {
				t.Fatalf("Ticket = %v, want a permanent ErrRejected after 1 attempt", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRetriesOnQPS5xx(t *testing.T) {
	sim, c, logs := simClient(t, nil, func(cfg *Config) { cfg.Retries = 2 })
	sim.SetQPSFault(qliksim.Fault5xx)
	_, err := c.Login(context.Background(), alice)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnavailable) || !e.Temporary || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("Login with QPS answering 503 = %v, want temporary ErrUnavailable with status 503", err)
	}
	if e.Attempts != 3 || countMsg(logs, "qlik request failed") != 3 {
		t.Errorf("attempts = %d, failed-attempt log entries = %d, want 3 (Retries+1)", e.Attempts, countMsg(logs, "qlik request failed"))
	}
	if e.Permanent() {
		t.Error("Permanent = true, want false: a failing QPS may recover")
	}
	sim.SetQPSFault(qliksim.FaultNone)
	if _, err := c.Login(context.Background(), alice); err != nil {
		t.Errorf("Login after the fault cleared: %v", err)
	}
}

// Issue 17: Retries 0 meant DefaultRetries, while qlik.qps.retries: 0
// meant none. Now Retries is what the key is: 0 a single attempt, n that
// many more after a temporary failure.
func TestRetriesCountsExtraAttempts(t *testing.T) {
	for _, retries := range []int{0, 1, DefaultRetries} {
		t.Run(strconv.Itoa(retries), func(t *testing.T) {
			cfg, n := unavailableQPS(t)
			cfg.Retries = retries
			c, _ := newClient(t, cfg, nil)
			_, err := c.Ticket(context.Background(), alice)
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrUnavailable) || e.Attempts != 1+retries || n.get() != 1+retries {
				t.Errorf("Ticket with Retries %d against a QPS answering 503 = %v after %d requests, want ErrUnavailable after %d", retries, err, n.get(), 1+retries)
			}
		})
	}
}

func TestRetry503ThenSuccess(t *testing.T) {
	var n counter
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		if n.inc() <= 2 {
			http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"UserDirectory":"ACME","UserId":"alice","Attributes":[],"Ticket":"swiaZulzKHlfJfzr","TargetUri":null}`)
	})
	cfg.Retries = 2
	c, _ := newClient(t, cfg, nil)
	tk, err := c.Ticket(context.Background(), alice)
	if err != nil || tk != "swiaZulzKHlfJfzr" {
		t.Fatalf("Ticket = %q, %v; want the ticket on the 3rd attempt", tk, err)
	}
	if n.get() != 3 {
		t.Errorf("requests = %d, want 3", n.get())
	}
}

func TestNoRetryOn400(t *testing.T) {
	sim, c, _ := simClient(t, nil, func(cfg *Config) { cfg.Retries = 3 })
	// QPS refuses an attribute with an empty key.
	u := identity.User{Directory: "ACME", ID: "alice", Attributes: []identity.Attribute{{Key: "", Value: "x"}}}
	_, err := c.Ticket(context.Background(), u)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Temporary || e.Attempts != 1 {
		t.Fatalf("Ticket = %v, want a non-temporary 400 after 1 attempt", err)
	}
	if !strings.Contains(err.Error(), "attribute key must not be empty") {
		t.Errorf("error %q does not quote QPS's reason", err)
	}
	if qps := qpsCalls(sim); qps != 1 {
		t.Errorf("QPS requests seen by the simulator = %d, want 1", qps)
	}
}

func TestTimeoutOnHang(t *testing.T) {
	sim, c, _ := simClient(t, nil, func(cfg *Config) { cfg.Timeout = 200 * time.Millisecond; cfg.Retries = 1 })
	sim.SetQPSFault(qliksim.FaultHang)
	start := time.Now()
	_, err := c.Ticket(context.Background(), alice)
	elapsed := time.Since(start)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTimeout) || !e.Temporary || e.Attempts != 2 {
		t.Fatalf("Ticket on a hanging QPS = %v, want a temporary ErrTimeout after 2 attempts", err)
	}
	if elapsed < 400*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("Ticket took %s, want about 2×200ms", elapsed)
	}
	if !strings.Contains(err.Error(), "200ms") || e.Permanent() {
		t.Errorf("error %q (permanent %t): want the timeout named, and not permanent", err, e.Permanent())
	}
	sim.SetQPSFault(qliksim.FaultNone)
}

func TestRetriesOnClosedConnection(t *testing.T) {
	sim, c, _ := simClient(t, nil, func(cfg *Config) { cfg.Retries = 2 })
	sim.SetQPSFault(qliksim.FaultClose)
	_, err := c.Ticket(context.Background(), alice)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnreachable) || !e.Temporary || e.Attempts != 3 || e.Status != 0 {
		t.Fatalf("Ticket on a closing QPS = %v, want a temporary ErrUnreachable without status after 3 attempts", err)
	}
	if e.Permanent() {
		t.Error("Permanent = true, want false: an unreachable QPS may come back")
	}
}

// A success whose body is not JSON is a passing failure: retried, then
// reported as ErrUnavailable.
func TestRetriesOnBadJSON(t *testing.T) {
	sim, c, _ := simClient(t, nil, func(cfg *Config) { cfg.Retries = 1 })
	sim.SetQPSFault(qliksim.FaultBadJSON)
	_, err := c.Login(context.Background(), alice)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnavailable) || !e.Temporary || e.Permanent() || e.Attempts != 2 || e.Status != http.StatusCreated {
		t.Fatalf("Login on QPS answering bad JSON = %v, want a temporary ErrUnavailable with status 201 after 2 attempts", err)
	}
	if calls := qpsCalls(sim); calls != 2 {
		t.Errorf("QPS calls seen by the simulator = %d, want 2 (Retries+1)", calls)
	}
	sim.SetQPSFault(qliksim.FaultNone)
	if _, err := c.Login(context.Background(), alice); err != nil {
		t.Errorf("Login after the fault cleared: %v", err)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	cfg, n := unavailableQPS(t)
	cfg.Backoff = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting := make(chan struct{}, 1)
	c, _ := newClient(t, cfg, func(e zapcore.Entry) {
		if e.Message == "qlik request failed" {
			select {
			case waiting <- struct{}{}:
			default:
			}
		}
	})
	done := make(chan error, 1)
	go func() { _, err := c.Ticket(ctx, alice); done <- err }()
	<-waiting // the first attempt failed; Ticket now waits to retry
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Ticket cancelled during backoff = %v, want context.Canceled", err)
		}
		if !strings.Contains(err.Error(), "503") {
			t.Errorf("error %q does not report the last failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ticket did not return after its context was cancelled")
	}
	if n.get() != 1 {
		t.Errorf("requests = %d, want 1", n.get())
	}
}

func TestDeadlineShorterThanBackoff(t *testing.T) {
	cfg, n := unavailableQPS(t)
	cfg.Backoff = time.Hour
	c, _ := newClient(t, cfg, nil)
	// The first retry would wait at least maxBackoff/2 (15s).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Ticket(ctx, alice)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Ticket took %s, want it to give up at once", d)
	}
	// No time for a retry: the real error comes back at once.
	if !errors.Is(err, ErrUnavailable) || n.get() != 1 {
		t.Errorf("Ticket = %v after %d requests, want ErrUnavailable after 1", err, n.get())
	}
}

func TestXrfkey(t *testing.T) {
	var (
		mu   sync.Mutex
		keys []string
	)
	alnum16 := regexp.MustCompile(`^[0-9a-zA-Z]{16}$`)
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		q, h := r.URL.Query().Get("xrfkey"), r.Header.Get("X-Qlik-Xrfkey")
		if q != h || !alnum16.MatchString(q) || r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost || r.URL.Path != "/qps/ticket" {
			t.Errorf("request %s %s: xrfkey %q, header %q, content type %q: want a matching 16-char alphanumeric pair and JSON POST to /qps/ticket", r.Method, r.URL.Path, q, h, r.Header.Get("Content-Type"))
			http.Error(w, "XSRF prevention check failed. Possible XSRF discovered.", http.StatusForbidden)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["UserDirectory"] != "ACME" || body["UserId"] != "alice" {
			t.Errorf("body = %v (%v), want UserDirectory ACME and UserId alice", body, err)
		}
		if a, ok := body["Attributes"].([]any); !ok || len(a) != 0 {
			t.Errorf("Attributes = %#v, want an empty array", body["Attributes"])
		}
		mu.Lock()
		keys = append(keys, q)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Ticket":"t1"}`) // 200 is accepted as well as 201
	})
	c, _ := newClient(t, cfg, nil)
	for range 2 {
		if _, err := c.Ticket(context.Background(), alice); err != nil {
			t.Fatalf("Ticket: %v", err)
		}
	}
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Errorf("xrfkeys = %q, want two different keys", keys)
	}
}

func TestQPSStatusMessages(t *testing.T) {
	long := strings.Repeat("x", 500)
	tests := []struct {
		name   string
		status int
		body   string
		kind   error
		want   string
	}{
		{"xsrf", 403, "XSRF prevention check failed. Possible XSRF discovered.", ErrRejected, "Xrfkey check failed"},
		{"forbidden", 403, "Forbidden", ErrRejected, "QPS refused the client certificate or the user"},
		{"too many sessions", 403, "You cannot access Qlik Sense because you have too many sessions active in parallel.", ErrTooManySessions, "too many sessions"},
		{"not found", 404, "Not found", ErrRejected, `unknown virtual proxy prefix "vp"`},
		{"bad request", 400, "UserId must not be empty", ErrRejected, `"UserId must not be empty"`},
		{"bad request truncated", 400, long, ErrRejected, strings.Repeat("x", 200) + "…"},
		{"server error", 500, "boom", ErrUnavailable, "QPS answered 500"},
		{"empty ticket", 201, `{"Ticket":""}`, ErrRejected, "without a Ticket"},
		{"not json", 201, `<html>`, ErrUnavailable, "not a ticket"},
		{"cut off", 201, `{"UserDirectory":"ACME","Tick`, ErrUnavailable, "QPS answered 201 with a body that is not a ticket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			cfg.Prefix = "vp"
			cfg.Retries = 0
			c, _ := newClient(t, cfg, nil)
			_, err := c.Ticket(context.Background(), alice)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ticket = %v, want %v mentioning %q", err, tt.kind, tt.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("x", 201)) {
				t.Errorf("error quotes more than 200 bytes of the body: %d bytes", len(err.Error()))
			}
		})
	}
}

func TestRedeemRefusedAndNoSecrets(t *testing.T) {
	sim, c, logs := simClient(t, nil, nil)
	ctx := context.Background()
	tk, err := c.Ticket(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := c.Redeem(ctx, tk)
	if err != nil {
		t.Fatal(err)
	}
	// A ticket is single-use: the second redemption is refused.
	_, err = c.Redeem(ctx, tk)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTicketRefused) || e.Status != http.StatusFound || e.Attempts != 1 {
		t.Fatalf("second Redeem = %v, want ErrTicketRefused (302) after 1 attempt", err)
	}
	refused := err.Error()
	// A ticket of another virtual proxy is refused too.
	other, _ := newClient(t, simConfig(t, sim, "ticket", "X-Qlik-Session-ticket"), nil)
	tk2, err := other.Ticket(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	_, err2 := c.Redeem(ctx, tk2)
	if !errors.Is(err2, ErrTicketRefused) {
		t.Errorf("Redeem of another virtual proxy's ticket = %v, want ErrTicketRefused", err2)
	}
	if logs.Len() == 0 {
		t.Fatal("no log entries captured")
	}
	assertNoSecrets(t, logs, []string{refused, err2.Error()}, tk, tk2, cookie.Value)
}

func TestRedeemNotRetriedOnceSent(t *testing.T) {
	tests := []struct {
		name string
		h    http.HandlerFunc
		kind error
	}{
		{"5xx", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }, ErrUnavailable},
		{"connection closed", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }, ErrUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n counter
			_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
				n.inc()
				if r.URL.Query().Get("qlikTicket") != "T1CKET" || r.URL.Path != "/vp/resources/autogenerated/qlik-styles.css" {
					t.Errorf("redeem request %s?%s, want the ticket on the redeem path under the prefix", r.URL.Path, r.URL.RawQuery)
				}
				tt.h(w, r)
			})
			cfg.Prefix = "vp"
			cfg.Retries = 3
			c, logs := newClient(t, cfg, nil)
			_, err := c.Redeem(context.Background(), "T1CKET")
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tt.kind) || e.Attempts != 1 || n.get() != 1 {
				t.Fatalf("Redeem = %v after %d requests, want %v after exactly 1", err, n.get(), tt.kind)
			}
			assertNoSecrets(t, logs, []string{err.Error()}, "T1CKET")
		})
	}
}

func TestRedeemRetriedWhenNeverSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {})
	cfg.ProxyURL = mustURL(t, "https://"+addr)
	cfg.Retries = 2
	c, logs := newClient(t, cfg, nil)
	_, err = c.Redeem(context.Background(), "T1CKET")
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnreachable) || e.Attempts != 3 {
		t.Fatalf("Redeem on a closed port = %v, want ErrUnreachable after 3 attempts", err)
	}
	assertNoSecrets(t, logs, []string{err.Error()}, "T1CKET")
}

func TestRedeemCookieWithRedirect(t *testing.T) {
	// Qlik may redirect after a successful redemption; the cookie counts.
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "other", Value: "x"})
		http.SetCookie(w, &http.Cookie{Name: "X-Qlik-Session", Value: "sess-1", Path: "/", HttpOnly: true, Secure: true})
		http.Redirect(w, r, "/resources/autogenerated/qlik-styles.css", http.StatusFound)
	})
	c, _ := newClient(t, cfg, nil)
	cookie, err := c.Redeem(context.Background(), "T1CKET")
	if err != nil || cookie.Name != "X-Qlik-Session" || cookie.Value != "sess-1" || !cookie.HttpOnly || cookie.Raw != "" {
		t.Fatalf("Redeem = %+v, %v; want the X-Qlik-Session cookie", cookie, err)
	}
}

func TestRedeemNoCookies(t *testing.T) {
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "body") })
	c, _ := newClient(t, cfg, nil)
	_, err := c.Redeem(context.Background(), "T1CKET")
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "without setting any cookie") {
		t.Errorf("Redeem = %v, want ErrRejected saying no cookie was set", err)
	}
}

func TestCreateSessionConflictOnRetryIsSuccess(t *testing.T) {
	var n counter
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if n.inc() == 1 {
			panic(http.ErrAbortHandler) // the session was created, the answer lost
		}
		http.Error(w, `session id "x" is already in use`, http.StatusConflict)
	})
	c, _ := newClient(t, cfg, nil)
	if err := c.CreateSession(context.Background(), alice, "0123456789abcdef0123456789abcdef"); err != nil {
		t.Errorf("CreateSession = %v, want success (409 on a retry)", err)
	}
	// A 409 on the first attempt is a real conflict; its body (which
	// quotes the id) is not repeated.
	err := c.CreateSession(context.Background(), alice, "0123456789abcdef0123456789abcdef")
	if !errors.Is(err, ErrRejected) || strings.Contains(err.Error(), "0123456789abcdef") {
		t.Errorf("CreateSession with a used id = %v, want ErrRejected without the id", err)
	}
}

func TestLogout(t *testing.T) {
	sim, c, _ := simClient(t, nil, nil)
	ctx := context.Background()
	var cookies []*http.Cookie
	for range 2 {
		k := mustLogin(t, c, alice)
		cookies = append(cookies, k)
	}
	if _, err := c.Login(ctx, identity.User{Directory: "ACME", ID: "bob"}); err != nil {
		t.Fatal(err)
	}
	n, err := c.Logout(ctx, alice)
	if err != nil || n != 2 {
		t.Fatalf("Logout = %d, %v; want 2 sessions ended", n, err)
	}
	if live := sim.Counts(`ACME\alice`).LiveSessions; live != 0 {
		t.Errorf("alice's live sessions after Logout = %d, want 0", live)
	}
	if live := sim.Counts(`ACME\bob`).LiveSessions; live != 1 {
		t.Errorf("bob's live sessions after alice's Logout = %d, want 1", live)
	}
	if status, _ := get(t, sim, "/hub/", cookies[0]); status == http.StatusOK {
		t.Error("the cookie still works after Logout")
	}
	if n, err := c.Logout(ctx, alice); err != nil || n != 0 {
		t.Errorf("second Logout = %d, %v; want 0, nil", n, err)
	}
}

func TestLogoutEscapesPath(t *testing.T) {
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		if got, want := r.URL.EscapedPath(), "/qps/vp/user/ACME/a%2Fb%20c"; got != want || r.Method != http.MethodDelete {
			t.Errorf("Logout request %s %s, want DELETE %s", r.Method, got, want)
		}
		io.WriteString(w, `[{"userDirectory":"ACME","userId":"a/b c","sessionId":"s"}]`)
	})
	cfg.Prefix = "vp"
	c, _ := newClient(t, cfg, nil)
	if n, err := c.Logout(context.Background(), identity.User{Directory: "ACME", ID: "a/b c"}); err != nil || n != 1 {
		t.Errorf("Logout = %d, %v; want 1, nil", n, err)
	}
}

func TestInvalidUser(t *testing.T) {
	var n counter
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) { n.inc() })
	c, _ := newClient(t, cfg, nil)
	_, err := c.Login(context.Background(), identity.User{Directory: `AC\ME`, ID: "alice"})
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "backslash") || n.get() != 0 {
		t.Errorf("Login of an invalid user = %v after %d requests, want ErrRejected naming the backslash, no request", err, n.get())
	}
}

func TestPing(t *testing.T) {
	sim := newSim(t, nil)
	c, _ := newClient(t, simConfig(t, sim, "ticket", "X-Qlik-Session-ticket"), nil)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	sim.SetQPSFault(qliksim.Fault5xx)
	err := c.Ping(ctx)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnavailable) || e.Attempts != 1 {
		t.Errorf("Ping with QPS answering 503 = %v, want ErrUnavailable after 1 attempt", err)
	}
	sim.SetQPSFault(qliksim.FaultNone)

	bad, _ := newClient(t, simConfig(t, sim, "nope", "X-Qlik-Session-nope"), nil)
	if err := bad.Ping(ctx); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("Ping on an unknown prefix = %v, want an error naming it", err)
	}
	if n := len(sim.Sessions()); n != 0 {
		t.Errorf("Ping created %d sessions", n)
	}
}

func TestTooManySessions(t *testing.T) {
	for _, mode := range []Mode{ModeTicket, ModeSession} {
		t.Run(mode.String(), func(t *testing.T) {
			_, c, _ := simClient(t, nil, func(cfg *Config) { cfg.Mode = mode })
			for i := range qliksim.MaxParallelSessions {
				if _, err := c.Login(context.Background(), alice); err != nil {
					t.Fatalf("Login %d: %v", i+1, err)
				}
			}
			_, err := c.Login(context.Background(), alice)
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, ErrTooManySessions) || e.Status != http.StatusForbidden || e.Temporary {
				t.Fatalf("Login beyond the parallel-session cap = %v, want ErrTooManySessions (403)", err)
			}
			if n, err := c.Logout(context.Background(), alice); err != nil || n != qliksim.MaxParallelSessions {
				t.Fatalf("Logout = %d, %v", n, err)
			}
			if _, err := c.Login(context.Background(), alice); err != nil {
				t.Errorf("Login after Logout: %v", err)
			}
		})
	}
}

func TestRedeemClearedCookie(t *testing.T) {
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "X-Qlik-Session", Value: "", MaxAge: -1})
	})
	c, _ := newClient(t, cfg, nil)
	_, err := c.Redeem(context.Background(), "T1CKET")
	if !errors.Is(err, ErrTicketRefused) || !strings.Contains(err.Error(), "clearing") {
		t.Errorf("Redeem answered with a cleared cookie = %v, want ErrTicketRefused", err)
	}
}

// Issue 15: QPS forgets the tickets it issued when it restarts. A login
// whose ticket was issued just before a restart and redeemed after it
// asks for one new ticket, and succeeds.
func TestLoginRetriesATicketForgottenByARestart(t *testing.T) {
	sim := newSim(t, nil)
	var requests atomic.Int32
	c, _ := newClient(t, simConfig(t, sim, "", "X-Qlik-Session"), func(e zapcore.Entry) {
		// The first QPS request is the ticket: Qlik restarts before the
		// redemption.
		if e.Message == "qlik request" && requests.Add(1) == 1 {
			sim.ExpireAll()
		}
	})
	cookie := mustLogin(t, c, alice)
	if status, body := get(t, sim, "/hub/", cookie); status != http.StatusOK || !strings.Contains(body, `ACME\alice`) {
		t.Errorf("GET /hub/ with the cookie = %d %q", status, body)
	}
	if got := sim.Counts(`ACME\alice`); got.TicketsIssued != 2 || got.TicketsRedeemed != 1 {
		t.Errorf("sim counts = %+v, want 2 tickets issued and 1 redeemed", got)
	}
	// A ticket refused for good (each redemption refused) is tried twice,
	// not more.
	sim2 := newSim(t, nil)
	c2, _ := newClient(t, simConfig(t, sim2, "", "X-Qlik-Session"), func(e zapcore.Entry) {
		if e.Message == "qlik request" {
			sim2.ExpireAll()
		}
	})
	if _, err := c2.Login(context.Background(), alice); !errors.Is(err, ErrTicketRefused) {
		t.Errorf("Login with every ticket forgotten = %v, want ErrTicketRefused", err)
	}
	if n := sim2.Counts(`ACME\alice`).TicketsIssued; n != 2 {
		t.Errorf("tickets asked for = %d, want 2", n)
	}
}
