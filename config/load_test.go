package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ignoreParsed leaves the unexported parsed forms out of comparisons; the
// tests check them through the accessors.
var ignoreParsed = cmpopts.IgnoreUnexported(Config{}, ServerConfig{}, QlikConfig{}, QPSConfig{}, HeaderConfig{}, OIDCConfig{}, StoreConfig{}, Route{})

// certFiles are PEM files made for a test.
type certFiles struct {
	cert, key string // a self-signed CA certificate and its key
	otherKey  string // a key that does not match cert
	notPEM    string // a file that holds no PEM
	encrypted string // a password-protected key (PKCS #8 ENCRYPTED PRIVATE KEY)
}

func writeCerts(t *testing.T) certFiles {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sensegate test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return certFiles{
		cert:      writeFile(t, dir, "cert.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))),
		key:       writeFile(t, dir, "key.pem", string(keyPEM(key))),
		otherKey:  writeFile(t, dir, "other_key.pem", string(keyPEM(other))),
		notPEM:    writeFile(t, dir, "not.pem", "not a certificate\n"),
		encrypted: writeFile(t, dir, "encrypted_key.pem", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n"),
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clearEnv hides SENSEGATE_* variables of the environment the tests run in
// (viper ignores empty ones).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, EnvPrefix+"_") {
			t.Setenv(k, "")
		}
	}
}

// minimalYAML sets only the keys without a default.
func minimalYAML(c certFiles) string {
	return fmt.Sprintf(`
qlik:
  url: https://qlik.example.com
  user_directory: ACME
  qps:
    url: https://qlik.example.com:4243
    client_cert: %q
    client_key: %q
identity:
  header:
    trusted_proxies: [127.0.0.1/32]
`, c.cert, c.key)
}

// minimalConfig is what minimalYAML decodes to.
func minimalConfig(c certFiles) *Config {
	want := Default()
	want.Qlik.RawURL = "https://qlik.example.com"
	want.Qlik.UserDirectory = "ACME"
	want.Qlik.QPS.RawURL = "https://qlik.example.com:4243"
	want.Qlik.QPS.ClientCert = c.cert
	want.Qlik.QPS.ClientKey = c.key
	want.Identity.Header.RawTrustedProxies = []string{"127.0.0.1/32"}
	return want
}

func TestLoadFullFile(t *testing.T) {
	clearEnv(t)
	c := writeCerts(t)
	file := writeFile(t, t.TempDir(), "sensegate.yaml", fmt.Sprintf(`
server:
  listen: "127.0.0.1:9443"
  tls_cert: %[1]q
  tls_key: %[2]q
  public_url: "https://Sense.Example.com:443/"
  allowed_origins: ["https://portal.example.com", "HTTP://Dev.Example.com:8080", "https://sense.example.com"]
  shutdown_grace: 20s
  write_timeout: 2m
  body_timeout: 90s
qlik:
  url: "https://qlik.example.com/"
  prefix: sales
  session_cookie: X-Qlik-Session-Sales
  user_directory: CORP
  login: session
  redeem_path: /resources/img/core/dark_noise_16x16.png
  ca: %[1]q
  origin: "https://Sense.Example.com"
  session_timeout: 1h
  timeout: 45s
  websocket_csrf: "on"
  websocket_ping: 20s
  websocket_per_user: 20
  replay_limit: 65536
  auth_module_url: https://login.example.com/qlik
  login_rate:
    per_minute: 6
    burst: 2
  qps:
    url: "https://qlik.example.com:4243"
    client_cert: %[1]q
    client_key: %[2]q
    timeout: 5s
    retries: 3
    max_concurrent: 8
identity:
  provider: header
  header:
    name: X-Auth-User
    trusted_proxies: ["10.1.2.3", "192.168.7.0/16", "::1"]
  static:
    user: 'CORP\dev'
routes:
  - path: /mashup/
    upstream: "http://127.0.0.1:3000"
    strip_prefix: true
  - path: /docs/
    upstream: "https://docs.internal:8443/base/"
log:
  level: debug
  format: console
admin:
  listen: ":9091"
audit:
  enabled: false
`, c.cert, c.key))

	got, err := Load(file)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := &Config{
		Server: ServerConfig{
			Listen:            "127.0.0.1:9443",
			TLSCert:           c.cert,
			TLSKey:            c.key,
			RawPublicURL:      "https://Sense.Example.com:443/",
			RawAllowedOrigins: []string{"https://portal.example.com", "HTTP://Dev.Example.com:8080", "https://sense.example.com"},
			ShutdownGrace:     20 * time.Second,
			WriteTimeout:      2 * time.Minute,
			BodyTimeout:       90 * time.Second,
		},
		Qlik: QlikConfig{
			RawURL:         "https://qlik.example.com/",
			Prefix:         "sales",
			SessionCookie:  "X-Qlik-Session-Sales",
			UserDirectory:  "CORP",
			Login:          LoginSession,
			RedeemPath:     "/resources/img/core/dark_noise_16x16.png",
			CA:             c.cert,
			Origin:         "https://Sense.Example.com",
			SessionTimeout: time.Hour,
			Timeout:        45 * time.Second,
			WebsocketCSRF:  CSRFOn,
			WebsocketPing:  20 * time.Second,
			ReplayLimit:    65536,
			AuthModuleURL:  "https://login.example.com/qlik",
			LoginRate:      LoginRateConfig{PerMinute: 6, Burst: 2},
			QPS: QPSConfig{
				RawURL:        "https://qlik.example.com:4243",
				ClientCert:    c.cert,
				ClientKey:     c.key,
				Timeout:       5 * time.Second,
				Retries:       3,
				MaxConcurrent: 8,
			},
			WebsocketPerUser: 20,
		},
		Identity: IdentityConfig{
			Provider: ProviderHeader,
			Header: HeaderConfig{
				Name:              "X-Auth-User",
				RawTrustedProxies: []string{"10.1.2.3", "192.168.7.0/16", "::1"},
			},
			Static:      StaticConfig{User: `CORP\dev`},
			PublicPaths: []string{},
			OIDC:        Default().Identity.OIDC,
			JWT:         Default().Identity.JWT,
			Mapping:     Default().Identity.Mapping,
		},
		Store: Default().Store,
		Routes: []Route{
			{Path: "/mashup/", Upstream: "http://127.0.0.1:3000", StripPrefix: true},
			{Path: "/docs/", Upstream: "https://docs.internal:8443/base/"},
		},
		Log:   LogConfig{Level: "debug", Format: LogFormatConsole},
		Admin: AdminConfig{Listen: ":9091"},
		Audit: AuditConfig{Enabled: false},
	}
	if diff := cmp.Diff(want, got, ignoreParsed); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}

	// The parsed forms.
	accessors := map[string]any{
		"Server.TLS":               got.Server.TLS(),
		"Server.PublicURL":         got.Server.PublicURL().String(),
		"Server.AllowedOrigins":    got.Server.AllowedOrigins(),
		"Qlik.URL":                 got.Qlik.URL().String(),
		"Qlik.RootCAs":             got.Qlik.RootCAs() != nil,
		"Qlik.WebsocketOrigin":     got.Qlik.WebsocketOrigin(),
		"Qlik.QPS.URL":             got.Qlik.QPS.URL().String(),
		"Identity.Header.Trusted":  got.Identity.Header.TrustedProxies(),
		"Routes[0].UpstreamURL":    got.Routes[0].UpstreamURL().String(),
		"Routes[1].UpstreamURL":    got.Routes[1].UpstreamURL().String(),
		"Routes[1].UpstreamURL.Pa": got.Routes[1].UpstreamURL().Path,
	}
	wantAccessors := map[string]any{
		"Server.TLS":               true,
		"Server.PublicURL":         "https://Sense.Example.com:443",
		"Server.AllowedOrigins":    []string{"https://sense.example.com", "https://portal.example.com", "http://dev.example.com:8080"},
		"Qlik.URL":                 "https://qlik.example.com",
		"Qlik.RootCAs":             true,
		"Qlik.WebsocketOrigin":     "https://sense.example.com",
		"Qlik.QPS.URL":             "https://qlik.example.com:4243",
		"Identity.Header.Trusted":  []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("::1/128")},
		"Routes[0].UpstreamURL":    "http://127.0.0.1:3000",
		"Routes[1].UpstreamURL":    "https://docs.internal:8443/base/",
		"Routes[1].UpstreamURL.Pa": "/base/",
	}
	if diff := cmp.Diff(wantAccessors, accessors, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("accessors mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadDefaults(t *testing.T) {
	clearEnv(t)
	c := writeCerts(t)
	got, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", minimalYAML(c)))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if diff := cmp.Diff(minimalConfig(c), got, ignoreParsed); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}
	// Spelled out, so that a changed default shows here too.
	for name, tc := range map[string]struct{ got, want any }{
		"server.listen":           {got.Server.Listen, ":8080"},
		"server.public_url":       {got.Server.RawPublicURL, "http://localhost:8080"},
		"server.shutdown_grace":   {got.Server.ShutdownGrace, 15 * time.Second},
		"qlik.session_cookie":     {got.Qlik.SessionCookie, "X-Qlik-Session"},
		"qlik.login":              {got.Qlik.Login, LoginTicket},
		"qlik.redeem_path":        {got.Qlik.RedeemPath, "/resources/autogenerated/qlik-styles.css"},
		"qlik.session_timeout":    {got.Qlik.SessionTimeout, 30 * time.Minute},
		"qlik.timeout":            {got.Qlik.Timeout, 30 * time.Second},
		"qlik.qps.timeout":        {got.Qlik.QPS.Timeout, 10 * time.Second},
		"qlik.qps.retries":        {got.Qlik.QPS.Retries, 2},
		"qlik.qps.max_concurrent": {got.Qlik.QPS.MaxConcurrent, 32},
		"qlik.login_rate":         {got.Qlik.LoginRate, LoginRateConfig{PerMinute: 6, Burst: 10}},
		"server.write_timeout":    {got.Server.WriteTimeout, 60 * time.Second},
		"identity.provider":       {got.Identity.Provider, ProviderHeader},
		"identity.header.name":    {got.Identity.Header.Name, "X-Forwarded-User"},
		"log.level":               {got.Log.Level, "info"},
		"log.format":              {got.Log.Format, LogFormatJSON},
		"store.type":              {got.Store.Type, StoreMemory},
		"store.redis.key_prefix":  {got.Store.Redis.KeyPrefix, "sensegate:"},
		"store.local_cache_ttl":   {got.Store.LocalCacheTTL, time.Second},
		"EncryptionKeys()":        {got.Store.EncryptionKeys() == nil, true},
		"TLS()":                   {got.Server.TLS(), false},
		"AllowedOrigins()":        {got.Server.AllowedOrigins(), []string{"http://localhost:8080"}},
		"WebsocketOrigin()":       {got.Qlik.WebsocketOrigin(), "https://qlik.example.com"},
		"RootCAs() == nil":        {got.Qlik.RootCAs() == nil, true},
		"routes":                  {len(got.Routes), 0},
		"identity.static.user":    {got.Identity.Static.User, ""},
		"server.allowed_origins":  {len(got.Server.RawAllowedOrigins), 0},
		"admin.listen":            {got.Admin.Listen, "127.0.0.1:9090"},
		"audit.enabled":           {got.Audit.Enabled, true},
		"qlik.websocket_per_user": {got.Qlik.WebsocketPerUser, 50},
		"qlik.replay_limit":       {got.Qlik.ReplayLimit, int64(1048576)},
		// The defaults the runtime packages own.
		"identity.oidc.scopes":           {got.Identity.OIDC.Scopes, []string{"openid", "profile", "email"}},
		"identity.oidc.session_lifetime": {got.Identity.OIDC.SessionLifetime, 12 * time.Hour},
		"identity.jwt.algorithms":        {got.Identity.JWT.Algorithms, []string{"RS256", "ES256"}},
		"identity.jwt.clock_skew":        {got.Identity.JWT.ClockSkew, 60 * time.Second},
		"identity.mapping.user_id_claim": {got.Identity.Mapping.UserIDClaim, "preferred_username"},
		"identity.mapping.groups_claim":  {got.Identity.Mapping.GroupsClaim, "groups"},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", name, tc.got, tc.want)
		}
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	c := writeCerts(t)
	tests := []struct {
		name string
		yaml string // "" means minimalYAML
		env  map[string]string
		want func(*Config)
	}{
		{
			name: "qlik.url in file overridden",
			env:  map[string]string{"SENSEGATE_QLIK_URL": "https://other.example.com"},
			want: func(w *Config) { w.Qlik.RawURL = "https://other.example.com" },
		},
		{
			name: "keys absent from the file",
			yaml: fmt.Sprintf("qlik:\n  user_directory: ACME\n  qps:\n    client_key: %q\n", c.key),
			env: map[string]string{
				"SENSEGATE_QLIK_URL":                        "https://qlik.example.com",
				"SENSEGATE_QLIK_QPS_URL":                    "https://qlik.example.com:4243",
				"SENSEGATE_QLIK_QPS_CLIENT_CERT":            c.cert,
				"SENSEGATE_IDENTITY_HEADER_TRUSTED_PROXIES": "127.0.0.1/32",
			},
			want: func(*Config) {},
		},
		{
			name: "nested duration and number",
			env:  map[string]string{"SENSEGATE_QLIK_QPS_TIMEOUT": "3s", "SENSEGATE_QLIK_QPS_RETRIES": "5", "SENSEGATE_SERVER_SHUTDOWN_GRACE": "1m30s"},
			want: func(w *Config) {
				w.Qlik.QPS.Timeout = 3 * time.Second
				w.Qlik.QPS.Retries = 5
				w.Server.ShutdownGrace = 90 * time.Second
			},
		},
		{
			name: "lists separated by commas and spaces",
			env: map[string]string{
				"SENSEGATE_IDENTITY_HEADER_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1 ::1",
				"SENSEGATE_SERVER_ALLOWED_ORIGINS":          "https://a.example.com,https://b.example.com",
			},
			want: func(w *Config) {
				w.Identity.Header.RawTrustedProxies = []string{"10.0.0.0/8", "192.168.1.1", "::1"}
				w.Server.RawAllowedOrigins = []string{"https://a.example.com", "https://b.example.com"}
			},
		},
		{
			name: "enums and strings",
			env: map[string]string{
				"SENSEGATE_IDENTITY_PROVIDER":    "static",
				"SENSEGATE_IDENTITY_STATIC_USER": `ACME\dev`,
				"SENSEGATE_QLIK_LOGIN":           "session",
				"SENSEGATE_QLIK_PREFIX":          "sales",
				"SENSEGATE_LOG_FORMAT":           "console",
			},
			want: func(w *Config) {
				w.Identity.Provider = ProviderStatic
				w.Identity.Static.User = `ACME\dev`
				w.Qlik.Login = LoginSession
				w.Qlik.Prefix = "sales"
				w.Log.Format = LogFormatConsole
			},
		},
		{
			name: "empty variables are ignored",
			env:  map[string]string{"SENSEGATE_QLIK_URL": "", "SENSEGATE_LOG_LEVEL": ""},
			want: func(*Config) {},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			y := tc.yaml
			if y == "" {
				y = minimalYAML(c)
			}
			got, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", y))
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			want := minimalConfig(c)
			tc.want(want)
			if diff := cmp.Diff(want, got, ignoreParsed); diff != "" {
				t.Errorf("Load mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEveryKeyOverridableByEnv sets the variable of each key in turn and
// checks that it reaches the key's field.
func TestEveryKeyOverridableByEnv(t *testing.T) {
	c := writeCerts(t)
	file := writeFile(t, t.TempDir(), "sensegate.yaml", minimalYAML(c))
	clearEnv(t)
	base, probs, err := read(file)
	if err != nil || len(probs) > 0 {
		t.Fatalf("read = %v, %v", err, probs)
	}
	n := 0
	for _, k := range schemaKeys {
		if !k.leaf || strings.Contains(k.path, "[]") {
			continue
		}
		n++
		t.Run(k.path, func(t *testing.T) {
			env := EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k.path, ".", "_"))
			var val string
			switch v := k.value.(type) {
			case string, LoginMode, Provider, LogFormat, CSRFMode:
				val = "from-env"
			case time.Duration:
				val = "42s"
			case StoreType:
				val = "from-env"
			case int, int64:
				val = "7"
			case []string:
				val = "a,b"
			case map[string]string:
				t.Skip("maps, like routes, are set in the file only")
			case bool:
				val = fmt.Sprint(!v) // the other value than the default
			default:
				t.Fatalf("no test value for %T", k.value)
			}
			t.Setenv(env, val)
			got, probs, err := read(file)
			if err != nil || len(probs) > 0 {
				t.Fatalf("read with %s=%s = %v, %v", env, val, err, probs)
			}
			if cmp.Equal(base, got, ignoreParsed) {
				t.Errorf("%s=%s changed nothing", env, val)
			}
		})
	}
	if n < 25 {
		t.Errorf("only %d keys have defaults, want every scalar key", n)
	}
}

// The redis store from a file, with the password from the environment as
// the documentation advises.
func TestLoadRedisStore(t *testing.T) {
	clearEnv(t)
	c := writeCerts(t)
	key1 := strings.Repeat("A", 43) + "=" // 32 zero bytes, standard base64
	key2 := strings.Repeat("_", 43)       // 32 bytes of ones, URL-safe without padding
	t.Setenv("SENSEGATE_STORE_REDIS_PASSWORD", "s3cret")
	got, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", minimalYAML(c)+fmt.Sprintf(`
store:
  type: redis
  redis:
    addr: redis.example.com:6380
    username: sensegate
    db: 2
    tls: true
    key_prefix: "sg:prod:"
  encryption_keys: [%q, %q]
  local_cache_ttl: 2s
`, key1, key2)))
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	want := StoreConfig{
		Type: StoreRedis,
		Redis: RedisConfig{
			Addr: "redis.example.com:6380", Username: "sensegate", Password: "s3cret",
			DB: 2, TLS: true, KeyPrefix: "sg:prod:",
		},
		RawEncryptionKeys: []string{key1, key2},
		LocalCacheTTL:     2 * time.Second,
	}
	if diff := cmp.Diff(want, got.Store, ignoreParsed); diff != "" {
		t.Errorf("Load store mismatch (-want +got):\n%s", diff)
	}
	ones := make([]byte, 32)
	for i := range ones {
		ones[i] = 0xff
	}
	if diff := cmp.Diff([][]byte{make([]byte, 32), ones}, got.Store.EncryptionKeys()); diff != "" {
		t.Errorf("EncryptionKeys() mismatch (-want +got):\n%s", diff)
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	c := writeCerts(t)
	tests := []loadErrorCase{
		{
			name:  "top level",
			extra: "qlk:\n  url: x\n",
			want:  []string{"qlk: unknown key (did you mean qlik?)"},
		},
		{
			name:  "top level, nothing alike",
			extra: "metrics: true\n",
			want:  []string{"metrics: unknown key (remove it, or correct its name)"},
		},
		{
			name:  "nested typo",
			extra: "server:\n  shutdown_grce: 1s\n",
			want:  []string{"server.shutdown_grce: unknown key (did you mean server.shutdown_grace?)"},
		},
		{
			name:  "misplaced key",
			extra: "log:\n  trusted_proxies: [1.2.3.4]\n",
			want:  []string{"log.trusted_proxies: unknown key (did you mean identity.header.trusted_proxies?)"},
		},
		{
			name: "in a route",
			extra: `routes:
  - path: /mashup/
    upstream: http://127.0.0.1:3000
  - path: /docs/
    upstream: http://127.0.0.1:3001
    stripprefix: true
`,
			want: []string{"routes[1].stripprefix: unknown key (did you mean routes[1].strip_prefix?)"},
		},
	}
	runLoadErrors(t, c, tests, func(t *testing.T, err error) {
		if !errors.Is(err, errUnknownKey) {
			t.Errorf("errors.Is(%v, errUnknownKey) = false", err)
		}
	})

	// The typo of the brief, in the QPS section the file already has.
	t.Run("qlik.qps.clinet_cert", func(t *testing.T) {
		clearEnv(t)
		y := strings.Replace(minimalYAML(c), "client_cert:", "clinet_cert:", 1)
		_, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", y))
		want := []string{
			"qlik.qps.client_cert: required (the client.pem exported from the QMC)",
			"qlik.qps.clinet_cert: unknown key (did you mean qlik.qps.client_cert?)",
		}
		if diff := cmp.Diff(want, errLines(err)); diff != "" {
			t.Errorf("Load error lines mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestLoadWrongTypes(t *testing.T) {
	c := writeCerts(t)
	tests := []loadErrorCase{
		{
			name:  "duration without unit",
			extra: "server:\n  shutdown_grace: 15\n",
			want:  []string{"server.shutdown_grace: 15 has no unit (write e.g. 15s)"},
		},
		{
			name:  "not a duration",
			extra: "server:\n  shutdown_grace: soon\n",
			want:  []string{`server.shutdown_grace: "soon" is not a duration (write e.g. 30s, 15m or 1h30m)`},
		},
		{
			name:  "not a number",
			extra: "log:\n  level: info\n  format: [json]\n",
			want:  []string{"log.format: a list is not a string (write a string)"},
		},
		{
			name:  "not a bool",
			extra: "routes:\n  - path: /m/\n    upstream: http://127.0.0.1:1\n    strip_prefix: maybe\n",
			want:  []string{`routes[0].strip_prefix: "maybe" is not true or false (write true or false)`},
		},
		{
			name:  "section as a scalar",
			extra: "log: verbose\n",
			want:  []string{"log: is not a mapping of keys (write the keys of log indented below it)"},
		},
		{
			// Weak decoding makes a scalar a list of one.
			name:  "list as a scalar",
			extra: "routes: /mashup/\n",
			want:  []string{"routes[0]: is not a mapping of keys (write the keys of routes[0] indented below it)"},
		},
		{
			name:  "list item as a scalar",
			extra: "routes:\n  - /mashup/\n",
			want:  []string{"routes[0]: is not a mapping of keys (write the keys of routes[0] indented below it)"},
		},
	}
	runLoadErrors(t, c, tests, nil)

	t.Run("fraction", func(t *testing.T) {
		clearEnv(t)
		y := strings.Replace(minimalYAML(c), "  qps:\n", "  qps:\n    retries: 2.5\n", 1)
		_, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", y))
		want := []string{"qlik.qps.retries: 2.5 is not a whole number (write e.g. 2)"}
		if diff := cmp.Diff(want, errLines(err)); diff != "" {
			t.Errorf("Load error lines mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("number from the environment", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("SENSEGATE_QLIK_QPS_RETRIES", "two")
		_, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", minimalYAML(c)))
		want := []string{`qlik.qps.retries: "two" is not a whole number (write a whole number)`}
		if diff := cmp.Diff(want, errLines(err)); diff != "" {
			t.Errorf("Load error lines mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestLoadFileErrors(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	_, err := Load(missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want an fs.ErrNotExist naming %s", err, missing)
	}

	bad := writeFile(t, dir, "bad.yaml", "server:\n  listen: [\n")
	_, err = Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), "config: parse "+bad+": yaml:") {
		t.Errorf("Load(bad YAML) = %v, want config: parse %s: yaml: …", err, bad)
	}
}

// errLines returns the lines of err's text, nil for nil.
func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestSuggest(t *testing.T) {
	tests := []struct{ key, want string }{
		{"qlik.qps.clinet_cert", "qlik.qps.client_cert"},
		{"qlik.prefx", "qlik.prefix"},
		{"qlik.client_key", "qlik.qps.client_key"},
		{"routes[3].upstram", "routes[3].upstream"},
		{"server.timeout", ""}, // qlik.timeout and qlik.qps.timeout: no guess
		{"telemetry", ""},
	}
	for _, tc := range tests {
		if got := suggest(tc.key); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

// Issue 16: viper lower-cases map keys, so a ticket attribute configured
// as EmployeeNumber reached Qlik as employeenumber.
func TestLoadAttributeNamesKeepTheirCase(t *testing.T) {
	certs := writeCerts(t)
	for _, tc := range []struct {
		name, attrs string
		want        map[string]string
		wantErr     string
	}{
		{name: "mixed case", attrs: "    EmployeeNumber: employee_id\n    email: email\n    CostCentre: costCenter\n",
			want: map[string]string{"EmployeeNumber": "employee_id", "email": "email", "CostCentre": "costCenter"}},
		{name: "names that differ only in case", attrs: "    EmployeeNumber: a\n    employeenumber: b\n",
			wantErr: `identity.mapping.attributes: "EmployeeNumber" and "employeenumber" differ only in case (keep one of them)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			f := writeFile(t, t.TempDir(), "sensegate.yaml", minimalYAML(certs)+"  mapping:\n   attributes:\n"+tc.attrs)
			c, err := Load(f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Identity.Mapping.Attributes); diff != "" {
				t.Errorf("identity.mapping.attributes (-want +got):\n%s", diff)
			}
		})
	}
}

// loadErrorCase is a configuration, the minimal one with extra appended,
// and the error lines Load must give for it.
type loadErrorCase struct {
	name  string
	extra string // appended to minimalYAML
	want  []string
}

// runLoadErrors loads each case's configuration and wants its error
// lines; also, when not nil, checks the error further.
func runLoadErrors(t *testing.T, c certFiles, tests []loadErrorCase, also func(t *testing.T, err error)) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			_, err := Load(writeFile(t, t.TempDir(), "sensegate.yaml", minimalYAML(c)+tc.extra))
			if diff := cmp.Diff(tc.want, errLines(err)); diff != "" {
				t.Errorf("Load error lines mismatch (-want +got):\n%s", diff)
			}
			if also != nil {
				also(t, err)
			}
		})
	}
}
