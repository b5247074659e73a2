package devidp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/sensegate/sensegate/tooling/devidp"
	"golang.org/x/oauth2"
)

// accessClaims verifies tok's access token against the IdP's JWKS and
// returns its claims.
func (r *rp) accessClaims(t *testing.T, tok *oauth2.Token) map[string]any {
	t.Helper()
	ctx := context.Background()
	payload, err := oidc.NewRemoteKeySet(ctx, r.idp.JWKSURL()).VerifySignature(ctx, tok.AccessToken)
	if err != nil {
		t.Fatalf("access token does not verify against %s: %v", r.idp.JWKSURL(), err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// A client with JWTAccessTokens (a single-page app calling an API that
// verifies tokens itself, issue 18) gets access tokens signed with the
// IdP's key, naming the client as audience and carrying the user's claims
// for the scopes granted, as its ID tokens do.
func TestJWTAccessTokens(t *testing.T) {
	tests := []struct {
		name   string
		client func(c *devidp.Client)
		want   map[string]any
	}{
		{"groups", func(*devidp.Client) {}, map[string]any{
			"preferred_username": "alice", "name": "Alice Andersson", "email": "alice@acme.example", "email_verified": true,
			"groups": []any{"Sales", "Everyone"},
		}},
		{"groups in userinfo only", func(c *devidp.Client) { c.GroupsInUserinfoOnly = true }, map[string]any{
			"preferred_username": "alice", "name": "Alice Andersson", "email": "alice@acme.example", "email_verified": true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, true)
			c := devidp.Client{ID: "app", RedirectURIs: []string{r.cb.URL + "/callback"}, JWTAccessTokens: true}
			tt.client(&c)
			if err := r.idp.SetClient(c); err != nil {
				t.Fatal(err)
			}
			tok := r.signIn(t)
			claims := r.accessClaims(t, tok)
			for _, k := range []string{"exp", "iat", "nbf", "jti"} {
				if _, ok := claims[k]; !ok {
					t.Errorf("access token lacks %s: %v", k, claims)
				}
				delete(claims, k)
			}
			want := map[string]any{"iss": r.idp.Issuer(), "sub": "u-1", "aud": []any{"app"}, "client_id": "app", "scope": "openid profile email"}
			for k, v := range tt.want {
				want[k] = v
			}
			if diff := cmp.Diff(want, claims); diff != "" {
				t.Errorf("access token claims (-want +got):\n%s", diff)
			}
			if d := time.Until(tok.Expiry); d < 14*time.Minute || d > 15*time.Minute {
				t.Errorf("access token expires in %v, want 15m", d)
			}
		})
	}
}

// The JWT is an access token at the IdP's own endpoints too, until
// RevokeUser: from then on userinfo refuses it, though its signature
// stays valid until it expires.
func TestJWTAccessTokenRevoked(t *testing.T) {
	r := start(t, true)
	if err := r.idp.SetClient(devidp.Client{ID: "app", RedirectURIs: []string{r.cb.URL + "/callback"}, JWTAccessTokens: true}); err != nil {
		t.Fatal(err)
	}
	tok := r.signIn(t)
	p, err := oidc.NewProvider(context.Background(), r.idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	info, err := p.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != "u-1" {
		t.Fatalf("userinfo with the JWT = %v, %v; want alice's", info, err)
	}
	r.idp.RevokeUser("alice")
	if _, err := p.UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("userinfo answers a revoked JWT access token")
	}
	r.accessClaims(t, tok) // still signed
}

// Without JWTAccessTokens, access tokens are opaque.
func TestOpaqueAccessTokens(t *testing.T) {
	r := start(t, false)
	tok := r.signIn(t)
	if _, err := jose.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256}); err == nil {
		t.Errorf("access token %q is a JWS, want an opaque token", tok.AccessToken)
	}
}

// The discovery document names JWKSURL.
func TestJWKSURL(t *testing.T) {
	r := start(t, false)
	resp, err := http.Get(r.idp.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		JWKSURI string `json:"jwks_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&d)
	if d.JWKSURI != r.idp.JWKSURL() {
		t.Errorf("discovery jwks_uri = %q, JWKSURL() = %q", d.JWKSURI, r.idp.JWKSURL())
	}
}

// A single-page app on another origin than the IdP's reads discovery and
// the JWKS and calls the token endpoint from its page: the OP answers
// CORS (op's default policy: every origin).
func TestCORS(t *testing.T) {
	r := start(t, true)
	const origin = "http://localhost:5173"
	p, err := oidc.NewProvider(context.Background(), r.idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Token    string `json:"token_endpoint"`
		JWKS     string `json:"jwks_uri"`
		Userinfo string `json:"userinfo_endpoint"`
		Revoke   string `json:"revocation_endpoint"`
	}
	p.Claims(&d)
	tests := []struct {
		method, url, preflight string
	}{
		{"GET", r.idp.Issuer() + "/.well-known/openid-configuration", ""},
		{"GET", d.JWKS, ""},
		{"OPTIONS", d.Token, "POST"},
		{"OPTIONS", d.Userinfo, "GET"},
		{"OPTIONS", d.Revoke, "POST"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, tt.url, nil)
		req.Header.Set("Origin", origin)
		if tt.preflight != "" {
			req.Header.Set("Access-Control-Request-Method", tt.preflight)
			req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("Access-Control-Allow-Origin")
		if resp.StatusCode >= 300 || got != origin {
			t.Errorf("%s %s from %s = %d, Access-Control-Allow-Origin %q; want 2xx and the origin", tt.method, tt.url, origin, resp.StatusCode, got)
		}
		if h := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")); tt.preflight != "" && !strings.Contains(h, "content-type") {
			t.Errorf("preflight of %s allows headers %q, want Content-Type", tt.url, h)
		}
	}
}
