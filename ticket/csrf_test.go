package ticket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// dialEngine opens the Engine websocket of the simulator's default
// virtual proxy with cookie, origin and, if not empty, the CSRF token, and
// returns the handshake status.
func dialEngine(t *testing.T, sim *qliksim.Sim, cookie *http.Cookie, origin, token string) int {
	t.Helper()
	pool, err := sim.Certs().RootPool()
	if err != nil {
		t.Fatal(err)
	}
	d := websocket.Dialer{TLSClientConfig: tlsConfigWithRoots(pool)}
	u := "wss" + strings.TrimPrefix(sim.ProxyURL(), "https") + "/app/engineData"
	if token != "" {
		u += "?qlik-csrf-token=" + url.QueryEscape(token)
	}
	h := http.Header{"Origin": {origin}, "Cookie": {cookie.Name + "=" + cookie.Value}}
	conn, resp, err := d.DialContext(context.Background(), u, h)
	if conn != nil {
		conn.Close()
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestCSRFToken(t *testing.T) {
	tests := []struct {
		name, prefix, cookie string
		mutate               func(*qliksim.Config)
	}{
		{"all virtual proxies", "", "X-Qlik-Session", func(c *qliksim.Config) { c.WebsocketCSRF = true }},
		{"prefixed virtual proxy", "ticket", "X-Qlik-Session-ticket", func(c *qliksim.Config) { c.VirtualProxies[1].WebsocketCSRF = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newSim(t, tt.mutate)
			c, logs := newClient(t, simConfig(t, sim, tt.prefix, tt.cookie), nil)
			ctx := context.Background()
			cookie := mustLogin(t, c, alice)
			tok, ok, err := c.CSRFToken(ctx, cookie.Value)
			if err != nil || !ok || tok == "" {
				t.Fatalf("CSRFToken = <%d chars>, %t, %v; want a token, true, nil", len(tok), ok, err)
			}
			again, ok, err := c.CSRFToken(ctx, cookie.Value)
			if err != nil || !ok || again != tok {
				t.Errorf("second CSRFToken = <%d chars> (same: %t), %t, %v; want the same token for the session", len(again), again == tok, ok, err)
			}
			other := mustLogin(t, c, alice)
			if tok2, _, err := c.CSRFToken(ctx, other.Value); err != nil || tok2 == tok || tok2 == "" {
				t.Errorf("CSRFToken of another session = %v (same token: %t), want a different token", err, tok2 == tok)
			}
			assertNoSecrets(t, logs, nil, tok, cookie.Value, other.Value)
		})
	}
}

func TestCSRFTokenOpensEngineWebsocket(t *testing.T) {
	sim, c, _ := simClient(t, func(c *qliksim.Config) { c.WebsocketCSRF = true }, nil)
	ctx := context.Background()
	cookie := mustLogin(t, c, alice)
	tok, _, err := c.CSRFToken(ctx, cookie.Value)
	if err != nil {
		t.Fatal(err)
	}
	// The default Origin is that of ProxyURL, https://localhost:port.
	origin := strings.TrimSuffix(sim.ProxyURL(), "/")
	if got := dialEngine(t, sim, cookie, origin, ""); got != http.StatusForbidden {
		t.Fatalf("Engine websocket without a token = %d, want 403 (CSRF protection on)", got)
	}
	if got := dialEngine(t, sim, cookie, origin, tok); got != http.StatusSwitchingProtocols {
		t.Errorf("Engine websocket with the token = %d, want 101", got)
	}
}

func TestCSRFTokenUnsupported(t *testing.T) {
	_, c, _ := simClient(t, nil, nil)
	cookie := mustLogin(t, c, alice)
	tok, ok, err := c.CSRFToken(context.Background(), cookie.Value)
	if err != nil || ok || tok != "" {
		t.Errorf("CSRFToken without websocket CSRF protection = %q, %t, %v; want \"\", false, nil", tok, ok, err)
	}
}

func TestCSRFTokenStaleSession(t *testing.T) {
	tests := []struct {
		name   string
		expire func(*qliksim.Sim)
		status int
	}{
		{"proxy restarted", func(s *qliksim.Sim) { s.ExpireAll() }, http.StatusInternalServerError},
		{"session timed out", func(s *qliksim.Sim) { s.ExpireUser(`ACME\alice`) }, http.StatusFound},
	}
	for _, csrf := range []bool{true, false} {
		for _, tt := range tests {
			name := tt.name + "/csrf off"
			if csrf {
				name = tt.name + "/csrf on"
			}
			t.Run(name, func(t *testing.T) {
				sim, c, logs := simClient(t, func(c *qliksim.Config) { c.WebsocketCSRF = csrf }, func(cfg *Config) { cfg.Retries = 3 })
				cookie := mustLogin(t, c, alice)
				tt.expire(sim)
				tok, ok, err := c.CSRFToken(context.Background(), cookie.Value)
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrSessionRefused) || e.Temporary || e.Status != tt.status || e.Attempts != 1 {
					t.Fatalf("CSRFToken with a stale cookie = %q, %t, %v; want non-temporary ErrSessionRefused (%d) after 1 attempt", tok, ok, err, tt.status)
				}
				if !strings.Contains(err.Error(), "log in again") {
					t.Errorf("error %q: want it to say to log in again", err)
				}
				// How packages that do not import ticket recognise it.
				if wrapped := fmt.Errorf("relay: %w", err); !errors.Is(wrapped, qlik.ErrSessionGone) {
					t.Error("the error is not qlik.ErrSessionGone through a wrapper")
				}
				assertNoSecrets(t, logs, []string{err.Error()}, cookie.Value)
			})
		}
	}
}

func TestCSRFTokenForeignOrigin(t *testing.T) {
	_, c, _ := simClient(t, func(c *qliksim.Config) { c.WebsocketCSRF = true }, func(cfg *Config) { cfg.Origin = "https://evil.example" })
	cookie := mustLogin(t, c, alice)
	_, ok, err := c.CSRFToken(context.Background(), cookie.Value)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrRejected) || e.Status != http.StatusForbidden || e.Attempts != 1 || ok {
		t.Fatalf("CSRFToken from a foreign origin = %t, %v; want ErrRejected (403) after 1 attempt", ok, err)
	}
	for _, want := range []string{`"https://evil.example"`, `"evil.example"`, "host allow list", "qlik.origin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestCSRFTokenRequest(t *testing.T) {
	tests := []struct {
		name, prefix, origin string
		wantPath, wantOrigin string
	}{
		{"default origin", "vp", "", "/vp/qps/csrftoken", ""}, // "": the server's own origin
		{"configured origin", "", "HTTPS://Sense.Example.com:443/", "/qps/csrftoken", "https://sense.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n counter
			srv, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
				n.inc()
				want := tt.wantOrigin
				if want == "" {
					want = "https://" + r.Host
				}
				if r.Method != http.MethodGet || r.URL.Path != tt.wantPath || r.URL.RawQuery != "" || r.Header.Get("Origin") != want ||
					r.Header.Get("Cookie") != "X-Qlik-Session=c00kie" || r.Header.Get("X-Qlik-Xrfkey") != "" || r.Header.Get("Authorization") != "" {
					t.Errorf("request %s %s?%s, Origin %q, Cookie %q: want GET %s with Origin %s and only the session cookie", r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Origin"), r.Header.Get("Cookie"), tt.wantPath, want)
				}
				w.Header().Set("qlik-csrf-token", "t0ken")
				w.WriteHeader(http.StatusNoContent)
			})
			cfg.Prefix, cfg.Origin = tt.prefix, tt.origin
			cfg.ProxyURL = mustURL(t, srv.URL+"/") // a trailing slash adds no segment
			c, _ := newClient(t, cfg, nil)
			if tok, ok, err := c.CSRFToken(context.Background(), "c00kie"); err != nil || !ok || tok != "t0ken" || n.get() != 1 {
				t.Errorf("CSRFToken = %q, %t, %v after %d requests; want t0ken, true, nil after 1", tok, ok, err, n.get())
			}
		})
	}
}

