package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

func TestIdleTimeoutRecoveredWithoutRedirect(t *testing.T) {
	clock := fakeclock.New()
	e := newEnvWith(t, envConfig{clock: clock})
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	clock.Advance(qliksim.DefaultSessionTimeout + time.Minute)
	resp, body := e.do(t, "GET", "/hub/", "alice")
	if resp.StatusCode != 200 || !strings.Contains(body, `ACME\alice`) || resp.Header.Get("Location") != "" {
		t.Fatalf("after Qlik's idle timeout = %d %q (Location %q), want the hub on a fresh session", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	c := e.sim.Counts(`ACME\alice`)
	if c.TicketsIssued != 2 || c.LiveSessions != 1 {
		t.Errorf("counts = %+v, want 2 tickets and 1 live session", c)
	}
}

// A restart of Qlik while 20 users send requests: no client-visible error
// for replayable requests, exactly one new ticket per user, new
// websockets open normally.
func TestQlikRestartUnderLoad(t *testing.T) {
	e := newEnv(t)
	const users = 20
	var errs atomic.Int64
	var warm, done sync.WaitGroup
	restarted := make(chan struct{})
	pair := func(user string) {
		resp, _ := e.do(t, "GET", "/hub/", user)
		if resp.StatusCode != 200 {
			errs.Add(1)
			t.Errorf("%s GET: %d", user, resp.StatusCode)
		}
		id := "7b9c2d3e-0003-4f2a-8e4b-000000000003" // visible to everyone
		resp, body := e.do(t, "POST", "/qrs/task/"+id+"/start?xrfkey="+xrf, user, "X-Qlik-Xrfkey", xrf)
		if resp.StatusCode != http.StatusNoContent {
			errs.Add(1)
			t.Errorf("%s POST: %d %s", user, resp.StatusCode, body)
		}
	}
	for i := range users {
		warm.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			user := fmt.Sprint("load", i)
			pair(user)
			warm.Done()
			// Keep going across the restart, then two more rounds after it.
			for after, n := 0, 0; after < 2 && n < 500; n++ {
				select {
				case <-restarted:
					after++
				default:
				}
				pair(user)
			}
		}()
	}
	warm.Wait()
	e.sim.ExpireAll() // requests are in flight
	close(restarted)
	done.Wait()
	if n := errs.Load(); n != 0 {
		t.Errorf("%d client-visible errors", n)
	}
	for i := range users {
		u := fmt.Sprintf(`ACME\load%d`, i)
		if c := e.sim.Counts(u); c.TicketsIssued != 2 || c.LiveSessions != 1 {
			t.Errorf("%s: %+v, want 2 tickets (one before, one after the restart) and 1 live session", u, c)
		}
	}
	c, _, err := e.dialEngine(t, "/app/engineData", "load0", nil)
	if err != nil {
		t.Fatalf("websocket after the restart: %v", err)
	}
	if ans, _ := call(t, c, 1, "GetAuthenticatedUser", -1, ""); !strings.Contains(string(ans.Result), "load0") {
		t.Errorf("GetAuthenticatedUser = %s", ans.Result)
	}
}

func TestWebsocketRedialsAfterExpiry(t *testing.T) {
	e := newEnv(t)
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	e.sim.ExpireAll() // the jar still holds the forgotten cookie
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ans, notes := call(t, c, 1, "GetAuthenticatedUser", -1, "")
	if !strings.Contains(string(ans.Result), "UserId=alice") {
		t.Fatalf("GetAuthenticatedUser = %s", ans.Result)
	}
	if len(notes) != 2 || notes[0].Method != "OnAuthenticationInformation" || strings.Contains(string(notes[0].Params), `"mustAuthenticate":true`) || notes[1].Method != "OnConnected" {
		t.Errorf("the client saw %+v, want only an authenticated session's notifications", notes)
	}
}

func TestReconnectStormMakesOneSession(t *testing.T) {
	e := newEnv(t)
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	before := e.sim.Counts(`ACME\alice`).SessionsCreated
	e.sim.ExpireAll()
	const n = 200
	var wg sync.WaitGroup
	var failed atomic.Int64
	conns := make(chan *websocket.Conn, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
			c, _, err := d.Dial("ws"+strings.TrimPrefix(e.front.URL, "http")+"/app/engineData", http.Header{"X-Forwarded-User": {"alice"}})
			if err != nil {
				failed.Add(1)
				return
			}
			conns <- c
		}()
	}
	wg.Wait()
	close(conns)
	for c := range conns {
		c.Close()
	}
	if f := failed.Load(); f != 0 {
		t.Errorf("%d of %d sockets failed", f, n)
	}
	c := e.sim.Counts(`ACME\alice`)
	if got := c.SessionsCreated - before; got != 1 || c.SessionsRefused != 0 {
		t.Errorf("sessions created by the storm = %d (refused %d), want 1", got, c.SessionsRefused)
	}
}

