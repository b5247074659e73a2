package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/devidp"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap/zaptest"
)

// Every cookie sensegate sets in a whole sign-in, use and sign-out (the
// OIDC login state and session cookies, set and cleared) is HttpOnly,
// SameSite=Lax, host-only (no Domain), has a Path, and is Secure exactly
// when server.public_url is https; no Qlik cookie comes from sensegate.
func TestCookieFlags(t *testing.T) {
	for _, scheme := range []string{"https", "http"} {
		t.Run(scheme, func(t *testing.T) { testCookieFlags(t, scheme) })
	}
}

func testCookieFlags(t *testing.T, scheme string) {
	sim := sensegatetest.StartSim(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	public := scheme + "://" + host
	log := zaptest.NewLogger(t)
	idp := sensegatetest.StartIDP(t, public, devidp.User{Username: "alice", Password: "wonderland"}, log)
	if scheme == "https" {
		// The simulator's server certificate names localhost.
		t.Setenv("SENSEGATE_SERVER_TLS_CERT", sim.Certs().Server)
		t.Setenv("SENSEGATE_SERVER_TLS_KEY", sim.Certs().ServerKey)
	}
	cfg, err := config.Load(sensegatetest.WriteConfigWith(t, sim, public, sensegatetest.OIDCIdentity(idp.Issuer())))
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, cfg, log, ln)

	// A browser that trusts the simulator's root and notes every
	// Set-Cookie sensegate sends.
	pool, err := sim.Certs().RootPool()
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(base.CloseIdleConnections)
	var (
		mu  sync.Mutex
		set []string
	)
	b := sensegatetest.NewBrowser(t, sensegatetest.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		if err == nil && r.URL.Host == host {
			mu.Lock()
			set = append(set, resp.Header.Values("Set-Cookie")...)
			mu.Unlock()
		}
		return resp, err
	}))

	resp, body := b.Do(t, "GET", public+"/hub/", nil, true)
	resp, body = b.SignIn(t, resp, body, idp.Issuer(), "alice", "wonderland")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `ACME\alice`) {
		t.Fatalf("after signing in the browser is at %s with %d, want the hub as ACME\\alice", resp.Request.URL, resp.StatusCode)
	}
	b.Do(t, "GET", public+"/qrs/about?xrfkey=0123456789abcdef", nil, false)
	if resp, _ := b.Do(t, "POST", public+"/.sensegate/logout", url.Values{}, false); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d, want 303", resp.StatusCode)
	}

	mu.Lock()
	defer mu.Unlock()
	names := map[string]int{}
	for _, line := range set {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Errorf("sensegate sent an unparsable Set-Cookie: %v", err)
			continue
		}
		names[c.Name]++
		if strings.HasPrefix(strings.ToLower(c.Name), "x-qlik") {
			t.Errorf("sensegate sent the Qlik cookie %s to the browser", c.Name)
			continue
		}
		if !c.HttpOnly || c.Secure != (scheme == "https") || c.SameSite != http.SameSiteLaxMode || c.Path == "" || c.Domain != "" {
			t.Errorf("cookie %s: HttpOnly %v, Secure %v, SameSite %v, Path %q, Domain %q; want HttpOnly, Secure %v, SameSite=Lax, a Path, no Domain",
				c.Name, c.HttpOnly, c.Secure, c.SameSite, c.Path, c.Domain, scheme == "https")
		}
	}
	// Set and cleared, each. Over https the session cookie is a __Host-
	// one (issue 14: host-only, so a sibling subdomain cannot plant one),
	// the sign-in in progress, on /.sensegate/, a __Secure- one.
	session, login := "sensegate_session", "sensegate_session_login"
	if scheme == "https" {
		session, login = "__Host-"+session, "__Secure-"+login
	}
	if names[session] != 2 || names[login] != 2 || len(names) != 2 {
		t.Errorf("cookies set by sensegate: %v, want %s and %s twice each", names, session, login)
	}
	if scheme == "https" {
		for _, line := range set {
			if c, err := http.ParseSetCookie(line); err == nil && c.Name == session && (c.Path != "/" || !c.Secure || c.Domain != "") {
				t.Errorf("%s has Path %q, Secure %v, Domain %q: browsers refuse a __Host- cookie but with Path=/, Secure and no Domain", session, c.Path, c.Secure, c.Domain)
			}
		}
	}
	pu, _ := url.Parse(public)
	for _, c := range b.Jar.Cookies(pu) {
		if strings.HasPrefix(strings.ToLower(c.Name), "x-qlik") {
			t.Errorf("the browser holds the Qlik cookie %s", c.Name)
		}
	}
}