func TestCSRFTokenAnswers(t *testing.T) {
	const login = "https://qlik.example.com/internal_forms_authentication/?targetId=0f5c4b2e-4c1e-4b1d-9d3f-000000000001"
	const module = "http://localhost:3000/login?proxyRestUri=https%3a%2f%2fqlik%3a4243%2fqps%2fvp%2f&targetId=0f5c4b2e"
	tests := []struct {
		name      string
		status    int
		hdr       map[string]string
		body      string
		wantTok   string
		wantOK    bool
		kind      error // nil: success
		temporary bool
		requests  int
		want      string
	}{
		{"204 with token", 204, map[string]string{"qlik-csrf-token": "t0ken"}, "", "t0ken", true, nil, false, 1, ""},
		{"200 with token", 200, map[string]string{"Qlik-Csrf-Token": "t0ken"}, "ok", "t0ken", true, nil, false, 1, ""},
		{"404 before November 2024", 404, nil, "Not Found", "", false, nil, false, 1, ""},
		{"204 without token", 204, nil, "", "", false, ErrRejected, false, 1, "without a qlik-csrf-token header"},
		{"302 to forms login", 302, map[string]string{"Location": login}, "", "", false, ErrSessionRefused, false, 1, "login page"},
		{"302 to authentication module", 302, map[string]string{"Location": module}, "", "", false, ErrSessionRefused, false, 1, "login page"},
		{"302 elsewhere", 302, map[string]string{"Location": "https://other.example/x?secret=1"}, "", "", false, ErrRejected, false, 1, `"https://other.example/x"`},
		{"401", 401, nil, "Unauthorized", "", false, ErrSessionRefused, false, 1, "401"},
		{"403", 403, nil, "Forbidden", "", false, ErrRejected, false, 1, "host allow list"},
		{"400 virtual proxy not linked", 400, nil, "The http request header is incorrect", "", false, ErrRejected, false, 1, "linked"},
		{"500 unknown cookie", 500, nil, "Authentication error: Restart the browser.", "", false, ErrSessionRefused, false, 1, "does not know the session"},
		{"500 other", 500, nil, "boom", "", false, ErrUnavailable, true, 3, "500"},
		{"503", 503, nil, "Service Unavailable", "", false, ErrUnavailable, true, 3, "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n counter
			_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
				n.inc()
				for k, v := range tt.hdr {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			cfg.Prefix = "vp"
			cfg.Retries = 2
			c, logs := newClient(t, cfg, nil)
			tok, ok, err := c.CSRFToken(context.Background(), "c00kie")
			if tok != tt.wantTok || ok != tt.wantOK || n.get() != tt.requests {
				t.Errorf("CSRFToken = %q, %t after %d requests; want %q, %t after %d", tok, ok, n.get(), tt.wantTok, tt.wantOK, tt.requests)
			}
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("CSRFToken error = %v, want nil", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || !errors.Is(err, tt.kind) || e.Temporary != tt.temporary || e.Status != tt.status || e.Op != "csrftoken" {
				t.Fatalf("CSRFToken error = %v, want %v (temporary %t, status %d, op csrftoken)", err, tt.kind, tt.temporary, tt.status)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			assertNoSecrets(t, logs, []string{err.Error()}, "c00kie", "secret=1")
		})
	}
}

func TestCSRFTokenArguments(t *testing.T) {
	var n counter
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) { n.inc() })
	c, logs := newClient(t, cfg, nil)
	for _, v := range []string{"", "a;b", "bad\r\nX-Evil: 1", `q"uote`} {
		_, _, err := c.CSRFToken(context.Background(), v)
		if !errors.Is(err, ErrRejected) {
			t.Errorf("CSRFToken(%q) = %v, want ErrRejected", v, err)
		}
		if v != "" {
			assertNoSecrets(t, logs, []string{err.Error()}, v)
		}
	}
	cfg.Mode, cfg.ProxyURL = ModeSession, nil
	noProxy, _ := newClient(t, cfg, nil)
	if _, _, err := noProxy.CSRFToken(context.Background(), "c00kie"); !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "ProxyURL") {
		t.Errorf("CSRFToken without ProxyURL = %v, want ErrRejected naming ProxyURL", err)
	}
	if n.get() != 0 {
		t.Errorf("requests = %d, want none for invalid arguments", n.get())
	}
}

