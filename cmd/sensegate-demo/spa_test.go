package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap/zaptest"
	"golang.org/x/oauth2"
)

// `sensegate-demo --spa` (issue 18) serves the single-page app on
// sensegate's origin and signs it in at devidp, whose JWT access tokens
// sensegate's jwt provider trades for its login cookie. The app's steps,
// played here by a Go client: the code flow with PKCE as the app's public
// client, then POST and DELETE /.sensegate/session.
func TestDemoSPA(t *testing.T) {
	demo, addr := startDemo(t, demoOptions{spa: true}, zaptest.NewLogger(t))
	public, out := fmt.Sprintf("http://localhost:%d", addr.(*net.TCPAddr).Port), demo.Out
	m := regexp.MustCompile(`Identity provider \(devidp\): (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(out.String())
	if m == nil || !strings.Contains(out.String(), "open "+public+"/spa/ in a browser") {
		t.Fatalf("demo output lacks the app's address or the IdP:\n%s", out.String())
	}
	issuer, app := m[1], public+"/spa/"

	b := sensegatetest.NewBrowser(t, nil)
	var cfg struct{ Authority, ClientID, Scope string }
	b.GetJSON(t, app+"config.json", nil, &cfg)
	if cfg.Authority != issuer || cfg.ClientID != demoSPAClientID || cfg.Scope != demoSPAScope {
		t.Errorf("config.json = %+v, want the IdP %s and client %s", cfg, issuer, demoSPAClientID)
	}
	if resp, body := b.Do(t, "GET", app, nil, false); resp.StatusCode != http.StatusOK || !strings.Contains(body, "app.js") {
		t.Fatalf("GET %s without a login = %d, want the page (a public path):\n%s", app, resp.StatusCode, body)
	}

	p, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	oc := &oauth2.Config{ClientID: cfg.ClientID, Endpoint: p.Endpoint(), RedirectURL: app, Scopes: strings.Fields(cfg.Scope)}
	verifier := oauth2.GenerateVerifier()
	resp, body := b.Do(t, "GET", oc.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)), nil, true)
	resp, body = b.SignIn(t, resp, body, issuer, "alice", demoPassword)
	if got := resp.Request.URL; resp.StatusCode != http.StatusOK || !strings.HasPrefix(got.String(), app+"?") || got.Query().Get("code") == "" {
		t.Fatalf("after signing in the browser is at %s (%d), want the app with a code:\n%s", got, resp.StatusCode, body)
	}
	tok, err := oc.Exchange(context.Background(), resp.Request.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange as the public client: %v", err)
	}

	call := func(method, path, bearer string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, public+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := b.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := call("GET", "/.sensegate/me", ""); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="sensegate"` {
		t.Errorf("GET /.sensegate/me before the exchange = %d %q, want 401 with the bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := call("POST", "/.sensegate/session", tok.AccessToken); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /.sensegate/session = %d, want 204", resp.StatusCode)
	}
	var me struct {
		ID string `json:"userId"`
	}
	b.GetJSON(t, public+"/.sensegate/me", nil, &me)
	if me.ID != "alice" {
		t.Errorf("/.sensegate/me after the exchange = %+v, want alice", me)
	}
	if resp := call("DELETE", "/.sensegate/session", ""); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE /.sensegate/session = %d, want 204", resp.StatusCode)
	}
	if resp := call("GET", "/.sensegate/me", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /.sensegate/me after DELETE = %d, want 401", resp.StatusCode)
	}
}

// --spa and --oidc are two ways of signing in: together they are refused.
func TestDemoSPAAndOIDC(t *testing.T) {
	err := runDemo(context.Background(), io.Discard, demoOptions{listen: "127.0.0.1:0", dataDir: t.TempDir(), spa: true, oidc: true}, zaptest.NewLogger(t), nil)
	if err == nil || !strings.Contains(err.Error(), "--oidc and --spa") {
		t.Errorf("runDemo(--spa --oidc) = %v, want a refusal naming both", err)
	}
}
