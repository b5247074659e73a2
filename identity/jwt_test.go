package identity

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const (
	jwtTestIssuer   = "https://idp.example.com/realms/acme"
	jwtTestAudience = "sensegate"
)

// jwtTestStart is the fake clock's start; tokens are issued relative to it.
var jwtTestStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// jwtKeys are the test's signing keys, generated once.
type jwtKeys struct {
	rsa1, rsa2, rsaStranger *rsa.PrivateKey
	ec1                     *ecdsa.PrivateKey
}

var jwtTestKeys = sync.OnceValue(func() jwtKeys {
	genRSA := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return jwtKeys{rsa1: genRSA(), rsa2: genRSA(), rsaStranger: genRSA(), ec1: ec}
})

// jwksServer serves a JWKS that the test can replace, and counts fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	doc     []byte
	status  int
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.setKeys(t, keys...)
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/keys" {
			http.NotFound(w, r)
			return
		}
		s.fetches.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		if status != 0 {
			http.Error(w, "down for maintenance", status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(t *testing.T, keys ...jose.JSONWebKey) {
	t.Helper()
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.doc, s.status = doc, 0
	s.mu.Unlock()
}

func (s *jwksServer) fail(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

func jwk(kid string, alg jose.SignatureAlgorithm, pub crypto.PublicKey) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}
}

// jwtClaims returns valid claims for alice at now, changed by edit.
func jwtClaims(now time.Time, edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss":                jwtTestIssuer,
		"aud":                jwtTestAudience,
		"sub":                "0c5f7a2e",
		"iat":                now.Unix(),
		"exp":                now.Add(5 * time.Minute).Unix(),
		"preferred_username": "alice",
		"groups":             []string{"sales", "eu"},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func signJWT(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flipPayloadByte changes one character in the middle of the payload (the
// last one could fall in base64's unused bits and change nothing).
func flipPayloadByte(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	if i := len(p) / 2; p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

// replacePayload keeps tok's header and signature but swaps its claims.
func replacePayload(t *testing.T, tok string, c jwt.MapClaims) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func pemPublicKey(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func pemCertificate(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "token signer"},
		NotBefore:    jwtTestStart.Add(-time.Hour),
		NotAfter:     jwtTestStart.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeFile(t *testing.T, name string, data ...[]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(strings.Join(bytesToStrings(data), "")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func bytesToStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func jwtTestMapping(t testing.TB) *Mapping {
	t.Helper()
	m, err := NewMapping(MappingConfig{Directory: "ACME"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newTestJWT(t testing.TB, cfg JWTConfig) *JWT {
	t.Helper()
	j, err := NewJWT(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return j
}

func identifyBearer(j *JWT, token string) (User, error) {
	return identifyAuth(j, "Bearer "+token)
}

// identifyAuth identifies a request with an Authorization header of each
// of auth.
func identifyAuth(j *JWT, auth ...string) (User, error) {
	r := httptest.NewRequest("GET", "/api/v1/apps", nil)
	for _, v := range auth {
		r.Header.Add("Authorization", v)
	}
	return j.Identify(r)
}

func TestJWTIdentify(t *testing.T) {
	keys := jwtTestKeys()
	clock := fakeclock.At(jwtTestStart)
	now := clock.Now()
	srv := newJWKSServer(t, jwk("rsa1", jose.RS256, &keys.rsa1.PublicKey), jwk("ec1", jose.ES256, &keys.ec1.PublicKey))
	logs, observed := observer.New(zapcore.DebugLevel)

	providers := []struct {
		name string
		cfg  JWTConfig
	}{
		{"jwks", JWTConfig{JWKSURL: srv.URL + "/keys", HTTPClient: srv.Client()}},
		{"static keys", JWTConfig{PublicKeys: []crypto.PublicKey{&keys.rsa1.PublicKey, &keys.ec1.PublicKey}}},
	}

	alice := User{Directory: "ACME", ID: "alice", Attributes: []Attribute{{"Group", "sales"}, {"Group", "eu"}}}
	valid := signJWT(t, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(now, nil))
	notJSON := func() string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: keys.rsa1}, (&jose.SignerOptions{}).WithHeader("kid", "rsa1"))
		if err != nil {
			t.Fatal(err)
		}
		obj, err := s.Sign([]byte(`["not", "an", "object"]`))
		if err != nil {
			t.Fatal(err)
		}
		c, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}()
	hsWithPublicKey := signJWT(t, jwt.SigningMethodHS256, pemPublicKey(t, &keys.rsa1.PublicKey), "rsa1", jwtClaims(now, nil))
	algNone := signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa1", jwtClaims(now, nil))
	rsRS := func(edit func(jwt.MapClaims)) string {
		return signJWT(t, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(now, edit))
	}

	tests := []struct {
		name       string
		auth       []string // Authorization header values
		want       User
		wantStatus int
		wantMsg    string
		wantErr    error  // errors.Is(err, wantErr) when set
		wantClaim  string // the ClaimError's claim on a 403
	}{
		{name: "valid RS256", auth: []string{"Bearer " + valid}, want: alice},
		{name: "valid ES256", auth: []string{"Bearer " + signJWT(t, jwt.SigningMethodES256, keys.ec1, "ec1", jwtClaims(now, func(c jwt.MapClaims) {
			c["preferred_username"] = "bob"
			c["groups"] = []string{"finance"}
		}))}, want: User{Directory: "ACME", ID: "bob", Attributes: []Attribute{{"Group", "finance"}}}},
		{name: "scheme case-insensitive", auth: []string{"bEaReR   " + valid}, want: alice},
		{name: "expired within skew", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["exp"] = now.Add(-30 * time.Second).Unix() })}, want: alice},
		{name: "nbf within skew", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["nbf"] = now.Add(30 * time.Second).Unix() })}, want: alice},
		{name: "audience list containing ours", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["aud"] = []string{"api://other", jwtTestAudience} })}, want: alice},

		{name: "no authorization", wantStatus: 401, wantMsg: "bearer token required", wantErr: ErrNoIdentity},
		{name: "basic authorization", auth: []string{"Basic YWxpY2U6c2VjcmV0"}, wantStatus: 401, wantMsg: "bearer token required", wantErr: ErrNoIdentity},
		{name: "bearer without token", auth: []string{"Bearer "}, wantStatus: 401, wantMsg: "bearer token required", wantErr: ErrNoIdentity},
		{name: "two authorization headers", auth: []string{"Bearer " + valid, "Bearer " + valid}, wantStatus: 400, wantMsg: "authorization header repeated"},
		{name: "not a jwt", auth: []string{"Bearer abc.def"}, wantStatus: 401, wantMsg: "malformed token"},
		{name: "jws json serialization", auth: []string{`Bearer {"payload":"e30","signatures":[]}`}, wantStatus: 401, wantMsg: "malformed token"},
		{name: "too long", auth: []string{"Bearer " + valid + strings.Repeat("A", maxTokenLen)}, wantStatus: 401, wantMsg: "malformed token"},
		{name: "signed payload not an object", auth: []string{"Bearer " + notJSON}, wantStatus: 401, wantMsg: "malformed token"},
		{name: "tampered payload byte", auth: []string{"Bearer " + flipPayloadByte(valid)}, wantStatus: 401, wantMsg: "token signature not valid"},
		{name: "payload swapped for admin", auth: []string{"Bearer " + replacePayload(t, valid, jwtClaims(now, func(c jwt.MapClaims) { c["preferred_username"] = "admin" }))}, wantStatus: 401, wantMsg: "token signature not valid"},
		{name: "unknown key with known kid", auth: []string{"Bearer " + signJWT(t, jwt.SigningMethodRS256, keys.rsaStranger, "rsa1", jwtClaims(now, nil))}, wantStatus: 401, wantMsg: "token signature not valid"},
		{name: "unknown key and kid", auth: []string{"Bearer " + signJWT(t, jwt.SigningMethodRS256, keys.rsaStranger, "stranger", jwtClaims(now, nil))}, wantStatus: 401, wantMsg: "token signature not valid"},
		{name: "alg none", auth: []string{"Bearer " + algNone}, wantStatus: 401, wantMsg: "token algorithm not accepted"},
		{name: "HS256 with the public key as secret", auth: []string{"Bearer " + hsWithPublicKey}, wantStatus: 401, wantMsg: "token algorithm not accepted"},
		{name: "RS512 not in algorithms", auth: []string{"Bearer " + signJWT(t, jwt.SigningMethodRS512, keys.rsa1, "rsa1", jwtClaims(now, nil))}, wantStatus: 401, wantMsg: "token algorithm not accepted"},
		{name: "expired beyond skew", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["exp"] = now.Add(-61 * time.Second).Unix() })}, wantStatus: 401, wantMsg: "token expired", wantErr: jwt.ErrTokenExpired},
		{name: "nbf beyond skew", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["nbf"] = now.Add(61 * time.Second).Unix() })}, wantStatus: 401, wantMsg: "token not valid yet", wantErr: jwt.ErrTokenNotValidYet},
		{name: "iat beyond skew", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["iat"] = now.Add(2 * time.Minute).Unix() })}, wantStatus: 401, wantMsg: "token not valid yet", wantErr: jwt.ErrTokenUsedBeforeIssued},
		{name: "foreign issuer", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["iss"] = "https://evil.example.com" })}, wantStatus: 401, wantMsg: "token issuer not accepted", wantErr: jwt.ErrTokenInvalidIssuer},
		{name: "issuer differs in case", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["iss"] = strings.ToUpper(jwtTestIssuer) })}, wantStatus: 401, wantMsg: "token issuer not accepted"},
		{name: "no issuer", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { delete(c, "iss") })}, wantStatus: 401, wantMsg: "token has no iss claim"},
		{name: "wrong audience", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["aud"] = "api://other" })}, wantStatus: 401, wantMsg: "token audience not accepted", wantErr: jwt.ErrTokenInvalidAudience},
		{name: "audience list without ours", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["aud"] = []string{"api://a", "api://b"} })}, wantStatus: 401, wantMsg: "token audience not accepted"},
		{name: "no audience", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { delete(c, "aud") })}, wantStatus: 401, wantMsg: "token has no aud claim"},
		{name: "no exp", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { delete(c, "exp") })}, wantStatus: 401, wantMsg: "token has no exp claim", wantErr: jwt.ErrTokenRequiredClaimMissing},
		{name: "exp not a number", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })}, wantStatus: 401, wantMsg: "token claims not valid"},
		{name: "foreign issuer and expired", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) {
			c["iss"] = "https://evil.example.com"
			c["exp"] = now.Add(-time.Hour).Unix()
		})}, wantStatus: 401, wantMsg: "token issuer not accepted"},
		{name: "backslash in user id", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { c["preferred_username"] = `OTHER\mallory` })}, wantStatus: 403, wantMsg: "token claims do not make a valid Qlik user", wantClaim: "preferred_username"},
		{name: "no user id claim", auth: []string{"Bearer " + rsRS(func(c jwt.MapClaims) { delete(c, "preferred_username") })}, wantStatus: 403, wantMsg: "token claims do not make a valid Qlik user", wantClaim: "preferred_username"},
	}

	for _, p := range providers {
		t.Run(p.name, func(t *testing.T) {
			cfg := p.cfg
			cfg.Issuer, cfg.Audiences = jwtTestIssuer, []string{jwtTestAudience, "api://sensegate"}
			cfg.ClockSkew = DefaultJWTClockSkew
			cfg.Mapping, cfg.Now = jwtTestMapping(t), clock.Now
			cfg.Logger = zap.New(logs)
			j := newTestJWT(t, cfg)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := identifyAuth(j, tt.auth...)
					if tt.wantStatus == 0 {
						if err != nil {
							t.Fatalf("Identify = %v, want %v", err, tt.want)
						}
						if diff := cmp.Diff(tt.want, got); diff != "" {
							t.Errorf("user (-want +got):\n%s", diff)
						}
						return
					}
					var ie *Error
					if !errors.As(err, &ie) {
						t.Fatalf("Identify = %v, %v; want an *Error", got, err)
					}
					if ie.Status != tt.wantStatus || ie.Msg != tt.wantMsg || ie.LoginURL != "" {
						t.Errorf("Identify = %d %q (LoginURL %q), want %d %q", ie.Status, ie.Msg, ie.LoginURL, tt.wantStatus, tt.wantMsg)
					}
					if !got.IsZero() {
						t.Errorf("Identify = %v with an error, want the zero User", got)
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("Identify error %v, want it to wrap %v", err, tt.wantErr)
					}
					if tt.wantClaim != "" {
						var ce *ClaimError
						if !errors.As(ie.Err, &ce) || ce.Claim != tt.wantClaim {
							t.Errorf("Identify error %v, want a *ClaimError on %q", ie.Err, tt.wantClaim)
						}
					}
					for _, v := range tt.auth {
						if tok := strings.TrimSpace(v[strings.Index(v, " ")+1:]); len(tok) > 10 && strings.Contains(err.Error(), tok) {
							t.Errorf("Identify error echoes the token: %v", err)
						}
					}
				})
			}
		})
	}

	// Identify is local: the bad signatures and unknown key ids above did
	// not send sensegate back to the identity provider.
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1", n)
	}
	for _, e := range observed.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, tt := range tests {
			for _, v := range tt.auth {
				if tok := v[strings.Index(v, " ")+1:]; len(tok) > 10 && strings.Contains(line, tok) {
					t.Errorf("log entry %q contains a token", line)
				}
			}
		}
	}
}

