package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sensegate/sensegate/tooling/devidp"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The tests sign in through a real OpenID Provider: devidp, this module's
// development OP on zitadel/oidc's certified op package, on loopback with
// user opUser / opPassword. A browser (http.Client with a cookie jar,
// following redirects) goes from a protected page of a test sensegate
// server to the OP's login form, posts it, and comes back through the
// callback. The RP's own requests to the OP (discovery, keys, tokens) go
// through testOP, which counts and records token requests and lets a test
// rewrite or refuse them.

const (
	opUser     = "test-user@127.0.0.1"
	opPassword = "verysecure"
	opUserID   = "id1" // the OP's subject of opUser
	rpSecret   = "rp-secret"
)

// opUsers are the OP's accounts: opUser with an email and two groups.
var opUsers = []devidp.User{{
	Username: opUser, Password: opPassword, Subject: opUserID, Name: "Test User",
	Email: "test-user@zitadel.ch", Groups: []string{"analysts", "sales"},
}}

// wantUser is opUser through testMapping.
var wantUser = User{Directory: "ZITADEL", ID: "test-user", Attributes: []Attribute{
	{Key: "Group", Value: "analysts"}, {Key: "Group", Value: "sales"}, {Key: "email", Value: "test-user@zitadel.ch"},
}}

// testOP is a devidp OpenID Provider with the RP side's view of its token
// endpoint: it is the http.RoundTripper of the RPs' clients.
type testOP struct {
	idp    *devidp.IDP
	issuer string
	key    *rsa.PrivateKey
	base   http.RoundTripper

	mu sync.Mutex
	// clients registered, and the ID token lifetime the OP gives them.
	clients         map[string]devidp.Client
	idTokenLifetime time.Duration
	grants          map[string]int // token requests by grant_type
	tokens          []string       // every token it issued
	tokenHook       func(grant string, resp map[string]any)
	failRefresh     bool // answer refresh grants with invalid_grant
}

type opClient struct {
	id, secret, redirect, postLogout string
}

func newTestOP(t *testing.T) *testOP { return newTestOPWithKeys(t, nil) }

// newTestOPWithKeys starts an OP signing with the key of keysFrom (its
// own if nil).
func newTestOPWithKeys(t *testing.T, keysFrom *testOP) *testOP {
	t.Helper()
	var key *rsa.PrivateKey
	if keysFrom != nil {
		key = keysFrom.key
	} else {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	}
	// The RPs are at 127.0.0.1: the OP's cookies must not reach them.
	idp, err := devidp.Start(devidp.Config{Users: opUsers, SigningKey: key, Hostname: "localhost"})
	if err != nil {
		t.Fatalf("devidp.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		idp.Close(ctx)
	})
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	return &testOP{
		idp: idp, issuer: idp.Issuer(), key: key, base: base,
		clients: map[string]devidp.Client{}, idTokenLifetime: time.Hour, grants: map[string]int{},
	}
}

// register adds a confidential web client.
func (o *testOP) register(c opClient) {
	o.mu.Lock()
	defer o.mu.Unlock()
	dc := devidp.Client{ID: c.id, Secret: c.secret, RedirectURIs: []string{c.redirect}, IDTokenLifetime: o.idTokenLifetime}
	if c.postLogout != "" {
		dc.PostLogoutRedirectURIs = []string{c.postLogout}
	}
	o.clients[c.id] = dc
	if err := o.idp.SetClient(dc); err != nil {
		panic(err)
	}
}

// setIDTokenLifetime sets the lifetime of the ID tokens the OP issues
// from now on, to every client.
func (o *testOP) setIDTokenLifetime(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.idTokenLifetime = d
	for id, c := range o.clients {
		c.IDTokenLifetime = d
		o.clients[id] = c
		if err := o.idp.SetClient(c); err != nil {
			panic(err)
		}
	}
}

// client is the HTTP client of the OP's relying parties.
func (o *testOP) client() *http.Client {
	return &http.Client{Transport: o, Timeout: 10 * time.Second}
}

func (o *testOP) grantCount(grant string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.grants[grant]
}

func (o *testOP) setTokenHook(h func(grant string, resp map[string]any)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tokenHook = h
}

func (o *testOP) issuedTokens() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.tokens)
}

