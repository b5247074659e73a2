package config

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// testKey is a valid key for identity.oidc.cookie_secrets and
// store.encryption_keys.
const testKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func TestValidate(t *testing.T) {
	c := writeCerts(t)
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // the lines of the error; nil: valid
	}{
		{name: "minimal", mod: func(*Config) {}},

		// qlik.url
		{
			name: "qlik.url bad scheme",
			mod:  func(c *Config) { c.Qlik.RawURL = "ftp://x" },
			want: []string{`qlik.url: "ftp://x" has scheme ftp (use https, or http for a test server)`},
		},
		{
			name: "qlik.url relative",
			mod:  func(c *Config) { c.Qlik.RawURL = "qlik.example.com" },
			want: []string{`qlik.url: "qlik.example.com" is not an absolute URL (write it as https://qlik.example.com)`},
		},
		{
			name: "qlik.url host:port without scheme",
			mod:  func(c *Config) { c.Qlik.RawURL = "qlik.example.com:443" },
			want: []string{`qlik.url: "qlik.example.com:443" is not an absolute URL (write it as https://qlik.example.com)`},
		},
		{
			name: "qlik.url with a path",
			mod:  func(c *Config) { c.Qlik.RawURL = "https://qlik.example.com/sales/hub" },
			want: []string{`qlik.url: "https://qlik.example.com/sales/hub" has the path /sales/hub (write the host alone and put the virtual proxy prefix in qlik.prefix)`},
		},
		{
			name: "qlik.url with credentials and a query",
			mod:  func(c *Config) { c.Qlik.RawURL = "https://u:p@qlik.example.com?x=1" },
			want: []string{
				`qlik.url: "https://u:p@qlik.example.com?x=1" has user information (remove it: credentials do not belong in the URL)`,
				`qlik.url: "https://u:p@qlik.example.com?x=1" has a query or fragment (remove it)`,
			},
		},
		{
			name: "qlik.url port out of range",
			mod:  func(c *Config) { c.Qlik.RawURL = "https://qlik.example.com:99999" },
			want: []string{`qlik.url: "https://qlik.example.com:99999" has port 99999 (use a port from 1 to 65535)`},
		},
		{
			name: "qlik.url missing",
			mod:  func(c *Config) { c.Qlik.RawURL = "" },
			want: []string{`qlik.url: required (the address of the Qlik Sense proxy, e.g. https://qlik.example.com)`},
		},
		{
			name: "qlik.url http for a test server",
			mod:  func(c *Config) { c.Qlik.RawURL = "http://127.0.0.1:8443/" },
		},

		// qlik.nodes
		{
			name: "qlik.nodes instead of qlik.url and qlik.qps.url",
			mod: func(c *Config) {
				c.Qlik.RawURL, c.Qlik.QPS.RawURL = "", ""
				c.Qlik.Nodes = []Node{{URL: "https://q1", QPSURL: "https://q1:4243"}, {URL: "https://q2", QPSURL: "https://q2:4243"}}
			},
		},
		{
			name: "qlik.nodes mixed with qlik.url, bad and duplicate items",
			mod: func(c *Config) {
				c.Qlik.Nodes = []Node{{URL: "https://q1", QPSURL: "http://q1:4243"}, {URL: "https://Q1"}}
			},
			want: []string{
				`qlik.nodes[0].qps_url: "http://q1:4243" has scheme http (use https: the QPS API is mutual TLS with the client certificate)`,
				`qlik.nodes[1].qps_url: required (the address of the node's QPS API, e.g. https://qlik1.example.com:4243)`,
				`qlik.nodes[1].url: "Q1" is also the host of qlik.nodes[0] (list each node once)`,
				`qlik.qps.url: is set along with qlik.nodes (remove it: qlik.nodes lists the QPS URL of each node)`,
				`qlik.url: is set along with qlik.nodes (remove it: qlik.nodes lists the proxy URL of each node)`,
			},
		},

		// qlik.*
		{
			name: "prefix with slashes",
			mod:  func(c *Config) { c.Qlik.Prefix = "/sales/" },
			want: []string{`qlik.prefix: "/sales/" contains a slash (write sales)`},
		},
		{
			name: "prefix with upper case",
			mod:  func(c *Config) { c.Qlik.Prefix = "Sales" },
			want: []string{`qlik.prefix: "Sales" has upper-case letters (virtual proxy prefixes are lower case: write sales)`},
		},
		{
			name: "prefix with a space",
			mod:  func(c *Config) { c.Qlik.Prefix = "sa les" },
			want: []string{`qlik.prefix: "sa les" is not a virtual proxy prefix (use lower-case letters, digits, -, ., _ and ~ only)`},
		},
		{
			name: "prefix dot segment",
			mod:  func(c *Config) { c.Qlik.Prefix = ".." },
			want: []string{`qlik.prefix: ".." is not a virtual proxy prefix (use lower-case letters, digits, -, ., _ and ~ only)`},
		},
		{
			name: "prefix valid",
			mod:  func(c *Config) { c.Qlik.Prefix = "sales-eu_2.x~" },
		},
		{
			name: "bad cookie name",
			mod:  func(c *Config) { c.Qlik.SessionCookie = "X Qlik;Session" },
			want: []string{`qlik.session_cookie: "X Qlik;Session" is not a valid cookie name (use the virtual proxy's session cookie header name, e.g. X-Qlik-Session)`},
		},
		{
			name: "user directory with a backslash",
			mod:  func(c *Config) { c.Qlik.UserDirectory = `ACME\` },
			want: []string{`qlik.user_directory: "ACME\" contains a backslash (write the directory alone, e.g. ACME)`},
		},
		{
			name: "user directory blank",
			mod:  func(c *Config) { c.Qlik.UserDirectory = "  " },
			want: []string{`qlik.user_directory: required (the Qlik user directory of users whose identity names none, e.g. ACME)`},
		},
		{
			name: "unknown login mode",
			mod:  func(c *Config) { c.Qlik.Login = "saml" },
			want: []string{`qlik.login: "saml" is unknown (use ticket or session)`},
		},
		{
			name: "redeem path relative",
			mod:  func(c *Config) { c.Qlik.RedeemPath = "resources/x.css" },
			want: []string{`qlik.redeem_path: "resources/x.css" does not start with / (write a path below the virtual proxy, e.g. /resources/autogenerated/qlik-styles.css)`},
		},
		{
			name: "redeem path with a query",
			mod:  func(c *Config) { c.Qlik.RedeemPath = "/x.css?qlikTicket=" },
			want: []string{`qlik.redeem_path: "/x.css?qlikTicket=" has a query or fragment (write the path alone: sensegate adds the ticket)`},
		},
		{
			name: "CA missing",
			mod:  func(c *Config) { c.Qlik.CA = "/nonexistent/root.pem" },
			want: []string{`qlik.ca: open /nonexistent/root.pem: no such file or directory (a PEM file of the certificates that issued Qlik's server certificates, e.g. root.pem exported from the QMC)`},
		},
		{
			name: "CA not PEM",
			mod:  func(cfg *Config) { cfg.Qlik.CA = c.notPEM },
			want: []string{`qlik.ca: ` + c.notPEM + ` holds no PEM certificate (a PEM file of the certificates that issued Qlik's server certificates, e.g. root.pem exported from the QMC)`},
		},
		{
			name: "origin with a path",
			mod:  func(c *Config) { c.Qlik.Origin = "https://sense.example.com/hub" },
			want: []string{`qlik.origin: "https://sense.example.com/hub" has the path /hub (an origin is scheme://host[:port]: remove the path)`},
		},
		{
			name: "zero session timeout",
			mod:  func(c *Config) { c.Qlik.SessionTimeout = 0 },
			want: []string{`qlik.session_timeout: 0s is not positive (write a duration such as 30m, the virtual proxy's session inactivity timeout)`},
		},
		{
			name: "negative timeouts",
			mod: func(c *Config) {
				c.Qlik.Timeout = -time.Second
				c.Qlik.QPS.Timeout = -2 * time.Second
				c.Server.ShutdownGrace = 0
			},
			want: []string{
				`qlik.qps.timeout: -2s is not positive (write a duration such as 10s)`,
				`qlik.timeout: -1s is not positive (write a duration such as 30s)`,
				`server.shutdown_grace: 0s is not positive (write a duration such as 15s)`,
			},
		},

		// qlik.qps
		{
			name: "QPS over http",
			mod:  func(c *Config) { c.Qlik.QPS.RawURL = "http://qlik.example.com:4243" },
			want: []string{`qlik.qps.url: "http://qlik.example.com:4243" has scheme http (use https: the QPS API is mutual TLS with the client certificate)`},
		},
		{
			name: "QPS URL with a path",
			mod:  func(c *Config) { c.Qlik.QPS.RawURL = "https://qlik.example.com:4243/qps/" },
			want: []string{`qlik.qps.url: "https://qlik.example.com:4243/qps/" has the path /qps/ (write the host and port alone; sensegate adds /qps/ and qlik.prefix)`},
		},
		{
			name: "retries below range",
			mod:  func(c *Config) { c.Qlik.QPS.Retries = -1 },
			want: []string{`qlik.qps.retries: -1 is out of range (use 0 to 10)`},
		},
		{
			name: "retries above range",
			mod:  func(c *Config) { c.Qlik.QPS.Retries = 11 },
			want: []string{`qlik.qps.retries: 11 is out of range (use 0 to 10)`},
		},
		{
			name: "retries bounds",
			mod:  func(c *Config) { c.Qlik.QPS.Retries = 10 },
		},
		{
			name: "max_concurrent zero",
			mod:  func(c *Config) { c.Qlik.QPS.MaxConcurrent = 0 },
			want: []string{`qlik.qps.max_concurrent: 0 is not positive (use a number of calls of 1 or more, e.g. 32: an unbounded number of calls would pile onto a slow QPS)`},
		},
		{
			name: "max_concurrent one",
			mod:  func(c *Config) { c.Qlik.QPS.MaxConcurrent = 1 },
		},

		// qlik.login_rate
		{
			name: "login_rate off ignores burst",
			mod:  func(c *Config) { c.Qlik.LoginRate = LoginRateConfig{PerMinute: 0, Burst: 0} },
		},
		{
			name: "login_rate on",
			mod:  func(c *Config) { c.Qlik.LoginRate = LoginRateConfig{PerMinute: 6, Burst: 1} },
		},
		{
			name: "login_rate negative",
			mod:  func(c *Config) { c.Qlik.LoginRate.PerMinute = -1 },
			want: []string{`qlik.login_rate.per_minute: -1 is negative (use the logins a user may make a minute, e.g. 6, or 0 for no limit)`},
		},
		{
			name: "login_rate without burst",
			mod:  func(c *Config) { c.Qlik.LoginRate = LoginRateConfig{PerMinute: 6, Burst: 0} },
			want: []string{`qlik.login_rate.burst: 0 is not positive (use the logins a user may make at once, 1 or more, e.g. 10)`},
		},

		// qlik.websocket_per_user
		{
			name: "websocket_per_user no bound",
			mod:  func(c *Config) { c.Qlik.WebsocketPerUser = 0 },
		},
		{
			name: "websocket_per_user one",
			mod:  func(c *Config) { c.Qlik.WebsocketPerUser = 1 },
		},
		{
			name: "websocket_per_user negative",
			mod:  func(c *Config) { c.Qlik.WebsocketPerUser = -1 },
			want: []string{`qlik.websocket_per_user: -1 is negative (use the websockets one user may have open at once, e.g. 50, or 0 for no cap)`},
		},

		// server.write_timeout
		{
			name: "write_timeout disabled",
			mod:  func(c *Config) { c.Server.WriteTimeout = 0 },
		},
		{
			name: "write_timeout negative",
			mod:  func(c *Config) { c.Server.WriteTimeout = -time.Second },
			want: []string{`server.write_timeout: -1s is negative (use a duration such as 60s, or 0 for no bound on stalled writes)`},
		},
		{
			name: "missing client certificate file",
			mod:  func(c *Config) { c.Qlik.QPS.ClientCert = "/certs/client.pem" },
			want: []string{`qlik.qps.client_cert: open /certs/client.pem: no such file or directory (the client.pem exported from the QMC)`},
		},
		{
			name: "client certificate and key unset",
			mod:  func(c *Config) { c.Qlik.QPS.ClientCert, c.Qlik.QPS.ClientKey = "", "" },
			want: []string{
				`qlik.qps.client_cert: required (the client.pem exported from the QMC)`,
				`qlik.qps.client_key: required (the client_key.pem exported from the QMC)`,
			},
		},
		{
			name: "client key of another certificate",
			mod:  func(cfg *Config) { cfg.Qlik.QPS.ClientKey = c.otherKey },
			want: []string{`qlik.qps.client_cert: tls: private key does not match public key (qlik.qps.client_cert and qlik.qps.client_key must be a matching PEM certificate and private key)`},
		},
		{
			name: "password-protected client key",
			mod:  func(cfg *Config) { cfg.Qlik.QPS.ClientKey = c.encrypted },
			want: []string{`qlik.qps.client_key: ` + c.encrypted + ` is encrypted (export the certificates from the QMC without a password)`},
		},
		{
			name: "client certificate not PEM",
			mod:  func(cfg *Config) { cfg.Qlik.QPS.ClientCert = c.notPEM },
			want: []string{`qlik.qps.client_cert: tls: failed to find any PEM data in certificate input (qlik.qps.client_cert and qlik.qps.client_key must be a matching PEM certificate and private key)`},
		},

		// server
		{
			name: "tls_cert without tls_key",
			mod:  func(cfg *Config) { cfg.Server.TLSCert = c.cert },
			want: []string{`server.tls_key: required when server.tls_cert is set (serve HTTPS with both tls_cert and tls_key, or HTTP with neither)`},
		},
		{
			name: "tls_key without tls_cert",
			mod:  func(cfg *Config) { cfg.Server.TLSKey = c.key },
			want: []string{`server.tls_cert: required when server.tls_key is set (serve HTTPS with both tls_cert and tls_key, or HTTP with neither)`},
		},
		{
			name: "TLS files missing",
			mod:  func(cfg *Config) { cfg.Server.TLSCert, cfg.Server.TLSKey = "/x/tls.pem", "/x/tls_key.pem" },
			want: []string{
				`server.tls_cert: open /x/tls.pem: no such file or directory (the PEM certificate chain served to browsers)`,
				`server.tls_key: open /x/tls_key.pem: no such file or directory (the PEM private key of server.tls_cert)`,
			},
		},
		{
			name: "TLS",
			mod:  func(cfg *Config) { cfg.Server.TLSCert, cfg.Server.TLSKey = c.cert, c.key },
		},
		{
			name: "listen without a colon",
			mod:  func(c *Config) { c.Server.Listen = "8080" },
			want: []string{`server.listen: "8080" is not host:port (write host:port, e.g. ":8080" for every interface or "127.0.0.1:8080")`},
		},
		{
			name: "listen port out of range",
			mod:  func(c *Config) { c.Server.Listen = ":http" },
			want: []string{`server.listen: ":http" has port "http" (use a port from 0 to 65535)`},
		},
		{
			name: "public URL with a path",
			mod:  func(c *Config) { c.Server.RawPublicURL = "https://sense.example.com/portal" },
			want: []string{`server.public_url: "https://sense.example.com/portal" has the path /portal (sensegate serves from the root of its host: remove the path)`},
		},
		{
			name: "public URL relative",
			mod:  func(c *Config) { c.Server.RawPublicURL = "/" },
			want: []string{`server.public_url: "/" is not an absolute URL (write it as https://sense.example.com)`},
		},
		{
			name: "allowed origin wildcard and path",
			mod: func(c *Config) {
				c.Server.RawAllowedOrigins = []string{"https://ok.example.com", "*", "https://a.example.com/x", "ws://b.example.com"}
			},
			want: []string{
				`server.allowed_origins[1]: "*" is not an origin: wildcards would allow websocket hijacking from any site (list each origin as scheme://host[:port])`,
				`server.allowed_origins[2]: "https://a.example.com/x" has the path /x (an origin is scheme://host[:port]: remove the path)`,
				`server.allowed_origins[3]: "ws://b.example.com" has scheme ws (use https or http)`,
			},
		},

		// identity
		{
			name: "unknown provider",
			mod:  func(c *Config) { c.Identity.Provider = "ldap" },
			want: []string{`identity.provider: "ldap" is unknown (use header behind an authenticating proxy, oidc, jwt, or static for development)`},
		},
		{
			name: "oidc needs issuer and client",
			mod:  func(c *Config) { c.Identity.Provider = "oidc" },
			want: []string{
				"identity.oidc.client_id: required (sensegate's client id at the OpenID provider)",
				"identity.oidc.issuer: required (the OpenID provider's issuer URL, e.g. https://login.microsoftonline.com/TENANT/v2.0)",
			},
		},
		{
			name: "oidc bad values",
			mod: func(c *Config) {
				c.Identity.Provider = "oidc"
				c.Identity.OIDC.Issuer, c.Identity.OIDC.ClientID = "https://idp.example.com/realms/acme", "sensegate"
				c.Identity.OIDC.CookieSecrets = []string{"c2hvcnQ="}
				c.Identity.OIDC.RedirectURL = "https://elsewhere.example.com/cb"
				c.Identity.Mapping.UserIDPattern = "("
			},
			want: []string{
				"identity.mapping.user_id_pattern: error parsing regexp: missing closing ): `(` (write a Go regular expression such as ^([^@]+)@)",
				"identity.oidc.cookie_secrets[0]: is not 32 bytes in base64 (generate one with: openssl rand -base64 32)",
				`identity.oidc.redirect_url: "https://elsewhere.example.com/cb" is not sensegate's callback http://localhost:8080/.sensegate/callback (register and use http://localhost:8080/.sensegate/callback)`,
			},
		},
		{
			name: "oidc __Host- cookie over http",
			mod: func(c *Config) {
				c.Identity.Provider = "oidc"
				c.Identity.OIDC.Issuer, c.Identity.OIDC.ClientID = "https://idp.example.com/realms/acme", "sensegate"
				c.Identity.OIDC.CookieName = "__Host-sg"
			},
			want: []string{
				`identity.oidc.cookie_name: "__Host-sg": browsers keep __Host- and __Secure- cookies only over https, and server.public_url is http (leave it empty, or make server.public_url https)`,
			},
		},
		{
			name: "jwt needs issuer, audiences and keys",
			mod:  func(c *Config) { c.Identity.Provider = "jwt" },
			want: []string{
				"identity.jwt.audiences: required (the aud values of tokens meant for sensegate, e.g. api://sensegate)",
				"identity.jwt.issuer: required (the exact iss of accepted tokens, e.g. https://login.microsoftonline.com/TENANT/v2.0)",
				"identity.jwt.jwks_url: required (the JWKS URL of the issuer, or list PEM files in identity.jwt.public_keys)",
			},
		},
		{
			name: "jwt refuses symmetric and none",
			mod: func(c *Config) {
				c.Identity.Provider = "jwt"
				c.Identity.JWT.Issuer, c.Identity.JWT.Audiences, c.Identity.JWT.JWKSURL = "https://idp.example.com", []string{"sensegate"}, "https://idp.example.com/jwks"
				c.Identity.JWT.Algorithms = []string{"RS256", "HS256", "none"}
			},
			want: []string{
				`identity.jwt.algorithms[1]: "HS256" is not an allowed algorithm (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
				`identity.jwt.algorithms[2]: "none" is not an allowed algorithm (use one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA)`,
			},
		},
		{
			name: "public path shadowing Qlik",
			mod:  func(c *Config) { c.Identity.PublicPaths = []string{"/assets/", "/qrs/"} },
			want: []string{`identity.public_paths[1]: "/qrs/" shadows the Qlik path /qrs/ (choose another path)`},
		},
		{
			name: "header Authorization",
			mod:  func(c *Config) { c.Identity.Header.Name = "authorization" },
			want: []string{`identity.header.name: "authorization" cannot carry the user (use a header of its own, such as X-Forwarded-User)`},
		},
		{
			name: "header Cookie",
			mod:  func(c *Config) { c.Identity.Header.Name = "Cookie" },
			want: []string{`identity.header.name: "Cookie" cannot carry the user (use a header of its own, such as X-Forwarded-User)`},
		},
		{
			name: "header X-Qlik-User",
			mod:  func(c *Config) { c.Identity.Header.Name = "x-qlik-user" },
			want: []string{`identity.header.name: "x-qlik-user" is a Qlik header: sensegate never forwards client X-Qlik-* headers (use a header of its own, such as X-Forwarded-User)`},
		},
		{
			name: "header name with a colon",
			mod:  func(c *Config) { c.Identity.Header.Name = "X-User:" },
			want: []string{`identity.header.name: "X-User:" is not a valid header name (use a header of its own, such as X-Forwarded-User)`},
		},
		{
			name: "bad CIDR",
			mod: func(c *Config) {
				c.Identity.Header.RawTrustedProxies = []string{"10.0.0.0/8", "10.0.0.300", "10.0.0.0/33"}
			},
			want: []string{
				`identity.header.trusted_proxies[1]: "10.0.0.300" is not a CIDR or IP address (write a CIDR such as 10.0.0.0/8 or an IP such as 127.0.0.1)`,
				`identity.header.trusted_proxies[2]: "10.0.0.0/33" is not a CIDR or IP address (write a CIDR such as 10.0.0.0/8 or an IP such as 127.0.0.1)`,
			},
		},
		{
			name: "trust everyone",
			mod:  func(c *Config) { c.Identity.Header.RawTrustedProxies = []string{"0.0.0.0/0", "::/0"} },
			want: []string{
				`identity.header.trusted_proxies[0]: "0.0.0.0/0" trusts every IPv4 address: any client could claim to be any user (list only your front door's addresses)`,
				`identity.header.trusted_proxies[1]: "::/0" trusts every IPv6 address: any client could claim to be any user (list only your front door's addresses)`,
			},
		},
		{
			name: "no trusted proxies",
			mod:  func(c *Config) { c.Identity.Header.RawTrustedProxies = nil },
			want: []string{`identity.header.trusted_proxies: required (list the addresses of the proxies that set X-Forwarded-User, e.g. 127.0.0.1/32: no other client may)`},
		},
		{
			name: "static user backslash only",
			mod:  func(c *Config) { c.Identity.Provider, c.Identity.Static.User = ProviderStatic, `\` },
			want: []string{`identity.static.user: "\" has an empty directory or user id (write DIRECTORY\id, e.g. ACME\dev, or id alone for qlik.user_directory)`},
		},
		{
			name: "static user without id",
			mod:  func(c *Config) { c.Identity.Provider, c.Identity.Static.User = ProviderStatic, `ACME\ ` },
			want: []string{`identity.static.user: "ACME\ " has an empty directory or user id (write DIRECTORY\id, e.g. ACME\dev, or id alone for qlik.user_directory)`},
		},
		{
			name: "static user with two backslashes",
			mod:  func(c *Config) { c.Identity.Provider, c.Identity.Static.User = ProviderStatic, `A\B\c` },
			want: []string{`identity.static.user: "A\B\c" has more than one backslash (write DIRECTORY\id, e.g. ACME\dev, or id alone for qlik.user_directory)`},
		},
		{
			name: "static user missing",
			mod:  func(c *Config) { c.Identity.Provider = ProviderStatic },
			want: []string{`identity.static.user: required (write DIRECTORY\id, e.g. ACME\dev, or id alone for qlik.user_directory)`},
		},
		{
			name: "static user ignores the header section",
			mod: func(c *Config) {
				c.Identity.Provider, c.Identity.Static.User = ProviderStatic, "dev"
				c.Identity.Header = HeaderConfig{Name: "Authorization"}
			},
		},

		// routes
		{
			name: "route shadowing /qrs/",
			mod:  func(c *Config) { c.Routes = []Route{{Path: "/qrs/", Upstream: "http://127.0.0.1:3000"}} },
			want: []string{`routes[0].path: "/qrs/" shadows the Qlik path /qrs/ (choose another path)`},
		},
		{
			name: "route below a Qlik path, any case",
			mod:  func(c *Config) { c.Routes = []Route{{Path: "/App/mine/", Upstream: "http://127.0.0.1:3000"}} },
			want: []string{`routes[0].path: "/App/mine/" shadows the Qlik path /app/ (choose another path)`},
		},
		// Issue 15: validation and routing share qlik's path list (a route
		// at /dev-hub/ validated but was never reached).
		{
			name: "route shadowing a Qlik path the proxy forwards",
			mod: func(c *Config) {
				c.Routes = []Route{{Path: "/dev-hub/", Upstream: "http://127.0.0.1:3000"}, {Path: "/tempcontent/", Upstream: "http://127.0.0.1:3000"}}
			},
			want: []string{
				`routes[0].path: "/dev-hub/" shadows the Qlik path /dev-hub/ (choose another path)`,
				`routes[1].path: "/tempcontent/" shadows the Qlik path /tempcontent/ (choose another path)`,
			},
		},
		{
			name: "extra Qlik paths",
			mod: func(c *Config) {
				c.Qlik.ExtraPaths = []string{"/custom/", "custom", "/hub/x/", "/.sensegate/x/", "/", "/ok/"}
				c.Routes = []Route{{Path: "/custom/", Upstream: "http://127.0.0.1:3000"}}
			},
			want: []string{
				`qlik.extra_paths[1]: "custom" must start and end with / (write /custom/)`,
				`qlik.extra_paths[2]: "/hub/x/" is forwarded to Qlik already (remove it)`,
				`qlik.extra_paths[3]: "/.sensegate/x/" overlaps sensegate's own /.sensegate/ (choose another path)`,
				`qlik.extra_paths[4]: "/" would send every request to Qlik (name the prefix Qlik serves, e.g. /custom/)`,
				`routes[0].path: "/custom/" shadows the Qlik path /custom/ (choose another path)`,
			},
		},
		{
			name: "route at the root is the catch-all",
			mod:  func(c *Config) { c.Routes = []Route{{Path: "/", Upstream: "http://127.0.0.1:3000"}} },
			want: nil,
		},
		{
			name: "route on the reserved path",
			mod:  func(c *Config) { c.Routes = []Route{{Path: "/.sensegate/", Upstream: "http://127.0.0.1:3000"}} },
			want: []string{`routes[0].path: "/.sensegate/" shadows sensegate's reserved path /.sensegate/ (choose another path)`},
		},
		{
			name: "route on the virtual proxy prefix",
			mod: func(c *Config) {
				c.Qlik.Prefix = "sales"
				c.Routes = []Route{{Path: "/sales/", Upstream: "http://127.0.0.1:3000"}}
			},
			want: []string{`routes[0].path: "/sales/" shadows the virtual proxy prefix /sales/ (choose another path)`},
		},
		{
			name: "duplicate route paths",
			mod: func(c *Config) {
				c.Routes = []Route{
					{Path: "/mashup/", Upstream: "http://127.0.0.1:3000"},
					{Path: "/docs/", Upstream: "http://127.0.0.1:3001"},
					{Path: "/Mashup/", Upstream: "http://127.0.0.1:3002"},
				}
			},
			want: []string{`routes[2].path: "/Mashup/" is also the path of routes[0] (give each route its own path)`},
		},
		{
			name: "route without trailing slash",
			mod:  func(c *Config) { c.Routes = []Route{{Path: "/mashup", Upstream: "http://127.0.0.1:3000"}} },
			want: []string{`routes[0].path: "/mashup" must start and end with / (write /mashup/)`},
		},
		{
			name: "route not clean",
			mod:  func(c *Config) { c.Routes = []Route{{Path: "/a//b/../c/", Upstream: "http://127.0.0.1:3000"}} },
			want: []string{`routes[0].path: "/a//b/../c/" is not a clean path (write /a/c/)`},
		},
		{
			name: "route with a query",
			mod:  func(c *Config) { c.Routes = []Route{{Path: "/a?b/", Upstream: "http://127.0.0.1:3000"}} },
			want: []string{`routes[0].path: "/a?b/" contains "?" (write a plain path, e.g. /mashup/)`},
		},
		{
			name: "route upstream missing, relative, bad scheme",
			mod: func(c *Config) {
				c.Routes = []Route{
					{Path: "/a/"},
					{Path: "/b/", Upstream: "127.0.0.1:3000"},
					{Path: "/c/", Upstream: "ftp://127.0.0.1"},
				}
			},
			want: []string{
				`routes[0].upstream: required (the address requests are forwarded to, e.g. http://127.0.0.1:3000)`,
				`routes[1].upstream: "127.0.0.1:3000" is not an absolute URL (write it as http://127.0.0.1:3000)`,
				`routes[2].upstream: "ftp://127.0.0.1" has scheme ftp (use http or https)`,
			},
		},
		{
			name: "routes sorted by index as a number",
			mod: func(c *Config) {
				for i := range 11 {
					c.Routes = append(c.Routes, Route{Path: "/r" + string(rune('a'+i)) + "/", Upstream: "http://127.0.0.1:3000"})
				}
				c.Routes[2].Upstream = ""
				c.Routes[10].Upstream = ""
			},
			want: []string{
				`routes[2].upstream: required (the address requests are forwarded to, e.g. http://127.0.0.1:3000)`,
				`routes[10].upstream: required (the address requests are forwarded to, e.g. http://127.0.0.1:3000)`,
			},
		},

		// store
		{name: "store memory ignores the redis keys", mod: func(c *Config) { c.Store.RawEncryptionKeys = []string{"short"} }},
		{
			name: "store redis",
			mod: func(c *Config) {
				c.Store.Type, c.Store.Redis.Addr, c.Store.RawEncryptionKeys = StoreRedis, "127.0.0.1:6379", []string{testKey}
				c.Store.LocalCacheTTL = 0
			},
		},
		{
			name: "store type unknown",
			mod:  func(c *Config) { c.Store.Type = "memcached" },
			want: []string{`store.type: "memcached" is unknown (use memory for a single replica, or redis to share Qlik sessions between replicas)`},
		},
		{
			name: "store redis without address or keys",
			mod:  func(c *Config) { c.Store.Type = StoreRedis },
			want: []string{
				`store.encryption_keys: required when store.type is redis (generate one with: openssl rand -base64 32, and give every replica the same keys)`,
				`store.redis.addr: required when store.type is redis (write the Redis server's host:port, e.g. redis.example.com:6379)`,
			},
		},
		{
			name: "store redis bad values",
			mod: func(c *Config) {
				c.Store.Type = StoreRedis
				c.Store.Redis.Addr = "redis.example.com"
				c.Store.Redis.DB = -1
				c.Store.Redis.KeyPrefix = ""
				c.Store.RawEncryptionKeys = []string{testKey, "c2hvcnQ=", "not base64!"}
				c.Store.LocalCacheTTL = time.Minute
			},
			want: []string{
				`store.encryption_keys[1]: is not 32 bytes in base64 (generate one with: openssl rand -base64 32)`,
				`store.encryption_keys[2]: is not 32 bytes in base64 (generate one with: openssl rand -base64 32)`,
				`store.local_cache_ttl: 1m0s is out of range (use 0 (no local cache) to 10s, e.g. 1s)`,
				`store.redis.addr: "redis.example.com" is not host:port (write the Redis server's host:port, e.g. redis.example.com:6379)`,
				`store.redis.db: -1 is negative (use 0, Redis's default database, or another database number)`,
				`store.redis.key_prefix: required (a prefix for the names of sensegate's keys, e.g. sensegate:)`,
			},
		},
		{
			name: "store redis port out of range",
			mod: func(c *Config) {
				c.Store.Type, c.Store.Redis.Addr, c.Store.RawEncryptionKeys = StoreRedis, "redis:0", []string{testKey}
			},
			want: []string{`store.redis.addr: "redis:0" has port "0" (use a port from 1 to 65535)`},
		},
		{
			name: "store redis with OIDC needs shared cookie secrets",
			mod: func(c *Config) {
				c.Identity.Provider = ProviderOIDC
				c.Identity.OIDC.Issuer, c.Identity.OIDC.ClientID = "https://login.example.com", "sensegate"
				c.Store.Type, c.Store.Redis.Addr, c.Store.RawEncryptionKeys = StoreRedis, "redis:6379", []string{testKey}
			},
			want: []string{`identity.cookie_secrets: required when store.type is redis: every replica must open the login cookie (generate one with: openssl rand -base64 32, and give every replica the same keys)`},
		},

		// log
		{
			name: "bad log level and format",
			mod:  func(c *Config) { c.Log.Level, c.Log.Format = "verbose", "text" },
			want: []string{
				`log.format: "text" is unknown (use json or console)`,
				`log.level: "verbose" is unknown (use debug, info, warn or error)`,
			},
		},

		// admin
		{name: "admin.listen disabled", mod: func(c *Config) { c.Admin.Listen = "" }},
		{name: "admin.listen on every interface", mod: func(c *Config) { c.Admin.Listen = ":9090" }},
		{name: "admin.listen and server.listen on free ports", mod: func(c *Config) { c.Server.Listen, c.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0" }},
		{
			name: "admin.listen not host:port",
			mod:  func(c *Config) { c.Admin.Listen = "9090" },
			want: []string{`admin.listen: "9090" is not host:port (write host:port, e.g. "127.0.0.1:9090" (loopback only) or ":9090" for a prober on the network, or "" to disable)`},
		},
		{
			name: "admin.listen bad port",
			mod:  func(c *Config) { c.Admin.Listen = "127.0.0.1:http" },
			want: []string{`admin.listen: "127.0.0.1:http" has port "http" (use a port from 0 to 65535)`},
		},
		{
			name: "admin.listen is server.listen",
			mod:  func(c *Config) { c.Admin.Listen = c.Server.Listen },
			want: []string{`admin.listen: ":8080" is also server.listen (give the admin listener a port of its own, e.g. 127.0.0.1:9090: metrics and probes do not belong on the public listener)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantValidate(t, c, tc.mod, tc.want)
		})
	}
}

// TestValidateDefault shows that the keys without a default are exactly
// the required ones.
func TestValidateDefault(t *testing.T) {
	want := []string{
		`identity.header.trusted_proxies: required (list the addresses of the proxies that set X-Forwarded-User, e.g. 127.0.0.1/32: no other client may)`,
		`qlik.qps.client_cert: required (the client.pem exported from the QMC)`,
		`qlik.qps.client_key: required (the client_key.pem exported from the QMC)`,
		`qlik.qps.url: required (the address of the QPS API, e.g. https://qlik.example.com:4243)`,
		`qlik.url: required (the address of the Qlik Sense proxy, e.g. https://qlik.example.com)`,
		`qlik.user_directory: required (the Qlik user directory of users whose identity names none, e.g. ACME)`,
	}
	if diff := cmp.Diff(want, errLines(Default().Validate())); diff != "" {
		t.Errorf("Default().Validate() mismatch (-want +got):\n%s", diff)
	}
}

func TestParsedForms(t *testing.T) {
	c := writeCerts(t)
	cfg := minimalConfig(c)
	if cfg.Qlik.URL() != nil || cfg.Server.AllowedOrigins() != nil || cfg.Identity.Header.TrustedProxies() != nil {
		t.Errorf("accessors before Validate are not nil")
	}
	cfg.Server.RawPublicURL = "HTTPS://Sense.Example.COM:443"
	cfg.Server.RawAllowedOrigins = []string{"https://sense.example.com", "http://[::1]:80", "http://[::1]:8080/", "https://Portal.example.com:8443"}
	cfg.Qlik.RawURL = "https://qlik.example.com:443/"
	cfg.Identity.Header.RawTrustedProxies = []string{"10.1.2.3/8", "fe80::1"}
	cfg.Routes = []Route{{Path: "/mashup/", Upstream: "http://127.0.0.1:3000/base/"}}
	for range 2 { // Validate is idempotent
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate = %v", err)
		}
	}
	got := map[string]any{
		"PublicURL":       cfg.Server.PublicURL().String(),
		"AllowedOrigins":  cfg.Server.AllowedOrigins(),
		"URL":             cfg.Qlik.URL().String(),
		"WebsocketOrigin": cfg.Qlik.WebsocketOrigin(),
		"TrustedProxies":  cfg.Identity.Header.TrustedProxies(),
		"UpstreamURL":     cfg.Routes[0].UpstreamURL().String(),
	}
	want := map[string]any{
		"PublicURL":       "https://Sense.Example.COM:443",
		"AllowedOrigins":  []string{"https://sense.example.com", "http://[::1]", "http://[::1]:8080", "https://portal.example.com:8443"},
		"URL":             "https://qlik.example.com:443",
		"WebsocketOrigin": "https://qlik.example.com",
		"TrustedProxies":  []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fe80::1/128")},
		"UpstreamURL":     "http://127.0.0.1:3000/base/",
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("parsed forms mismatch (-want +got):\n%s", diff)
	}

	// The accessors hand out copies.
	cfg.Qlik.URL().Host = "evil.example.com"
	cfg.Server.AllowedOrigins()[0] = "https://evil.example.com"
	cfg.Identity.Header.TrustedProxies()[0] = netip.MustParsePrefix("0.0.0.0/0")
	if h := cfg.Qlik.URL().Host; h != "qlik.example.com:443" {
		t.Errorf("URL().Host after changing a copy = %q", h)
	}
	if o := cfg.Server.AllowedOrigins()[0]; o != "https://sense.example.com" {
		t.Errorf("AllowedOrigins()[0] after changing a copy = %q", o)
	}
	if p := cfg.Identity.Header.TrustedProxies()[0]; p.Bits() != 8 {
		t.Errorf("TrustedProxies()[0] after changing a copy = %v", p)
	}
}

// TestGolden loads a file with a problem of nearly every kind and compares
// the whole report with testdata/invalid.golden (go test -update rewrites it).
func TestGolden(t *testing.T) {
	clearEnv(t)
	file := filepath.Join("testdata", "invalid.yaml")
	_, err := Load(file)
	if err == nil {
		t.Fatal("Load(invalid.yaml) = nil error")
	}
	got := err.Error() + "\n"
	for range 3 {
		if _, err := Load(file); err == nil || err.Error()+"\n" != got {
			t.Fatalf("Load(invalid.yaml) is not stable:\n%v\nthen\n%v", got, err)
		}
	}

	golden := filepath.Join("testdata", "invalid.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("Load(invalid.yaml) mismatch with %s (-want +got; go test -update to accept):\n%s", golden, diff)
	}

	// One problem per line, sorted by key.
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	keys := make([]string, len(lines))
	for i, l := range lines {
		k, _, ok := strings.Cut(l, ": ")
		if !ok || strings.Contains(k, " ") {
			t.Errorf("line %d names no key: %q", i+1, l)
		}
		keys[i] = k
	}
	if !slices.IsSortedFunc(keys, compareKeys) {
		t.Errorf("keys are not sorted: %q", keys)
	}
	if len(lines) < 30 {
		t.Errorf("%d problems, want the 30 or more of invalid.yaml", len(lines))
	}
}

func TestCompareKeys(t *testing.T) {
	sorted := []string{
		"",
		"identity.provider",
		"qlik.qps.url",
		"qlik.url",
		"routes[2].path",
		"routes[2].upstream",
		"routes[010].path",
		"routes[11].path",
		"server.allowed_origins[9]",
		"server.allowed_origins[10]",
		"server.listen",
	}
	for i := range sorted {
		for j := range sorted {
			got := compareKeys(sorted[i], sorted[j])
			if (i < j && got >= 0) || (i > j && got <= 0) || (i == j && got != 0) {
				t.Errorf("compareKeys(%q, %q) = %d, want the sign of %d", sorted[i], sorted[j], got, i-j)
			}
		}
	}
}

// wantValidate validates the minimal configuration of c changed by mod,
// wanting the error lines want (none: valid), and returns it.
func wantValidate(t *testing.T, c certFiles, mod func(*Config), want []string) *Config {
	t.Helper()
	cfg := minimalConfig(c)
	mod(cfg)
	if diff := cmp.Diff(want, errLines(cfg.Validate())); diff != "" {
		t.Errorf("Validate mismatch (-want +got):\n%s", diff)
	}
	return cfg
}