func TestLogoutEverywhere(t *testing.T) {
	e := newEnv(t)
	c1, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c1, 1, "EngineVersion", -1, "")
	c2, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c2, 1, "EngineVersion", -1, "")
	bob, _, _ := e.dialEngine(t, "/app/engineData", "bob", nil)
	call(t, bob, 1, "EngineVersion", -1, "")

	resp, body := e.do(t, "POST", "/.sensegate/logout", "alice")
	if resp.StatusCode != 200 || !strings.Contains(body, `"loggedOut":true`) {
		t.Fatalf("logout = %d %q", resp.StatusCode, body)
	}
	for i, c := range []*websocket.Conn{c1, c2} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var err error
		for err == nil {
			_, _, err = c.ReadMessage()
		}
		if _, ok := err.(*websocket.CloseError); !ok {
			t.Errorf("socket %d of alice after logout: %v, want a close frame", i, err)
		}
	}
	if n := e.sim.Counts(`ACME\alice`).LiveSessions; n != 0 {
		t.Errorf("alice's live sessions after logout = %d, want 0", n)
	}
	if ans, _ := call(t, bob, 2, "EngineVersion", -1, ""); ans.Error != nil {
		t.Errorf("bob's socket after alice's logout: %+v", ans.Error)
	}
	// Signing in again works and makes a new session.
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 || e.sim.Counts(`ACME\alice`).LiveSessions != 1 {
		t.Errorf("after logout, GET = %d with %d live sessions", resp.StatusCode, e.sim.Counts(`ACME\alice`).LiveSessions)
	}
}

func TestLogoutByPersonalAPI(t *testing.T) {
	e := newEnv(t)
	e.do(t, "GET", "/hub/", "alice")
	resp, body := e.do(t, "DELETE", "/qps/user", "alice")
	if resp.StatusCode != 200 || !strings.Contains(body, `"session":"ended"`) {
		t.Fatalf("DELETE /qps/user = %d %q", resp.StatusCode, body)
	}
	if n := e.sim.Counts(`ACME\alice`).LiveSessions; n != 0 {
		t.Errorf("live sessions = %d, want 0", n)
	}
}

func TestLoggedOutElsewhereReachesSocket(t *testing.T) {
	e := newEnv(t)
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, 1, "EngineVersion", -1, "")
	if _, err := e.tickets.Logout(context.Background(), identity.User{Directory: "ACME", ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m rpc
	if err := c.ReadJSON(&m); err != nil || m.Method != "OnSessionLoggedOut" {
		t.Fatalf("read %+v, %v; want OnSessionLoggedOut", m, err)
	}
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("close = %v, want Qlik's 1000", err)
	}
	// The jar entry was marked stale: the next request logs in without
	// first trying the dead cookie.
	before := len(e.sim.Events(0))
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	for _, ev := range e.sim.Events(0)[before:] {
		if ev.Kind == "http" && ev.Status == http.StatusFound {
			t.Errorf("sensegate tried the logged-out cookie first: %+v", ev)
		}
	}
}

func TestMeShowsSession(t *testing.T) {
	e := newEnv(t)
	resp, body := e.do(t, "GET", "/.sensegate/me", "alice")
	if resp.StatusCode != 200 || !strings.Contains(body, `"userId":"alice"`) || !strings.Contains(body, `"active":false`) {
		t.Errorf("me before any Qlik request = %d %q", resp.StatusCode, body)
	}
	e.do(t, "GET", "/hub/", "alice")
	if _, body := e.do(t, "GET", "/.sensegate/me", "alice"); !strings.Contains(body, `"active":true`) || !strings.Contains(body, `"ageSeconds"`) {
		t.Errorf("me after a Qlik request = %q", body)
	}
}

