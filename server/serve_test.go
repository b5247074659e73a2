package server

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/devidp"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func startSim(t *testing.T) *qliksim.Sim {
	t.Helper()
	return qliksimtest.Start(t, nil, qliksim.Options{})
}

// writeSimConfig writes a sensegate config for a running simulator, with
// the header identity and extra.
func writeSimConfig(t *testing.T, sim *qliksim.Sim, extra string) string {
	t.Helper()
	return sensegatetest.WriteConfig(t, sim, extra)
}

// runServer runs sensegate from cfg as serve does (Run, without reloads)
// on ln (a listener on cfg.Server.Listen when nil) until the test ends,
// when Run must return cleanly. It returns the address.
func runServer(t *testing.T, cfg *config.Config, log *zap.Logger, ln net.Listener) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: cfg, Listener: ln, Logger: log, Ready: ready}) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run = %v before it listened", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	return addr.String()
}

// The wiring of `serve` from a config file: a request through it reaches
// the simulator as the header's user, and shutdown closes websockets with
// 1001 and returns, leaving nothing behind.
func TestServeFromConfig(t *testing.T) {
	sim := startSim(t)
	// Everything Run starts must be gone when it returns.
	before := goleak.IgnoreCurrent()
	cfg, err := config.Load(writeSimConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Config: cfg, Logger: log, Ready: ready}) }()
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
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after shutdown: %v", err)
	}
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
	idp := sensegatetest.StartIDP(t, public, devidp.User{Username: "alice", Password: "wonderland", Email: "alice@acme.example", Groups: []string{"Sales"}}, log)
	issuer := idp.Issuer()

	cfg, err := config.Load(sensegatetest.WriteConfigWith(t, sim, public, fmt.Sprintf(`identity:
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
	runServer(t, cfg, log, ln)

	b := sensegatetest.NewBrowser(t, nil)
	resp, body := b.Do(t, "GET", public+"/hub/", nil, true)
	resp, body = b.SignIn(t, resp, body, issuer, "alice", "wonderland")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != public+"/hub/" || !strings.Contains(body, `ACME\alice`) {
		t.Fatalf("after signing in the browser is at %s with %d, want %s/hub/ as ACME\\alice:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}

	var me struct {
		Directory  string              `json:"userDirectory"`
		ID         string              `json:"userId"`
		Attributes []map[string]string `json:"attributes"`
	}
	b.GetJSON(t, public+"/.sensegate/me", nil, &me)
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
	b.GetJSON(t, public+"/qrs/app?xrfkey=0123456789abcdef", http.Header{"X-Qlik-Xrfkey": {"0123456789abcdef"}}, &apps)
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	if want := []string{"Sales Dashboard", "Company Handbook", "Alice Sandbox"}; !cmp.Equal(names, want) {
		t.Errorf("apps through sensegate = %q, want %q (Sales through the ID token's group)", names, want)
	}
	pu, _ := url.Parse(public)
	var cookies []string
	for _, c := range b.Jar.Cookies(pu) {
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
	b.Jar.SetCookies(pu, []*http.Cookie{{Name: "sensegate_session", Value: "", Path: "/", MaxAge: -1}})
	resp, body = b.Do(t, "GET", public+"/hub/", nil, true)
	if resp.Request.URL.String() != public+"/hub/" || !strings.Contains(body, `ACME\alice`) {
		t.Fatalf("second sign-in ended at %s (%d), want %s/hub/ through the IdP's session:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}

	// Sign out: sensegate ends the Qlik session and its own, and sends the
	// browser to the IdP's end_session_endpoint (RP-initiated logout)...
	resp, _ = b.Do(t, "POST", public+"/.sensegate/logout", url.Values{}, false)
	next, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(next.String(), issuer+"/end_session?") {
		t.Fatalf("logout = %d to %v, want 303 to %s/end_session", resp.StatusCode, next, issuer)
	}
	if s := sim.Sessions(); len(s) != 0 {
		t.Errorf("Qlik sessions after logout = %+v, want none", s)
	}
	// ... which ends the IdP's session and sends it back to sensegate,
	// where it is not signed in: to the IdP's login form.
	resp, body = b.Do(t, "GET", next.String(), nil, true)
	if !sensegatetest.AtLoginForm(resp, body, issuer) || !b.Visited(pu.Host, "/") {
		t.Errorf("after logout the browser is at %s (%d), want the IdP's login form via %s/:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}
	if got := idp.SignedIn(); len(got) != 0 {
		t.Errorf("signed in at the IdP after logout = %q, want none", got)
	}
	for _, c := range b.Jar.Cookies(pu) {
		if c.Name == "sensegate_session" {
			t.Errorf("sensegate's session cookie survived logout: %v", c)
		}
	}
}
