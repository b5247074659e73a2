package identity

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

// exchangeEnv is a JWT provider with the token exchange on, over a store
// that a second provider (another replica) may share.
type exchangeEnv struct {
	j     *JWT
	store *MemorySessions
	clock *fakeclock.Clock
	keys  [][]byte
}

func newExchangeEnv(t *testing.T, mod func(*JWTConfig)) *exchangeEnv {
	t.Helper()
	e := &exchangeEnv{clock: fakeclock.At(jwtTestStart), keys: [][]byte{randomKey()}}
	e.store = NewMemorySessions(e.clock.Now)
	e.j = e.replica(t, mod)
	return e
}

// replica returns another provider on e's store, keys and clock.
func (e *exchangeEnv) replica(t *testing.T, mod func(*JWTConfig)) *JWT {
	t.Helper()
	cfg := JWTConfig{
		Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
		PublicKeys: []crypto.PublicKey{&jwtTestKeys().rsa1.PublicKey}, Mapping: jwtTestMapping(t), Now: e.clock.Now,
		ClockSkew: DefaultJWTClockSkew,
		Session:   &JWTSessionConfig{Sessions: e.store, CookieKeys: e.keys, Secure: true},
	}
	if mod != nil {
		mod(&cfg)
	}
	return newTestJWT(t, cfg)
}

// token returns a token for user valid for ttl from the clock's now.
func (e *exchangeEnv) token(t *testing.T, user string, ttl time.Duration, edit func(jwt.MapClaims)) string {
	t.Helper()
	now := e.clock.Now()
	return signJWT(t, jwt.SigningMethodRS256, jwtTestKeys().rsa1, "rsa1", jwtClaims(now, func(c jwt.MapClaims) {
		c["preferred_username"] = user
		c["exp"] = now.Add(ttl).Unix()
		if edit != nil {
			edit(c)
		}
	}))
}

