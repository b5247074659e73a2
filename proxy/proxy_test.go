package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/tooling/devlogin"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

func TestOneTicketForConcurrentFirstRequests(t *testing.T) {
	e := newEnv(t)
	const n = 100
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := e.do(t, "GET", "/hub/", "alice")
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Fatalf("request %d: status %d, want 200", i, s)
		}
	}
	if got := e.sim.Counts(`ACME\alice`).TicketsIssued; got != 1 {
		t.Errorf("tickets issued for alice = %d, want 1", got)
	}
}

func TestOneTicketPerUser(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	for i := range 20 {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if resp, body := e.do(t, "GET", "/hub/", fmt.Sprint("user", i)); resp.StatusCode != 200 || !strings.Contains(body, fmt.Sprintf(`ACME\user%d`, i)) {
					t.Errorf("user%d: %d %q", i, resp.StatusCode, body)
				}
			}()
		}
	}
	wg.Wait()
	if got := e.sim.TicketsIssued(); got != 20 {
		t.Errorf("tickets issued = %d, want 20", got)
	}
}

// slowLogin delays the login of one user until released.
type slowLogin struct {
	next    session.Loginer
	slow    string
	release chan struct{}
}

func (s *slowLogin) Login(ctx context.Context, u identity.User) (*http.Cookie, error) {
	if u.String() == s.slow {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.next.Login(ctx, u)
}

func TestSlowLoginDoesNotDelayOthers(t *testing.T) {
	sl := &slowLogin{slow: `ACME\slow`, release: make(chan struct{})}
	e := newEnvWith(t, envConfig{login: func(l session.Loginer) session.Loginer { sl.next = l; return sl }})
	slowDone := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.front.URL+"/hub/", nil)
		req.Header.Set("X-Forwarded-User", "slow")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			slowDone <- 0
			return
		}
		resp.Body.Close()
		slowDone <- resp.StatusCode
	}()
	for i := range 10 {
		req, _ := http.NewRequest("GET", e.front.URL+"/hub/", nil)
		req.Header.Set("X-Forwarded-User", fmt.Sprint("fast", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("fast%d while slow's login hangs: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}
	select {
	case s := <-slowDone:
		t.Fatalf("slow user finished (%d) before its login was released", s)
	default:
	}
	close(sl.release)
	if s := <-slowDone; s != 200 {
		t.Errorf("slow user = %d after release, want 200", s)
	}
}

func TestQRSThroughSensegate(t *testing.T) {
	e := newEnv(t)
	names := func(user string) []string {
		var tasks []struct{ Name string }
		if resp := e.qrs(t, "/qrs/reloadtask", user, &tasks); resp.StatusCode != 200 {
			t.Fatalf("GET /qrs/reloadtask as %s = %d", user, resp.StatusCode)
		}
		var out []string
		for _, x := range tasks {
			out = append(out, x.Name)
		}
		return out
	}
	if got, want := strings.Join(names("alice"), ","), "Reload Sales Dashboard,Reload Company Handbook,Reload Alice Sandbox"; got != want {
		t.Errorf("alice's tasks = %s, want %s", got, want)
	}
	if got, want := strings.Join(names("bob"), ","), "Reload Finance Overview,Reload Company Handbook"; got != want {
		t.Errorf("bob's tasks = %s, want %s", got, want)
	}
	// The virtual proxy prefix in the client's URL is accepted too.
	if resp, _ := e.do(t, "GET", "/qrs/about", "alice"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("QRS without Xrfkey = %d, want Qlik's 403", resp.StatusCode)
	}
}

func TestEngineThroughSensegate(t *testing.T) {
	e := newEnv(t)
	c, resp, err := e.dialEngine(t, "/app/engineData", "carol", nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("101 carries Set-Cookie %v", sc)
	}
	ans, notes := call(t, c, 1, "GetAuthenticatedUser", -1, "")
	var r struct{ QReturn string }
	json.Unmarshal(ans.Result, &r)
	if r.QReturn != "UserDirectory=ACME; UserId=carol" {
		t.Errorf("GetAuthenticatedUser = %s, want carol", ans.Result)
	}
	if len(notes) != 2 || notes[0].Method != "OnAuthenticationInformation" || notes[1].Method != "OnConnected" {
		t.Errorf("notifications before the answer = %+v", notes)
	}
	if !strings.Contains(string(notes[0].Params), `"mustAuthenticate":false`) {
		t.Errorf("OnAuthenticationInformation = %s, want an authenticated session", notes[0].Params)
	}
	// A large message passes both ways.
	ans, _ = call(t, c, 2, "OpenDoc", -1, "", "5a8a1b2c-0003-4c1e-9d3f-000000000003")
	if ans.Error != nil {
		t.Fatalf("OpenDoc: %+v", ans.Error)
	}
	big := strings.Repeat("LOAD * INLINE [a\n1];\n", 300_000) // ~6 MB
	if ans, _ = call(t, c, 3, "SetScript", 1, "", big); ans.Error != nil {
		t.Fatalf("SetScript: %+v", ans.Error)
	}
	ans, _ = call(t, c, 4, "GetScript", 1, "")
	var s struct{ QScript string }
	json.Unmarshal(ans.Result, &s)
	if s.QScript != big {
		t.Errorf("GetScript returned %d bytes, want the %d sent", len(s.QScript), len(big))
	}
}

func TestIsolationUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	const users = 50
	since := int64(0)
	if ev := e.sim.Events(0); len(ev) > 0 {
		since = ev[len(ev)-1].Seq
	}
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprint("iso", i)
			tag := `ACME\` + user
			for range 3 {
				if resp, _ := e.do(t, "GET", "/hub/", user, "X-Sim-Tag", tag); resp.StatusCode != 200 {
					t.Errorf("%s: hub %d", user, resp.StatusCode)
				}
			}
			c, _, err := e.dialEngine(t, "/app/engineData", user, nil)
			if err != nil {
				t.Errorf("%s: dial: %v", user, err)
				return
			}
			for j := 1; j <= 3; j++ {
				call(t, c, j, "GetDocList", -1, tag)
			}
			c.Close()
		}()
	}
	wg.Wait()
	checked, mismatches := 0, 0
	for _, ev := range e.sim.Events(since) {
		if ev.Tag == "" {
			continue
		}
		checked++
		if ev.User != ev.Tag {
			mismatches++
			t.Errorf("simulator saw %s %s as %q, sent for %q", ev.Kind, ev.Path, ev.User, ev.Tag)
		}
	}
	if want := users * 6; checked != want || mismatches != 0 {
		t.Errorf("checked %d tagged requests (want %d), %d ran as the wrong user", checked, want, mismatches)
	}
	if got := e.sim.TicketsIssued(); got != users {
		t.Errorf("tickets = %d, want %d", got, users)
	}
}

func TestNoQlikCookieOrTicketReachesBrowser(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/hub/", "/resources/autogenerated/qlik-styles.css", "/qps/user"} {
		resp, body := e.do(t, "GET", path, "alice")
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		for _, sc := range resp.Header.Values("Set-Cookie") {
			if strings.Contains(strings.ToLower(sc), "x-qlik-session") {
				t.Errorf("GET %s: browser got Set-Cookie %q", path, sc)
			}
		}
		if strings.Contains(strings.ToLower(body), "qlikticket") {
			t.Errorf("GET %s: body mentions a ticket", path)
		}
	}
}

func TestClientCredentialsNeverReachQlik(t *testing.T) {
	e := newEnv(t)
	// bob's real Qlik session cookie and ticket, in alice's hands.
	bobTicket, err := e.tickets.Ticket(context.Background(), identity.User{Directory: "ACME", ID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	bobCookie, err := e.tickets.Login(context.Background(), identity.User{Directory: "ACME", ID: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		hdr        []string
	}{
		{"qlikTicket", "/hub/?qlikTicket=" + bobTicket, nil},
		{"QlikTicket", "/hub/?QlikTicket=" + bobTicket, nil},
		{"QLIKTICKET", "/hub/?QLIKTICKET=" + bobTicket, nil},
		// Found by FuzzStripTicketParams: a percent-encoded name.
		{"qlik%54icket", "/hub/?qlik%54icket=" + bobTicket, nil},
		{"%71likTicket", "/hub/?%71likTicket=" + bobTicket, nil},
		{"session cookie", "/hub/", []string{"Cookie", "X-Qlik-Session=" + bobCookie.Value}},
		{"X-Qlik-User", "/hub/", []string{"X-Qlik-User", "UserDirectory=ACME; UserId=bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.do(t, "GET", tt.path, "alice", tt.hdr...)
			if resp.StatusCode != 200 || !strings.Contains(body, `ACME\alice`) || strings.Contains(body, `ACME\bob`) {
				t.Errorf("GET as alice with bob's %s = %d %q, want alice's hub", tt.name, resp.StatusCode, body)
			}
		})
	}
	if got := e.sim.Counts(`ACME\bob`).TicketsRedeemed; got != 1 {
		t.Errorf("bob's tickets redeemed = %d, want 1 (his own login only)", got)
	}
	// On the websocket too.
	c, _, err := e.dialEngine(t, "/app/engineData?qlikTicket="+bobTicket, "alice", http.Header{"Cookie": {"X-Qlik-Session=" + bobCookie.Value}})
	if err != nil {
		t.Fatal(err)
	}
	ans, _ := call(t, c, 1, "GetAuthenticatedUser", -1, "")
	if !strings.Contains(string(ans.Result), "UserId=alice") {
		t.Errorf("websocket with bob's credentials ran as %s", ans.Result)
	}
}

func TestIdentityRefusals(t *testing.T) {
	e := newEnv(t)
	// From an untrusted peer the identity header is refused.
	r := httptest.NewRequest("GET", "/hub/", nil)
	r.RemoteAddr = "192.0.2.7:40000"
	r.Header.Set("X-Forwarded-User", "alice")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "untrusted") || w.Header().Get(HeaderRequestID) == "" {
		t.Errorf("header from untrusted peer = %d %q, want 403 with a request id", w.Code, w.Body)
	}
	if resp, body := e.do(t, "GET", "/hub/", ""); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"request_id"`) {
		t.Errorf("no identity = %d %q, want 401 JSON", resp.StatusCode, body)
	}
	if n := e.sim.TicketsIssued(); n != 0 {
		t.Errorf("tickets issued = %d, want 0", n)
	}
}

func TestWebsocketOriginCheck(t *testing.T) {
	e := newEnv(t)
	_, resp, err := e.dialEngine(t, "/app/engineData", "alice", http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Origin: err %v resp %v, want 403", err, resp)
	}
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", http.Header{"Origin": {e.front.URL}})
	if err != nil {
		t.Fatalf("own Origin: %v", err)
	}
	// Qlik's host allow list saw the Origin it expects, not the browser's.
	if ans, _ := call(t, c, 1, "EngineVersion", -1, ""); ans.Error != nil {
		t.Errorf("EngineVersion: %+v", ans.Error)
	}
}

func TestWebsocketFatalNotificationAndClose(t *testing.T) {
	e := newEnv(t)
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, 1, "EngineVersion", -1, "")
	e.sim.ExpireUser(`ACME\alice`)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m rpc
	if err := c.ReadJSON(&m); err != nil || m.Method != "OnSessionTimedOut" {
		t.Fatalf("after expiry read %+v, %v; want OnSessionTimedOut", m, err)
	}
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseNormalClosure {
		t.Errorf("close = %v, want 1000 passed through from Qlik", err)
	}
}

