package gateway

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap/zaptest"
)

// The configuration keys of the token exchange reach the jwt provider:
// identity.jwt.session turns POST/DELETE /.sensegate/session on, the
// login cookie then carries the user to Qlik, and identity.cookie_secrets
// seals it.
func TestTokenExchangeFromConfig(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "idp.pem")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := sensegatetest.StartSim(t)
	cfg := loadConfig(t, sensegatetest.WriteConfigWith(t, sim, "http://localhost:8080", fmt.Sprintf(`identity:
  provider: jwt
  cookie_secrets: ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
  jwt:
    issuer: https://idp.example
    audiences: [sensegate]
    public_keys: [%q]
    session: true
    required_scopes: [qlik]
`, pub)))
	addr := serveGateway(t, cfg, zaptest.NewLogger(t))
	base := "http://" + addr
	token := func(scope string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": "https://idp.example", "aud": "sensegate", "sub": "u1", "preferred_username": "alice",
			"scope": scope, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	do := func(method, path string, hdr ...string) *http.Response {
		t.Helper()
		resp, _ := sensegatetest.Do(t, method, base+path, hdr...)
		return resp
	}

	// identity.jwt.required_scopes: a token without the scope is refused.
	if resp := do("POST", "/.sensegate/session", "Authorization", "Bearer "+token("openid")); resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("exchange without the required scope = %d %q, want 403 insufficient_scope", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp := do("POST", "/.sensegate/session", "Authorization", "Bearer "+token("openid qlik"))
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /.sensegate/session = %d, want 204", resp.StatusCode)
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "sensegate_session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly {
		t.Fatalf("exchange set cookies %v, want an HttpOnly sensegate_session", resp.Cookies())
	}
	// The cookie alone signs the user in, up to Qlik.
	if resp := do("GET", "/hub/", "Cookie", cookie.Name+"="+cookie.Value); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /hub/ with the login cookie = %d, want 200", resp.StatusCode)
	}
	if c := sim.Counts(`ACME\alice`); c.TicketsIssued != 1 || c.LiveSessions != 1 {
		t.Fatalf(`Qlik's counts of ACME\alice = %+v, want one ticket and one live session`, c)
	}
	// DELETE ends the login and the Qlik session.
	if resp := do("DELETE", "/.sensegate/session", "Cookie", cookie.Name+"="+cookie.Value); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /.sensegate/session = %d, want 204", resp.StatusCode)
	}
	if c := sim.Counts(`ACME\alice`); c.LiveSessions != 0 {
		t.Errorf("after DELETE Qlik has %d live sessions of alice, want 0", c.LiveSessions)
	}
	if resp := do("GET", "/hub/", "Cookie", cookie.Name+"="+cookie.Value); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("GET /hub/ with the ended login cookie = %d (WWW-Authenticate %q), want 401 with a Bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
