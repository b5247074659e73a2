package config

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSite(t *testing.T) {
	tests := []struct{ origin, want string }{
		{"https://sense.example.com", "https://example.com"},
		{"https://portal.example.com:8443", "https://example.com"},
		{"http://sense.example.com", "http://example.com"},
		{"https://a.b.example.co.uk", "https://example.co.uk"},
		{"https://app.github.io", "https://app.github.io"}, // github.io is a public suffix
		{"http://localhost:8080", "http://localhost"},
		{"http://127.0.0.1:3000", "http://127.0.0.1"},
		{"http://[::1]:3000", "http://::1"},
		{"https://Sense.Example.COM", "https://example.com"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.origin)
		if err != nil {
			t.Fatal(err)
		}
		if got := site(u); got != tt.want {
			t.Errorf("site(%s) = %q, want %q", tt.origin, got, tt.want)
		}
	}
}

// Issue 18: the login cookie of the token exchange is SameSite=None only
// for apps of another site, which server.allowed_origins tells apart.
func TestCrossSiteOrigins(t *testing.T) {
	c := writeCerts(t)
	tests := []struct {
		public  string
		allowed []string
		want    []string
	}{
		{"https://sense.example.com", nil, []string{}},
		{"https://sense.example.com", []string{"https://portal.example.com", "https://example.com:8443"}, []string{}},
		{"https://sense.example.com", []string{"https://portal.example.com", "https://app.other.com", "http://portal.example.com"}, []string{"https://app.other.com", "http://portal.example.com"}},
		{"https://a.github.io", []string{"https://b.github.io"}, []string{"https://b.github.io"}},
		{"http://localhost:8080", []string{"http://localhost:3000", "http://127.0.0.1:3000"}, []string{"http://127.0.0.1:3000"}},
	}
	for _, tt := range tests {
		cfg := minimalConfig(c)
		cfg.Server.RawPublicURL, cfg.Server.RawAllowedOrigins = tt.public, tt.allowed
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if diff := cmp.Diff(tt.want, cfg.Server.CrossSiteOrigins()); diff != "" {
			t.Errorf("CrossSiteOrigins with public_url %s and allowed_origins %v (-want +got):\n%s", tt.public, tt.allowed, diff)
		}
	}
	if Default().Server.CrossSiteOrigins() != nil {
		t.Error("CrossSiteOrigins before Validate is not nil")
	}
}