func TestWebsocketDroppedWhenQlikDrops(t *testing.T) {
	e := newEnv(t)
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, 1, "EngineVersion", -1, "")
	e.sim.ExpireAll()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseAbnormalClosure {
		t.Errorf("after Qlik dropped the socket: %v, want 1006 (connection dropped, no close frame)", err)
	}
}

func TestShutdownClosesWebsockets(t *testing.T) {
	e := newEnv(t)
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, 1, "EngineVersion", -1, "")
	if n := e.h.OpenWebsockets(); n != 1 {
		t.Errorf("OpenWebsockets = %d, want 1", n)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.h.Shutdown(ctx)
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Errorf("on shutdown the client read %v, want close 1001", err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if n := e.h.OpenWebsockets(); n != 0 {
		t.Errorf("OpenWebsockets after shutdown = %d", n)
	}
}

func TestQlikRestartIsTransparent(t *testing.T) {
	e := newEnv(t)
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	e.sim.ExpireAll()
	if resp, body := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 || !strings.Contains(body, `ACME\alice`) {
		t.Errorf("after a Qlik restart = %d %q, want the hub on a fresh session", resp.StatusCode, body)
	}
	if got := e.sim.Counts(`ACME\alice`).TicketsIssued; got != 2 {
		t.Errorf("tickets = %d, want 2", got)
	}
}

func TestErrorPages(t *testing.T) {
	e := newEnv(t)
	e.sim.SetQPSFault(qliksim.Fault5xx)
	resp, body := e.do(t, "GET", "/hub/", "alice")
	var js struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal([]byte(body), &js) != nil || js.RequestID != resp.Header.Get(HeaderRequestID) || resp.StatusCode < 500 {
		t.Errorf("QPS down, JSON client = %d %q", resp.StatusCode, body)
	}
	if strings.Contains(body, "4243") || strings.Contains(body, "localhost") {
		t.Errorf("error body leaks upstream details: %q", body)
	}
	resp, body = e.do(t, "GET", "/hub/", "alice", "Accept", "text/html,application/xhtml+xml")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, resp.Header.Get(HeaderRequestID)) {
		t.Errorf("QPS down, browser = %q %q", resp.Header.Get("Content-Type"), body)
	}
	if resp, _ := e.do(t, "GET", "/nowhere", "alice"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path = %d, want 404", resp.StatusCode)
	}
}