func TestEndSession(t *testing.T) {
	sim := newSim(t, nil)
	c, logs := newClient(t, simConfig(t, sim, "ticket", "X-Qlik-Session-ticket"), nil)
	ctx := context.Background()
	cookie := mustLogin(t, c, alice)
	keep := mustLogin(t, c, alice)
	ended, err := c.EndSession(ctx, cookie.Value)
	if err != nil || !ended {
		t.Fatalf("EndSession of a live session = %t, %v; want true, nil", ended, err)
	}
	s := sim.Sessions()
	if len(s) != 1 || s[0].ID != keep.Value {
		t.Errorf("sim sessions after EndSession = %d (kept one listed: %t), want only the other session", len(s), len(s) == 1 && s[0].ID == keep.Value)
	}
	if status, _ := get(t, sim, "/ticket/hub/", cookie); status == http.StatusOK {
		t.Error("the cookie still works after EndSession")
	}
	if status, _ := get(t, sim, "/ticket/hub/", keep); status != http.StatusOK {
		t.Errorf("the other session's cookie = %d after EndSession, want 200", status)
	}
	ended, err = c.EndSession(ctx, cookie.Value)
	if err != nil || ended {
		t.Errorf("second EndSession = %t, %v; want false, nil (already gone)", ended, err)
	}
	if countMsg(logs, "end session: qps answered 404 without naming the session") != 0 {
		t.Error("the simulator's unknown-session 404 was reported as a suspicious 404")
	}
	assertNoSecrets(t, logs, nil, cookie.Value, keep.Value)
}