// RoundTrip counts and records token requests and lets a test rewrite
// token responses or refuse refreshes.
func (o *testOP) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" {
		return o.base.RoundTrip(r)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	form, _ := url.ParseQuery(string(body))
	grant := form.Get("grant_type")
	o.mu.Lock()
	o.grants[grant]++
	hook, fail := o.tokenHook, o.failRefresh && grant == "refresh_token"
	o.mu.Unlock()
	if fail {
		return &http.Response{
			StatusCode: http.StatusBadRequest, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   io.NopCloser(strings.NewReader(`{"error":"invalid_grant","error_description":"refresh token revoked"}`)),
		}, nil
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := o.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if resp.StatusCode == http.StatusOK && json.Unmarshal(out, &m) == nil {
		if hook != nil {
			hook(grant, m)
			out, _ = json.Marshal(m)
		}
		o.mu.Lock()
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if s, ok := m[k].(string); ok {
				o.tokens = append(o.tokens, s)
			}
		}
		o.mu.Unlock()
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// testRP is a sensegate-like server using an OIDC provider: Mount under
// /.sensegate/, everything else protected by Identify.
type testRP struct {
	op      *testOP
	srv     *httptest.Server
	o       *OIDC
	store   *MemorySessions
	clock   *fakeclock.Clock
	logs    *observer.ObservedLogs
	browser *browser
	keys    [][]byte
}

func testMapping(t *testing.T) *Mapping {
	m, err := NewMapping(MappingConfig{UserIDClaim: "email", UserIDPattern: `^([^@]+)@`, Directory: "ZITADEL", Attributes: map[string]string{"email": "email"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newTestRP starts a server signing in at o as clientID; mod adjusts the
// configuration before NewOIDC.
func newTestRP(t *testing.T, o *testOP, clientID string, mod func(*OIDCConfig)) *testRP {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	// The OP signs with the real time: the RP's clock starts there, so
	// that the tokens the OP issues stay valid unless a test moves past
	// them.
	clock := fakeclock.At(time.Now())
	core, logs := observer.New(zapcore.DebugLevel)
	store := NewMemorySessions(clock.Now)
	rp := &testRP{op: o, srv: srv, store: store, clock: clock, logs: logs, keys: [][]byte{randomKey()}}
	o.register(opClient{id: clientID, secret: rpSecret, redirect: srv.URL + "/.sensegate/callback", postLogout: srv.URL + "/signed-out"})
	cfg := OIDCConfig{
		Issuer:                o.issuer,
		ClientID:              clientID,
		ClientSecret:          rpSecret,
		RedirectURL:           srv.URL + "/.sensegate/callback",
		Mapping:               testMapping(t),
		Sessions:              store,
		CookieKeys:            rp.keys,
		Secure:                true,
		PostLogoutRedirectURL: srv.URL + "/signed-out",
		HTTPClient:            o.client(),
		Now:                   clock.Now,
		Logger:                zap.New(core),
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	oidcp, err := NewOIDC(ctx, cfg)
	if err != nil {
		t.Fatalf("NewOIDC: %v", err)
	}
	rp.o = oidcp
	oidcp.Mount(mux, "/.sensegate/")
	mux.HandleFunc("POST /.sensegate/logout", func(w http.ResponseWriter, r *http.Request) {
		next := oidcp.Logout(w, r)
		if next == "" {
			next = "/"
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /signed-out", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "signed out") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u, err := oidcp.Identify(r)
		var ie *Error
		switch {
		case errors.As(err, &ie) && ie.LoginURL != "":
			http.Redirect(w, r, ie.LoginURL, http.StatusFound) // as proxy does for browsers
		case errors.As(err, &ie):
			http.Error(w, ie.Msg, ie.Status)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			json.NewEncoder(w).Encode(u)
		}
	})
	rp.browser = newBrowser(t, srv.Client().Transport)
	return rp
}

func randomKey() []byte {
	k, _ := base64.RawURLEncoding.DecodeString(randomToken())
	return k
}

// request returns a request for target at the RP carrying the browser's
// cookies.
func (rp *testRP) request(target string) *http.Request {
	r := httptest.NewRequest("GET", target, nil)
	for _, c := range rp.browser.jar.Cookies(rp.url("/")) {
		r.AddCookie(c)
	}
	return r
}

func (rp *testRP) url(path string) *url.URL {
	u, _ := url.Parse(rp.srv.URL + path)
	return u
}

// session returns the browser's stored session.
func (rp *testRP) session(t *testing.T) *oidcSession {
	t.Helper()
	id, ok, err := rp.o.sessionID(rp.request("/"))
	if !ok || err != nil {
		t.Fatalf("the browser has no single session cookie: %v", err)
	}
	s, err := rp.o.load(context.Background(), id)
	if err != nil {
		t.Fatalf("load session: %v", err)
	}
	return s
}

// logText returns every log entry as text.
func (rp *testRP) logText() string {
	var b strings.Builder
	for _, e := range rp.logs.All() {
		enc := zapcore.NewMapObjectEncoder()
		for _, f := range e.Context {
			f.AddTo(enc)
		}
		fmt.Fprintf(&b, "%s %s %s %v\n", e.Level, e.LoggerName, e.Message, enc.Fields)
	}
	return b.String()
}

// browser is an http.Client with a cookie jar that follows redirects and
// records what it saw.
type browser struct {
	c   *http.Client
	jar *cookiejar.Jar

	mu         sync.Mutex
	urls       []*url.URL // every request
	setCookies []string   // every Set-Cookie received
}

func newBrowser(t *testing.T, base http.RoundTripper) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{jar: jar}
	b.c = &http.Client{Jar: jar, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(r)
		b.mu.Lock()
		defer b.mu.Unlock()
		b.urls = append(b.urls, r.URL)
		if err == nil {
			b.setCookies = append(b.setCookies, resp.Header.Values("Set-Cookie")...)
		}
		return resp, err
	})}
	return b
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// do sends req, following redirects or not, and returns the response
// with its body read.
func (b *browser) do(t *testing.T, req *http.Request, follow bool) (*http.Response, string) {
	t.Helper()
	c := *b.c
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(t *testing.T, target string, follow bool) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", target, nil)
	req.Header.Set("Accept", "text/html")
	return b.do(t, req, follow)
}

var hiddenID = regexp.MustCompile(`name="id" value="([^"]*)"`)

// signIn goes to start on the RP, which must lead to the OP's login form,
// signs in there and returns where the browser ends up.
func (b *browser) signIn(t *testing.T, start string) (*http.Response, string) {
	t.Helper()
	resp, body := b.get(t, start, true)
	m := hiddenID.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET %s ended at %s with %d, want the OP's login form:\n%s", start, resp.Request.URL, resp.StatusCode, body)
	}
	action := resp.Request.URL.ResolveReference(&url.URL{Path: "/login"})
	form := url.Values{"id": {html.UnescapeString(m[1])}, "username": {opUser}, "password": {opPassword}}
	req, _ := http.NewRequest("POST", action.String(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return b.do(t, req, true)
}

// visited returns the URLs requested with path p.
func (b *browser) visited(p string) []*url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*url.URL
	for _, u := range b.urls {
		if u.Path == p {
			out = append(out, u)
		}
	}
	return out
}

func (b *browser) cookiesSet() []*http.Cookie {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*http.Cookie
	for _, line := range b.setCookies {
		if c, err := http.ParseSetCookie(line); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// signedIn signs rp's browser in through a protected page and checks
// that it comes back there as wantUser.
func signedIn(t *testing.T, rp *testRP) {
	t.Helper()
	resp, body := rp.browser.signIn(t, rp.srv.URL+"/sense/app/1?x=1")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != rp.srv.URL+"/sense/app/1?x=1" {
		t.Fatalf("sign-in ended at %s with %d, want %s/sense/app/1?x=1 with 200:\n%s", resp.Request.URL, resp.StatusCode, rp.srv.URL, body)
	}
	var got User
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("protected page: %v: %s", err, body)
	}
	if diff := cmp.Diff(wantUser, got); diff != "" {
		t.Fatalf("user after sign-in (-want +got):\n%s", diff)
	}
}

// wantNotSignedIn checks that Identify refuses r with 401 and LoginURL.
func wantNotSignedIn(t *testing.T, rp *testRP, r *http.Request) {
	t.Helper()
	u, err := rp.o.Identify(r)
	var ie *Error
	if !errors.As(err, &ie) || ie.Status != http.StatusUnauthorized || !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Identify = %v, %v; want a 401 *Error", u, err)
	}
	if want := "/.sensegate/login?rd=" + url.QueryEscape(r.URL.RequestURI()); ie.LoginURL != want {
		t.Errorf("LoginURL = %q, want %q", ie.LoginURL, want)
	}
}

func TestOIDCSignIn(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", nil)
	signedIn(t, rp)

	u, err := rp.o.Identify(rp.request("/sense/app/2"))
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	if diff := cmp.Diff(wantUser, u); diff != "" {
		t.Errorf("Identify (-want +got):\n%s", diff)
	}

	// The authorization request: code flow, PKCE S256, state and nonce.
	auth := rp.browser.visited("/authorize")
	if len(auth) != 1 {
		t.Fatalf("authorization requests = %v, want 1", auth)
	}
	q := auth[0].Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": "sensegate", "code_challenge_method": "S256", "redirect_uri": rp.srv.URL + "/.sensegate/callback", "scope": "openid profile email"} {
		if got := q.Get(k); got != want {
			t.Errorf("authorization request %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 43 {
			t.Errorf("authorization request %s = %q, want 256 random bits", k, q.Get(k))
		}
	}
	if n := o.grantCount("authorization_code"); n != 1 {
		t.Errorf("code exchanges = %d, want 1", n)
	}

	// The cookies' attributes.
	var session, login, loginCleared *http.Cookie
	for _, c := range rp.browser.cookiesSet() {
		switch {
		case c.Name == testSessionCookie:
			session = c
		case c.Name == testLoginCookie && c.MaxAge > 0:
			login = c
		case c.Name == testLoginCookie:
			loginCleared = c
		}
	}
	if session == nil || login == nil || loginCleared == nil {
		t.Fatalf("cookies set = %v, want the session cookie and the login cookie set and cleared", rp.browser.setCookies)
	}
	type attrs struct {
		Path             string
		MaxAge           int
		HttpOnly, Secure bool
		SameSite         http.SameSite
	}
	for _, tt := range []struct {
		c    *http.Cookie
		want attrs
	}{
		{session, attrs{"/", 12 * 3600, true, true, http.SameSiteLaxMode}},
		{login, attrs{"/.sensegate/", 600, true, true, http.SameSiteLaxMode}},
		{loginCleared, attrs{"/.sensegate/", -1, true, true, http.SameSiteLaxMode}},
	} {
		got := attrs{tt.c.Path, tt.c.MaxAge, tt.c.HttpOnly, tt.c.Secure, tt.c.SameSite}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("cookie %s (-want +got):\n%s", tt.c.Name, diff)
		}
	}

	// The stored session holds no plain token: it is sealed.
	s := rp.session(t)
	if s.RefreshToken != "" {
		t.Errorf("refresh token without offline_access: %q", s.RefreshToken)
	}
	if s.Subject != opUserID || s.IDToken == "" || s.Issuer != o.issuer {
		t.Errorf("stored session = %+v", s)
	}
	for id := range rp.store.entries {
		data, _, _ := rp.store.Get(context.Background(), id)
		if bytes.Contains(data, []byte(s.IDToken[:20])) || bytes.Contains(data, []byte("test-user")) {
			t.Errorf("stored session is not sealed: %q", data)
		}
	}
}

// The test relying party is served over https: its cookies have the
// __Host- (session) and __Secure- (sign-in in progress) names.
const (
	testSessionCookie = "__Host-sensegate_session"
	testLoginCookie   = "__Secure-sensegate_session_login"
)

func TestOIDCCookies(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", nil)
	signedIn(t, rp)
	r := rp.request("/sense/app/1")
	c, err := r.Cookie(testSessionCookie)
	if err != nil {
		t.Fatal(err)
	}
	id, ok, err := rp.o.sessionID(r)
	if !ok || err != nil {
		t.Fatalf("no session id: %v", err)
	}
	other := testRing(t, randomKey())

	withCookie := func(v string) *http.Request {
		r := httptest.NewRequest("GET", "/sense/app/1?sheet=a%20b", nil)
		r.AddCookie(&http.Cookie{Name: testSessionCookie, Value: v})
		return r
	}
	raw, _ := base64.RawURLEncoding.DecodeString(c.Value)
	raw[len(raw)/2] ^= 1
	tampered := base64.RawURLEncoding.EncodeToString(raw)
	forLogin := sealString(rp.o.ring, testLoginCookie, []byte(id))

	tests := []struct {
		name string
		r    *http.Request
	}{
		{"no cookie", httptest.NewRequest("GET", "/sense/app/1", nil)},
		{"tampered", withCookie(tampered)},
		{"other key", withCookie(sealString(other, testSessionCookie, []byte(id)))},
		{"sealed for the login cookie", withCookie(forLogin)},
		{"unknown session id", withCookie(sealString(rp.o.ring, testSessionCookie, []byte(randomToken())))},
		{"garbage", withCookie("not a cookie")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantNotSignedIn(t, rp, tt.r) })
	}

	t.Run("a valid cookie among planted ones", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: testSessionCookie, Value: "planted"})
		r.AddCookie(c)
		if u, err := rp.o.Identify(r); err != nil || u.ID != wantUser.ID {
			t.Errorf("Identify = %v, %v", u, err)
		}
	})

	// Issue 14: a sibling subdomain can plant a cookie of the attacker's own
	// sign-in on the parent domain (cookie tossing); a request with two
	// valid session cookies is refused rather than served as either.
	t.Run("two valid cookies of different sessions", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: testSessionCookie, Value: sealString(rp.o.ring, testSessionCookie, []byte(randomToken()))})
		r.AddCookie(c)
		u, err := rp.o.Identify(r)
		var ie *Error
		if !errors.As(err, &ie) || ie.Status != http.StatusBadRequest || !u.IsZero() {
			t.Errorf("Identify = %v, %v; want a 400 *Error", u, err)
		}
	})
	t.Run("the same cookie twice", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		r.AddCookie(c)
		if u, err := rp.o.Identify(r); err != nil || u.ID != wantUser.ID {
			t.Errorf("Identify = %v, %v", u, err)
		}
	})

	t.Run("rotated key", func(t *testing.T) {
		// The new key first, the old one second: existing cookies and
		// stored sessions still open; new ones are sealed with the new key.
		newKey := randomKey()
		rotated, err := NewOIDC(context.Background(), OIDCConfig{
			Issuer: o.issuer, ClientID: "sensegate", ClientSecret: rpSecret, RedirectURL: rp.srv.URL + "/.sensegate/callback",
			Mapping: testMapping(t), Sessions: rp.store, CookieKeys: [][]byte{newKey, rp.keys[0]}, HTTPClient: o.client(), Now: rp.clock.Now, Secure: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		if u, err := rotated.Identify(r); err != nil || u.ID != wantUser.ID {
			t.Errorf("Identify with the old key second = %v, %v; want %v", u, err, wantUser)
		}
		if _, err := openString(testRing(t, newKey), "x", sealString(rotated.ring, "x", []byte("v"))); err != nil {
			t.Errorf("after rotation the new key does not seal: %v", err)
		}
		dropped, _ := NewOIDC(context.Background(), OIDCConfig{
			Issuer: o.issuer, ClientID: "sensegate", RedirectURL: rp.srv.URL + "/.sensegate/callback",
			Mapping: testMapping(t), Sessions: rp.store, CookieKeys: [][]byte{newKey}, HTTPClient: o.client(), Now: rp.clock.Now,
		})
		wantNotSignedIn(t, &testRP{o: dropped}, r)
	})
}

// startLogin starts a sign-in at rp without going to the OP and returns
// the authorization request's parameters.
func startLogin(t *testing.T, rp *testRP, rd string) url.Values {
	t.Helper()
	resp, _ := rp.browser.get(t, rp.srv.URL+"/.sensegate/login?rd="+url.QueryEscape(rd), false)
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), rp.op.issuer+"/authorize?") {
		t.Fatalf("login = %d to %v, want 302 to the OP", resp.StatusCode, loc)
	}
	return loc.Query()
}

