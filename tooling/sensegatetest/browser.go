package sensegatetest

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/devidp"
	"go.uber.org/zap"
)

// Browser is an http.Client with a cookie jar that follows redirects the
// way a browser navigates (Accept: text/html) and records every URL it
// requested.
type Browser struct {
	Client *http.Client
	Jar    *cookiejar.Jar

	mu      sync.Mutex
	visited []*url.URL
}

// RoundTripFunc is an http.RoundTripper of a function.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip implements http.RoundTripper.
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// NewBrowser returns a Browser sending its requests through base (nil: a
// clone of http.DefaultTransport, whose idle connections are closed when
// t ends).
func NewBrowser(t testing.TB, base http.RoundTripper) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if base == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		t.Cleanup(tr.CloseIdleConnections)
		base = tr
	}
	b := &Browser{Jar: jar}
	b.Client = &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		b.mu.Lock()
		b.visited = append(b.visited, r.URL)
		b.mu.Unlock()
		return base.RoundTrip(r)
	})}
	return b
}

// Do sends a navigation (a form post when form is not nil), following
// redirects or not, and returns the last response with its body.
func (b *Browser) Do(t testing.TB, method, target string, form url.Values, follow bool) (*http.Response, string) {
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
	c := *b.Client
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

// GetJSON GETs target as a script would and decodes the answer into v.
func (b *Browser) GetJSON(t testing.TB, target string, header http.Header, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", target, nil)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := b.Client.Do(req)
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

// Visited reports whether the browser requested path on host.
func (b *Browser) Visited(host, path string) bool {
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

// AtLoginForm reports whether resp, with body, is the login form of the
// development OpenID provider at issuer.
func AtLoginForm(resp *http.Response, body, issuer string) bool {
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Request.URL.String(), issuer+"/login?") && loginFormID.MatchString(body)
}

// SignIn fills the development OpenID provider's login form (the page
// resp and body show) as username and returns where the browser ends up.
func (b *Browser) SignIn(t testing.TB, resp *http.Response, body, issuer, username, password string) (*http.Response, string) {
	t.Helper()
	if !AtLoginForm(resp, body, issuer) {
		t.Fatalf("the browser is at %s (%d), want the identity provider's login form:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	id := html.UnescapeString(loginFormID.FindStringSubmatch(body)[1])
	return b.Do(t, "POST", issuer+"/login", url.Values{"id": {id}, "username": {username}, "password": {password}}, true)
}

// StartIDP starts a development OpenID provider with user and the client
// "sensegate" (secret "client-secret") of a sensegate at public, and
// closes it when t ends.
func StartIDP(t testing.TB, public string, user devidp.User, log *zap.Logger) *devidp.IDP {
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