func TestEndSessionRequest(t *testing.T) {
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		q, h := r.URL.Query().Get("xrfkey"), r.Header.Get("X-Qlik-Xrfkey")
		if got, want := r.URL.EscapedPath(), "/qps/vp/session/a%2Fb%20c"; got != want || r.Method != http.MethodDelete || q == "" || q != h {
			t.Errorf("EndSession request %s %s (xrfkey %q, header %q), want DELETE %s with a matching xrfkey pair", r.Method, got, q, h, want)
		}
		io.WriteString(w, `{"Session":{"UserDirectory":"ACME","UserId":"alice","Attributes":[],"SessionId":"a/b c"}}`)
	})
	cfg.Prefix = "vp"
	c, _ := newClient(t, cfg, nil)
	if ended, err := c.EndSession(context.Background(), "a/b c"); err != nil || !ended {
		t.Errorf("EndSession = %t, %v; want true, nil", ended, err)
	}
	if _, err := c.EndSession(context.Background(), " "); !errors.Is(err, ErrRejected) {
		t.Errorf("EndSession of an empty id = %v, want ErrRejected", err)
	}
}

func TestEndSessionErrors(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name     string
		status   int
		body     string
		kind     error // nil: (false, nil)
		requests int
		warn     bool
	}{
		{"unknown session", 404, "No session with id " + id, nil, 1, false},
		{"404 of another kind", 404, "Not found: no QPS API at /qps/vp/session/" + id, nil, 1, true},
		{"bad request quoting the id", 400, "Invalid session id " + id, ErrRejected, 1, false},
		{"xsrf", 403, "XSRF prevention check failed. Possible XSRF discovered.", ErrRejected, 1, false},
		{"unavailable", 503, "Service Unavailable " + id, ErrUnavailable, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n counter
			_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
				n.inc()
				http.Error(w, tt.body, tt.status)
			})
			cfg.Prefix, cfg.Retries = "vp", 2
			c, logs := newClient(t, cfg, nil)
			ended, err := c.EndSession(context.Background(), id)
			if ended || n.get() != tt.requests {
				t.Errorf("EndSession = %t after %d requests, want false after %d", ended, n.get(), tt.requests)
			}
			var texts []string
			if tt.kind == nil {
				if err != nil {
					t.Errorf("EndSession error = %v, want nil", err)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, tt.kind) || e.Op != "endsession" || e.User != "" {
					t.Fatalf("EndSession error = %v, want %v of op endsession", err, tt.kind)
				}
				texts = append(texts, err.Error())
			}
			if got := countMsg(logs, "end session: qps answered 404 without naming the session"); got != 0 != tt.warn {
				t.Errorf("suspicious-404 warnings = %d, want them: %t", got, tt.warn)
			}
			assertNoSecrets(t, logs, texts, id)
		})
	}
}