func TestOIDCCallbackRefused(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", nil)
	cb := rp.srv.URL + "/.sensegate/callback?"

	tests := []struct {
		name       string
		login      bool          // start a sign-in first
		advance    time.Duration // then move the clock
		query      func(state string) string
		wantStatus int
		wantBody   string
	}{
		{"state mismatch", true, 0, func(string) string { return "code=abc&state=" + randomToken() }, 403, "does not belong to this sign-in"},
		{"no state", true, 0, func(string) string { return "code=abc" }, 403, "does not belong"},
		{"no login cookie", false, 0, func(string) string { return "code=abc&state=" + randomToken() }, 400, "not started in this browser"},
		{"login cookie expired", true, 11 * time.Minute, func(s string) string { return "code=abc&state=" + s }, 400, "took too long"},
		{"idp access denied", true, 0, func(s string) string { return "error=access_denied&error_description=nope&state=" + s }, 403, "(access_denied)"},
		{"idp other error", true, 0, func(s string) string { return "error=login_required&state=" + s }, 401, "(login_required)"},
		{"idp error code not shown raw", true, 0, func(s string) string { return "error=%3Cb%3Ex&state=" + s }, 401, "did not sign you in."},
		{"another issuer", true, 0, func(s string) string { return "code=abc&iss=https%3A%2F%2Fevil.example&state=" + s }, 403, "another identity provider"},
		{"no code", true, 0, func(s string) string { return "state=" + s }, 400, "no authorization code"},
		{"unknown code", true, 0, func(s string) string { return "code=abc&state=" + s }, 401, "did not accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp.browser.jar, _ = cookiejar.New(nil)
			rp.browser.c.Jar = rp.browser.jar
			var state string
			if tt.login {
				state = startLogin(t, rp, "/").Get("state")
			}
			rp.clock.Advance(tt.advance)
			defer rp.clock.Advance(-tt.advance)
			codes := o.grantCount("authorization_code")
			resp, body := rp.browser.get(t, cb+tt.query(state), false)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
				t.Errorf("callback = %d %q, want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if strings.Contains(body, "<b>") {
				t.Errorf("callback page shows raw input: %s", body)
			}
			if tt.wantBody != "did not accept" && o.grantCount("authorization_code") != codes {
				t.Error("the code was exchanged")
			}
			if rp.store.len() != 0 {
				t.Error("a session was stored")
			}
			for _, c := range resp.Cookies() {
				if c.Name == testSessionCookie {
					t.Errorf("session cookie set: %v", c)
				}
			}
		})
	}
	if !strings.Contains(rp.logText(), "state mismatch") {
		t.Errorf("no log of the state mismatch:\n%s", rp.logText())
	}
}

