package proxy

import (
	"bufio"
	"io"
	"net"
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
)

// bearer identifies users by "Authorization: Bearer <id>", as the jwt
// provider does with tokens: sensegate needs the header, Qlik must never
// see it. Unlike the jwt provider it does not ask for the header to be
// stripped, so that Qlik's protection is seen to hold whatever the
// provider; stripBearer does ask, as the jwt provider does.
type bearer struct{}

type stripBearer struct{ bearer }

func (stripBearer) StripHeaders() []string { return []string{"Authorization"} }

func (bearer) Identify(r *http.Request) (identity.User, error) {
	id, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || id == "" {
		return identity.User{}, &identity.Error{Status: http.StatusUnauthorized, Msg: "no token", Err: identity.ErrNoIdentity}
	}
	return identity.User{Directory: "ACME", ID: id}, nil
}

// recorder is an upstream that keeps the requests it got.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
	srv  *httptest.Server
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Clone(r.Context()))
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, "upstream "+r.URL.Path)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

// take returns the requests received since the last take.
func (rec *recorder) take() []*http.Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	r := rec.reqs
	rec.reqs = nil
	return r
}

// spoofEnv is sensegate with virtual proxy prefix "vp" in front of a
// recording Qlik and a recording route upstream at /mashup/.
type spoofEnv struct {
	qlik, route *recorder
	front       *httptest.Server
	pub         *url.URL
}

const spoofCookie = "X-Qlik-Session-vp"

func newSpoofEnv(t *testing.T, qlikHandler http.HandlerFunc) *spoofEnv {
	t.Helper()
	return newSpoofEnvWith(t, bearer{}, qlikHandler)
}