func TestRoutesToMashup(t *testing.T) {
	var got *http.Request
	mashup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		http.SetCookie(w, &http.Cookie{Name: "X-Qlik-Session", Value: "leak"})
		http.SetCookie(w, &http.Cookie{Name: "theme", Value: "dark"})
		fmt.Fprint(w, "mashup "+r.URL.Path)
	}))
	defer mashup.Close()
	up, _ := url.Parse(mashup.URL)
	e := newEnv(t, func(_ *qliksim.Config, o *Options) {
		o.Routes = []Route{{Path: "/mashup/", Upstream: up, StripPrefix: true}, {Path: "/", Upstream: up}}
	})
	resp, body := e.do(t, "GET", "/mashup/index.html", "alice", "Cookie", "X-Qlik-Session=stolen; theme=light")
	if resp.StatusCode != 200 || body != "mashup /index.html" {
		t.Fatalf("GET /mashup/index.html = %d %q, want the mashup's /index.html", resp.StatusCode, body)
	}
	if c := got.Header.Get("Cookie"); c != "theme=light" {
		t.Errorf("mashup got Cookie %q, want only theme=light", c)
	}
	if got.Header.Get("X-Forwarded-User") != "" || got.Header.Get("X-Forwarded-For") == "" {
		t.Errorf("mashup headers: identity %q, X-Forwarded-For %q", got.Header.Get("X-Forwarded-User"), got.Header.Get("X-Forwarded-For"))
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 1 || !strings.HasPrefix(sc[0], "theme=") {
		t.Errorf("browser got Set-Cookie %v, want only theme", sc)
	}
	if resp, body := e.do(t, "GET", "/other", "alice"); resp.StatusCode != 200 || body != "mashup /other" {
		t.Errorf("GET /other via the / route = %d %q", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 || !strings.Contains(body, "Hub") {
		t.Errorf("Qlik paths win over the / route: %d %q", resp.StatusCode, body)
	}
}

// fakeSessions records jar updates for tests with a fake Qlik.
type fakeSessions struct {
	mu      sync.Mutex
	entry   session.Entry
	updates []string
}

func (f *fakeSessions) Ensure(context.Context, identity.User) (session.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entry, nil
}
func (f *fakeSessions) Invalidate(context.Context, identity.User, string) error { return nil }
func (f *fakeSessions) Update(_ context.Context, _ identity.User, e session.Entry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entry = e
	f.updates = append(f.updates, e.Cookie)
	return nil
}

func TestQlikResponseRewriting(t *testing.T) {
	var cookies []string
	var mu sync.Mutex
	qlik := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cookies = append(cookies, r.Header.Get("Cookie"))
		mu.Unlock()
		switch r.URL.Path {
		case "/vp/hub/":
			http.SetCookie(w, &http.Cookie{Name: "X-Qlik-Session-vp", Value: "rotated", Path: "/", HttpOnly: true})
			http.SetCookie(w, &http.Cookie{Name: "lang", Value: "en"})
			w.Write([]byte("ok"))
		case "/vp/sense/app/x":
			http.Redirect(w, r, "http://"+r.Host+"/vp/sense/app/x/overview?qlikTicket=abc&a=1", http.StatusFound)
		}
	}))
	defer qlik.Close()
	qu, _ := url.Parse(qlik.URL)
	pub, _ := url.Parse("https://sensegate.example")
	fs := &fakeSessions{entry: session.Entry{Cookie: "first"}}
	h, err := New(Options{Qlik: qu, Prefix: "vp", CookieName: "X-Qlik-Session-vp", Identity: identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"}), Sessions: fs, PublicURL: pub})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(front.URL + "/hub/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 1 || !strings.HasPrefix(sc[0], "lang=") {
		t.Errorf("browser Set-Cookie = %v, want lang only", sc)
	}
	if len(fs.updates) != 1 || fs.updates[0] != "rotated" {
		t.Errorf("jar updates = %v, want [rotated]", fs.updates)
	}
	resp, err = c.Get(front.URL + "/vp/sense/app/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "https://sensegate.example/sense/app/x/overview?a=1" {
		t.Errorf("Location = %q, want it on sensegate without prefix or ticket", loc)
	}
	if cookies[0] != "X-Qlik-Session-vp=first" || cookies[1] != "X-Qlik-Session-vp=rotated" {
		t.Errorf("Qlik received cookies %q, want first then the rotated one", cookies)
	}
}

func TestPublicPathsAndUnauthenticatedAnswers(t *testing.T) {
	mashup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "asset "+r.URL.Path) }))
	defer mashup.Close()
	up, _ := url.Parse(mashup.URL)
	login := devlogin.New([]identity.User{{Directory: "ACME", ID: "alice"}}, false)
	e := newEnv(t, func(_ *qliksim.Config, o *Options) {
		o.Routes = []Route{{Path: "/mashup/", Upstream: up}}
		o.PublicPaths = []string{"/mashup/assets/"}
		o.Identity = login
	})
	var gotCookie string
	mashup.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotCookie = r.Header.Get("Cookie")
		fmt.Fprint(w, "asset "+r.URL.Path)
	})
	if resp, body := e.do(t, "GET", "/mashup/assets/app.css", "", "Cookie", "sensegate_dev_user=secret; theme=dark"); resp.StatusCode != 200 || body != "asset /mashup/assets/app.css" {
		t.Errorf("public asset without login = %d %q", resp.StatusCode, body)
	}
	if gotCookie != "theme=dark" {
		t.Errorf("the route's upstream got Cookie %q, want sensegate's login cookie removed", gotCookie)
	}
	// A browser navigation is sent to the login page and back.
	resp, _ := e.do(t, "GET", "/mashup/index.html", "", "Accept", "text/html,application/xhtml+xml")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/.sensegate/login?rd=%2Fmashup%2Findex.html" {
		t.Errorf("browser navigation without login = %d Location %q, want 302 to the login page", resp.StatusCode, loc)
	}
	// XHR, fetch, QRS and websocket handshakes get 401 JSON, no redirect.
	for _, hdr := range [][]string{{"Accept", "*/*"}, {"Accept", "text/html", "X-Requested-With", "XMLHttpRequest"}, {"Accept", "application/json"}} {
		resp, body := e.do(t, "GET", "/qrs/app?xrfkey="+xrf, "", hdr...)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"request_id"`) {
			t.Errorf("QRS without login (%v) = %d %q, want 401 JSON", hdr, resp.StatusCode, body)
		}
	}
	_, resp, err := e.dialEngine(t, "/app/engineData", "", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("websocket without login: %v %v, want 401", err, resp)
	}
}

// Path tricks must not reach paths outside the allowed ones: net/http does
// not clean the path for a root handler, so "/hub/../qmc/" would match the
// /hub/ prefix and mean /qmc/ upstream.
func TestPathTricksRefused(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{
		"/hub/../qmc/", "/hub/%2e%2e/qmc/", "/hub/./x", "/resources/a%2Fb", "/resources/a%5cb",
		"/mashup/..%5c..%5cetc", "/hub/..", "/qps/user/../../qps/ticket",
	} {
		r := httptest.NewRequest("GET", p, nil)
		r.RemoteAddr = "127.0.0.1:5000"
		r.Header.Set("X-Forwarded-User", "alice")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", p, w.Code)
		}
	}
	if n := e.sim.TicketsIssued(); n != 0 {
		t.Errorf("path tricks made %d tickets, want 0 (refused before identity and Qlik)", n)
	}
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != 200 {
		t.Errorf("a plain path after the tricks = %d", resp.StatusCode)
	}
}

func TestIsWebsocket(t *testing.T) {
	tests := []struct {
		name string
		hdr  http.Header
		want bool
	}{
		{"browser", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, true},
		{"token lists in any case", http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"h2c , WebSocket"}}, true},
		{"token on a later line", http.Header{"Connection": {"keep-alive", " upgrade "}, "Upgrade": {"websocket"}}, true},
		{"no upgrade", http.Header{"Connection": {"keep-alive"}}, false},
		{"upgrade not in Connection", http.Header{"Connection": {"keep-alive"}, "Upgrade": {"websocket"}}, false},
		{"other protocol", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}}, false},
		{"token part of a word", http.Header{"Connection": {"upgraded"}, "Upgrade": {"websockets"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isWebsocket(&http.Request{Header: tc.hdr}); got != tc.want {
				t.Errorf("isWebsocket(%v) = %v, want %v", tc.hdr, got, tc.want)
			}
		})
	}
}