func TestValidateIdentityIssue18(t *testing.T) {
	c := writeCerts(t)
	const otherKey = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY="
	jwtBase := func(cfg *Config) {
		cfg.Identity.Provider = ProviderJWT
		cfg.Identity.JWT.Issuer, cfg.Identity.JWT.Audiences, cfg.Identity.JWT.JWKSURL = "https://login.example.com", []string{"sensegate"}, "https://login.example.com/keys"
	}
	redis := func(cfg *Config) {
		cfg.Store.Type, cfg.Store.Redis.Addr, cfg.Store.RawEncryptionKeys = StoreRedis, "redis:6379", []string{testKey}
	}
	tests := []struct {
		name      string
		mod       func(*Config)
		want      []string
		wantWarns []string
	}{
		{name: "jwt session, same-site app", mod: func(cfg *Config) {
			jwtBase(cfg)
			cfg.Identity.JWT.Session = true
			cfg.Server.RawPublicURL, cfg.Server.RawAllowedOrigins = "https://sense.example.com", []string{"https://app.example.com"}
		}},
		{name: "jwt session, cross-site app over https", mod: func(cfg *Config) {
			jwtBase(cfg)
			cfg.Identity.JWT.Session = true
			cfg.Server.RawPublicURL, cfg.Server.RawAllowedOrigins = "https://sense.example.com", []string{"https://app.other.com"}
		}, wantWarns: []string{`identity.jwt.session: the single-page apps of server.allowed_origins https://app.other.com are of another site than server.public_url, so the login cookie must be SameSite=None and Partitioned, which browsers that block third-party cookies (Safari) do not keep (serve the apps from server.public_url's own site (e.g. app.example.com with sense.example.com) where possible)`}},
		{name: "jwt session, cross-site app over http", mod: func(cfg *Config) {
			jwtBase(cfg)
			cfg.Identity.JWT.Session = true
			cfg.Server.RawAllowedOrigins = []string{"http://127.0.0.1:3000"}
		}, want: []string{`identity.jwt.session: the single-page apps of server.allowed_origins http://127.0.0.1:3000 are of another site than server.public_url, so the login cookie must be SameSite=None, which browsers keep only over https (make server.public_url https, or serve the apps from server.public_url's own site)`}},
		{name: "cross-site app without the session", mod: func(cfg *Config) {
			jwtBase(cfg)
			cfg.Server.RawAllowedOrigins = []string{"http://127.0.0.1:3000"}
		}},
		{name: "jwt cookie name", mod: func(cfg *Config) {
			jwtBase(cfg)
			cfg.Identity.JWT.Session, cfg.Identity.JWT.CookieName = true, "__Host-spa"
		}, want: []string{`identity.jwt.cookie_name: "__Host-spa": browsers keep __Host- and __Secure- cookies only over https, and server.public_url is http (leave it empty, or make server.public_url https)`}},
		{name: "required scopes", mod: func(cfg *Config) {
			jwtBase(cfg)
			cfg.Identity.JWT.RequiredScopes = []string{"qlik.access", "", "two words"}
		}, want: []string{
			`identity.jwt.required_scopes[1]: "" is not a scope (printable ASCII without spaces, quotes or backslashes) (write one scope per item, e.g. qlik.access)`,
			`identity.jwt.required_scopes[2]: "two words" is not a scope (printable ASCII without spaces, quotes or backslashes) (write one scope per item, e.g. qlik.access)`,
		}},
		{name: "redis with the jwt session needs cookie secrets", mod: func(cfg *Config) {
			jwtBase(cfg)
			redis(cfg)
			cfg.Identity.JWT.Session = true
		}, want: []string{`identity.cookie_secrets: required when store.type is redis: every replica must open the login cookie (generate one with: openssl rand -base64 32, and give every replica the same keys)`}},
		{name: "redis with the jwt session and cookie secrets", mod: func(cfg *Config) {
			jwtBase(cfg)
			redis(cfg)
			cfg.Identity.JWT.Session, cfg.Identity.CookieSecrets = true, []string{testKey}
		}},
		{name: "redis with jwt without the session", mod: func(cfg *Config) {
			jwtBase(cfg)
			redis(cfg)
		}},
		{name: "redis with oidc and the new key", mod: func(cfg *Config) {
			cfg.Identity.Provider = ProviderOIDC
			cfg.Identity.OIDC.Issuer, cfg.Identity.OIDC.ClientID = "https://login.example.com", "sensegate"
			redis(cfg)
			cfg.Identity.CookieSecrets = []string{testKey}
		}},
		{name: "both cookie secret keys", mod: func(cfg *Config) {
			cfg.Identity.CookieSecrets, cfg.Identity.OIDC.CookieSecrets = []string{testKey}, []string{otherKey}
		}, want: []string{`identity.oidc.cookie_secrets: is set together with identity.cookie_secrets (set identity.cookie_secrets only: identity.oidc.cookie_secrets is its older name)`}},
		{name: "bad cookie secret", mod: func(cfg *Config) {
			cfg.Identity.CookieSecrets = []string{testKey, "short"}
		}, want: []string{`identity.cookie_secrets[1]: is not 32 bytes in base64 (generate one with: openssl rand -base64 32)`}},
		// The older name is read whatever the provider (the token exchange
		// uses it too), so it is checked whatever the provider.
		{name: "bad old-name cookie secret, provider not oidc", mod: func(cfg *Config) {
			cfg.Identity.OIDC.CookieSecrets = []string{"short"}
		}, want: []string{`identity.oidc.cookie_secrets[0]: is not 32 bytes in base64 (generate one with: openssl rand -base64 32)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := wantValidate(t, c, tt.mod, tt.want)
			var warns []string
			for _, w := range cfg.Warnings() {
				warns = append(warns, w.Error())
			}
			if diff := cmp.Diff(tt.wantWarns, warns); diff != "" {
				t.Errorf("Warnings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// identity.cookie_secrets serves both providers; the older
// identity.oidc.cookie_secrets still works.
func TestCookieKeys(t *testing.T) {
	c := writeCerts(t)
	const otherKey = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVoxMjM0NTY="
	for _, tt := range []struct {
		name      string
		new, old  []string
		wantFirst string
	}{
		{"new key", []string{otherKey, testKey}, nil, "ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"},
		{"old key", nil, []string{testKey}, "0123456789abcdef0123456789abcdef"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := minimalConfig(c)
			cfg.Identity.Provider = ProviderOIDC
			cfg.Identity.OIDC.Issuer, cfg.Identity.OIDC.ClientID = "https://login.example.com", "sensegate"
			cfg.Identity.CookieSecrets, cfg.Identity.OIDC.CookieSecrets = tt.new, tt.old
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			n := max(len(tt.new), len(tt.old))
			if keys := cfg.Identity.CookieKeys(); len(keys) != n || string(keys[0]) != tt.wantFirst {
				t.Errorf("cookie keys = %q, want %d starting with %q", keys, n, tt.wantFirst)
			}
		})
	}
	if keys := minimalConfig(c).Identity.CookieKeys(); keys != nil {
		t.Errorf("CookieKeys without secrets = %q, want nil", keys)
	}
}

// The new keys load from the file, the environment and a secret file.
func TestLoadIdentityIssue18(t *testing.T) {
	clearEnv(t)
	c := writeCerts(t)
	dir := t.TempDir()
	secrets := writeFile(t, dir, "cookie_secrets", testKey+"\n")
	t.Setenv("SENSEGATE_IDENTITY_JWT_REQUIRED_SCOPES", "qlik, apps.read")
	yaml := strings.Replace(minimalYAML(c), "identity:\n", fmt.Sprintf(`identity:
  provider: jwt
  cookie_secrets_file: %q
  jwt:
    issuer: https://login.example.com
    audiences: [sensegate]
    jwks_url: https://login.example.com/keys
    session: true
    cookie_name: spa_login
  oidc:
    userinfo: true
`, secrets), 1)
	got, err := Load(writeFile(t, dir, "sensegate.yaml", yaml))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	j := got.Identity.JWT
	if !j.Session || j.CookieName != "spa_login" || !got.Identity.OIDC.Userinfo || !cmp.Equal(j.RequiredScopes, []string{"qlik", "apps.read"}) {
		t.Errorf("loaded session %v, cookie_name %q, userinfo %v, required_scopes %q", j.Session, j.CookieName, got.Identity.OIDC.Userinfo, j.RequiredScopes)
	}
	if keys := got.Identity.CookieKeys(); len(keys) != 1 {
		t.Errorf("CookieKeys from cookie_secrets_file = %d keys, want 1", len(keys))
	}
}
