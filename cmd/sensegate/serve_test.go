package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/devidp"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Every example configuration passes `sensegate check` once its
// certificate paths point at real files (given through the environment,
// which also proves the overrides work), without a warning: operators
// copy them.
func TestExampleConfigsPassCheck(t *testing.T) {
	certs, err := qliksim.WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SENSEGATE_QLIK_CA", certs.Root)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_CERT", certs.Client)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_KEY", certs.ClientKey)
	files, _ := filepath.Glob("../../deploy/examples/*.yaml")
	if len(files) < 2 {
		t.Fatalf("found %d example configs, want at least 2", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, errOut, err := runCheck(t, "check", "--config", f)
			if err != nil || !strings.Contains(out, "config OK") || errOut != "" {
				t.Errorf("check %s = %v, output %q, standard error %q, want config OK and nothing on standard error", f, err, out, errOut)
			}
		})
	}
}

// headerIdentity is the identity section of writeSimConfig.
const headerIdentity = `identity:
  provider: header
  header:
    trusted_proxies: ["127.0.0.1/32", "::1/128"]
`

// writeSimConfig writes a sensegate config for a running simulator.
func writeSimConfig(t *testing.T, sim *qliksim.Sim, extra string) string {
	t.Helper()
	return writeSimConfigWith(t, sim, "http://localhost:8080", headerIdentity+extra)
}

