package proxy

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// tokenKey signs the tests' access tokens (ES256), made once.
var tokenKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

const tokenIssuer = "https://idp.example.com"

// accessToken returns a token of the tests' issuer for user, valid for
// ttl (negative: expired), with scope when not empty.
func accessToken(t *testing.T, user string, ttl time.Duration, scope string) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{"iss": tokenIssuer, "aud": "sensegate", "sub": "sub-" + user, "preferred_username": user, "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix()}
	if scope != "" {
		c["scope"] = scope
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(tokenKey())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newJWTProvider returns the jwt provider of the tests' issuer, with the
// token exchange on unless session is nil.
func newJWTProvider(t *testing.T, session *identity.JWTSessionConfig, scopes ...string) *identity.JWT {
	t.Helper()
	m, err := identity.NewMapping(identity.MappingConfig{Directory: "ACME"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := identity.NewJWT(t.Context(), identity.JWTConfig{
		Issuer: tokenIssuer, Audiences: []string{"sensegate"}, Algorithms: []string{"ES256"},
		PublicKeys: []crypto.PublicKey{&tokenKey().PublicKey}, Mapping: m, Session: session, RequiredScopes: scopes,
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// exchangeSession is the exchange over plain HTTP with a memory store.
func exchangeSession() *identity.JWTSessionConfig {
	key := make([]byte, 32)
	rand.Read(key)
	return &identity.JWTSessionConfig{Sessions: identity.NewMemorySessions(nil), CookieKeys: [][]byte{key}}
}

const (
	spaOrigin   = "http://spa.example.com"
	loginCookie = "sensegate_session" // over plain HTTP
)

func withIdentity(p identity.Provider) envOption {
	return func(_ *qliksim.Config, o *Options) {
		o.Identity = p
		o.AllowedOrigins = []string{spaOrigin}
	}
}

// loginCookieOf returns the login cookie resp sets, nil if none.
func loginCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == loginCookie {
			return c
		}
	}
	return nil
}

// startSession exchanges token and returns the login cookie, as a
// "Cookie" header value.
func (e *env) startSession(t *testing.T, token string, hdr ...string) string {
	t.Helper()
	resp, body := e.do(t, "POST", "/.sensegate/session", "", append([]string{"Authorization", "Bearer " + token}, hdr...)...)
	c := loginCookieOf(resp)
	if resp.StatusCode != http.StatusNoContent || c == nil || c.MaxAge <= 0 {
		t.Fatalf("POST /.sensegate/session = %d %q, cookie %v; want 204 and a login cookie", resp.StatusCode, body, c)
	}
	return c.Name + "=" + c.Value
}

// readUntilClosed reads c until it fails, and reports whether it got a
// close frame.
func readUntilClosed(c *websocket.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var err error
	for err == nil {
		_, _, err = c.ReadMessage()
	}
	_, ok := err.(*websocket.CloseError)
	return ok
}

// Issue 18: a single-page app holding an access token got 401 on its
// Engine websocket, which cannot carry the token. It trades the token for
// the login cookie, with which its requests and websockets authenticate,
// and ends it with DELETE.
func TestSessionExchange(t *testing.T) {
	e := newEnv(t, withIdentity(newJWTProvider(t, exchangeSession())))

	// Without the cookie the handshake is refused with a challenge.
	_, resp, err := e.dialEngine(t, "/app/engineData", "", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="sensegate"` {
		t.Fatalf("handshake without credentials = %v, %v; want 401 with a Bearer challenge", resp, err)
	}

	cookie := e.startSession(t, accessToken(t, "alice", time.Hour, ""))
	ws, _, err := e.dialEngine(t, "/app/engineData", "", http.Header{"Cookie": {cookie}})
	if err != nil {
		t.Fatalf("handshake with the login cookie: %v", err)
	}
	if ans, _ := call(t, ws, 1, "EngineVersion", -1, ""); ans.Error != nil {
		t.Fatalf("EngineVersion: %+v", ans.Error)
	}
	if resp, body := e.do(t, "GET", "/qrs/about?xrfkey="+xrf, "", "Cookie", cookie, "X-Qlik-Xrfkey", xrf); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /qrs/about with the login cookie = %d %q", resp.StatusCode, body)
	}
	if n := e.sim.Counts(`ACME\alice`).LiveSessions; n != 1 {
		t.Fatalf("alice's live Qlik sessions = %d, want 1", n)
	}

	resp, body := e.do(t, "DELETE", "/.sensegate/session", "", "Cookie", cookie)
	if c := loginCookieOf(resp); resp.StatusCode != http.StatusNoContent || c == nil || c.MaxAge >= 0 {
		t.Fatalf("DELETE /.sensegate/session = %d %q, cookie %v; want 204 and the cookie expired", resp.StatusCode, body, c)
	}
	if !readUntilClosed(ws) {
		t.Error("alice's websocket after DELETE: no close frame")
	}
	if n := e.sim.Counts(`ACME\alice`).LiveSessions; n != 0 {
		t.Errorf("alice's live Qlik sessions after DELETE = %d, want 0", n)
	}
	resp, _ = e.do(t, "GET", "/qrs/about", "", "Cookie", cookie)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET with the ended login's cookie = %d, want 401", resp.StatusCode)
	}
}

// A newer token of another user replaces the login: the first user's
// login, Qlik sessions and websockets end, and the browser runs as the
// second.
func TestSessionExchangeSwitchesUser(t *testing.T) {
	e := newEnv(t, withIdentity(newJWTProvider(t, exchangeSession())))
	aliceCookie := e.startSession(t, accessToken(t, "alice", time.Hour, ""))
	ws, _, err := e.dialEngine(t, "/app/engineData", "", http.Header{"Cookie": {aliceCookie}})
	if err != nil {
		t.Fatal(err)
	}
	call(t, ws, 1, "EngineVersion", -1, "")

	bobCookie := e.startSession(t, accessToken(t, "bob", time.Hour, ""), "Cookie", aliceCookie)
	if !readUntilClosed(ws) {
		t.Error("alice's websocket after bob's sign-in: no close frame")
	}
	if n := e.sim.Counts(`ACME\alice`).LiveSessions; n != 0 {
		t.Errorf("alice's live Qlik sessions after bob's sign-in = %d, want 0", n)
	}
	if resp, _ := e.do(t, "GET", "/hub/", "", "Cookie", aliceCookie); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET with alice's replaced cookie = %d, want 401", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/hub/", "", "Cookie", bobCookie); resp.StatusCode != http.StatusOK || e.sim.Counts(`ACME\bob`).LiveSessions != 1 {
		t.Errorf("GET with bob's cookie = %d, bob's sessions %d; want 200 as bob", resp.StatusCode, e.sim.Counts(`ACME\bob`).LiveSessions)
	}

	// The same user again keeps the Qlik session.
	tickets := e.sim.TicketsIssued()
	again := e.startSession(t, accessToken(t, "bob", 2*time.Hour, ""), "Cookie", bobCookie)
	if resp, _ := e.do(t, "GET", "/hub/", "", "Cookie", again); resp.StatusCode != http.StatusOK || e.sim.TicketsIssued() != tickets {
		t.Errorf("after bob's new token: GET = %d with %d new tickets, want 200 and none", resp.StatusCode, e.sim.TicketsIssued()-tickets)
	}
}

// A request with the login cookie of one user and the token of another
// is refused, not run as either.
func TestSessionExchangeConflict(t *testing.T) {
	e := newEnv(t, withIdentity(newJWTProvider(t, exchangeSession())))
	cookie := e.startSession(t, accessToken(t, "alice", time.Hour, ""))
	resp, body := e.do(t, "GET", "/hub/", "", "Cookie", cookie, "Authorization", "Bearer "+accessToken(t, "bob", time.Hour, ""))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "different users") ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="sensegate", error="invalid_request"`) {
		t.Errorf("GET with alice's cookie and bob's token = %d %q, WWW-Authenticate %q; want 400 invalid_request", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	if e.sim.Counts(`ACME\bob`).LiveSessions+e.sim.Counts(`ACME\alice`).LiveSessions != 0 {
		t.Error("the refused request reached Qlik")
	}
}

// A single-page app on an allowed origin gets the CORS answers of the
// exchange: its preflight may ask for Authorization, its credentialed
// POST and DELETE are answered for it to read, challenges included.
// Other origins are refused.
func TestSessionExchangeCORS(t *testing.T) {
	e := newEnv(t, withIdentity(newJWTProvider(t, exchangeSession())))
	for _, method := range []string{"POST", "DELETE"} {
		resp, _ := e.do(t, "OPTIONS", "/.sensegate/session", "", "Origin", spaOrigin, "Access-Control-Request-Method", method, "Access-Control-Request-Headers", "authorization, content-type")
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != spaOrigin || h.Get("Access-Control-Allow-Credentials") != "true" ||
			h.Get("Access-Control-Allow-Headers") != "authorization, content-type" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), method) {
			t.Errorf("preflight of %s = %d %v, want 204 allowing %s with authorization and credentials", method, resp.StatusCode, h, method)
		}
	}

	resp, _ := e.do(t, "POST", "/.sensegate/session", "", "Origin", spaOrigin, "Authorization", "Bearer "+accessToken(t, "alice", time.Hour, ""))
	if resp.StatusCode != http.StatusNoContent || loginCookieOf(resp) == nil || resp.Header.Get("Access-Control-Allow-Origin") != spaOrigin || resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("POST from the app = %d %v, want 204 with the cookie and CORS headers", resp.StatusCode, resp.Header)
	}
	resp, _ = e.do(t, "POST", "/.sensegate/session", "", "Origin", spaOrigin, "Authorization", "Bearer "+accessToken(t, "alice", -time.Hour, ""))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") ||
		resp.Header.Get("WWW-Authenticate") != `Bearer realm="sensegate", error="invalid_token", error_description="token expired"` {
		t.Errorf("POST of an expired token from the app = %d %v, want 401 with a readable invalid_token challenge", resp.StatusCode, resp.Header)
	}

	// A page of another site cannot sign the browser in (login CSRF).
	resp, _ = e.do(t, "POST", "/.sensegate/session", "", "Origin", "https://evil.example", "Authorization", "Bearer "+accessToken(t, "mallory", time.Hour, ""))
	if resp.StatusCode != http.StatusForbidden || loginCookieOf(resp) != nil {
		t.Errorf("POST from a foreign origin = %d, cookie %v; want 403 and none", resp.StatusCode, loginCookieOf(resp))
	}
	resp, _ = e.do(t, "OPTIONS", "/.sensegate/session", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("preflight from a foreign origin = %d, want 403", resp.StatusCode)
	}
}

// Without identity.jwt.session there is no exchange, and CORS does not
// let pages send Authorization.
func TestSessionExchangeOff(t *testing.T) {
	e := newEnv(t, withIdentity(newJWTProvider(t, nil)))
	if resp, _ := e.do(t, "POST", "/.sensegate/session", "", "Authorization", "Bearer "+accessToken(t, "alice", time.Hour, "")); resp.StatusCode != http.StatusNotFound || loginCookieOf(resp) != nil {
		t.Errorf("POST /.sensegate/session without the exchange = %d, want 404", resp.StatusCode)
	}
	resp, _ := e.do(t, "OPTIONS", "/.sensegate/session", "", "Origin", spaOrigin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization")
	if got := resp.Header.Get("Access-Control-Allow-Headers"); got != "" {
		t.Errorf("preflight without the exchange allows headers %q, want none", got)
	}
}

// Issue 18: the jwt provider's refusals reach clients with their RFC 6750
// challenges, on requests and websocket handshakes.
func TestBearerChallengesThroughProxy(t *testing.T) {
	e := newEnv(t, withIdentity(newJWTProvider(t, nil, "qlik")))
	tests := []struct {
		name      string
		auth      string
		status    int
		challenge string
	}{
		{"no token", "", 401, `Bearer realm="sensegate"`},
		{"expired", "Bearer " + accessToken(t, "alice", -time.Hour, "qlik"), 401, `Bearer realm="sensegate", error="invalid_token", error_description="token expired"`},
		{"malformed", "Bearer nonsense", 401, `Bearer realm="sensegate", error="invalid_token", error_description="malformed token"`},
		{"without the scope", "Bearer " + accessToken(t, "alice", time.Hour, "openid"), 403, `Bearer realm="sensegate", error="insufficient_scope", error_description="token lacks a required scope", scope="qlik"`},
		{"valid", "Bearer " + accessToken(t, "alice", time.Hour, "openid qlik"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			resp, body := e.do(t, "GET", "/hub/", "", hdr...)
			if resp.StatusCode != tt.status || resp.Header.Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("GET /hub/ = %d %q with WWW-Authenticate %q, want %d with %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"), tt.status, tt.challenge)
			}
			h := http.Header{}
			if tt.auth != "" {
				h.Set("Authorization", tt.auth)
			}
			_, resp, err := e.dialEngine(t, "/app/engineData", "", h)
			if tt.status == 200 {
				if err != nil {
					t.Errorf("handshake: %v", err)
				}
				return
			}
			if resp == nil || resp.StatusCode != tt.status || resp.Header.Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("handshake = %v, %v; want %d with %q", resp, err, tt.status, tt.challenge)
			}
		})
	}
}