// exchange POSTs token to j's exchange with cookies and returns the
// users, the error and the login cookie set, if any.
func exchange(t *testing.T, j *JWT, token string, cookies ...*http.Cookie) (u, replaced User, err error, set *http.Cookie) {
	t.Helper()
	r := httptest.NewRequest("POST", "/.sensegate/session", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	u, replaced, err = j.ExchangeToken(w, r)
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("ExchangeToken wrote %d %q, want nothing", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == j.logins.cookie {
			set = c
		}
	}
	return u, replaced, err, set
}

// identify runs j.Identify on a request with token (if any) and cookies.
func identify(j *JWT, token string, cookies ...*http.Cookie) (User, error) {
	r := httptest.NewRequest("GET", "/app/x", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return j.Identify(r)
}

// wantRefusal fails unless err is an *Error with status and challenge.
func wantRefusal(t *testing.T, what string, err error, status int, challenge string) *Error {
	t.Helper()
	var ie *Error
	if !errors.As(err, &ie) || ie.Status != status || ie.Challenge != challenge {
		t.Fatalf("%s = %v, want a %d *Error with challenge %q", what, err, status, challenge)
	}
	return ie
}

var alice = User{Directory: "ACME", ID: "alice", Attributes: []Attribute{{"Group", "sales"}, {"Group", "eu"}}}

func TestJWTExchange(t *testing.T) {
	e := newExchangeEnv(t, nil)
	if !e.j.ExchangesTokens() {
		t.Fatal("ExchangesTokens = false with Session set")
	}
	u, replaced, err, c := exchange(t, e.j, e.token(t, "alice", 5*time.Minute, nil))
	if err != nil || c == nil {
		t.Fatalf("ExchangeToken = %v, cookie %v", err, c)
	}
	if diff := cmp.Diff(alice, u); diff != "" || !replaced.IsZero() {
		t.Errorf("ExchangeToken user (-want +got):\n%s; replaced %v, want none", diff, replaced)
	}
	type attrs struct {
		Name, Path                    string
		MaxAge                        int
		HttpOnly, Secure, Partitioned bool
		SameSite                      http.SameSite
	}
	// The cookie lasts no longer than the token (5 minutes).
	want := attrs{"__Host-sensegate_session", "/", 300, true, true, false, http.SameSiteLaxMode}
	if diff := cmp.Diff(want, attrs{c.Name, c.Path, c.MaxAge, c.HttpOnly, c.Secure, c.Partitioned, c.SameSite}); diff != "" {
		t.Errorf("login cookie (-want +got):\n%s", diff)
	}
	if got, err := identify(e.j, "", c); err != nil || got.ID != "alice" {
		t.Errorf("Identify with the cookie = %v, %v; want alice", got, err)
	}
	// Another replica on the same store opens it too.
	if got, err := identify(e.replica(t, nil), "", c); err != nil || got.ID != "alice" {
		t.Errorf("Identify on another replica = %v, %v; want alice", got, err)
	}
	// Stored sealed: no user, no token.
	for id := range e.store.entries {
		data, _, _ := e.store.Get(context.Background(), id)
		if bytes.Contains(data, []byte("alice")) || bytes.Contains(data, []byte(jwtTestIssuer)) {
			t.Errorf("stored login is not sealed: %q", data)
		}
	}
	// The login ends with the token.
	e.clock.Advance(5*time.Minute + time.Second)
	_, err = identify(e.j, "", c)
	if ie := wantRefusal(t, "Identify after the token's expiry", err, 401, `Bearer realm="sensegate"`); !errors.Is(ie, ErrNoIdentity) || !strings.Contains(ie.Msg, "sign-in ended") {
		t.Errorf("Identify after the token's expiry = %v, want a 401 saying the sign-in ended", ie)
	}
	if n := e.store.len(); n != 0 {
		t.Errorf("stored logins after expiry = %d, want 0", n)
	}
}

func TestJWTExchangeCrossSite(t *testing.T) {
	e := newExchangeEnv(t, func(c *JWTConfig) { c.Session.CrossSite = true })
	_, _, err, c := exchange(t, e.j, e.token(t, "alice", time.Hour, nil))
	if err != nil || c == nil {
		t.Fatalf("ExchangeToken = %v, cookie %v", err, c)
	}
	if c.SameSite != http.SameSiteNoneMode || !c.Secure || !c.Partitioned || !c.HttpOnly || c.MaxAge != 3600 {
		t.Errorf("cross-site login cookie = %+v, want SameSite=None, Secure, Partitioned, HttpOnly, Max-Age 3600", c)
	}
}

func TestJWTExchangeReplaces(t *testing.T) {
	e := newExchangeEnv(t, nil)
	_, _, _, aliceCookie := exchange(t, e.j, e.token(t, "alice", time.Hour, nil))

	// The same user again: a new login, the old one ended.
	u, replaced, err, again := exchange(t, e.j, e.token(t, "alice", 2*time.Hour, nil), aliceCookie)
	if err != nil || u.ID != "alice" || replaced.ID != "alice" || again.Value == aliceCookie.Value || again.MaxAge != 7200 {
		t.Fatalf("ExchangeToken again = %v, replaced %v, %v, cookie %v; want alice replacing alice with a new cookie", u, replaced, err, again)
	}
	if _, err := identify(e.j, "", aliceCookie); err == nil {
		t.Error("the replaced login still identifies")
	}

	// A newer token of another user replaces the cookie and ends the
	// login of the first.
	u, replaced, err, bobCookie := exchange(t, e.j, e.token(t, "bob", time.Hour, nil), again)
	if err != nil || u.ID != "bob" || replaced.ID != "alice" {
		t.Fatalf("ExchangeToken as bob = %v, replaced %v, %v; want bob replacing alice", u, replaced, err)
	}
	if _, err := identify(e.j, "", again); err == nil {
		t.Error("alice's login still identifies after bob's exchange")
	}
	if got, err := identify(e.j, "", bobCookie); err != nil || got.ID != "bob" {
		t.Errorf("Identify with bob's cookie = %v, %v", got, err)
	}
	if n := e.store.len(); n != 1 {
		t.Errorf("stored logins = %d, want bob's only", n)
	}
}

func TestJWTLoginAndTokenTogether(t *testing.T) {
	e := newExchangeEnv(t, nil)
	_, _, _, c := exchange(t, e.j, e.token(t, "alice", time.Hour, nil))

	// The same Qlik user: the token wins (its groups are the fresh ones).
	u, err := identify(e.j, e.token(t, "alice", time.Hour, func(m jwt.MapClaims) { m["groups"] = []string{"finance"} }), c)
	if err != nil || u.ID != "alice" || len(u.Attributes) != 1 || u.Attributes[0].Value != "finance" {
		t.Errorf("Identify with alice's cookie and a newer token of hers = %v, %v; want the token's alice", u, err)
	}
	// Another user: refused, not served as either.
	u, err = identify(e.j, e.token(t, "bob", time.Hour, nil), c)
	ie := wantRefusal(t, "Identify with alice's cookie and bob's token", err, 400, `Bearer realm="sensegate", error="invalid_request", error_description="`+challengeText(errLoginTokenConflict.Msg)+`"`)
	if !u.IsZero() || !strings.Contains(ie.Msg, "different users") {
		t.Errorf("Identify = %v, %q", u, ie.Msg)
	}
	// A bad token is refused even with a good cookie.
	_, err = identify(e.j, flipPayloadByte(e.token(t, "alice", time.Hour, nil)), c)
	wantRefusal(t, "Identify with a tampered token and a valid cookie", err, 401, `Bearer realm="sensegate", error="invalid_token", error_description="token signature not valid"`)
	// Without a login or token, as without the exchange.
	_, err = identify(e.j, "")
	wantRefusal(t, "Identify without anything", err, 401, `Bearer realm="sensegate"`)
	// Two valid cookies of different logins (one planted): refused.
	_, _, _, other := exchange(t, e.replica(t, nil), e.token(t, "mallory", time.Hour, nil))
	_, err = identify(e.j, "", c, other)
	if !errors.Is(err, errTwoSessions) {
		t.Errorf("Identify with two login cookies = %v, want errTwoSessions", err)
	}
}

func TestJWTExchangeRefused(t *testing.T) {
	e := newExchangeEnv(t, func(c *JWTConfig) { c.RequiredScopes = []string{"qlik"} })
	withScope := func(m jwt.MapClaims) { m["scope"] = "qlik" }
	tests := []struct {
		name          string
		token         string
		status        int
		challenge     string
		stored, plain bool // a login was stored; the error is no *Error
	}{
		{name: "no token", status: 401, challenge: `Bearer realm="sensegate"`},
		{name: "expired", token: e.token(t, "alice", -time.Hour, withScope), status: 401, challenge: `Bearer realm="sensegate", error="invalid_token", error_description="token expired"`},
		{name: "expired within the clock skew", token: e.token(t, "alice", -30*time.Second, withScope), status: 401, challenge: `Bearer realm="sensegate", error="invalid_token", error_description="token expires too soon"`},
		{name: "without the scope", token: e.token(t, "alice", time.Hour, nil), status: 403, challenge: `Bearer realm="sensegate", error="insufficient_scope", error_description="token lacks a required scope", scope="qlik"`},
		{name: "claims refused", token: e.token(t, `A\b`, time.Hour, withScope), status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _, err, c := exchange(t, e.j, tt.token)
			wantRefusal(t, "ExchangeToken", err, tt.status, tt.challenge)
			if !u.IsZero() || c != nil || e.store.len() != 0 {
				t.Errorf("refused ExchangeToken = %v, cookie %v, %d stored", u, c, e.store.len())
			}
		})
	}
	if _, _, err, _ := exchange(t, e.j, e.token(t, "alice", time.Hour, withScope)); err != nil {
		t.Errorf("ExchangeToken with the scope = %v", err)
	}
}

func TestJWTExchangeLogout(t *testing.T) {
	e := newExchangeEnv(t, nil)
	other := e.replica(t, nil)
	_, _, _, c := exchange(t, e.j, e.token(t, "alice", time.Hour, nil))
	r := httptest.NewRequest("DELETE", "/.sensegate/session", nil)
	r.AddCookie(c)
	w := httptest.NewRecorder()
	if next := other.Logout(w, r); next != "" {
		t.Errorf("Logout = %q, want \"\"", next)
	}
	cleared := w.Result().Cookies()
	if len(cleared) != 1 || cleared[0].Name != c.Name || cleared[0].MaxAge >= 0 {
		t.Errorf("Logout set cookies %v, want %s expired", cleared, c.Name)
	}
	// Ended on every replica.
	for _, j := range []*JWT{e.j, other} {
		if _, err := identify(j, "", c); err == nil {
			t.Error("the login identifies after Logout on another replica")
		}
	}
}

func TestJWTWithoutExchange(t *testing.T) {
	e := newExchangeEnv(t, func(c *JWTConfig) { c.Session = nil })
	if e.j.ExchangesTokens() || e.j.StripCookies() != nil {
		t.Errorf("without Session: ExchangesTokens %v, StripCookies %v", e.j.ExchangesTokens(), e.j.StripCookies())
	}
	w := httptest.NewRecorder()
	if e.j.Logout(w, httptest.NewRequest("POST", "/.sensegate/logout", nil)); len(w.Result().Cookies()) != 0 {
		t.Errorf("Logout without the exchange set %v", w.Result().Cookies())
	}
	if _, _, err := e.j.ExchangeToken(w, httptest.NewRequest("POST", "/.sensegate/session", nil)); err == nil {
		t.Error("ExchangeToken without the exchange succeeded")
	}
}

func TestJWTSessionConfig(t *testing.T) {
	base := func() JWTConfig {
		return JWTConfig{
			Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
			PublicKeys: []crypto.PublicKey{&jwtTestKeys().rsa1.PublicKey}, Mapping: jwtTestMapping(t),
		}
	}
	tests := []struct {
		name string
		s    JWTSessionConfig
		want []string
	}{
		{"nothing", JWTSessionConfig{}, []string{"Session.Sessions: required", "Session.CookieKeys: at least one key"}},
		{"short key", JWTSessionConfig{Sessions: NewMemorySessions(nil), CookieKeys: [][]byte{[]byte("short")}}, []string{"Session.CookieKeys: key 0 is 5 bytes"}},
		{"__Host- over http", JWTSessionConfig{Sessions: NewMemorySessions(nil), CookieKeys: [][]byte{randomKey()}, CookieName: "__Host-x"}, []string{`Session.CookieName: "__Host-x": browsers keep`}},
		{"bad name", JWTSessionConfig{Sessions: NewMemorySessions(nil), CookieKeys: [][]byte{randomKey()}, CookieName: "a b", Secure: true}, []string{`Session.CookieName: "a b"`}},
		{"cross-site over http", JWTSessionConfig{Sessions: NewMemorySessions(nil), CookieKeys: [][]byte{randomKey()}, CrossSite: true}, []string{"Session.CrossSite: needs Secure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base()
			cfg.Session = &tt.s
			_, err := NewJWT(t.Context(), cfg)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("NewJWT = %v, want an error containing %q", err, w)
				}
			}
		})
	}
	cfg := base()
	cfg.Session = &JWTSessionConfig{Sessions: NewMemorySessions(nil), CookieKeys: [][]byte{randomKey()}}
	j, err := NewJWT(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := j.StripCookies(); len(got) != 1 || got[0] != "sensegate_session" {
		t.Errorf("StripCookies over http = %q, want [sensegate_session]", got)
	}
}