func TestJWTKeyRotation(t *testing.T) {
	keys := jwtTestKeys()
	clock := fakeclock.At(jwtTestStart)
	srv := newJWKSServer(t, jwk("rsa1", jose.RS256, &keys.rsa1.PublicKey))
	client := srv.Client()
	j := newTestJWT(t, JWTConfig{
		Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
		JWKSURL: srv.URL + "/keys", HTTPClient: client,
		Mapping: jwtTestMapping(t), Now: clock.Now,
	})
	if _, ok := client.Transport.(*http.Transport); !ok {
		t.Errorf("NewJWT replaced the transport of the caller's client: %T", client.Transport)
	}
	token := func(key *rsa.PrivateKey, kid string) string {
		return signJWT(t, jwt.SigningMethodRS256, key, kid, jwtClaims(clock.Now(), nil))
	}

	steps := []struct {
		name        string
		advance     time.Duration
		rotate      bool // the identity provider now publishes rsa2 only
		token       func() string
		wantOK      bool
		wantFetches int32
	}{
		{name: "first token fetches the keys", token: func() string { return token(keys.rsa1, "rsa1") }, wantOK: true, wantFetches: 1},
		{name: "known kid from the cache", token: func() string { return token(keys.rsa1, "rsa1") }, wantOK: true, wantFetches: 1},
		{name: "new kid right after a fetch is rate-limited", rotate: true, token: func() string { return token(keys.rsa2, "rsa2") }, wantFetches: 1},
		{name: "new kid once the interval passed refetches", advance: DefaultJWKSRefetchInterval, token: func() string { return token(keys.rsa2, "rsa2") }, wantOK: true, wantFetches: 2},
		{name: "new key verifies from the cache", advance: time.Second, token: func() string { return token(keys.rsa2, "rsa2") }, wantOK: true, wantFetches: 2},
		{name: "kid that appears nowhere", token: func() string { return token(keys.rsaStranger, "nowhere") }, wantFetches: 2},
		{name: "kid that appears nowhere, interval passed", advance: DefaultJWKSRefetchInterval, token: func() string { return token(keys.rsaStranger, "nowhere") }, wantFetches: 3},
		{name: "kid that appears nowhere, again", token: func() string { return token(keys.rsaStranger, "nowhere") }, wantFetches: 3},
		{name: "new key still verifies", token: func() string { return token(keys.rsa2, "rsa2") }, wantOK: true, wantFetches: 3},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		if s.rotate {
			srv.setKeys(t, jwk("rsa2", jose.RS256, &keys.rsa2.PublicKey))
		}
		u, err := identifyExpectingFetch(j, srv, s.token(), s.wantFetches)
		var ie *Error
		switch {
		case s.wantOK && (err != nil || u.ID != "alice"):
			t.Errorf("%s: Identify = %v, %v; want alice", s.name, u, err)
		case !s.wantOK && (!errors.As(err, &ie) || ie.Status != 401 || ie.Msg != "token signature not valid"):
			t.Errorf("%s: Identify = %v, %v; want 401 token signature not valid", s.name, u, err)
		}
		if n := srv.fetches.Load(); n != s.wantFetches {
			t.Errorf("%s: %d JWKS fetches, want %d", s.name, n, s.wantFetches)
		}
	}
}

