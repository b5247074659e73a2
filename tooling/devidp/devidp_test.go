package devidp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"
	"github.com/sensegate/sensegate/tooling/devidp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/oauth2"
)

const (
	secret   = "client-secret"
	password = "wonderland"
)

var alice = devidp.User{
	Username: "alice", Password: password, Subject: "u-1", Name: "Alice Andersson",
	Email: "alice@acme.example", Groups: []string{"Sales", "Everyone"},
}

// rp is a relying party of an IDP: its callback echoes the query, and its
// browser (a cookie jar, following redirects) signs in there.
type rp struct {
	idp      *devidp.IDP
	cb       *httptest.Server
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	logs     *observer.ObservedLogs
	browser  *http.Client
}

// start starts an IDP with alice and bob and client "app" (confidential
// unless public), and an RP for it.
func start(t *testing.T, public bool) *rp {
	t.Helper()
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.RawQuery) }))
	t.Cleanup(cb.Close)
	core, logs := observer.New(zapcore.DebugLevel)
	c := devidp.Client{ID: "app", Secret: secret, RedirectURIs: []string{cb.URL + "/callback"}, PostLogoutRedirectURIs: []string{cb.URL + "/bye"}}
	if public {
		c.Secret = ""
	}
	idp, err := devidp.Start(devidp.Config{
		Users:   []devidp.User{alice, {Username: "bob", Password: "builder"}},
		Clients: []devidp.Client{c},
		// The RP is at 127.0.0.1.
		Hostname: "localhost",
		Logger:   zap.New(core),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close(context.Background()) })
	p, err := oidc.NewProvider(context.Background(), idp.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	return &rp{
		idp: idp, cb: cb, logs: logs,
		oauth:    &oauth2.Config{ClientID: "app", ClientSecret: c.Secret, Endpoint: p.Endpoint(), RedirectURL: cb.URL + "/callback", Scopes: []string{"openid", "profile", "email"}},
		verifier: p.Verifier(&oidc.Config{ClientID: "app"}),
		browser:  &http.Client{Jar: jar, Timeout: 10 * time.Second},
	}
}

