package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// startDemo runs the demo with o, listening on a free loopback port with
// a data directory of the test's, until the test ends, when it must
// return cleanly. It returns the demo and its public address.
func startDemo(t *testing.T, o demoOptions, log *zap.Logger) (*sensegatetest.Proc, net.Addr) {
	t.Helper()
	o.listen, o.dataDir = "127.0.0.1:0", t.TempDir()
	ready := make(chan net.Addr, 1)
	p := sensegatetest.StartCommand(context.Background(), t, "demo", func(ctx context.Context, out io.Writer) error {
		return runDemo(ctx, out, o, log, ready)
	})
	return p, sensegatetest.Await(t, p, ready)
}

// Issue 16: `make demo` ran without the admin listener and the audit log,
// so a newcomer could not see /metrics. The demo serves them as serve
// does, on admin.listen's default unless told otherwise.
func TestDemoAdminAndAudit(t *testing.T) {
	if got := newDemoCmd().Flags().Lookup("admin-listen").DefValue; got != config.DefaultAdminListen {
		t.Errorf("demo --admin-listen default = %q, want %q", got, config.DefaultAdminListen)
	}
	// A free loopback port for the admin listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()

	core, logs := observer.New(zap.InfoLevel)
	demo, addr := startDemo(t, demoOptions{adminListen: adminAddr}, zap.New(core))
	if !strings.Contains(demo.Out.String(), "Metrics: http://"+adminAddr+"/metrics") {
		t.Errorf("demo output does not name the metrics:\n%s", demo.Out)
	}

	// Sign in as alice and reach Qlik: a Qlik login, audited.
	base := "http://" + addr.String()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/.sensegate/login", url.Values{"user": {`ACME\alice`}, "rd": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/qps/user", nil)
	for _, k := range resp.Cookies() {
		req.AddCookie(k)
	}
	if resp, err = c.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /qps/user = %v, %v", resp, err)
	}
	resp.Body.Close()
	if n := logs.FilterMessage("qlik login").FilterField(zap.Bool("audit", true)).Len() + logs.FilterLoggerName("sensegate.audit").Len(); n == 0 {
		t.Errorf("no audit entry for alice's Qlik login; logs: %v", logs.All())
	}

	if code, body := sensegatetest.Get(t, "http://"+adminAddr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "sensegate_") {
		t.Errorf("GET /metrics on the demo's admin listener = %d:\n%.500s", code, body)
	}
}

// `sensegate-demo --oidc` prints the IdP and the demo credentials; a
// browser signs in there as bob, gets the mashup and bob's groups, and
// "Sign out" brings it back to the IdP's form.
func TestDemoOIDC(t *testing.T) {
	demo, addr := startDemo(t, demoOptions{oidc: true}, zaptest.NewLogger(t))
	m := regexp.MustCompile(`Identity provider \(devidp\): (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(demo.Out.String())
	if m == nil || !strings.Contains(demo.Out.String(), `Users: alice, bob, carol, dev; password "demo"`) {
		t.Fatalf("demo output lacks the IdP or the credentials:\n%s", demo.Out)
	}
	issuer := m[1]
	public := fmt.Sprintf("http://localhost:%d", addr.(*net.TCPAddr).Port)

	b := sensegatetest.NewBrowser(t, nil)
	resp, body := b.Do(t, "GET", public+"/", nil, true)
	if !strings.Contains(body, "Demo users: alice, bob, carol, dev. Password: demo.") {
		t.Errorf("the login page does not list the demo users:\n%s", body)
	}
	resp, body = b.SignIn(t, resp, body, issuer, "bob", "demo")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != public+"/" || !strings.Contains(body, "Sign out") {
		t.Fatalf("after signing in the browser is at %s (%d), want the mashup at %s/:\n%s", resp.Request.URL, resp.StatusCode, public, body)
	}
	var me struct {
		ID         string              `json:"userId"`
		Attributes []map[string]string `json:"attributes"`
	}
	b.GetJSON(t, public+"/.sensegate/me", nil, &me)
	if me.ID != "bob" || !cmp.Equal(me.Attributes, []map[string]string{{"Group": "Finance"}}) {
		t.Errorf("/.sensegate/me = %+v, want bob with Group Finance", me)
	}
	// The mashup's Sign out form.
	resp, body = b.Do(t, "POST", public+"/.sensegate/logout", url.Values{}, true)
	if !sensegatetest.AtLoginForm(resp, body, issuer) || !b.Visited(strings.TrimPrefix(issuer, "http://"), "/end_session") {
		t.Errorf("after Sign out the browser is at %s (%d), want the IdP's form after its end_session:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
}
