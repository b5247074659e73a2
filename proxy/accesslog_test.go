package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// waitEntries waits, polling on a ticker and within a deadline, until
// logs holds n entries: a request's entry is written when its handler
// returns, which may be just after the client read the answer.
func waitEntries(t *testing.T, logs *observer.ObservedLogs, n int) []observer.LoggedEntry {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for logs.Len() < n {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("access log has %d entries, want %d: %+v", logs.Len(), n, logs.All())
		}
	}
	return logs.TakeAll()
}

// The access log has one entry per request with its id, user, method,
// path, query keys (never values), route, status and its source, bytes
// and client IP; a trusted front door's X-Request-Id and X-Forwarded-For
// are believed and the id goes on upstream; Qlik's own 4xx shows as
// source qlik; nothing secret is logged.
func TestAccessLog(t *testing.T) {
	var (
		mu      sync.Mutex
		upIDs   []string
		upQuery []string
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upIDs = append(upIDs, r.Header.Get(HeaderRequestID))
		upQuery = append(upQuery, r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set(headerSensegate, "spoofed") // must not count as sensegate's
		w.Write([]byte("mashup"))
	}))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	core, logs := observer.New(zapcore.InfoLevel)
	e := newObservedEnv(t, func(_ *qliksim.Config, o *Options) {
		o.AccessLog = zap.New(core).Named("access")
		o.Routes = []Route{{Path: "/mashup/", Upstream: upURL}}
	})
	const secret = "s3cretXRF0123456"
	tests := []struct {
		name   string
		method string
		path   string
		user   string
		hdr    []string
		want   map[string]any
	}{
		{"qlik with a trusted front door's id and client", "GET", "/qrs/about?xrfkey=" + secret + "&qlikTicket=" + secret, "alice",
			[]string{HeaderRequestID, "front-door.id_1", "X-Forwarded-For", "198.51.100.7, 203.0.113.9", "X-Qlik-Xrfkey", secret},
			map[string]any{"request_id": "front-door.id_1", "user": `ACME\alice`, "method": "GET", "path": "/qrs/about",
				"query_keys": "xrfkey&qlikTicket", "route": "qlik", "status": int64(200), "source": "qlik", "client_ip": "203.0.113.9"}},
		{"qlik's own 404", "GET", "/qrs/app/00000000-0000-0000-0000-000000000000?xrfkey=" + secret, "alice", []string{"X-Qlik-Xrfkey", secret},
			map[string]any{"route": "qlik", "status": int64(404), "source": "qlik", "client_ip": "127.0.0.1"}},
		{"not signed in", "GET", "/qrs/about", "", nil,
			map[string]any{"route": "qlik", "status": int64(401), "source": "sensegate", "refused": "not_signed_in"}},
		{"no route, an id that is not adopted", "GET", "/nowhere", "alice", []string{HeaderRequestID, "bad id; drop table"},
			map[string]any{"route": "none", "status": int64(404), "source": "sensegate"}},
		{"own", "GET", "/.sensegate/me", "alice", nil,
			map[string]any{"route": "own", "status": int64(200), "source": "sensegate", "user": `ACME\alice`}},
		{"route", "GET", "/mashup/index.html?v=" + secret, "alice", []string{HeaderRequestID, "route-id"},
			map[string]any{"route": "route", "status": int64(200), "source": "upstream", "query_keys": "v", "request_id": "route-id", "bytes": int64(len("mashup"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := e.do(t, tt.method, tt.path, tt.user, tt.hdr...)
			entries := waitEntries(t, logs, 1)
			if len(entries) != 1 {
				t.Fatalf("access entries = %d, want 1", len(entries))
			}
			f := entries[0].ContextMap()
			if entries[0].Message != "access" || entries[0].LoggerName != "access" {
				t.Errorf("entry %q on %q, want access on access", entries[0].Message, entries[0].LoggerName)
			}
			for k, want := range tt.want {
				if f[k] != want {
					t.Errorf("field %s = %#v, want %#v", k, f[k], want)
				}
			}
			if got := resp.Header.Get(HeaderRequestID); f["request_id"] != got {
				t.Errorf("request_id %v, answer's %s = %q", f["request_id"], HeaderRequestID, got)
			}
			if tt.name == "no route, an id that is not adopted" && strings.Contains(f["request_id"].(string), "drop") {
				t.Errorf("a malformed %s was adopted: %v", HeaderRequestID, f["request_id"])
			}
			if _, ok := f["duration"]; !ok {
				t.Error("no duration")
			}
			if b, _ := f["bytes"].(int64); resp.StatusCode != 401 && b <= 0 {
				t.Errorf("bytes = %v, want > 0", f["bytes"])
			}
			for k, v := range f {
				if s, ok := v.(string); ok && (strings.Contains(s, secret) || strings.Contains(s, qliksim.DefaultCookieName)) {
					t.Errorf("field %s = %q holds a secret or cookie", k, s)
				}
			}
		})
	}
	mu.Lock()
	if len(upIDs) != 1 || upIDs[0] != "route-id" {
		t.Errorf("the route got %s %q, want the adopted route-id", HeaderRequestID, upIDs)
	}
	mu.Unlock()

	// An untrusted peer's id is not adopted: the front door's trust
	// comes from the identity provider alone.
	e2 := newEnv(t, func(_ *qliksim.Config, o *Options) {
		o.Identity = identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"})
	})
	resp, _ := e2.do(t, "GET", "/nowhere", "", HeaderRequestID, "spoofed-id")
	if got := resp.Header.Get(HeaderRequestID); got == "spoofed-id" || got == "" {
		t.Errorf("%s without a trusted peer = %q, want a fresh id", HeaderRequestID, got)
	}

	// A websocket has its entry when it ends, with the close code and
	// the side that closed it; the close is counted by code and side.
	c, _, err := e.dialEngine(t, "/app/engineData?xrfkey="+secret, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ans, _ := call(t, c, 1, "GetAuthenticatedUser", -1, ""); ans.Error != nil {
		t.Fatalf("GetAuthenticatedUser: %+v", ans.Error)
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(time.Second))
	c.ReadMessage() // Qlik's close, passed on
	c.Close()
	entries := waitEntries(t, logs, 1)
	f := entries[0].ContextMap()
	for k, want := range map[string]any{"status": int64(101), "route": "qlik", "source": "qlik", "close_code": int64(4001), "closed_by": "client", "query_keys": "xrfkey", "path": "/app/engineData"} {
		if f[k] != want {
			t.Errorf("websocket field %s = %#v, want %#v", k, f[k], want)
		}
	}
	e.want(t, map[string]float64{
		`sensegate_websocket_closes_total{code="other",side="client"}`: 1,
		`sensegate_requests_refused_total{reason="not_signed_in"}`:     1,
	})
}

// Refusals are counted by reason: a foreign websocket Origin, a user
// over the websocket bound, a failed Qlik login.
func TestRefusalMetrics(t *testing.T) {
	e := newObservedEnv(t, func(_ *qliksim.Config, o *Options) { o.WebsocketsPerUser = 1 })
	if _, resp, err := e.dialEngine(t, "/app/engineData", "alice", http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("websocket from a foreign origin = %v, %v; want 403", resp, err)
	}
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, resp, err := e.dialEngine(t, "/app/engineData", "alice", nil); err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("second websocket over the bound = %v, %v; want 429", resp, err)
	}
	e.sim.SetQPSFault(qliksim.Fault5xx)
	if resp := e.qrs(t, "/qrs/about", "bob", nil); resp.StatusCode < 500 {
		t.Fatalf("GET /qrs/about with QPS failing = %d, want 5xx", resp.StatusCode)
	}
	e.want(t, map[string]float64{
		`sensegate_requests_refused_total{reason="origin"}`:            1,
		`sensegate_requests_refused_total{reason="websocket_limit"}`:   1,
		`sensegate_websockets_refused_total{reason="user_limit"}`:      1,
		`sensegate_requests_refused_total{reason="login_failed"}`:      1,
		`sensegate_qlik_login_duration_seconds_count{result="failed"}`: 1,
	})
}

// Qlik's session-ending notifications on open sockets are counted by
// topic, and the socket Qlik then closes is counted by code and side.
func TestSessionNotificationMetrics(t *testing.T) {
	e := newObservedEnv(t)
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, 1, "EngineVersion", -1, "")
	if n := e.sim.ExpireUser(`ACME\alice`); n != 1 {
		t.Fatalf("ExpireUser ended %d sessions, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	// The relay counts the close once both sides have ended.
	deadline := time.Now().Add(10 * time.Second)
	for e.h.OpenWebsockets() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling with a bound
	}
	e.want(t, map[string]float64{
		`sensegate_qlik_session_notifications_total{topic="OnSessionTimedOut"}`: 1,
		`sensegate_websocket_closes_total{code="1000",side="qlik"}`:             1,
	})
}

// The refusals of a request without an identity and of Qlik's websocket
// CSRF 403 (passed on) are counted by their reasons.
func TestRefusalMetricsNotSignedInAndCSRF(t *testing.T) {
	e := newObservedEnv(t, func(c *qliksim.Config, o *Options) { c.WebsocketCSRF = true; o.WebsocketCSRF = CSRFOff })
	if resp, _ := e.do(t, "GET", "/hub/", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /hub/ without identity = %d, want 401", resp.StatusCode)
	}
	if _, resp, err := e.dialEngine(t, "/app/engineData", "alice", nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("websocket without the CSRF token = %v, %v; want Qlik's 403", resp, err)
	}
	e.want(t, map[string]float64{
		`sensegate_requests_refused_total{reason="not_signed_in"}`: 1,
		`sensegate_requests_refused_total{reason="csrf"}`:          1,
	})
}
