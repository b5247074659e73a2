package identity

import (
	"crypto"
	"errors"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issue 18: the JWT provider's refusals carry RFC 6750 challenges, so
// that clients know whether to get a token, a fresh one, or one with more
// scopes.
func TestJWTChallenges(t *testing.T) {
	keys := jwtTestKeys()
	clock := fakeclock.At(jwtTestStart)
	now := clock.Now()
	j := newTestJWT(t, JWTConfig{
		Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
		PublicKeys: []crypto.PublicKey{&keys.rsa1.PublicKey}, Mapping: jwtTestMapping(t), Now: clock.Now,
		RequiredScopes: []string{"qlik", "apps.read"},
	})
	token := func(edit func(jwt.MapClaims)) string {
		return signJWT(t, jwt.SigningMethodRS256, keys.rsa1, "rsa1", jwtClaims(now, func(c jwt.MapClaims) {
			c["scope"] = "openid qlik apps.read"
			if edit != nil {
				edit(c)
			}
		}))
	}
	const (
		realm        = `Bearer realm="sensegate"`
		invalidToken = realm + `, error="invalid_token", error_description=`
		noScope      = realm + `, error="insufficient_scope", error_description="token lacks a required scope", scope="qlik apps.read"`
	)
	tests := []struct {
		name          string
		auth          []string
		wantStatus    int // 0: identified
		wantChallenge string
	}{
		{name: "scope claim", auth: []string{"Bearer " + token(nil)}},
		{name: "scp list", auth: []string{"Bearer " + token(func(c jwt.MapClaims) {
			delete(c, "scope")
			c["scp"] = []string{"apps.read", "qlik"}
		})}},
		{name: "scp string", auth: []string{"Bearer " + token(func(c jwt.MapClaims) {
			delete(c, "scope")
			c["scp"] = "qlik apps.read"
		})}},
		{name: "scope and scp together", auth: []string{"Bearer " + token(func(c jwt.MapClaims) {
			c["scope"] = "qlik"
			c["scp"] = []string{"apps.read"}
		})}},

		{name: "no authorization", wantStatus: 401, wantChallenge: realm},
		{name: "basic authorization", auth: []string{"Basic YWxpY2U6c2VjcmV0"}, wantStatus: 401, wantChallenge: realm},
		{name: "bearer without a token", auth: []string{"Bearer"}, wantStatus: 401, wantChallenge: realm},
		{name: "malformed", auth: []string{"Bearer abc"}, wantStatus: 401, wantChallenge: invalidToken + `"malformed token"`},
		{name: "expired", auth: []string{"Bearer " + token(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() })}, wantStatus: 401, wantChallenge: invalidToken + `"token expired"`},
		{name: "bad signature", auth: []string{"Bearer " + flipPayloadByte(token(nil))}, wantStatus: 401, wantChallenge: invalidToken + `"token signature not valid"`},
		{name: "other audience", auth: []string{"Bearer " + token(func(c jwt.MapClaims) { c["aud"] = "api://other" })}, wantStatus: 401, wantChallenge: invalidToken + `"token audience not accepted"`},
		{name: "repeated", auth: []string{"Bearer " + token(nil), "Bearer " + token(nil)}, wantStatus: 400, wantChallenge: realm + `, error="invalid_request", error_description="authorization header repeated"`},
		{name: "no scope claim", auth: []string{"Bearer " + token(func(c jwt.MapClaims) { delete(c, "scope") })}, wantStatus: 403, wantChallenge: noScope},
		{name: "one scope missing", auth: []string{"Bearer " + token(func(c jwt.MapClaims) { c["scope"] = "qlik apps.write" })}, wantStatus: 403, wantChallenge: noScope},
		{name: "scope prefix is not the scope", auth: []string{"Bearer " + token(func(c jwt.MapClaims) { c["scope"] = "qlik apps.readx" })}, wantStatus: 403, wantChallenge: noScope},
		{name: "scopes as one list item", auth: []string{"Bearer " + token(func(c jwt.MapClaims) {
			delete(c, "scope")
			c["scp"] = []string{"qlik apps.read"}
		})}, wantStatus: 403, wantChallenge: noScope},
		// A valid token whose claims make no Qlik user is no
		// authentication problem: no challenge.
		{name: "claims refused", auth: []string{"Bearer " + token(func(c jwt.MapClaims) { c["preferred_username"] = `A\b` })}, wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := identifyAuth(j, tt.auth...)
			if tt.wantStatus == 0 {
				if err != nil || u.ID != "alice" {
					t.Fatalf("Identify = %v, %v; want alice", u, err)
				}
				return
			}
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("Identify = %v, %v; want an *Error", u, err)
			}
			if ie.Status != tt.wantStatus || ie.Challenge != tt.wantChallenge {
				t.Errorf("Identify = %d with challenge %q, want %d with %q", ie.Status, ie.Challenge, tt.wantStatus, tt.wantChallenge)
			}
		})
	}
}

func TestBearerChallengeText(t *testing.T) {
	got := bearerChallenge(bearerInvalidToken, "a \"quoted\\\" value\r\nwith é", []string{`x"y`})
	want := `Bearer realm="sensegate", error="invalid_token", error_description="a quoted valuewith ", scope="xy"`
	if got != want {
		t.Errorf("bearerChallenge = %q, want %q", got, want)
	}
}

func TestJWTRequiredScopesConfig(t *testing.T) {
	_, err := NewJWT(t.Context(), JWTConfig{
		Issuer: jwtTestIssuer, Audiences: []string{jwtTestAudience},
		PublicKeys: []crypto.PublicKey{&jwtTestKeys().rsa1.PublicKey}, Mapping: jwtTestMapping(t),
		RequiredScopes: []string{"ok", "", "two words", `quo"te`},
	})
	for _, want := range []string{"RequiredScopes[1]: empty", "RequiredScopes[2]:", "RequiredScopes[3]:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewJWT = %v, want an error containing %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "RequiredScopes[0]") {
		t.Errorf("NewJWT = %v, refusing a valid scope", err)
	}
}