func TestOIDCOpenRedirect(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", nil)
	tests := []struct{ rd, want string }{
		{"//evil.example", "/"},
		{"https://evil.example", "/"},
		{`/\evil.example`, "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"evil.example", "/"},
		{"", "/"},
		{"/sense/app/1?sheet=2#x", "/sense/app/1?sheet=2#x"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.rd), func(t *testing.T) {
			// The OP forgets the previous sign-in, so that its form shows.
			o.idp.RevokeUser(opUser)
			resp, body := rp.browser.signIn(t, rp.srv.URL+"/.sensegate/login?rd="+url.QueryEscape(tt.rd))
			if got := resp.Request.URL.String(); got != rp.srv.URL+tt.want || resp.StatusCode != http.StatusOK {
				t.Errorf("signed in with rd=%q, ended at %s (%d), want %s%s:\n%s", tt.rd, got, resp.StatusCode, rp.srv.URL, tt.want, body)
			}
		})
	}
	// Each sign-in replaced the previous session.
	if n := rp.store.len(); n != 1 {
		t.Errorf("stored sessions = %d, want 1", n)
	}
}

func TestOIDCSessionLifetime(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", nil)
	signedIn(t, rp)

	// No refresh token: the sign-in holds past the ID token's expiry (1h)
	// until the session lifetime, without calling the OP.
	rp.clock.Advance(12*time.Hour - time.Minute)
	if u, err := rp.o.Identify(rp.request("/")); err != nil || u.ID != wantUser.ID {
		t.Errorf("Identify before the end of the lifetime = %v, %v", u, err)
	}
	if n := o.grantCount("refresh_token"); n != 0 {
		t.Errorf("refreshes = %d, want 0", n)
	}
	rp.clock.Advance(2 * time.Minute)
	wantNotSignedIn(t, rp, rp.request("/sense/app/1?x=1"))
}