// fakeQlik answers like Qlik with a session it does not know, always.
func fakeQlikAlwaysRefusing(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, "/internal_forms_authentication/?targetId=0f0a0f0a-0000-0000-0000-000000000000", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// countingSessions hands out a new cookie after each invalidation.
type countingSessions struct {
	mu   sync.Mutex
	n    int
	seen []string
}

func (c *countingSessions) Ensure(context.Context, identity.User) (session.Entry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return session.Entry{Cookie: fmt.Sprint("c", c.n)}, nil
}
func (c *countingSessions) Invalidate(_ context.Context, _ identity.User, cookie string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen = append(c.seen, cookie)
	if cookie == fmt.Sprint("c", c.n) {
		c.n++
	}
	return nil
}
func (c *countingSessions) Update(context.Context, identity.User, session.Entry) error { return nil }

func TestReplayOnceThenFail(t *testing.T) {
	qlik, hits := fakeQlikAlwaysRefusing(t)
	qu, _ := url.Parse(qlik.URL)
	pub, _ := url.Parse("http://sensegate.example")
	cs := &countingSessions{}
	h, err := New(Options{Qlik: qu, CookieName: "X-Qlik-Session", Identity: identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"}), Sessions: cs, PublicURL: pub, ReplayLimit: 16})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()

	resp, err := http.Post(front.URL+"/qrs/app?xrfkey="+xrf, "application/json", strings.NewReader(`{"small":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "request_id") || resp.Header.Get("Location") != "" {
		t.Errorf("twice refused = %d %q, want 502 JSON", resp.StatusCode, body)
	}
	if got := hits.Load(); got != 2 {
		t.Errorf("Qlik was asked %d times, want 2 (one replay, no loop)", got)
	}
	if strings.Join(cs.seen, ",") != "c0,c1" {
		t.Errorf("invalidated %v, want c0 then c1", cs.seen)
	}

	// A body over the replay limit streams and cannot be replayed.
	hits.Store(0)
	resp, err = http.Post(front.URL+"/qrs/app?xrfkey="+xrf, "application/json", bytes.NewReader(bytes.Repeat([]byte("x"), 64)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || hits.Load() != 1 {
		t.Errorf("large body refused = %d Retry-After %q after %d tries, want 503 with Retry-After after 1", resp.StatusCode, resp.Header.Get("Retry-After"), hits.Load())
	}
}

// A POST that meets a forgotten session is replayed, body and all, on a
// fresh one when its body fits the replay limit; with a limit of 0 (only
// bodiless requests replayed) it is not: Qlik sees the body once and the
// client is asked to retry, while the session is renewed for the next
// request.
func TestReplayedPostReachesQlikWithBody(t *testing.T) {
	tests := []struct {
		name       string
		limit      int64
		wantStatus int
		wantQlik   string
	}{
		{"within the limit", DefaultReplayLimit, http.StatusOK, `X-Qlik-Session=c0 {"a":1}|X-Qlik-Session=c1 {"a":1}`},
		{"limit 0", 0, http.StatusServiceUnavailable, `X-Qlik-Session=c0 {"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			first := true
			qlik := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				defer mu.Unlock()
				bodies = append(bodies, r.Header.Get("Cookie")+" "+string(b))
				if first {
					first = false
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
					w.WriteHeader(http.StatusInternalServerError)
					w.Write([]byte("Authentication error: Restart the browser."))
					return
				}
				w.Write([]byte("ok"))
			}))
			defer qlik.Close()
			qu, _ := url.Parse(qlik.URL)
			pub, _ := url.Parse("http://sensegate.example")
			h, err := New(Options{Qlik: qu, CookieName: "X-Qlik-Session", Identity: identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"}), Sessions: &countingSessions{}, PublicURL: pub, ReplayLimit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			front := httptest.NewServer(h)
			defer front.Close()
			resp, err := http.Post(front.URL+"/qrs/task/x/start?xrfkey="+xrf, "application/json", strings.NewReader(`{"a":1}`))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || (tt.wantStatus == http.StatusOK && string(b) != "ok") {
				t.Errorf("POST on a forgotten session = %d %q, want %d", resp.StatusCode, b, tt.wantStatus)
			}
			mu.Lock()
			defer mu.Unlock()
			if got := strings.Join(bodies, "|"); got != tt.wantQlik {
				t.Errorf("Qlik received %q, want %q", got, tt.wantQlik)
			}
		})
	}
}

func TestWebsocketCSRF(t *testing.T) {
	csrfSim := func(c *qliksim.Config) { c.WebsocketCSRF = true }
	tests := []struct {
		mode   CSRFMode
		wantOK bool
	}{
		{CSRFAuto, true},
		{CSRFOn, true},
		{CSRFOff, false}, // proves the test can fail: without the token Qlik refuses
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			e := newEnv(t, func(c *qliksim.Config, o *Options) { csrfSim(c); o.WebsocketCSRF = tt.mode })
			c, resp, err := e.dialEngine(t, "/app/engineData", "alice", http.Header{"Authorization": {"Bearer client-token"}})
			if !tt.wantOK {
				if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("without the CSRF token: err %v, resp %v; want Qlik's 403 passed through", err, resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial with CSRF mode %s: %v", tt.mode, err)
			}
			if ans, _ := call(t, c, 1, "GetAuthenticatedUser", -1, ""); !strings.Contains(string(ans.Result), "alice") {
				t.Errorf("GetAuthenticatedUser = %s", ans.Result)
			}
			// The token is cached with the session: a second socket asks
			// Qlik for no new one.
			before := len(e.sim.Events(0))
			c2, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
			if err != nil {
				t.Fatal(err)
			}
			call(t, c2, 1, "EngineVersion", -1, "")
			for _, ev := range e.sim.Events(0)[before:] {
				if ev.Path == "/qps/csrftoken" {
					t.Errorf("second socket fetched the CSRF token again")
				}
			}
		})
	}
	t.Run("auto without CSRF on the server", func(t *testing.T) {
		e := newEnv(t, func(_ *qliksim.Config, o *Options) { o.WebsocketCSRF = CSRFAuto })
		c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
		if err != nil {
			t.Fatal(err)
		}
		call(t, c, 1, "EngineVersion", -1, "")
	})
}

func TestWebsocketPingsQlik(t *testing.T) {
	pings := make(chan struct{}, 16)
	up := websocket.Upgrader{}
	qlik := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetPingHandler(func(string) error {
			select {
			case pings <- struct{}{}:
			default:
			}
			return nil
		})
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if strings.Contains(string(m), `"id":1000000007`) {
				c.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1000000007,"result":{"qVersion":{"qComponentVersion":"x"}}}`))
			}
		}
	}))
	defer qlik.Close()
	qu, _ := url.Parse(qlik.URL)
	pub, _ := url.Parse("http://sensegate.example")
	h, err := New(Options{Qlik: qu, CookieName: "X-Qlik-Session", Identity: identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"}),
		Sessions: &countingSessions{}, PublicURL: pub, WebsocketPing: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/app/engineData", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		select {
		case <-pings:
		case <-time.After(10 * time.Second):
			t.Fatalf("Qlik got %d pings, want 3", i)
		}
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
}

func TestWebsocketReadLimit(t *testing.T) {
	e := newEnv(t, func(_ *qliksim.Config, o *Options) { o.WebsocketReadLimit = 64 << 10 })
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, 1, "EngineVersion", -1, "")
	big := `{"jsonrpc":"2.0","id":2,"method":"EngineVersion","handle":-1,"params":["` + strings.Repeat("x", 128<<10) + `"]}`
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	c.WriteMessage(websocket.TextMessage, []byte(big))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var err2 error
	for err2 == nil {
		_, _, err2 = c.ReadMessage()
	}
	if ce, ok := err2.(*websocket.CloseError); !ok || ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("a message over the read limit: %v, want close 1009", err2)
	}
}