// identifyExpectingFetch identifies token once, or, when the step expects
// a JWKS fetch (srv has served fewer than wantFetches), until srv serves
// it. The retry makes up for the fake clock: go-oidc's RemoteKeySet wakes
// the requests waiting for a fetch before its goroutine clears the fetch
// and caches the keys, and a request arriving in between joins the fetch
// already done. In real time that fetch is microseconds old; across a
// jump of the fake clock it can predate the rotation the step is about.
func identifyExpectingFetch(j *JWT, srv *jwksServer, token string, wantFetches int32) (User, error) {
	for range 10000 {
		u, err := identifyBearer(j, token)
		if srv.fetches.Load() >= wantFetches {
			return u, err
		}
		runtime.Gosched()
	}
	return User{}, errors.New("the expected JWKS fetch never happened")
}

func TestJWTJWKSUnavailable(t *testing.T) {
	keys := jwtTestKeys()
	clock := fakeclock.At(jwtTestStart)
	srv := newJWKSServer(t, jwk("rsa1", jose.RS256, &keys.rsa1.PublicKey))
	srv.fail(http.StatusBadGateway)
	j := newTestJWT(t, JWTConfig{
		Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
		JWKSURL: srv.URL + "/keys", HTTPClient: srv.Client(),
		Mapping: jwtTestMapping(t), Now: clock.Now,
	})
	tok := signJWT(t, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(clock.Now(), nil))

	// While the keys cannot be fetched, the failure is not the client's:
	// not an *Error, so the proxy answers 503, and not retried before the
	// interval passes.
	for i := range 2 {
		_, err := identifyBearer(j, tok)
		var ie *Error
		if err == nil || errors.As(err, &ie) || !errors.Is(err, errJWKSUnavailable) {
			t.Fatalf("attempt %d: Identify error = %v, want a plain error wrapping errJWKSUnavailable", i, err)
		}
		if strings.Contains(err.Error(), tok) {
			t.Errorf("Identify error echoes the token: %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d JWKS fetches while down, want 1", n)
	}

	srv.setKeys(t, jwk("rsa1", jose.RS256, &keys.rsa1.PublicKey))
	clock.Advance(DefaultJWKSRefetchInterval)
	tok = signJWT(t, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(clock.Now(), nil))
	if u, err := identifyExpectingFetch(j, srv, tok, 2); err != nil || u.ID != "alice" {
		t.Errorf("after recovery: Identify = %v, %v; want alice", u, err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches after recovery, want 2", n)
	}
}

func TestJWTLoadPublicKeys(t *testing.T) {
	keys := jwtTestKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := x509.MarshalPKIXPublicKey(xKey.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(keys.rsa1)
	if err != nil {
		t.Fatal(err)
	}

	rsaPEM := writeFile(t, "rsa.pem", pemPublicKey(t, &keys.rsa1.PublicKey))
	ecCert := writeFile(t, "ec-cert.pem", pemCertificate(t, keys.ec1))
	bundle := writeFile(t, "bundle.pem", pemCertificate(t, keys.rsa2), []byte("comment between blocks\n"), pemPublicKey(t, edPub))

	tests := []struct {
		name    string
		files   []string
		want    []crypto.PublicKey
		wantErr string // substring; the file's path is checked too
	}{
		{name: "public key", files: []string{rsaPEM}, want: []crypto.PublicKey{&keys.rsa1.PublicKey}},
		{name: "certificate", files: []string{ecCert}, want: []crypto.PublicKey{&keys.ec1.PublicKey}},
		{name: "several files and blocks", files: []string{rsaPEM, ecCert, bundle}, want: []crypto.PublicKey{&keys.rsa1.PublicKey, &keys.ec1.PublicKey, &keys.rsa2.PublicKey, edPub}},
		{name: "missing file", files: []string{filepath.Join(t.TempDir(), "nope.pem")}, wantErr: "no such file"},
		{name: "no PEM", files: []string{writeFile(t, "empty.pem", []byte("not pem\n"))}, wantErr: "no PEM PUBLIC KEY or CERTIFICATE block"},
		{name: "private key", files: []string{writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}, wantErr: "only public keys belong here"},
		{name: "other block", files: []string{writeFile(t, "req.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1}}))}, wantErr: "want PUBLIC KEY or CERTIFICATE"},
		{name: "garbage in block", files: []string{writeFile(t, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}, wantErr: "PEM block 1 (PUBLIC KEY)"},
		{name: "short RSA key", files: []string{writeFile(t, "small.pem", pemPublicKey(t, &small.PublicKey))}, wantErr: "1024 bits is too short"},
		{name: "X25519 key", files: []string{writeFile(t, "x25519.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: x25519}))}, wantErr: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadPublicKeys(tt.files...)
			if tt.wantErr != "" {
				last := tt.files[len(tt.files)-1]
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), last) {
					t.Fatalf("LoadPublicKeys = %v, want an error naming %s with %q", err, last, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("LoadPublicKeys = %d keys, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !got[i].(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want[i]) {
					t.Errorf("key %d = %T, not the one written", i, got[i])
				}
			}
		})
	}

	// Keys loaded from PEM verify tokens; a token signed by a key not in
	// the files does not.
	loaded, err := LoadPublicKeys(rsaPEM, ecCert)
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.At(jwtTestStart)
	j := newTestJWT(t, JWTConfig{
		Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
		PublicKeys: loaded, Mapping: jwtTestMapping(t), Now: clock.Now,
	})
	for _, c := range []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"RS256 from PUBLIC KEY", signJWT(t, jwt.SigningMethodRS256, keys.rsa1, "", jwtClaims(clock.Now(), nil)), true},
		{"ES256 from CERTIFICATE", signJWT(t, jwt.SigningMethodES256, keys.ec1, "any-kid", jwtClaims(clock.Now(), nil)), true},
		{"key not loaded", signJWT(t, jwt.SigningMethodRS256, keys.rsa2, "", jwtClaims(clock.Now(), nil)), false},
	} {
		u, err := identifyBearer(j, c.token)
		if c.wantOK != (err == nil) || (c.wantOK && u.ID != "alice") {
			t.Errorf("%s: Identify = %v, %v; want ok=%v", c.name, u, err, c.wantOK)
		}
	}
}

func TestJWTConfig(t *testing.T) {
	keys := jwtTestKeys()
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := jwtTestMapping(t)
	ok := func(edit func(*JWTConfig)) JWTConfig {
		c := JWTConfig{Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience}, JWKSURL: "https://idp.example.com/keys", Mapping: m}
		edit(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     JWTConfig
		wantErr []string // substrings; none means valid
	}{
		{name: "jwks", cfg: ok(func(*JWTConfig) {})},
		{name: "static keys", cfg: ok(func(c *JWTConfig) {
			c.JWKSURL, c.PublicKeys = "", []crypto.PublicKey{&keys.rsa1.PublicKey, &keys.ec1.PublicKey, edPub}
			c.Algorithms = []string{"RS256", "ES256", "EdDSA"}
		})},
		{name: "http jwks on loopback", cfg: ok(func(c *JWTConfig) { c.JWKSURL = "http://127.0.0.1:8081/keys" })},
		{name: "empty", cfg: JWTConfig{}, wantErr: []string{"Issuer: required", "Audiences: required", "JWKSURL: either JWKSURL or PublicKeys is required", "Mapping: required"}},
		{name: "blank audience", cfg: ok(func(c *JWTConfig) { c.Audiences = []string{jwtTestAudience, " "} }), wantErr: []string{"Audiences[1]: empty"}},
		{name: "issuer with spaces", cfg: ok(func(c *JWTConfig) { c.Issuer += " " }), wantErr: []string{"Issuer:"}},
		{name: "both key sources", cfg: ok(func(c *JWTConfig) { c.PublicKeys = []crypto.PublicKey{&keys.rsa1.PublicKey} }), wantErr: []string{"JWKSURL: set either JWKSURL or PublicKeys, not both"}},
		{name: "http jwks", cfg: ok(func(c *JWTConfig) { c.JWKSURL = "http://idp.example.com/keys" }), wantErr: []string{"JWKSURL:", "https"}},
		{name: "relative jwks", cfg: ok(func(c *JWTConfig) { c.JWKSURL = "/keys" }), wantErr: []string{"JWKSURL:", "not an absolute URL"}},
		{name: "HS256", cfg: ok(func(c *JWTConfig) { c.Algorithms = []string{"RS256", "HS256"} }), wantErr: []string{`Algorithms[1]: "HS256" is never accepted`}},
		{name: "none", cfg: ok(func(c *JWTConfig) { c.Algorithms = []string{"none"} }), wantErr: []string{`Algorithms[0]: "none" is never accepted`}},
		{name: "unknown algorithm", cfg: ok(func(c *JWTConfig) { c.Algorithms = []string{"rs256"} }), wantErr: []string{`Algorithms[0]: "rs256" not supported`}},
		{name: "key fits no algorithm", cfg: ok(func(c *JWTConfig) { c.JWKSURL, c.PublicKeys = "", []crypto.PublicKey{edPub} }), wantErr: []string{"PublicKeys[0]: a Ed25519 key verifies none of the Algorithms"}},
		{name: "unsupported key", cfg: ok(func(c *JWTConfig) { c.JWKSURL, c.PublicKeys = "", []crypto.PublicKey{"secret"} }), wantErr: []string{"PublicKeys[0]: key type string not supported"}},
		{name: "negative skew", cfg: ok(func(c *JWTConfig) { c.ClockSkew = -time.Second }), wantErr: []string{"ClockSkew: -1s is negative"}},
		{name: "negative refetch interval", cfg: ok(func(c *JWTConfig) { c.JWKSRefetchInterval = -time.Second }), wantErr: []string{"JWKSRefetchInterval:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := NewJWT(context.Background(), tt.cfg)
			if len(tt.wantErr) == 0 {
				if err != nil || j == nil {
					t.Fatalf("NewJWT = %v, %v; want a provider", j, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewJWT = %v, want errors %q", j, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("NewJWT error %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestJWTStripHeaders(t *testing.T) {
	j := newTestJWT(t, JWTConfig{Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience}, PublicKeys: []crypto.PublicKey{&jwtTestKeys().rsa1.PublicKey}, Mapping: jwtTestMapping(t)})
	if diff := cmp.Diff([]string{"Authorization"}, j.StripHeaders()); diff != "" {
		t.Errorf("StripHeaders (-want +got):\n%s", diff)
	}
}

// FuzzJWTIdentify mutates tokens: whatever comes in, Identify does not
// panic, refuses with a 401 or 403 *Error, or returns a user one of the
// seeds was signed for.
func FuzzJWTIdentify(f *testing.F) {
	keys := jwtTestKeys()
	clock := fakeclock.At(jwtTestStart)
	now := clock.Now()
	j := newTestJWT(f, JWTConfig{
		Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
		PublicKeys: []crypto.PublicKey{&keys.rsa1.PublicKey, &keys.ec1.PublicKey},
		Mapping:    jwtTestMapping(f), Now: clock.Now,
	})
	valid := signJWT(f, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(now, nil))
	f.Add(valid)
	f.Add(signJWT(f, jwt.SigningMethodES256, keys.ec1, "ec1", jwtClaims(now, func(c jwt.MapClaims) { c["preferred_username"] = "bob" })))
	f.Add(flipPayloadByte(valid))
	f.Add(signJWT(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", jwtClaims(now, nil)))
	f.Add(signJWT(f, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(now, func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })))
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		u, err := identifyBearer(j, token)
		if err == nil {
			if u.ID != "alice" && u.ID != "bob" {
				t.Fatalf("Identify(%q) = %v, a user no seed was signed for", token, u)
			}
			return
		}
		var ie *Error
		if !errors.As(err, &ie) || (ie.Status != 401 && ie.Status != 403) {
			t.Fatalf("Identify(%q) = %v, want a 401 or 403 *Error", token, err)
		}
	})
}

// ClockSkew means what identity.jwt.clock_skew says: 0 allows no leeway
// (it used to mean the default, 60s), a positive value that much.
func TestJWTClockSkewZeroAllowsNone(t *testing.T) {
	keys := jwtTestKeys()
	clock := fakeclock.At(jwtTestStart)
	expired := signJWT(t, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(jwtTestStart, func(c jwt.MapClaims) {
		c["exp"] = jwtTestStart.Add(-time.Second).Unix()
	}))
	for _, tt := range []struct {
		skew   time.Duration
		wantOK bool
	}{{0, false}, {DefaultJWTClockSkew, true}} {
		j := newTestJWT(t, JWTConfig{
			Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience}, PublicKeys: []crypto.PublicKey{&keys.rsa1.PublicKey},
			Mapping: jwtTestMapping(t), Now: clock.Now, ClockSkew: tt.skew,
		})
		if _, err := identifyBearer(j, expired); (err == nil) != tt.wantOK {
			t.Errorf("ClockSkew %v, a token expired 1s ago: Identify error %v, want accepted %v", tt.skew, err, tt.wantOK)
		}
	}
}
