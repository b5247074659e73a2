package server

import (
	"context"
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

// runServer runs sensegate from cfg as serve does (Run, without reloads)
// on ln (a listener on cfg.Server.Listen when nil) until the test ends,
// when Run must return cleanly. It returns the address.
func runServer(t *testing.T, cfg *config.Config, log *zap.Logger, ln net.Listener) string {
	t.Helper()
	_, addr := startServer(t, cfg, log, ln)
	return addr
}

// startServer is runServer that returns Run's Proc too, for tests that
// stop it themselves.
func startServer(t *testing.T, cfg *config.Config, log *zap.Logger, ln net.Listener) (*sensegatetest.Proc, string) {
	t.Helper()
	ready := make(chan net.Addr, 1)
	p := sensegatetest.StartProc(context.Background(), t, "Run", func(ctx context.Context) error {
		return Run(ctx, Options{Config: cfg, Listener: ln, Logger: log, Ready: ready})
	})
	return p, sensegatetest.Await(t, p, ready).String()
}

// The wiring of `serve` from a config file: a request through it reaches
// the simulator as the header's user, and shutdown closes websockets with
// 1001 and returns, leaving nothing behind.
func TestServeFromConfig(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	// Everything Run starts must be gone when it returns.
	before := goleak.IgnoreCurrent()
	cfg, err := config.Load(sensegatetest.WriteConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	p, addr := startServer(t, cfg, zaptest.NewLogger(t), nil)

	code, body := sensegatetest.Get(t, "http://"+addr+"/hub/", "X-Forwarded-User", "bob")
	if code != 200 || !strings.Contains(body, `ACME\bob`) {
		t.Fatalf("GET /hub/ through serve = %d %q", code, body)
	}

	ws := sensegatetest.DialEngine(t, addr, "bob")
	p.Cancel()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Errorf("websocket on shutdown: %v, want close 1001", err)
	}
	ws.Close()
	p.Stop(t)
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

	cfg, err := config.Load(sensegatetest.WriteConfigWith(t, sim, public, sensegatetest.OIDCIdentity(issuer)+fmt.Sprintf(`  mapping:
    user_id_claim: preferred_username
    groups_claim: groups
    attributes:
      EmployeeEmail: email
routes:
  - path: /
    upstream: %q
`, home.URL)))
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