// writeSimConfigWith writes a sensegate config for a running simulator with
// public URL publicURL, followed by rest (identity, routes).
func writeSimConfigWith(t *testing.T, sim *qliksim.Sim, publicURL, rest string) string {
	t.Helper()
	c := sim.Certs()
	body := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  public_url: %q
  shutdown_grace: 5s
qlik:
  url: %q
  user_directory: ACME
  ca: %q
  qps:
    url: %q
    client_cert: %q
    client_key: %q
%s`, publicURL, sim.ProxyURL(), c.Root, sim.QPSURL(), c.Client, c.ClientKey, rest)
	f := filepath.Join(t.TempDir(), "sensegate.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func startSim(t *testing.T) *qliksim.Sim {
	t.Helper()
	return qliksimtest.Start(t, nil, qliksim.Options{})
}

// runGateway builds sensegate from cfg as serve does and serves it on ln
// (a new loopback listener when nil) until the test ends, when serve must
// return cleanly. It returns the address.
func runGateway(t *testing.T, cfg *config.Config, log *zap.Logger, ln net.Listener) string {
	t.Helper()
	provider, err := newProvider(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := newGateway(cfg, provider, log)
	if err != nil {
		t.Fatal(err)
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveOn(ctx, ln, cfg.Server, gw.handler, nil, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
		gw.close()
	})
	return ln.Addr().String()
}

// The wiring of `serve` from a config file: a request through it reaches
// the simulator as the header's user, and shutdown closes websockets with
// 1001 and returns.
func TestServeFromConfig(t *testing.T) {
	sim := startSim(t)
	// Everything serve starts must be gone when it returns.
	before := goleak.IgnoreCurrent()
	cfg, err := config.Load(writeSimConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	provider, err := newProvider(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := newGateway(cfg, provider, log)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg.Server, gw.handler, ready, log) }()
	addr := (<-ready).String()

	req, _ := http.NewRequest("GET", "http://"+addr+"/hub/", nil)
	req.Header.Set("X-Forwarded-User", "bob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `ACME\bob`) {
		t.Fatalf("GET /hub/ through serve = %d %q", resp.StatusCode, body)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/engineData", http.Header{"X-Forwarded-User": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "EngineVersion", "handle": -1, "params": []any{}})
	for i := 0; i < 3; i++ { // OnAuthenticationInformation, OnConnected, the answer
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Errorf("websocket on shutdown: %v, want close 1001", err)
	}
	ws.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
	gw.close()
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after shutdown: %v", err)
	}
}

func TestCheckConnect(t *testing.T) {
	sim := startSim(t)
	f := writeSimConfig(t, sim, "")
	var out strings.Builder
	if err := run(context.Background(), t, &out, "check", "--connect", "--config", f); err != nil || !strings.Contains(out.String(), "QPS OK") {
		t.Fatalf("check --connect = %v, %q", err, out.String())
	}
	sim.SetQPSFault(qliksim.Fault5xx)
	err := run(context.Background(), t, io.Discard, "check", "--connect", "--config", f)
	if err == nil || !strings.Contains(err.Error(), "qlik.qps.url") {
		t.Errorf("check --connect with QPS failing = %v, want an error naming qlik.qps.url", err)
	}
	// With several nodes every one is checked: one down fails the check,
	// naming it, though the other answers.
	down := startSim(t)
	nodes := writeSimConfig(t, sim, "")
	b, err := os.ReadFile(nodes)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.NewReplacer(fmt.Sprintf("  url: %q\n", sim.ProxyURL()), "", fmt.Sprintf("    url: %q\n", sim.QPSURL()), "").Replace(string(b))
	y = strings.Replace(y, "qlik:\n", "qlik:\n  nodes:\n    - {url: "+sim.ProxyURL()+", qps_url: "+sim.QPSURL()+"}\n    - {url: "+down.ProxyURL()+", qps_url: "+down.QPSURL()+"}\n", 1)
	if err := os.WriteFile(nodes, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	sim.SetQPSFault(qliksim.FaultNone)
	down.SetQPSFault(qliksim.FaultDown)
	out.Reset()
	err = run(context.Background(), t, &out, "check", "--connect", "--config", nodes)
	if err == nil || !strings.Contains(err.Error(), "qlik.nodes[1].qps_url") || !strings.Contains(out.String(), "QPS OK: "+sim.QPSURL()) {
		t.Errorf("check --connect with the second node down = %v, %q; want node 0 OK and an error naming qlik.nodes[1].qps_url", err, out.String())
	}
	// A client certificate the QPS does not trust.
	other, _ := qliksim.WriteCerts(t.TempDir(), nil)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_CERT", other.Client)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_KEY", other.ClientKey)
	sim.SetQPSFault(qliksim.FaultNone)
	err = run(context.Background(), t, io.Discard, "check", "--connect", "--config", f)
	if err == nil || !strings.Contains(err.Error(), "client_cert") {
		t.Errorf("check --connect with a foreign client certificate = %v, want it to name client_cert", err)
	}
}

// testBrowser is an http.Client with a cookie jar that follows redirects
// the way a browser navigates (Accept: text/html) and records every URL it
// requested.
type testBrowser struct {
	c   *http.Client
	jar *cookiejar.Jar

	mu      sync.Mutex
	visited []*url.URL
}

func newTestBrowser(t *testing.T) *testBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBrowser{jar: jar}
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	b.c = &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		b.mu.Lock()
		b.visited = append(b.visited, r.URL)
		b.mu.Unlock()
		return base.RoundTrip(r)
	})}
	return b
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// do sends a navigation (a form post when form is not nil), following
// redirects or not, and returns the last response with its body.
func (b *testBrowser) do(t *testing.T, method, target string, form url.Values, follow bool) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	c := *b.c
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// getJSON GETs target as a script would and decodes the answer into v.
func (b *testBrowser) getJSON(t *testing.T, target string, header http.Header, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", target, nil)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d %s", target, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", target, err, body)
	}
}

func (b *testBrowser) visitedPath(host, path string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range b.visited {
		if u.Host == host && u.Path == path {
			return true
		}
	}
	return false
}

var loginFormID = regexp.MustCompile(`name="id" value="([^"]*)"`)

// atLoginForm reports whether resp is devidp's login form.
func atLoginForm(resp *http.Response, body, issuer string) bool {
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Request.URL.String(), issuer+"/login?") && loginFormID.MatchString(body)
}