func TestOIDCRefresh(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", func(c *OIDCConfig) { c.Scopes = []string{"profile", "email", "offline_access"} })
	signedIn(t, rp)
	before := rp.session(t)
	if before.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}

	// Past the ID token's expiry; the OP's new ID tokens outlive the jump.
	o.setIDTokenLifetime(48 * time.Hour)
	rp.clock.Advance(2 * time.Hour)

	const n = 8
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			u, err := rp.o.Identify(rp.request("/"))
			if err == nil && u.ID != wantUser.ID {
				err = fmt.Errorf("user %v", u)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Identify during refresh: %v", err)
		}
	}
	if got := o.grantCount("refresh_token"); got != 1 {
		t.Errorf("refreshes = %d, want 1 for %d concurrent requests", got, n)
	}
	after := rp.session(t)
	if after.IDToken == before.IDToken || after.RefreshToken == before.RefreshToken || !after.Expiry.After(rp.clock.Now()) {
		t.Errorf("session not renewed: expiry %v (now %v)", after.Expiry, rp.clock.Now())
	}
	if !after.Created.Equal(before.Created) {
		t.Errorf("refresh moved the session's creation: %v → %v", before.Created, after.Created)
	}
	if _, err := rp.o.Identify(rp.request("/")); err != nil || o.grantCount("refresh_token") != 1 {
		t.Errorf("Identify after refresh = %v, refreshes %d; want no new refresh", err, o.grantCount("refresh_token"))
	}
	if !strings.Contains(rp.logText(), "session refreshed") {
		t.Errorf("no refresh log:\n%s", rp.logText())
	}

	// The session lifetime bounds refreshes too.
	rp.clock.Advance(10*time.Hour + time.Minute)
	wantNotSignedIn(t, rp, rp.request("/"))
}