// TestSessionCallsNoSecrets runs CSRFToken and EndSession through
// success and failure against the simulator and checks that neither the
// token nor the cookie reaches a log entry or an error.
func TestSessionCallsNoSecrets(t *testing.T) {
	sim := newSim(t, func(c *qliksim.Config) { c.WebsocketCSRF = true })
	cfg := simConfig(t, sim, "", "X-Qlik-Session")
	cfg.Mode = ModeSession
	cfg.Retries = 1
	c, logs := newClient(t, cfg, nil)
	evilCfg := cfg
	evilCfg.Origin = "https://evil.example"
	evil, evilLogs := newClient(t, evilCfg, nil)
	nopeCfg := cfg
	nopeCfg.Prefix, nopeCfg.SessionCookie = "nope", "X-Qlik-Session-nope"
	nope, nopeLogs := newClient(t, nopeCfg, nil)
	ctx := context.Background()

	cookie := mustLogin(t, c, alice)
	bob := mustLogin(t, c, identity.User{Directory: "ACME", ID: "bob"})
	tok, _, err := c.CSRFToken(ctx, cookie.Value)
	if err != nil || tok == "" {
		t.Fatalf("CSRFToken = %v", err)
	}
	var (
		texts  []string
		failed int
	)
	collect := func(err error) {
		if err == nil {
			t.Error("want an error")
			return
		}
		failed++
		texts = append(texts, err.Error())
		var e *Error
		if errors.As(err, &e) && e.Cause != nil {
			texts = append(texts, e.Cause.Error())
		}
	}
	_, _, err = evil.CSRFToken(ctx, cookie.Value) // 403
	collect(err)
	if ended, err := nope.EndSession(ctx, cookie.Value); err != nil || ended { // unknown prefix: a 404 quoting the id
		t.Errorf("EndSession on an unknown prefix = %t, %v", ended, err)
	}
	sim.SetQPSFault(qliksim.Fault5xx)
	_, err = c.EndSession(ctx, cookie.Value) // 503, retried
	collect(err)
	sim.SetQPSFault(qliksim.FaultClose)
	_, err = c.EndSession(ctx, cookie.Value) // connection closed: a *url.Error quoting the URL
	collect(err)
	sim.SetQPSFault(qliksim.FaultNone)
	if ended, err := c.EndSession(ctx, cookie.Value); err != nil || !ended {
		t.Fatalf("EndSession = %t, %v", ended, err)
	}
	_, _, err = c.CSRFToken(ctx, cookie.Value) // 302 to the login page
	collect(err)
	sim.ExpireAll()
	_, _, err = c.CSRFToken(ctx, bob.Value) // 500 Authentication error
	collect(err)
	if ended, err := c.EndSession(ctx, bob.Value); err != nil || ended {
		t.Errorf("EndSession after ExpireAll = %t, %v", ended, err)
	}

	if failed != 5 {
		t.Fatalf("collected %d errors, want 5", failed)
	}
	for _, l := range []*observer.ObservedLogs{logs, evilLogs, nopeLogs} {
		if l.Len() == 0 {
			t.Fatal("no log entries captured")
		}
		assertNoSecrets(t, l, texts, tok, cookie.Value, bob.Value)
	}
}