// signIn fills devidp's login form (the page resp and body show) as
// username and returns where the browser ends up.
func (b *testBrowser) signIn(t *testing.T, resp *http.Response, body, issuer, username, password string) (*http.Response, string) {
	t.Helper()
	if !atLoginForm(resp, body, issuer) {
		t.Fatalf("the browser is at %s (%d), want the identity provider's login form:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	id := html.UnescapeString(loginFormID.FindStringSubmatch(body)[1])
	return b.do(t, "POST", issuer+"/login", url.Values{"id": {id}, "username": {username}, "password": {password}}, true)
}

// A browser signs in through sensegate (serve's wiring from a config file,
// identity.provider oidc) at a development OpenID provider, reaches Qlik
// as the user the ID token names with the Group attributes of its groups
// claim, and signs out of sensegate, Qlik and the provider.
func TestServeOIDCLogin(t *testing.T) {
	// alice's seeded groups are dropped: she sees the Sales app only
	// through the Group attribute sensegate sends from her ID token.
	sim := qliksimtest.Start(t, func(c *qliksim.Config) {
		for i := range c.Users {
			if c.Users[i].ID == "alice" {
				c.Users[i].Groups = nil
			}
		}
	}, qliksim.Options{})
	// The mashup's server, behind routes "/".
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "mashup home") }))
	t.Cleanup(home.Close)

	// sensegate at localhost (its port known before the config is), the
	// identity provider at 127.0.0.1: browsers keep their cookies apart.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	log := zaptest.NewLogger(t)
	idp := startTestIDP(t, public, devidp.User{Username: "alice", Password: "wonderland", Email: "alice@acme.example", Groups: []string{"Sales"}}, log)
	issuer := idp.Issuer()

	cfg, err := config.Load(writeSimConfigWith(t, sim, public, fmt.Sprintf(`identity:
  provider: oidc
  oidc:
    issuer: %q
    client_id: sensegate
    client_secret: client-secret
    cookie_secrets: [%q]
  mapping:
    user_id_claim: preferred_username
    groups_claim: groups
    attributes:
      EmployeeEmail: email
routes:
  - path: /
    upstream: %q
`, issuer, base64.StdEncoding.EncodeToString(make([]byte, 32)), home.URL)))
	if err != nil {
		t.Fatal(err)
	}
	runGateway(t, cfg, log, ln)

	b := newTestBrowser(t)
	resp, body := b.do(t, "GET", public+"/hub/", nil, true)
	resp, body = b.signIn(t, resp, body, issuer, "alice", "wonderland")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != public+"/hub/" || !strings.Contains(body, `ACME\alice`) {
		t.Fatalf("after signing in the browser is at %s with %d, want %s/hub/ as ACME\\alice:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}

	var me struct {
		Directory  string              `json:"userDirectory"`
		ID         string              `json:"userId"`
		Attributes []map[string]string `json:"attributes"`
	}
	b.getJSON(t, public+"/.sensegate/me", nil, &me)
	// Attribute names keep their case from the file to Qlik (viper
	// lower-cases map keys: EmployeeEmail reached Qlik as employeeemail).
	if me.Directory != "ACME" || me.ID != "alice" || !cmp.Equal(me.Attributes, []map[string]string{{"Group": "Sales"}, {"EmployeeEmail": "alice@acme.example"}}) {
		t.Errorf("/.sensegate/me = %+v, want ACME\\alice with Group Sales and EmployeeEmail", me)
	}
	sessions := sim.Sessions()
	if len(sessions) != 1 || sessions[0].User.String() != `ACME\alice` ||
		!cmp.Equal(sessions[0].Attributes, []qliksim.Attribute{{Key: "Group", Value: "Sales"}, {Key: "EmployeeEmail", Value: "alice@acme.example"}}) {
		t.Errorf("Qlik sessions = %+v, want one of ACME\\alice with Group Sales and EmployeeEmail", sessions)
	}
	var apps []struct{ Name string }
	b.getJSON(t, public+"/qrs/app?xrfkey=0123456789abcdef", http.Header{"X-Qlik-Xrfkey": {"0123456789abcdef"}}, &apps)
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	if want := []string{"Sales Dashboard", "Company Handbook", "Alice Sandbox"}; !cmp.Equal(names, want) {
		t.Errorf("apps through sensegate = %q, want %q (Sales through the ID token's group)", names, want)
	}
	pu, _ := url.Parse(public)
	var cookies []string
	for _, c := range b.jar.Cookies(pu) {
		cookies = append(cookies, c.Name)
	}
	if !cmp.Equal(cookies, []string{"sensegate_session"}) {
		t.Errorf("the browser's cookies for sensegate = %q, want only sensegate_session (no Qlik cookie)", cookies)
	}
	if got := idp.SignedIn(); !cmp.Equal(got, []string{"alice"}) {
		t.Errorf("signed in at the IdP = %q, want alice", got)
	}

	// The IdP's session signs the browser in again without the form once
	// sensegate's own session is gone.
	b.jar.SetCookies(pu, []*http.Cookie{{Name: "sensegate_session", Value: "", Path: "/", MaxAge: -1}})
	resp, body = b.do(t, "GET", public+"/hub/", nil, true)
	if resp.Request.URL.String() != public+"/hub/" || !strings.Contains(body, `ACME\alice`) {
		t.Fatalf("second sign-in ended at %s (%d), want %s/hub/ through the IdP's session:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}

	// Sign out: sensegate ends the Qlik session and its own, and sends the
	// browser to the IdP's end_session_endpoint (RP-initiated logout)...
	resp, _ = b.do(t, "POST", public+"/.sensegate/logout", url.Values{}, false)
	next, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(next.String(), issuer+"/end_session?") {
		t.Fatalf("logout = %d to %v, want 303 to %s/end_session", resp.StatusCode, next, issuer)
	}
	if s := sim.Sessions(); len(s) != 0 {
		t.Errorf("Qlik sessions after logout = %+v, want none", s)
	}
	// ... which ends the IdP's session and sends it back to sensegate,
	// where it is not signed in: to the IdP's login form.
	resp, body = b.do(t, "GET", next.String(), nil, true)
	if !atLoginForm(resp, body, issuer) || !b.visitedPath(pu.Host, "/") {
		t.Errorf("after logout the browser is at %s (%d), want the IdP's login form via %s/:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}
	if got := idp.SignedIn(); len(got) != 0 {
		t.Errorf("signed in at the IdP after logout = %q, want none", got)
	}
	for _, c := range b.jar.Cookies(pu) {
		if c.Name == "sensegate_session" {
			t.Errorf("sensegate's session cookie survived logout: %v", c)
		}
	}
}

// `sensegate demo --oidc` prints the IdP and the demo credentials; a
// browser signs in there as bob, gets the mashup and bob's groups, and
// "Sign out" brings it back to the IdP's form.
func TestDemoOIDC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, out, demoOptions{listen: "127.0.0.1:0", dataDir: t.TempDir(), oidc: true}, zaptest.NewLogger(t), ready)
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("demo exited: %v\n%s", err, out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not start:\n%s", out.String())
	}
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo returned %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("demo did not stop")
		}
	}()
	m := regexp.MustCompile(`Identity provider \(devidp\): (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), `Users: alice, bob, carol, dev; password "demo"`) {
		t.Fatalf("demo output lacks the IdP or the credentials:\n%s", out.String())
	}
	issuer := m[1]
	public := fmt.Sprintf("http://localhost:%d", addr.(*net.TCPAddr).Port)

	b := newTestBrowser(t)
	resp, body := b.do(t, "GET", public+"/", nil, true)
	if !strings.Contains(body, "Demo users: alice, bob, carol, dev. Password: demo.") {
		t.Errorf("the login page does not list the demo users:\n%s", body)
	}
	resp, body = b.signIn(t, resp, body, issuer, "bob", "demo")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != public+"/" || !strings.Contains(body, "Sign out") {
		t.Fatalf("after signing in the browser is at %s (%d), want the mashup at %s/:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}
	var me struct {
		ID         string              `json:"userId"`
		Attributes []map[string]string `json:"attributes"`
	}
	b.getJSON(t, public+"/.sensegate/me", nil, &me)
	if me.ID != "bob" || !cmp.Equal(me.Attributes, []map[string]string{{"Group": "Finance"}}) {
		t.Errorf("/.sensegate/me = %+v, want bob with Group Finance", me)
	}
	// The mashup's Sign out form.
	resp, body = b.do(t, "POST", public+"/.sensegate/logout", url.Values{}, true)
	if !atLoginForm(resp, body, issuer) || !b.visitedPath(strings.TrimPrefix(issuer, "http://"), "/end_session") {
		t.Errorf("after Sign out the browser is at %s (%d), want the IdP's form after its end_session:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
}

// startTestIDP starts a development OpenID provider with user and the
// client "sensegate" (secret "client-secret") of a sensegate at public,
// and closes it when t ends.
func startTestIDP(t *testing.T, public string, user devidp.User, log *zap.Logger) *devidp.IDP {
	t.Helper()
	idp, err := devidp.Start(devidp.Config{
		Users: []devidp.User{user},
		Clients: []devidp.Client{{
			ID: "sensegate", Secret: "client-secret",
			RedirectURIs: []string{public + "/.sensegate/callback"}, PostLogoutRedirectURIs: []string{public + "/"},
		}},
		Logger: log.Named("devidp"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		idp.Close(ctx)
	})
	return idp
}