func TestOIDCRefreshRefused(t *testing.T) {
	tests := []struct {
		name   string
		refuse func(o *testOP)
	}{
		{"session terminated at the OP", func(o *testOP) {
			o.idp.RevokeUser(opUser)
		}},
		{"invalid_grant", func(o *testOP) {
			o.mu.Lock()
			o.failRefresh = true
			o.mu.Unlock()
		}},
		{"foreign id token", func(o *testOP) {
			o.setTokenHook(func(grant string, resp map[string]any) {
				if grant == "refresh_token" {
					resp["id_token"] = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJldmlsIn0.c2ln"
				}
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newTestOP(t)
			rp := newTestRP(t, o, "sensegate", func(c *OIDCConfig) { c.Scopes = []string{"profile", "email", "offline_access"} })
			signedIn(t, rp)
			tt.refuse(o)
			rp.clock.Advance(2 * time.Hour)
			wantNotSignedIn(t, rp, rp.request("/sense/app/1"))
			if o.grantCount("refresh_token") != 1 {
				t.Errorf("refreshes = %d, want 1", o.grantCount("refresh_token"))
			}
			if n := rp.store.len(); n != 0 {
				t.Errorf("stored sessions = %d, want the refused one deleted", n)
			}
			if !strings.Contains(rp.logText(), "session ended") {
				t.Errorf("no log of the ended session:\n%s", rp.logText())
			}
		})
	}
}

func TestOIDCForeignIDToken(t *testing.T) {
	op1 := newTestOP(t)
	rp := newTestRP(t, op1, "sensegate", nil)

	// ID tokens for the same client id from a second OP with its own keys
	// and from a third sharing op1's keys (as a multi-tenant provider's
	// tenants do), and one from op1 for another client.
	idToken := func(o *testOP, clientID string) string {
		rp := newTestRP(t, o, clientID, nil)
		signedIn(t, rp)
		return rp.session(t).IDToken
	}
	foreign := idToken(newTestOP(t), "sensegate")
	sameKeys := idToken(newTestOPWithKeys(t, op1), "sensegate")
	otherAudience := idToken(op1, "other")

	for _, tt := range []struct{ name, token, want string }{
		{"other issuer, other keys", foreign, "failed to verify signature"},
		{"other issuer, same keys", sameKeys, "issued by a different provider"},
		{"other audience", otherAudience, `expected audience "sensegate"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := rp.o.verify(context.Background(), tt.token, ""); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("verify = %v, want an error containing %q", err, tt.want)
			}
		})
	}

	t.Run("callback with a foreign id token", func(t *testing.T) {
		// A token endpoint answering with another issuer's ID token (mix-up).
		op1.setTokenHook(func(grant string, resp map[string]any) { resp["id_token"] = sameKeys })
		resp, body := rp.browser.signIn(t, rp.srv.URL+"/sense/app/1")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "not valid for sensegate") {
			t.Errorf("sign-in = %d %s, want 403", resp.StatusCode, body)
		}
		if rp.store.len() != 0 {
			t.Error("a session was stored")
		}
		if !strings.Contains(rp.logText(), "different provider") {
			t.Errorf("log does not say why:\n%s", rp.logText())
		}
	})
}

func TestOIDCClaimRefused(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", func(c *OIDCConfig) {
		c.Mapping, _ = NewMapping(MappingConfig{UserIDClaim: "upn", Directory: "ZITADEL"})
	})
	resp, body := rp.browser.signIn(t, rp.srv.URL+"/sense/app/1")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cannot be used") {
		t.Errorf("sign-in = %d %s, want 403", resp.StatusCode, body)
	}
	if rp.store.len() != 0 {
		t.Error("a session was stored")
	}
	entries := rp.logs.FilterMessage("claim refused").FilterField(zap.String("claim", "upn")).All()
	if len(entries) != 1 {
		t.Errorf("no log naming the claim:\n%s", rp.logText())
	}
}

func TestOIDCLogout(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", nil)
	signedIn(t, rp)
	idToken := rp.session(t).IDToken
	old := rp.request("/sense/app/1")

	req, _ := http.NewRequest("POST", rp.srv.URL+"/.sensegate/logout", nil)
	resp, _ := rp.browser.do(t, req, false)
	next, err := resp.Location()
	if err != nil {
		t.Fatalf("logout answered %d without Location", resp.StatusCode)
	}
	if base := next.Scheme + "://" + next.Host + next.Path; base != o.issuer+"/end_session" {
		t.Errorf("logout goes to %s, want the end_session_endpoint %s/end_session", base, o.issuer)
	}
	want := url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {rp.srv.URL + "/signed-out"}, "client_id": {"sensegate"}}
	if diff := cmp.Diff(want, next.Query()); diff != "" {
		t.Errorf("end session parameters (-want +got):\n%s", diff)
	}
	if rp.store.len() != 0 {
		t.Error("the session is still stored")
	}
	if cs := rp.browser.jar.Cookies(rp.url("/")); len(cs) != 0 {
		t.Errorf("cookies after logout = %v, want the session cookie expired", cs)
	}
	wantNotSignedIn(t, rp, old)

	// The OP accepts the hint and sends the browser back.
	resp, body := rp.browser.get(t, next.String(), true)
	if resp.Request.URL.String() != rp.srv.URL+"/signed-out" || body != "signed out" {
		t.Errorf("after the OP's logout the browser is at %s: %d %s", resp.Request.URL, resp.StatusCode, body)
	}

	t.Run("no end_session_endpoint", func(t *testing.T) {
		rp.o.endSession = "" // the server is idle
		w := httptest.NewRecorder()
		if next := rp.o.Logout(w, httptest.NewRequest("POST", "/.sensegate/logout", nil)); next != "" {
			t.Errorf("Logout = %q, want \"\"", next)
		}
		if c := w.Result().Cookies(); len(c) != 1 || c[0].MaxAge != -1 {
			t.Errorf("Logout cookies = %v, want the session cookie expired", c)
		}
	})
}

// TestOIDCLogsNoSecrets goes through sign-in, refresh, refusals and
// logout and checks that no token, code, state, cookie or key reaches the
// log, while user ids and the issuer do.
func TestOIDCLogsNoSecrets(t *testing.T) {
	o := newTestOP(t)
	rp := newTestRP(t, o, "sensegate", func(c *OIDCConfig) { c.Scopes = []string{"profile", "email", "offline_access"} })
	signedIn(t, rp)
	o.setIDTokenLifetime(48 * time.Hour)
	rp.clock.Advance(2 * time.Hour)
	if _, err := rp.o.Identify(rp.request("/")); err != nil {
		t.Fatal(err)
	}
	state := startLogin(t, rp, "/").Get("state")
	rp.browser.get(t, rp.srv.URL+"/.sensegate/callback?code=wrong-code-value&state="+state, false)
	startLogin(t, rp, "/")
	rp.browser.get(t, rp.srv.URL+"/.sensegate/callback?code=another-code-value&state=wrong-state-value", false)
	req, _ := http.NewRequest("POST", rp.srv.URL+"/.sensegate/logout", nil)
	rp.browser.do(t, req, false)

	secrets := map[string]string{"code": "wrong-code-value", "state": "wrong-state-value"}
	for i, tok := range o.issuedTokens() {
		secrets[fmt.Sprintf("token %d", i)] = tok
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			secrets[fmt.Sprintf("token %d signature", i)] = parts[2]
		}
	}
	for _, u := range rp.browser.visited("/.sensegate/callback") {
		secrets["callback code"], secrets["callback state"] = u.Query().Get("code"), u.Query().Get("state")
	}
	for _, u := range rp.browser.visited("/authorize") {
		for _, k := range []string{"state", "nonce", "code_challenge"} {
			secrets["auth "+k] = u.Query().Get(k)
		}
	}
	for i, c := range rp.browser.cookiesSet() {
		if c.Value == "" {
			continue
		}
		secrets[fmt.Sprintf("cookie %d %s", i, c.Name)] = c.Value
		if c.Name == testLoginCookie {
			plain, _ := openString(rp.o.ring, c.Name, c.Value)
			var ls loginState
			json.Unmarshal(plain, &ls)
			secrets["pkce verifier"] = ls.Verifier
		}
		if c.Name == testSessionCookie {
			id, _ := openString(rp.o.ring, c.Name, c.Value)
			secrets["session id"] = string(id)
		}
	}
	for i, k := range rp.keys {
		secrets[fmt.Sprintf("key %d", i)] = base64.StdEncoding.EncodeToString(k)
		secrets[fmt.Sprintf("raw key %d", i)] = string(k)
	}

	logs := rp.logText()
	for name, s := range secrets {
		if len(s) < 8 {
			t.Errorf("secret %s = %q: the test did not capture it", name, s)
			continue
		}
		if strings.Contains(logs, s) {
			t.Errorf("the log contains the %s", name)
		}
	}
	for _, want := range []string{`ZITADEL\test-user`, o.issuer, "signed in", "session refreshed", "state mismatch", "code exchange refused", "signed out"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
}

func TestNewOIDCConfig(t *testing.T) {
	o := newTestOP(t)
	valid := func() OIDCConfig {
		return OIDCConfig{
			Issuer: o.issuer, ClientID: "sensegate", RedirectURL: "https://sensegate.example.com/.sensegate/callback",
			Mapping: testMapping(t), Sessions: NewMemorySessions(nil), CookieKeys: [][]byte{randomKey()}, HTTPClient: o.client(),
		}
	}
	tests := []struct {
		name string
		mod  func(*OIDCConfig)
		want []string
	}{
		{"empty", func(c *OIDCConfig) { *c = OIDCConfig{} }, []string{
			"identity: oidc: Issuer is required", "ClientID is required", "RedirectURL is required", "Mapping is required", "Sessions is required", "CookieKeys: at least one key is required",
		}},
		{"relative redirect", func(c *OIDCConfig) { c.RedirectURL = "/.sensegate/callback" }, []string{`RedirectURL "/.sensegate/callback" is not an absolute http(s) URL`}},
		{"redirect elsewhere", func(c *OIDCConfig) { c.RedirectURL = "https://x.example/cb" }, []string{"the path must be sensegate's callback"}},
		{"short key", func(c *OIDCConfig) { c.CookieKeys = [][]byte{randomKey(), []byte("short")} }, []string{"CookieKeys: key 1 is 5 bytes, want 32"}},
		{"bad cookie name", func(c *OIDCConfig) { c.CookieName = "a b" }, []string{`CookieName "a b"`}},
		{"negative lifetime", func(c *OIDCConfig) { c.SessionLifetime = -time.Hour }, []string{"SessionLifetime -1h0m0s is negative"}},
		{"bad post logout", func(c *OIDCConfig) { c.PostLogoutRedirectURL = "/bye" }, []string{`PostLogoutRedirectURL "/bye"`}},
		{"discovery fails", func(c *OIDCConfig) { c.Issuer = o.issuer + "/nowhere" }, []string{`discovery at issuer "` + o.issuer + `/nowhere"`}},
		{"issuer mismatch", func(c *OIDCConfig) { c.Issuer = o.issuer + "/" }, []string{`discovery at issuer "` + o.issuer + `/"`, "did not match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mod(&c)
			_, err := NewOIDC(context.Background(), c)
			if err == nil {
				t.Fatal("NewOIDC succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewOIDC = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
	t.Run("discovery bounded by ctx", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := NewOIDC(ctx, valid()); !errors.Is(err, context.Canceled) {
			t.Errorf("NewOIDC with a canceled ctx = %v, want context.Canceled", err)
		}
	})
	t.Run("mount prefix not the redirect url's", func(t *testing.T) {
		core, logs := observer.New(zapcore.ErrorLevel)
		c := valid()
		c.Logger = zap.New(core)
		p, err := NewOIDC(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		p.Mount(http.NewServeMux(), "/other/")
		if logs.FilterMessageSnippet("sign-ins will fail").Len() != 1 {
			t.Errorf("Mount under another prefix logged %v, want an error", logs.All())
		}
	})
	t.Run("secure cookie names", func(t *testing.T) {
		c := valid()
		c.Secure = true
		p, err := NewOIDC(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if p.cookieName != "__Host-sensegate_session" || p.loginCookie != "__Secure-sensegate_session_login" {
			t.Errorf("over https: cookies %q and %q, want __Host-sensegate_session and __Secure-sensegate_session_login", p.cookieName, p.loginCookie)
		}
		for _, name := range []string{"__Host-x", "__Secure-x"} {
			c := valid()
			c.CookieName = name
			if _, err := NewOIDC(context.Background(), c); err == nil || !strings.Contains(err.Error(), "only when they are Secure") {
				t.Errorf("CookieName %q without Secure: %v, want an error", name, err)
			}
		}
	})
	t.Run("defaults", func(t *testing.T) {
		p, err := NewOIDC(context.Background(), valid())
		if err != nil {
			t.Fatal(err)
		}
		if p.cookieName != "sensegate_session" || p.loginCookie != "sensegate_session_login" || p.lifetime != 12*time.Hour || !slices.Equal(p.oauth.Scopes, []string{"openid", "profile", "email"}) {
			t.Errorf("defaults: cookie %q, lifetime %v, scopes %v", p.cookieName, p.lifetime, p.oauth.Scopes)
		}
		c := valid()
		c.Scopes = []string{"email", "openid", "email", "groups"}
		p, _ = NewOIDC(context.Background(), c)
		if !slices.Equal(p.oauth.Scopes, []string{"openid", "email", "groups"}) {
			t.Errorf("scopes = %v, want openid first and no duplicates", p.oauth.Scopes)
		}
	})
}