func (r *rp) get(t *testing.T, target string) (*http.Response, string) {
	t.Helper()
	resp, err := r.browser.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var formID = regexp.MustCompile(`name="id" value="([^"]*)"`)

// authorize starts a sign-in with opts and returns where the browser
// ends: the login form, or the callback.
func (r *rp) authorize(t *testing.T, verifier string, opts ...oauth2.AuthCodeOption) (*http.Response, string) {
	t.Helper()
	opts = append(opts, oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-1"))
	return r.get(t, r.oauth.AuthCodeURL("state-1", opts...))
}

// fill posts the login form shown in body.
func (r *rp) fill(t *testing.T, body, username, pw string) (*http.Response, string) {
	t.Helper()
	m := formID.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form:\n%s", body)
	}
	resp, err := r.browser.PostForm(r.idp.Issuer()+"/login", url.Values{"id": {html.UnescapeString(m[1])}, "username": {username}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// callback returns the query the browser brought to the callback.
func (r *rp) callback(t *testing.T, resp *http.Response, body string) url.Values {
	t.Helper()
	if resp.Request.URL.Path != "/callback" || !strings.HasPrefix(resp.Request.URL.String(), r.cb.URL) {
		t.Fatalf("the browser is at %s (%d), want the callback:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	return resp.Request.URL.Query()
}

// signIn signs in as alice with the form and exchanges the code.
func (r *rp) signIn(t *testing.T, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	t.Helper()
	v := oauth2.GenerateVerifier()
	_, body := r.authorize(t, v, opts...)
	resp, body := r.fill(t, body, "alice", password)
	q := r.callback(t, resp, body)
	if q.Get("state") != "state-1" || q.Get("code") == "" {
		t.Fatalf("callback query = %v, want a code and the state", q)
	}
	tok, err := r.oauth.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok
}

func (r *rp) idClaims(t *testing.T, tok *oauth2.Token) map[string]any {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims map[string]any
	idt.Claims(&claims)
	return claims
}

func TestSignInClaims(t *testing.T) {
	r := start(t, false)
	tok := r.signIn(t)
	claims := r.idClaims(t, tok)
	want := map[string]any{
		"iss": r.idp.Issuer(), "sub": "u-1", "aud": "app", "azp": "app", "nonce": "nonce-1", "amr": []any{"pwd"},
		"preferred_username": "alice", "name": "Alice Andersson", "email": "alice@acme.example", "email_verified": true,
		"groups": []any{"Sales", "Everyone"},
	}
	for k, v := range want {
		got := claims[k]
		if a, ok := got.([]any); ok && k == "aud" && len(a) == 1 {
			got = a[0]
		}
		if !cmp.Equal(got, v) {
			t.Errorf("ID token %s = %v, want %v", k, claims[k], v)
		}
	}
	if tok.RefreshToken != "" {
		t.Errorf("refresh token without offline_access")
	}
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
		t.Errorf("ID token expires in %v, want 1h", d)
	}

	// Userinfo tells the same.
	p, err := oidc.NewProvider(context.Background(), r.idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	info, err := p.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uc map[string]any
	info.Claims(&uc)
	if uc["preferred_username"] != "alice" || !cmp.Equal(uc["groups"], []any{"Sales", "Everyone"}) {
		t.Errorf("userinfo = %v", uc)
	}

	if !cmp.Equal(r.idp.SignedIn(), []string{"alice"}) {
		t.Errorf("SignedIn = %v, want alice", r.idp.SignedIn())
	}
	if r.logs.FilterMessage("signed in").FilterField(zap.String("username", "alice")).Len() != 1 {
		t.Errorf("no sign-in log: %v", r.logs.All())
	}
}

// Without the profile and email scopes, the ID token still names the
// subject and the groups.
func TestClaimsByScope(t *testing.T) {
	r := start(t, false)
	r.oauth.Scopes = []string{"openid"}
	claims := r.idClaims(t, r.signIn(t))
	for _, k := range []string{"preferred_username", "name", "email"} {
		if _, ok := claims[k]; ok {
			t.Errorf("ID token without its scope has %s", k)
		}
	}
	if claims["sub"] != "u-1" || !cmp.Equal(claims["groups"], []any{"Sales", "Everyone"}) {
		t.Errorf("ID token = %v, want sub and groups", claims)
	}
}

func TestWrongPassword(t *testing.T) {
	r := start(t, false)
	for _, tt := range []struct{ user, pw string }{{"alice", "not-her-password"}, {"mallory", password}, {"alice", ""}} {
		_, body := r.authorize(t, oauth2.GenerateVerifier())
		resp, body := r.fill(t, body, tt.user, tt.pw)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username or password") || !formID.MatchString(body) {
			t.Errorf("sign-in as %q with %q = %d, want 401 with the form again:\n%s", tt.user, tt.pw, resp.StatusCode, body)
		}
	}
	if n := len(r.idp.SignedIn()); n != 0 {
		t.Errorf("%d sessions after refused sign-ins", n)
	}
	for _, e := range r.logs.All() {
		for _, f := range e.Context {
			if f.String == "not-her-password" {
				t.Errorf("the password is logged: %v", e)
			}
		}
	}
}

// The IdP's own session signs the browser in again without the form,
// unless the client asks for prompt=login or a max_age it exceeds;
// prompt=none never shows the form.
func TestSession(t *testing.T) {
	r := start(t, false)
	r.signIn(t)

	resp, body := r.authorize(t, oauth2.GenerateVerifier())
	if q := r.callback(t, resp, body); q.Get("code") == "" {
		t.Errorf("second sign-in: %v, want a code without the form", q)
	}
	resp, body = r.authorize(t, oauth2.GenerateVerifier(), oauth2.SetAuthURLParam("prompt", "none"))
	if q := r.callback(t, resp, body); q.Get("code") == "" {
		t.Errorf("prompt=none with a session: %v, want a code", q)
	}
	for _, opt := range []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")} {
		if _, body := r.authorize(t, oauth2.GenerateVerifier(), opt); !formID.MatchString(body) {
			t.Errorf("%v: no login form:\n%s", opt, body)
		}
	}

	// Another browser, without a session.
	jar, _ := cookiejar.New(nil)
	r.browser.Jar = jar
	resp, body = r.authorize(t, oauth2.GenerateVerifier(), oauth2.SetAuthURLParam("prompt", "none"))
	if q := r.callback(t, resp, body); q.Get("error") != "login_required" || q.Get("state") != "state-1" {
		t.Errorf("prompt=none without a session: %v, want error login_required", q)
	}
}

func TestEndSession(t *testing.T) {
	r := start(t, false)
	r.oauth.Scopes = append(r.oauth.Scopes, "offline_access")
	tok := r.signIn(t)
	hint, _ := tok.Extra("id_token").(string)
	end := func(redirect string) (*http.Response, string) {
		return r.get(t, r.idp.Issuer()+"/end_session?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {redirect}, "client_id": {"app"}}.Encode())
	}

	// A post_logout_redirect_uri not registered is refused, and nothing ends.
	if resp, body := end("https://evil.example/"); resp.StatusCode != http.StatusBadRequest || resp.Request.URL.Host == "evil.example" {
		t.Errorf("end_session to an unregistered URI = %d at %s:\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if len(r.idp.SignedIn()) != 1 {
		t.Fatal("a refused end_session ended the session")
	}

	resp, _ := end(r.cb.URL + "/bye")
	if resp.Request.URL.String() != r.cb.URL+"/bye" {
		t.Errorf("after end_session the browser is at %s, want %s/bye", resp.Request.URL, r.cb.URL)
	}
	if got := r.idp.SignedIn(); len(got) != 0 {
		t.Errorf("SignedIn after end_session = %v", got)
	}
	if _, err := r.oauth.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); !isOAuthError(err, "invalid_grant") {
		t.Errorf("refresh after end_session = %v, want invalid_grant", err)
	}
	// The next sign-in shows the form.
	if _, body := r.authorize(t, oauth2.GenerateVerifier()); !formID.MatchString(body) {
		t.Errorf("sign-in after end_session without the form:\n%s", body)
	}
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}

func TestRefresh(t *testing.T) {
	r := start(t, false)
	r.oauth.Scopes = append(r.oauth.Scopes, "offline_access")
	tok := r.signIn(t)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	refresh := func(rt string) (*oauth2.Token, error) {
		return r.oauth.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
	}
	next, err := refresh(tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
		t.Errorf("refresh token not rotated")
	}
	if c := r.idClaims(t, next); c["sub"] != "u-1" || !cmp.Equal(c["groups"], []any{"Sales", "Everyone"}) || !cmp.Equal(c["amr"], []any{"pwd"}) {
		t.Errorf("refreshed ID token = %v", c)
	}
	if _, err := refresh(tok.RefreshToken); !isOAuthError(err, "invalid_grant") {
		t.Errorf("reused refresh token = %v, want invalid_grant", err)
	}

	// An administrator revokes alice.
	if !r.idp.RevokeUser("alice") || r.idp.RevokeUser("nobody") {
		t.Error("RevokeUser reports the wrong users")
	}
	if _, err := refresh(next.RefreshToken); !isOAuthError(err, "invalid_grant") {
		t.Errorf("refresh after RevokeUser = %v, want invalid_grant", err)
	}
	if len(r.idp.SignedIn()) != 0 {
		t.Error("RevokeUser left a session")
	}
}

func TestIDTokenLifetime(t *testing.T) {
	r := start(t, false)
	if err := r.idp.SetClient(devidp.Client{ID: "app"}); err == nil || !strings.Contains(err.Error(), "RedirectURIs") {
		t.Errorf("SetClient without redirect URIs = %v", err)
	}
	if err := r.idp.SetClient(devidp.Client{ID: "app", Secret: secret, RedirectURIs: []string{r.cb.URL + "/callback"}, IDTokenLifetime: 48 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(int64(r.idClaims(t, r.signIn(t))["exp"].(float64)), 0)
	if d := time.Until(exp); d < 47*time.Hour {
		t.Errorf("ID token expires in %v, want 48h", d)
	}
}

func TestCodeExchangeRefused(t *testing.T) {
	r := start(t, false)
	code := func() (string, string) {
		v := oauth2.GenerateVerifier()
		resp, body := r.authorize(t, v)
		if formID.MatchString(body) {
			resp, body = r.fill(t, body, "alice", password)
		}
		return r.callback(t, resp, body).Get("code"), v
	}

	c, v := code()
	if _, err := r.oauth.Exchange(context.Background(), c, oauth2.VerifierOption(oauth2.GenerateVerifier())); !isOAuthError(err, "invalid_grant") {
		t.Errorf("exchange with another PKCE verifier = %v, want invalid_grant", err)
	}
	c, v = code()
	wrong := *r.oauth
	wrong.ClientSecret = "wrong"
	if _, err := wrong.Exchange(context.Background(), c, oauth2.VerifierOption(v)); !isOAuthError(err, "invalid_client") {
		t.Errorf("exchange with a wrong secret = %v, want invalid_client", err)
	}
	c, v = code()
	if _, err := r.oauth.Exchange(context.Background(), c, oauth2.VerifierOption(v)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.oauth.Exchange(context.Background(), c, oauth2.VerifierOption(v)); !isOAuthError(err, "invalid_grant") {
		t.Errorf("second exchange of a code = %v, want invalid_grant", err)
	}
}

func TestPublicClient(t *testing.T) {
	r := start(t, true)
	_, body := r.get(t, r.oauth.AuthCodeURL("state-1"))
	resp, body := r.fill(t, body, "alice", password)
	q := r.callback(t, resp, body)
	if _, err := r.oauth.Exchange(context.Background(), q.Get("code")); !isOAuthError(err, "invalid_request") {
		t.Errorf("a public client's exchange without PKCE = %v, want invalid_request", err)
	}
	// With PKCE, in a new browser (so that the form shows).
	r.browser.Jar, _ = cookiejar.New(nil)
	r.signIn(t)
}

func TestSigningKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kids := func(key *rsa.PrivateKey) []string {
		idp, err := devidp.Start(devidp.Config{SigningKey: key})
		if err != nil {
			t.Fatal(err)
		}
		defer idp.Close(context.Background())
		resp, err := http.Get(idp.Issuer() + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct {
			Keys []struct{ Kid, Alg, Use string }
		}
		json.NewDecoder(resp.Body).Decode(&set)
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.Kid+" "+k.Alg+" "+k.Use)
		}
		return out
	}
	a, b, other := kids(key), kids(key), kids(nil)
	if len(a) != 1 || !strings.HasSuffix(a[0], " RS256 sig") || !cmp.Equal(a, b) || cmp.Equal(a, other) {
		t.Errorf("key sets: same key %v and %v, another key %v; want one RS256 key, equal for the same key", a, b, other)
	}
}

func TestStartRefused(t *testing.T) {
	tests := []struct {
		name string
		cfg  devidp.Config
		want []string
	}{
		{"not loopback", devidp.Config{Listen: "0.0.0.0:0"}, []string{`Listen "0.0.0.0:0" is not a loopback address`}},
		{"hostname", devidp.Config{Hostname: "idp.example"}, []string{`Hostname "idp.example"`}},
		{"users", devidp.Config{Users: []devidp.User{{Username: "a", Password: "x"}, {Username: "a", Password: "y"}, {Username: "b"}}}, []string{
			`Users[1]: username "a" is listed twice`, "Users[2]: Username and Password are required",
		}},
		{"clients", devidp.Config{Clients: []devidp.Client{
			{ID: "x"}, {ID: "y", RedirectURIs: []string{"/cb"}}, {ID: "z", RedirectURIs: []string{"http://a/cb"}, PostLogoutRedirectURIs: []string{"ftp://a/"}},
			{RedirectURIs: []string{"http://a/cb"}}, {ID: "w", RedirectURIs: []string{"http://a/cb"}}, {ID: "w", RedirectURIs: []string{"http://a/cb"}},
		}}, []string{
			`Clients[0]: client "x": RedirectURIs: at least one is required`,
			`Clients[1]: client "y": RedirectURIs: "/cb" is not an absolute http(s) URL`,
			`Clients[2]: client "z": PostLogoutRedirectURIs: "ftp://a/"`,
			"Clients[3]: client ID is required",
			`Clients[5]: client "w" is listed twice`,
		}},
		{"all at once", devidp.Config{Listen: "10.0.0.1:80", Users: []devidp.User{{}}, Clients: []devidp.Client{{}}}, []string{
			"Listen", "Users[0]", "Clients[0]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp, err := devidp.Start(tt.cfg)
			if err == nil {
				idp.Close(context.Background())
				t.Fatal("Start succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestClose(t *testing.T) {
	idp, err := devidp.Start(devidp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(idp.Issuer(), "http://127.0.0.1:") {
		t.Errorf("Issuer = %q, want http://127.0.0.1:port", idp.Issuer())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := idp.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := idp.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if resp, err := http.Get(idp.Issuer() + "/.well-known/openid-configuration"); err == nil {
		resp.Body.Close()
		t.Error("the IdP answers after Close")
	}
}