func newSpoofEnvWith(t *testing.T, id identity.Provider, qlikHandler http.HandlerFunc) *spoofEnv {
	t.Helper()
	e := &spoofEnv{qlik: newRecorder(t, qlikHandler), route: newRecorder(t, nil)}
	qu, _ := url.Parse(e.qlik.srv.URL)
	ru, _ := url.Parse(e.route.srv.URL)
	e.pub, _ = url.Parse("https://sense.example.com")
	h, err := New(Options{
		Qlik: qu, Prefix: "vp", CookieName: spoofCookie, Identity: id,
		Sessions:  &fakeSessions{entry: session.Entry{Cookie: "alice-session"}},
		Routes:    []Route{{Path: "/mashup/", Upstream: ru}},
		PublicURL: e.pub, AllowedOrigins: []string{"http://portal.example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.front = httptest.NewServer(h)
	t.Cleanup(e.front.Close)
	return e
}

// checkQlikRequest fails unless r, as Qlik received it, carries nothing
// of the client's credentials or forwarding claims: only the user's own
// Qlik cookie, no Authorization, no X-Qlik-* header but the Xrfkey, no
// X-Forwarded-* or Forwarded, Qlik's own Host.
func checkQlikRequest(t *testing.T, r *http.Request, qlikHost string) {
	t.Helper()
	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != spoofCookie+"=alice-session" {
		t.Errorf("Qlik got Cookie %q, want only %s=alice-session", got, spoofCookie)
	}
	for k := range r.Header {
		lk := strings.ToLower(k)
		switch {
		case lk == "authorization", lk == "proxy-authorization", lk == "forwarded", strings.HasPrefix(lk, "x-forwarded-"),
			strings.HasPrefix(lk, "x-qlik-") && lk != "x-qlik-xrfkey":
			t.Errorf("Qlik got the client's %s: %q", k, r.Header.Values(k))
		}
	}
	if r.Host != qlikHost {
		t.Errorf("Qlik got Host %q, want its own %q", r.Host, qlikHost)
	}
	if strings.Contains(strings.ToLower(r.URL.RawQuery), "qlikticket") {
		t.Errorf("Qlik got a ticket parameter: %q", r.URL.RawQuery)
	}
}

// Requests that try to pass for someone else, or to reach a path outside
// the allowed ones, reach Qlik and the routes with nothing of it: checked
// at the upstreams, on what they received.
func TestSpoofingAndInjection(t *testing.T) {
	e := newSpoofEnv(t, nil)
	qlikHost := strings.TrimPrefix(e.qlik.srv.URL, "http://")
	tests := []struct {
		name   string
		target string   // path, or an absolute URL sent in absolute form
		hdr    []string // name, value pairs; Authorization: Bearer alice is added
		host   string   // the Host header, if not the front's
		status int
		qlik   string // the path Qlik must receive; "" for none
		route  string // the path the route upstream must receive; "" for none
		check  func(t *testing.T, r *http.Request)
	}{
		{name: "plain request", target: "/hub/", status: 200, qlik: "/vp/hub/"},
		{name: "Xrfkey passes", target: "/qrs/app?xrfkey=abcdefghijklmnop", hdr: []string{"X-Qlik-Xrfkey", "abcdefghijklmnop"}, status: 200, qlik: "/vp/qrs/app",
			check: func(t *testing.T, r *http.Request) {
				if r.Header.Get("X-Qlik-Xrfkey") != "abcdefghijklmnop" {
					t.Errorf("Qlik got X-Qlik-Xrfkey %q, want the client's (QRS's CSRF check)", r.Header.Get("X-Qlik-Xrfkey"))
				}
			}},

		// Qlik's header authentication and other identities.
		{name: "X-Qlik-User", target: "/hub/", hdr: []string{"X-Qlik-User", "UserDirectory=ACME; UserId=bob"}, status: 200, qlik: "/vp/hub/"},
		{name: "X-Qlik-Security", target: "/hub/", hdr: []string{"X-Qlik-Security", "Context=AppAccess; UserDirectory=ACME; UserId=bob"}, status: 200, qlik: "/vp/hub/"},
		{name: "x-qlik-user in lower case", target: "/hub/", hdr: []string{"x-qlik-user", "UserDirectory=ACME; UserId=bob", "X-QLIK-SESSION", "bob"}, status: 200, qlik: "/vp/hub/"},
		{name: "Proxy-Authorization", target: "/hub/", hdr: []string{"Proxy-Authorization", "Basic Ym9iOnNlY3JldA=="}, status: 200, qlik: "/vp/hub/"},
		{name: "Qlik session cookies", target: "/hub/", hdr: []string{"Cookie", spoofCookie + "=bob-session; X-Qlik-Session=bob; X-Qlik-Session-HTTP=bob; x-qlik-session-vp=bob; theme=dark"}, status: 200, qlik: "/vp/hub/"},
		{name: "two Cookie headers", target: "/hub/", hdr: []string{"Cookie", spoofCookie + "=bob-session", "Cookie", "X-Qlik-Session-vp-HTTP=bob"}, status: 200, qlik: "/vp/hub/"},
		{name: "qlikTicket parameter", target: "/hub/?qlikTicket=bobsticket&a=1", status: 200, qlik: "/vp/hub/"},

		// Forwarding claims and host tricks.
		{name: "X-Forwarded-* and Forwarded", target: "/hub/", hdr: []string{"X-Forwarded-For", "10.9.8.7", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https", "Forwarded", "for=10.9.8.7;host=evil.example", "X-Real-IP", "10.9.8.7"}, status: 200, qlik: "/vp/hub/"},
		{name: "foreign Host", target: "/hub/", host: "evil.example", status: 200, qlik: "/vp/hub/"},
		{name: "absolute-form request URI", target: "http://evil.example/hub/", status: 200, qlik: "/vp/hub/"},
		{name: "hop-by-hop trick", target: "/hub/", hdr: []string{"Connection", "X-Qlik-Xrfkey, Cookie", "X-Qlik-User", "bob"}, status: 200, qlik: "/vp/hub/"},

		// Paths: the prefix once, Qlik's paths only.
		{name: "prefix once", target: "/vp/hub/", status: 200, qlik: "/vp/hub/"},
		{name: "percent-encoded prefix", target: "/%76p/h%75b/", status: 200, qlik: "/vp/hub/"},
		{name: "Personal API", target: "/vp/qps/user", status: 200, qlik: "/vp/qps/user"},
		{name: "double prefix", target: "/vp/vp/hub/", status: 404},
		{name: "double prefix to QPS", target: "/vp/vp/qps/ticket", status: 404},
		{name: "empty segment after prefix", target: "/vp//hub/", status: 404},
		{name: "double slash", target: "//hub/", status: 404},
		{name: "double slash to QPS", target: "//qps/user", status: 404},
		{name: "QPS ticket API", target: "/qps/ticket", status: 404},
		{name: "QPS ticket API under the prefix", target: "/vp/qps/ticket", status: 404},
		{name: "QPS session API", target: "/qps/session", status: 404},
		{name: "below the Personal API", target: "/qps/user/ACME/bob", status: 404},
		{name: "longer than the Personal API", target: "/qps/username", status: 404},
		{name: "QMC", target: "/qmc/", status: 404},
		{name: "another virtual proxy", target: "/other/hub/", status: 404},
		{name: "prefix in upper case", target: "/VP/hub/", status: 404},
		{name: "dot segments", target: "/hub/%2e%2e/qps/ticket", status: 400},
		{name: "encoded slash", target: "/vp%2Fqps%2Fticket", status: 400},

		// A route gets the peer's address and sensegate's public host and
		// scheme, none of the client's claims or Qlik credentials.
		{name: "route", target: "/mashup/index.html", status: 200, route: "/mashup/index.html",
			hdr: []string{"X-Forwarded-For", "10.9.8.7", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "http", "Forwarded", "for=10.9.8.7", "X-Qlik-User", "bob", "Cookie", "X-Qlik-Session-vp=bob; theme=dark"},
			check: func(t *testing.T, r *http.Request) {
				want := map[string]string{
					"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": "sense.example.com", "X-Forwarded-Proto": "https",
					"Forwarded": "", "X-Qlik-User": "", "Cookie": "theme=dark",
				}
				for k, v := range want {
					if got := strings.Join(r.Header.Values(k), ", "); got != v {
						t.Errorf("route upstream got %s %q, want %q", k, got, v)
					}
				}
			}},
		{name: "route with a foreign Host", target: "/mashup/", host: "evil.example", status: 200, route: "/mashup/",
			check: func(t *testing.T, r *http.Request) {
				if got := r.Header.Get("X-Forwarded-Host"); got != "sense.example.com" {
					t.Errorf("route upstream got X-Forwarded-Host %q, want sense.example.com", got)
				}
			}},
		{name: "route prefix then a Qlik path", target: "/mashup/../vp/qps/ticket", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.qlik.take()
			e.route.take()
			resp := e.send(t, tt.target, tt.host, append([]string{"Authorization", "Bearer alice"}, tt.hdr...))
			if resp.StatusCode != tt.status {
				t.Errorf("GET %s = %d, want %d", tt.target, resp.StatusCode, tt.status)
			}
			qlikGot, routeGot := e.qlik.take(), e.route.take()
			switch {
			case tt.qlik == "" && len(qlikGot) > 0:
				t.Errorf("GET %s reached Qlik at %s, want it stopped", tt.target, qlikGot[0].URL)
			case tt.qlik != "" && len(qlikGot) != 1:
				t.Errorf("GET %s reached Qlik %d times, want once", tt.target, len(qlikGot))
			case tt.qlik != "":
				if qlikGot[0].URL.Path != tt.qlik {
					t.Errorf("Qlik got path %q, want %q", qlikGot[0].URL.Path, tt.qlik)
				}
				checkQlikRequest(t, qlikGot[0], qlikHost)
				if tt.check != nil {
					tt.check(t, qlikGot[0])
				}
			}
			switch {
			case tt.route == "" && len(routeGot) > 0:
				t.Errorf("GET %s reached the route upstream at %s, want it stopped", tt.target, routeGot[0].URL)
			case tt.route != "" && len(routeGot) != 1:
				t.Errorf("GET %s reached the route upstream %d times, want once", tt.target, len(routeGot))
			case tt.route != "":
				if routeGot[0].URL.Path != tt.route {
					t.Errorf("route upstream got path %q, want %q", routeGot[0].URL.Path, tt.route)
				}
				if tt.check != nil {
					tt.check(t, routeGot[0])
				}
			}
		})
	}
}

// With a provider that reads Authorization (jwt), the token stays at
// sensegate: neither Qlik nor a route's upstream gets it.
func TestBearerTokenStaysAtSensegate(t *testing.T) {
	e := newSpoofEnvWith(t, stripBearer{}, nil)
	for _, path := range []string{"/hub/", "/mashup/"} {
		if resp := e.send(t, path, "", []string{"Authorization", "Bearer alice"}); resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
	}
	for _, r := range append(e.qlik.take(), e.route.take()...) {
		if a := r.Header.Values("Authorization"); len(a) != 0 {
			t.Errorf("upstream got Authorization %q at %s, want none", a, r.URL.Path)
		}
	}
	if resp := e.send(t, "/hub/", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /hub/ without the token = %d, want 401 (the token is what identifies)", resp.StatusCode)
	}
}

// send sends a GET as written: target as the request URI (absolute form
// when it is an absolute URL), host as the Host header, hdr as given (in
// the case given).
func (e *spoofEnv) send(t *testing.T, target, host string, hdr []string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", e.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if host == "" {
		host = e.front.Listener.Addr().String()
	}
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n")
	for i := 0; i+1 < len(hdr); i += 2 {
		b.WriteString(hdr[i] + ": " + hdr[i+1] + "\r\n")
	}
	b.WriteString("\r\n")
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// The Engine websocket carries none of the client's credentials or
// claims either: sensegate dials Qlik with the user's cookie, its own
// Origin and nothing else of the client's but the User-Agent.
func TestSpoofingOnWebsocket(t *testing.T) {
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	e := newSpoofEnv(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		// Answer the probe, then echo.
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if strings.Contains(string(m), `"id":1000000007`) {
				m = []byte(`{"jsonrpc":"2.0","id":1000000007,"result":{"qComponentVersion":"test"}}`)
			}
			if c.WriteMessage(mt, m) != nil {
				return
			}
		}
	})
	qlikHost := strings.TrimPrefix(e.qlik.srv.URL, "http://")
	hdr := http.Header{
		"Authorization":    {"Bearer alice"},
		"X-Qlik-User":      {"UserDirectory=ACME; UserId=bob"},
		"Cookie":           {spoofCookie + "=bob-session; X-Qlik-Session=bob"},
		"X-Forwarded-For":  {"10.9.8.7"},
		"X-Forwarded-Host": {"evil.example"},
		"Forwarded":        {"for=10.9.8.7"},
		"Origin":           {"http://portal.example.com"},
		"User-Agent":       {"test-browser"},
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(e.front.URL, "http")+"/vp/app/engineData?qlikTicket=bobsticket&reloadUri=x", hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"method":"EngineVersion"}`)); err != nil {
		t.Fatal(err)
	}
	if _, m, err := c.ReadMessage(); err != nil || string(m) != `{"id":1,"method":"EngineVersion"}` {
		t.Fatalf("echo = %q, %v", m, err)
	}
	got := e.qlik.take()
	if len(got) != 1 {
		t.Fatalf("Qlik got %d upgrades, want 1", len(got))
	}
	r := got[0]
	if r.URL.Path != "/vp/app/engineData" || r.URL.Query().Get("reloadUri") != "x" {
		t.Errorf("Qlik got %s, want /vp/app/engineData with the client's other parameters", r.URL)
	}
	checkQlikRequest(t, r, qlikHost)
	if o := r.Header.Get("Origin"); o != e.qlik.srv.URL {
		t.Errorf("Qlik got Origin %q, want sensegate's Qlik origin %q", o, e.qlik.srv.URL)
	}
	if ua := r.Header.Get("User-Agent"); ua != "test-browser" {
		t.Errorf("Qlik got User-Agent %q, want the client's", ua)
	}

	// A page of another site cannot open one (cross-site websocket
	// hijacking), and Qlik is not dialled.
	hdr.Set("Origin", "https://evil.example")
	_, resp, err := d.Dial("ws"+strings.TrimPrefix(e.front.URL, "http")+"/vp/app/engineData", hdr)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("upgrade from a foreign Origin: %v, %v; want 403", resp, err)
	}
	if n := len(e.qlik.take()); n != 0 {
		t.Errorf("a foreign Origin made %d dials to Qlik, want none", n)
	}
}

// No Qlik session cookie, in any spelling or of any virtual proxy, set by
// Qlik or by a route's upstream, reaches the browser; other cookies do.
func TestNoQlikCookieVariantReachesBrowser(t *testing.T) {
	setCookies := setCookieLines(
		spoofCookie+"=rotated; Path=/; HttpOnly",
		"X-Qlik-Session=other-vp; Path=/",
		"X-Qlik-Session-vp-HTTP=over-http; Path=/",
		"x-qlik-session-ticket=lower-case; Path=/",
		"X-QLIK-SESSION-VP=upper-case; Path=/",
		"lang=en; Path=/",
	)
	e := newSpoofEnv(t, setCookies)
	e.route.srv.Config.Handler = http.HandlerFunc(setCookies)
	for _, path := range []string{"/hub/", "/mashup/"} {
		resp := e.send(t, path, "", []string{"Authorization", "Bearer alice"})
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		var names []string
		for _, c := range resp.Cookies() {
			names = append(names, c.Name)
		}
		if len(names) != 1 || names[0] != "lang" {
			t.Errorf("GET %s: the browser got cookies %q, want only lang", path, names)
		}
	}
}

// Issue 15: a virtual proxy names its session cookie freely
// (sessionCookieHeaderName). A custom name, in any case and with Qlik's
// -HTTP suffix, never reaches the browser or a route, and Qlik setting it
// updates the jar.
func TestCustomSessionCookieName(t *testing.T) {
	setCookies := setCookieLines(
		"sense-MASHUP=rotated; Path=/; HttpOnly",
		"Sense-Mashup-HTTP=over-http; Path=/",
		"lang=en; Path=/",
	)
	qlik := newRecorder(t, setCookies)
	route := newRecorder(t, setCookies)
	qu, _ := url.Parse(qlik.srv.URL)
	ru, _ := url.Parse(route.srv.URL)
	pub, _ := url.Parse("https://sense.example.com")
	fs := &fakeSessions{entry: session.Entry{Cookie: "first"}}
	h, err := New(Options{
		Qlik: qu, CookieName: "Sense-Mashup", Identity: bearer{}, Sessions: fs, PublicURL: pub,
		Routes: []Route{{Path: "/mashup/", Upstream: ru}},
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	t.Cleanup(front.Close)
	for _, path := range []string{"/hub/", "/mashup/"} {
		req, _ := http.NewRequest("GET", front.URL+path, nil)
		req.Header.Set("Authorization", "Bearer alice")
		req.Header.Set("Cookie", "Sense-Mashup=bob-session; sense-mashup-http=bob; lang=de")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var names []string
		for _, c := range resp.Cookies() {
			names = append(names, c.Name)
		}
		if len(names) != 1 || names[0] != "lang" {
			t.Errorf("GET %s: the browser got cookies %q, want only lang", path, names)
		}
	}
	if got := qlik.take(); len(got) != 1 || got[0].Header.Get("Cookie") != "Sense-Mashup=first" {
		t.Errorf("Qlik got Cookie %q, want only the user's session", got[0].Header.Get("Cookie"))
	}
	if got := route.take(); len(got) != 1 || got[0].Header.Get("Cookie") != "lang=de" {
		t.Errorf("the route got Cookie %q, want lang=de only", got[0].Header.Get("Cookie"))
	}
	if len(fs.updates) != 1 || fs.updates[0] != "rotated" {
		t.Errorf("jar updates = %q, want [rotated]", fs.updates)
	}
}

// setCookieLines is an upstream that answers "ok" with a Set-Cookie
// header of each line.
func setCookieLines(lines ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for _, line := range lines {
			w.Header().Add("Set-Cookie", line)
		}
		io.WriteString(w, "ok")
	}
}
