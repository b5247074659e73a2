package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/proxy"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
)

// Validate checks c and fills in the parsed forms its accessors return.
// It reports every problem, not only the first, joined as by errors.Join
// and sorted by key; each names the key and the fix. It reads the files
// the configuration names (certificates, keys, CA) and changes nothing but
// c. Validate must not be called concurrently with the use of c.
func (c *Config) Validate() error { return joinProblems(c.validate()) }

func (c *Config) validate() []problem {
	v := new(validator)
	c.Server.validate(v)
	c.Qlik.validate(v)
	c.Identity.validate(v, c.Server.publicURL, c.Server.crossSiteOrigins, c.Qlik.Prefix, c.Qlik.paths.List())
	c.Store.validate(v, &c.Identity)
	validateRoutes(v, c.Routes, c.Qlik.Prefix, c.Qlik.paths.List())
	c.Log.validate(v)
	c.Admin.validate(v, c.Server.Listen)
	slices.SortStableFunc(v.warns, func(a, b problem) int { return compareKeys(a.key, b.key) })
	c.warnings = v.warns
	return v.probs
}

// Warnings returns what c allows but is risky, one error a line, each
// naming the key and what to do, sorted by key: today trusted_proxies
// entries broader than a /24 (IPv4) or a /64 (IPv6). Validate and Load
// find them; nil before, and when there are none. sensegate check prints
// them and serve logs them, without refusing the configuration.
func (c *Config) Warnings() []error {
	if len(c.warnings) == 0 {
		return nil
	}
	errs := make([]error, len(c.warnings))
	for i, w := range c.warnings {
		errs[i] = w
	}
	return errs
}

// problem is one thing wrong with the configuration: the key it is about,
// as the operator writes it, what is wrong, and the fix.
type problem struct {
	key string
	err error
	fix string
}

func (p problem) Error() string {
	var b strings.Builder
	if p.key != "" {
		b.WriteString(p.key)
		b.WriteString(": ")
	}
	b.WriteString(p.err.Error())
	if p.fix != "" {
		b.WriteString(" (")
		b.WriteString(p.fix)
		b.WriteString(")")
	}
	return b.String()
}

func (p problem) Unwrap() error { return p.err }

// joinProblems sorts probs by key, keeping the order of problems of one
// key, and joins them; nil if there are none.
func joinProblems(probs []problem) error {
	if len(probs) == 0 {
		return nil
	}
	slices.SortStableFunc(probs, func(a, b problem) int { return compareKeys(a.key, b.key) })
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// compareKeys orders keys as strings, except that indices compare as
// numbers (routes[2] before routes[10]).
func compareKeys(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			na, ra := cutDigits(a)
			nb, rb := cutDigits(b)
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// cutDigits splits s after its leading digits, dropping leading zeros.
func cutDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return strings.TrimLeft(s[:i], "0"), s[i:]
}

// validator collects the problems of a configuration, and its warnings:
// what is allowed but risky.
type validator struct{ probs, warns []problem }

func (v *validator) warnf(key, fix, format string, args ...any) {
	v.warns = append(v.warns, problem{key: key, err: fmt.Errorf(format, args...), fix: fix})
}

func (v *validator) err(key string, err error, fix string) {
	v.probs = append(v.probs, problem{key: key, err: err, fix: fix})
}

func (v *validator) errorf(key, fix, format string, args ...any) {
	v.err(key, fmt.Errorf(format, args...), fix)
}

func (v *validator) required(key, fix string) { v.errorf(key, fix, "required") }

func (v *validator) positive(key string, d time.Duration, example string) {
	if d <= 0 {
		v.errorf(key, "write a duration such as "+example, "%s is not positive", d)
	}
}

// readFile returns the contents of the file at name, or nil after
// reporting why it cannot be read.
func (v *validator) readFile(key, name, fix string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		v.err(key, err, fix)
		return nil
	}
	return b
}

// keyPair checks that certFile and keyFile hold a matching PEM certificate
// and private key.
func (v *validator) keyPair(certKey, keyKey, certFile, keyFile, certFix, keyFix string) {
	var certPEM, keyPEM []byte
	if certFile == "" {
		v.required(certKey, certFix)
	} else {
		certPEM = v.readFile(certKey, certFile, certFix)
	}
	if keyFile == "" {
		v.required(keyKey, keyFix)
	} else {
		keyPEM = v.readFile(keyKey, keyFile, keyFix)
	}
	if certPEM == nil || keyPEM == nil {
		return
	}
	if qlik.IsEncryptedPEM(keyPEM) {
		v.errorf(keyKey, "export the certificates from the QMC without a password", "%s is encrypted", keyFile)
		return
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		v.err(certKey, err, certKey+" and "+keyKey+" must be a matching PEM certificate and private key")
	}
}

// urlRule is what a URL-valued key accepts.
type urlRule struct {
	schemes   []string
	schemeFix string // what to write instead of another scheme
	example   string // an acceptable value
	allowPath bool
	pathFix   string // why there is no path, what to do instead
}

var (
	httpSchemes  = []string{"http", "https"}
	httpsSchemes = []string{"https"}
)

// parseURL parses raw, reports its problems under key and returns it
// (without a "/" path) if it has none.
func (v *validator) parseURL(key, raw string, r urlRule) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Hostname() == "" {
		v.errorf(key, "write it as "+r.example, "%q is not an absolute URL", raw)
		return nil
	}
	n := len(v.probs)
	if !slices.Contains(r.schemes, u.Scheme) {
		v.errorf(key, r.schemeFix, "%q has scheme %s", raw, u.Scheme)
	}
	if u.User != nil {
		v.errorf(key, "remove it: credentials do not belong in the URL", "%q has user information", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			v.errorf(key, "use a port from 1 to 65535", "%q has port %s", raw, p)
		}
	}
	if !r.allowPath && u.Path != "" && u.Path != "/" {
		v.errorf(key, r.pathFix, "%q has the path %s", raw, u.Path)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		v.errorf(key, "remove it", "%q has a query or fragment", raw)
	}
	if len(v.probs) > n {
		return nil
	}
	if !r.allowPath {
		u.Path, u.RawPath = "", ""
	}
	return u
}

func (s *ServerConfig) validate(v *validator) {
	s.publicURL, s.allowedOrigins, s.crossSiteOrigins = nil, []string{}, []string{}

	if s.Listen == "" {
		v.required("server.listen", `write host:port, e.g. ":8080" for every interface`)
	} else if _, port, err := net.SplitHostPort(s.Listen); err != nil {
		v.errorf("server.listen", `write host:port, e.g. ":8080" for every interface or "127.0.0.1:8080"`, "%q is not host:port", s.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf("server.listen", "use a port from 0 to 65535", "%q has port %q", s.Listen, port)
	}

	switch {
	case s.TLSCert != "" && s.TLSKey == "":
		v.errorf("server.tls_key", "serve HTTPS with both tls_cert and tls_key, or HTTP with neither", "required when server.tls_cert is set")
	case s.TLSCert == "" && s.TLSKey != "":
		v.errorf("server.tls_cert", "serve HTTPS with both tls_cert and tls_key, or HTTP with neither", "required when server.tls_key is set")
	case s.TLSCert != "":
		v.keyPair("server.tls_cert", "server.tls_key", s.TLSCert, s.TLSKey,
			"the PEM certificate chain served to browsers", "the PEM private key of server.tls_cert")
	}

	if s.RawPublicURL == "" {
		v.required("server.public_url", "the address browsers use, e.g. https://sense.example.com")
	} else if u := v.parseURL("server.public_url", s.RawPublicURL, urlRule{
		schemes:   httpSchemes,
		schemeFix: "use https, or http for a test",
		example:   "https://sense.example.com",
		pathFix:   "sensegate serves from the root of its host: remove the path",
	}); u != nil {
		s.publicURL = u
		s.allowedOrigins = append(s.allowedOrigins, qlik.Origin(u))
	}

	for i, raw := range s.RawAllowedOrigins {
		key := fmt.Sprintf("server.allowed_origins[%d]", i)
		if raw == "*" {
			v.errorf(key, "list each origin as scheme://host[:port]", "%q is not an origin: wildcards would allow websocket hijacking from any site", raw)
			continue
		}
		u := v.parseURL(key, raw, urlRule{
			schemes:   httpSchemes,
			schemeFix: "use https or http",
			example:   "scheme://host[:port], e.g. https://portal.example.com",
			pathFix:   "an origin is scheme://host[:port]: remove the path",
		})
		if u != nil && !slices.Contains(s.allowedOrigins, qlik.Origin(u)) {
			s.allowedOrigins = append(s.allowedOrigins, qlik.Origin(u))
			if s.publicURL != nil && site(u) != site(s.publicURL) {
				s.crossSiteOrigins = append(s.crossSiteOrigins, qlik.Origin(u))
			}
		}
	}

	v.positive("server.shutdown_grace", s.ShutdownGrace, "15s")
	if s.WriteTimeout < 0 {
		v.errorf("server.write_timeout", "use a duration such as 60s, or 0 for no bound on stalled writes", "%s is negative", s.WriteTimeout)
	}
	if s.BodyTimeout < 0 {
		v.errorf("server.body_timeout", "use a duration such as 60s, or 0 for no bound on stalled request bodies", "%s is negative", s.BodyTimeout)
	}
}

var (
	qlikURLRule = urlRule{
		schemes:   httpSchemes,
		schemeFix: "use https, or http for a test server",
		example:   "https://qlik.example.com",
		pathFix:   "write the host alone and put the virtual proxy prefix in qlik.prefix",
	}
	qpsURLRule = urlRule{
		schemes:   httpsSchemes,
		schemeFix: "use https: the QPS API is mutual TLS with the client certificate",
		example:   "https://qlik.example.com:4243",
		pathFix:   "write the host and port alone; sensegate adds /qps/ and qlik.prefix",
	}
)

// validateNodes checks qlik.nodes, which replace qlik.url and
// qlik.qps.url: those must be unset, and the first node's URLs stand for
// them (the default websocket Origin is the first node's).
func (q *QlikConfig) validateNodes(v *validator) {
	if q.RawURL != "" {
		v.errorf("qlik.url", "remove it: qlik.nodes lists the proxy URL of each node", "is set along with qlik.nodes")
	}
	if q.QPS.RawURL != "" {
		v.errorf("qlik.qps.url", "remove it: qlik.nodes lists the QPS URL of each node", "is set along with qlik.nodes")
	}
	hosts := map[string]int{}
	for i := range q.Nodes {
		n := &q.Nodes[i]
		n.url, n.qpsURL = nil, nil
		key := fmt.Sprintf("qlik.nodes[%d]", i)
		if n.URL == "" {
			v.required(key+".url", "the address of the node's Qlik proxy, e.g. https://qlik1.example.com")
		} else if n.url = v.parseURL(key+".url", n.URL, qlikURLRule); n.url != nil {
			h := strings.ToLower(n.url.Host)
			if j, dup := hosts[h]; dup {
				v.errorf(key+".url", "list each node once", "%q is also the host of qlik.nodes[%d]", n.url.Host, j)
			}
			hosts[h] = i
		}
		if n.QPSURL == "" {
			v.required(key+".qps_url", "the address of the node's QPS API, e.g. https://qlik1.example.com:4243")
		} else {
			n.qpsURL = v.parseURL(key+".qps_url", n.QPSURL, qpsURLRule)
		}
	}
	if len(q.Nodes) > 0 {
		q.url = q.Nodes[0].url
		q.QPS.url = q.Nodes[0].qpsURL
	}
}

// validatePaths checks qlik.extra_paths and sets q.paths: Qlik's own and
// the extra ones, which must be clean directory paths that are neither
// Qlik's already nor sensegate's own.
func (q *QlikConfig) validatePaths(v *validator) {
	var extra []string
	for i, p := range q.ExtraPaths {
		key := fmt.Sprintf("qlik.extra_paths[%d]", i)
		switch {
		case !validatePathSyntax(v, key, p):
		case p == "/":
			v.errorf(key, "name the prefix Qlik serves, e.g. /custom/", "%q would send every request to Qlik", p)
		case strings.HasPrefix(p, ReservedPath) || strings.HasPrefix(ReservedPath, p):
			v.errorf(key, "choose another path", "%q overlaps sensegate's own %s", p, ReservedPath)
		case qlik.NewPaths(extra).Match(p):
			v.errorf(key, "remove it", "%q is forwarded to Qlik already", p)
		default:
			extra = append(extra, p)
		}
	}
	q.paths = qlik.NewPaths(extra)
}

func (q *QlikConfig) validate(v *validator) {
	q.url, q.rootCAs, q.websocketOrigin = nil, nil, ""

	switch {
	case len(q.Nodes) > 0:
		q.validateNodes(v)
	case q.RawURL == "":
		v.required("qlik.url", "the address of the Qlik Sense proxy, e.g. https://qlik.example.com")
	default:
		q.url = v.parseURL("qlik.url", q.RawURL, qlikURLRule)
	}

	validatePrefix(v, q.Prefix)

	if q.SessionCookie == "" {
		v.required("qlik.session_cookie", "the virtual proxy's session cookie header name, e.g. "+qlik.DefaultSessionCookie)
	} else if !isToken(q.SessionCookie) {
		v.errorf("qlik.session_cookie", "use the virtual proxy's session cookie header name, e.g. "+qlik.DefaultSessionCookie, "%q is not a valid cookie name", q.SessionCookie)
	}

	switch {
	case strings.TrimSpace(q.UserDirectory) == "":
		v.required("qlik.user_directory", "the Qlik user directory of users whose identity names none, e.g. ACME")
	case strings.Contains(q.UserDirectory, `\`):
		v.errorf("qlik.user_directory", "write the directory alone, e.g. ACME", "%s contains a backslash", quote(q.UserDirectory))
	}

	switch q.Login {
	case LoginTicket, LoginSession:
	default:
		v.errorf("qlik.login", "use ticket or session", "%q is unknown", q.Login)
	}

	switch {
	case q.RedeemPath == "":
		v.required("qlik.redeem_path", "a static resource below the virtual proxy, e.g. "+ticket.DefaultRedeemPath)
	case !strings.HasPrefix(q.RedeemPath, "/"):
		v.errorf("qlik.redeem_path", "write a path below the virtual proxy, e.g. "+ticket.DefaultRedeemPath, "%q does not start with /", q.RedeemPath)
	case strings.ContainsAny(q.RedeemPath, "?#"):
		v.errorf("qlik.redeem_path", "write the path alone: sensegate adds the ticket", "%q has a query or fragment", q.RedeemPath)
	}

	if q.CA != "" {
		const fix = "a PEM file of the certificates that issued Qlik's server certificates, e.g. root.pem exported from the QMC"
		if pem := v.readFile("qlik.ca", q.CA, fix); pem != nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				q.rootCAs = pool
			} else {
				v.errorf("qlik.ca", fix, "%s holds no PEM certificate", q.CA)
			}
		}
	}

	if q.Origin != "" {
		u := v.parseURL("qlik.origin", q.Origin, urlRule{
			schemes:   httpSchemes,
			schemeFix: "use https or http",
			example:   "scheme://host[:port], e.g. https://sense.example.com",
			pathFix:   "an origin is scheme://host[:port]: remove the path",
		})
		if u != nil {
			q.websocketOrigin = qlik.Origin(u)
		}
	} else if q.url != nil {
		q.websocketOrigin = qlik.Origin(q.url)
	}

	q.validatePaths(v)

	v.positive("qlik.session_timeout", q.SessionTimeout, "30m, the virtual proxy's session inactivity timeout")
	v.positive("qlik.timeout", q.Timeout, proxy.DefaultUpstreamTimeout.String())

	switch q.WebsocketCSRF {
	case CSRFAuto, CSRFOn, CSRFOff:
	default:
		v.errorf("qlik.websocket_csrf", "use auto, on or off", "%q is unknown", q.WebsocketCSRF)
	}
	if q.WebsocketPing < 0 {
		v.errorf("qlik.websocket_ping", "use a duration such as 30s, or 0 to send no pings", "%s is negative", q.WebsocketPing)
	}
	if q.WebsocketPerUser < 0 {
		v.errorf("qlik.websocket_per_user", fmt.Sprintf("use the websockets one user may have open at once, e.g. %d, or 0 for no cap", DefaultWebsocketPerUser), "%d is negative", q.WebsocketPerUser)
	}
	if q.ReplayLimit < 0 {
		v.errorf("qlik.replay_limit", "use a size in bytes such as 1048576, or 0 to replay only bodiless requests", "%d is negative", q.ReplayLimit)
	}
	if q.AuthModuleURL != "" {
		v.parseURL("qlik.auth_module_url", q.AuthModuleURL, urlRule{
			schemes: httpSchemes, schemeFix: "use https or http", example: "https://login.example.com/qlik", allowPath: true,
		})
	}

	q.LoginRate.validate(v)
	q.QPS.validate(v, len(q.Nodes) > 0)
}

// validatePrefix reports the first problem of a virtual proxy prefix.
func validatePrefix(v *validator, p string) {
	if p == "" {
		return
	}
	want := strings.ToLower(strings.Trim(p, "/"))
	fix := "write " + want
	if want == "" || strings.Contains(want, "/") || !isPrefix(want) {
		fix = "use lower-case letters, digits, -, ., _ and ~ only"
	}
	switch {
	case strings.Contains(p, "/"):
		v.errorf("qlik.prefix", fix, "%q contains a slash", p)
	case p != strings.ToLower(p):
		v.errorf("qlik.prefix", "virtual proxy prefixes are lower case: "+fix, "%q has upper-case letters", p)
	case !isPrefix(p):
		v.errorf("qlik.prefix", "use lower-case letters, digits, -, ., _ and ~ only", "%q is not a virtual proxy prefix", p)
	}
}

// isPrefix reports whether p is made of RFC 3986 unreserved characters in
// lower case and is not a dot segment.
func isPrefix(p string) bool {
	if p == "." || p == ".." {
		return false
	}
	for _, c := range []byte(p) {
		if !('a' <= c && c <= 'z' || isDigit(c) || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return p != ""
}

// quote is %q for values that hold backslashes on purpose (DIRECTORY\user):
// it leaves them as the operator wrote them.
func quote(s string) string {
	if strings.ContainsRune(s, '"') || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return `"` + s + `"`
}

// isToken reports whether s is an RFC 9110 token, the syntax of header and
// cookie names.
func isToken(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// validate checks qlik.qps; with nodes, qlik.nodes gave the URL.
func (q *QPSConfig) validate(v *validator, nodes bool) {
	switch {
	case nodes:
		// validateNodes sets url.
	case q.RawURL == "":
		q.url = nil
		v.required("qlik.qps.url", "the address of the QPS API, e.g. https://qlik.example.com:4243")
	default:
		q.url = v.parseURL("qlik.qps.url", q.RawURL, qpsURLRule)
	}
	v.keyPair("qlik.qps.client_cert", "qlik.qps.client_key", q.ClientCert, q.ClientKey,
		"the client.pem exported from the QMC", "the client_key.pem exported from the QMC")
	v.positive("qlik.qps.timeout", q.Timeout, ticket.DefaultTimeout.String())
	if q.Retries < 0 || q.Retries > MaxQPSRetries {
		v.errorf("qlik.qps.retries", fmt.Sprintf("use 0 to %d", MaxQPSRetries), "%d is out of range", q.Retries)
	}
	if q.MaxConcurrent < 1 {
		v.errorf("qlik.qps.max_concurrent", fmt.Sprintf("use a number of calls of 1 or more, e.g. %d: an unbounded number of calls would pile onto a slow QPS", ticket.DefaultMaxConcurrent), "%d is not positive", q.MaxConcurrent)
	}
}

func (l *LoginRateConfig) validate(v *validator) {
	if l.PerMinute < 0 {
		v.errorf("qlik.login_rate.per_minute", "use the logins a user may make a minute, e.g. 6, or 0 for no limit", "%d is negative", l.PerMinute)
	}
	if l.PerMinute > 0 && l.Burst < 1 {
		v.errorf("qlik.login_rate.burst", fmt.Sprintf("use the logins a user may make at once, 1 or more, e.g. %d", DefaultLoginRateBurst), "%d is not positive", l.Burst)
	}
}

func (i *IdentityConfig) validate(v *validator, public *url.URL, crossSite []string, prefix string, qlikPaths []string) {
	i.Header.trustedProxies = nil
	i.OIDC.redirectURL, i.OIDC.postLogout = "", ""
	const providers = "use header behind an authenticating proxy, oidc, jwt, or static for development"
	// Both names of the login cookies' keys, whatever the provider
	// (CookieKeys reads either).
	validateKeys(v, "identity.cookie_secrets", i.CookieSecrets)
	validateKeys(v, "identity.oidc.cookie_secrets", i.OIDC.CookieSecrets)
	if len(i.CookieSecrets) > 0 && len(i.OIDC.CookieSecrets) > 0 {
		v.errorf("identity.oidc.cookie_secrets", "set identity.cookie_secrets only: identity.oidc.cookie_secrets is its older name", "is set together with identity.cookie_secrets")
	}
	switch i.Provider {
	case ProviderHeader:
		i.Header.validate(v)
	case ProviderStatic:
		i.Static.validate(v)
	case ProviderOIDC:
		i.OIDC.validate(v, public)
		i.Mapping.validate(v)
	case ProviderJWT:
		i.JWT.validate(v, public, crossSite)
		i.Mapping.validate(v)
	case "":
		v.required("identity.provider", providers)
	default:
		v.errorf("identity.provider", providers, "%q is unknown", i.Provider)
	}
	reserved := []string{ReservedPath}
	if isPrefix(prefix) {
		reserved = append(reserved, "/"+prefix+"/")
	}
	for n, p := range i.PublicPaths {
		validateRoutePath(v, fmt.Sprintf("identity.public_paths[%d]", n), p, reserved, qlikPaths)
	}
}

func (o *OIDCConfig) validate(v *validator, public *url.URL) {
	if o.Issuer == "" {
		v.required("identity.oidc.issuer", "the OpenID provider's issuer URL, e.g. https://login.microsoftonline.com/TENANT/v2.0")
	} else {
		if u := v.parseURL("identity.oidc.issuer", o.Issuer, urlRule{schemes: []string{"https", "http"}, schemeFix: "use https", example: "https://keycloak.example.com/realms/acme", allowPath: true}); u != nil {
			httpOnlyOnLoopback(v, "identity.oidc.issuer", u, "tokens and keys over plain http can be replaced by anyone on the way")
		}
	}
	if o.ClientID == "" {
		v.required("identity.oidc.client_id", "sensegate's client id at the OpenID provider")
	}
	validateCookieName(v, "identity.oidc.cookie_name", o.CookieName, public)
	v.positive("identity.oidc.session_lifetime", o.SessionLifetime, "12h")
	if public == nil {
		return
	}
	base := strings.TrimSuffix(public.String(), "/")
	o.redirectURL = base + ReservedPath + "callback"
	if o.RedirectURL != "" {
		u := v.parseURL("identity.oidc.redirect_url", o.RedirectURL, urlRule{schemes: httpSchemes, schemeFix: "use https", example: o.redirectURL, allowPath: true})
		if u != nil {
			if qlik.Origin(u) != qlik.Origin(public) || u.Path != ReservedPath+"callback" {
				v.errorf("identity.oidc.redirect_url", "register and use "+o.redirectURL, "%q is not sensegate's callback %s", o.RedirectURL, o.redirectURL)
			} else {
				o.redirectURL = o.RedirectURL
			}
		}
	}
	o.postLogout = base + "/"
	if o.PostLogoutRedirectURL != "" {
		if u := v.parseURL("identity.oidc.post_logout_redirect_url", o.PostLogoutRedirectURL, urlRule{schemes: httpSchemes, schemeFix: "use https", example: base + "/", allowPath: true}); u != nil {
			o.postLogout = o.PostLogoutRedirectURL
		}
	}
}

// validateCookieName checks the name of a login cookie: empty (the
// default: __Host-sensegate_session over https, sensegate_session
// otherwise) or a cookie name, __Host- and __Secure- ones only over https.
func validateCookieName(v *validator, key, name string, public *url.URL) {
	switch {
	case name == "":
	case !isToken(name):
		v.errorf(key, "use a plain name such as "+identity.DefaultLoginCookie+", or leave it empty", "%q is not a valid cookie name", name)
	case (strings.HasPrefix(name, "__Host-") || strings.HasPrefix(name, "__Secure-")) && public != nil && public.Scheme != "https":
		v.errorf(key, "leave it empty, or make server.public_url https", "%q: browsers keep __Host- and __Secure- cookies only over https, and server.public_url is %s", name, public.Scheme)
	}
}

// validateKeys decodes the base64 32-byte keys of key, reporting those
// that are not.
func validateKeys(v *validator, key string, raw []string) [][]byte {
	var keys [][]byte
	for n, sec := range raw {
		b, ok := decodeKey(sec)
		if !ok {
			v.errorf(fmt.Sprintf("%s[%d]", key, n), "generate one with: openssl rand -base64 32", "is not 32 bytes in base64")
			continue
		}
		keys = append(keys, b)
	}
	return keys
}

// httpOnlyOnLoopback refuses a plain http URL unless its host is loopback
// (a provider started next to sensegate for tests or development).
func httpOnlyOnLoopback(v *validator, key string, u *url.URL, why string) {
	if u.Scheme != "http" {
		return
	}
	h := u.Hostname()
	if ip, err := netip.ParseAddr(h); h == "localhost" || err == nil && ip.IsLoopback() {
		return
	}
	v.errorf(key, "use https", "%q is plain http on a non-loopback host: %s", u.String(), why)
}

// jwtAlgorithms are the signature algorithms identity.jwt may allow:
// asymmetric only ("none" and HMAC with a public key are classic attacks).
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func (j *JWTConfig) validate(v *validator, public *url.URL, crossSite []string) {
	if j.Issuer == "" {
		v.required("identity.jwt.issuer", "the exact iss of accepted tokens, e.g. https://login.microsoftonline.com/TENANT/v2.0")
	}
	if len(j.Audiences) == 0 {
		v.required("identity.jwt.audiences", "the aud values of tokens meant for sensegate, e.g. api://sensegate")
	}
	switch {
	case j.JWKSURL == "" && len(j.PublicKeys) == 0:
		v.required("identity.jwt.jwks_url", "the JWKS URL of the issuer, or list PEM files in identity.jwt.public_keys")
	case j.JWKSURL != "" && len(j.PublicKeys) > 0:
		v.errorf("identity.jwt.public_keys", "set jwks_url or public_keys, not both", "both jwks_url and public_keys are set")
	case j.JWKSURL != "":
		if u := v.parseURL("identity.jwt.jwks_url", j.JWKSURL, urlRule{schemes: []string{"https", "http"}, schemeFix: "use https", example: "https://issuer.example.com/.well-known/jwks.json", allowPath: true}); u != nil {
			httpOnlyOnLoopback(v, "identity.jwt.jwks_url", u, "signing keys fetched over plain http can be replaced by anyone on the way")
		}
	}
	for n, f := range j.PublicKeys {
		v.readFile(fmt.Sprintf("identity.jwt.public_keys[%d]", n), f, "a PEM public key or certificate of the token issuer")
	}
	for n, a := range j.Algorithms {
		if !slices.Contains(jwtAlgorithms, a) {
			v.errorf(fmt.Sprintf("identity.jwt.algorithms[%d]", n), "use one of "+strings.Join(jwtAlgorithms, ", "), "%q is not an allowed algorithm", a)
		}
	}
	if j.ClockSkew < 0 {
		v.errorf("identity.jwt.clock_skew", "use a duration such as 60s", "%s is negative", j.ClockSkew)
	}
	for n, sc := range j.RequiredScopes {
		if sc == "" || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' }) {
			v.errorf(fmt.Sprintf("identity.jwt.required_scopes[%d]", n), "write one scope per item, e.g. qlik.access", "%q is not a scope (printable ASCII without spaces, quotes or backslashes)", sc)
		}
	}
	if !j.Session {
		return
	}
	validateCookieName(v, "identity.jwt.cookie_name", j.CookieName, public)
	if len(crossSite) > 0 {
		const why = "the single-page apps of server.allowed_origins %s are of another site than server.public_url, so the login cookie must be SameSite=None"
		if public != nil && public.Scheme != "https" {
			v.errorf("identity.jwt.session", "make server.public_url https, or serve the apps from server.public_url's own site", why+", which browsers keep only over https", strings.Join(crossSite, ", "))
		} else {
			v.warnf("identity.jwt.session", "serve the apps from server.public_url's own site (e.g. app.example.com with sense.example.com) where possible", why+" and Partitioned, which browsers that block third-party cookies (Safari) do not keep", strings.Join(crossSite, ", "))
		}
	}
}

func (m *MappingConfig) validate(v *validator) {
	if m.UserIDClaim == "" {
		v.required("identity.mapping.user_id_claim", "the claim with the user id, e.g. "+identity.DefaultUserIDClaim)
	}
	if m.UserIDPattern != "" {
		if _, err := regexp.Compile(m.UserIDPattern); err != nil {
			v.errorf("identity.mapping.user_id_pattern", "write a Go regular expression such as ^([^@]+)@", "%v", err)
		}
	}
	for attr, claim := range m.Attributes {
		if strings.TrimSpace(attr) == "" || claim == "" {
			v.errorf("identity.mapping.attributes", "write attribute: claim pairs, e.g. email: email", "attribute %q from claim %q: both names are required", attr, claim)
		}
	}
}

// forbiddenHeaders carry credentials or routing, never the user.
var forbiddenHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Host"}

func (h *HeaderConfig) validate(v *validator) {
	const fix = "use a header of its own, such as " + DefaultHeaderName
	switch {
	case h.Name == "":
		v.required("identity.header.name", "the header the authenticating proxy sets, e.g. "+DefaultHeaderName)
	case !isToken(h.Name):
		v.errorf("identity.header.name", fix, "%q is not a valid header name", h.Name)
	case slices.ContainsFunc(forbiddenHeaders, func(f string) bool { return strings.EqualFold(f, h.Name) }):
		v.errorf("identity.header.name", fix, "%q cannot carry the user", h.Name)
	case len(h.Name) >= 7 && strings.EqualFold(h.Name[:7], "X-Qlik-"):
		v.errorf("identity.header.name", fix, "%q is a Qlik header: sensegate never forwards client X-Qlik-* headers", h.Name)
	}
	for _, kv := range []struct{ key, name string }{{"identity.header.directory_header", h.DirectoryHeader}, {"identity.header.groups_header", h.GroupsHeader}} {
		switch {
		case kv.name == "":
		case !isToken(kv.name) || slices.ContainsFunc(forbiddenHeaders, func(f string) bool { return strings.EqualFold(f, kv.name) }) || len(kv.name) >= 7 && strings.EqualFold(kv.name[:7], "X-Qlik-"):
			v.errorf(kv.key, "use a header of its own, such as X-Forwarded-Groups", "%q cannot carry identity", kv.name)
		case strings.EqualFold(kv.name, h.Name):
			v.errorf(kv.key, "use a header other than identity.header.name", "%q is the user header", kv.name)
		}
	}

	if len(h.RawTrustedProxies) == 0 {
		v.required("identity.header.trusted_proxies", "list the addresses of the proxies that set "+h.Name+", e.g. 127.0.0.1/32: no other client may")
	}
	h.trustedProxies = append([]netip.Prefix{}, validateTrustedProxies(v, "identity.header.trusted_proxies", h.RawTrustedProxies)...)
}

func (s *StaticConfig) validate(v *validator) {
	const fix = `write DIRECTORY\id, e.g. ACME\dev, or id alone for qlik.user_directory`
	dir, id, found := strings.Cut(s.User, `\`)
	switch {
	case strings.TrimSpace(s.User) == "":
		v.required("identity.static.user", fix)
	case strings.Contains(id, `\`):
		v.errorf("identity.static.user", fix, "%s has more than one backslash", quote(s.User))
	case found && (strings.TrimSpace(dir) == "" || strings.TrimSpace(id) == ""):
		v.errorf("identity.static.user", fix, "%s has an empty directory or user id", quote(s.User))
	}
}

// decodeKey returns the 32-byte key s holds in base64 (standard, or
// URL-safe without padding), ok false when it holds none.
func decodeKey(s string) (key []byte, ok bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawURLEncoding.DecodeString(s)
	}
	return b, err == nil && len(b) == 32
}

func (s *StoreConfig) validate(v *validator, id *IdentityConfig) {
	s.encryptionKeys = nil
	const types = "use memory for a single replica, or redis to share Qlik sessions between replicas"
	switch s.Type {
	case StoreMemory:
		return
	case StoreRedis:
	case "":
		v.required("store.type", types)
		return
	default:
		v.errorf("store.type", types, "%q is unknown", s.Type)
		return
	}

	r := &s.Redis
	const addrFix = "write the Redis server's host:port, e.g. redis.example.com:6379"
	if r.Addr == "" {
		v.errorf("store.redis.addr", addrFix, "required when store.type is redis")
	} else if host, port, err := net.SplitHostPort(r.Addr); err != nil || host == "" {
		v.errorf("store.redis.addr", addrFix, "%q is not host:port", r.Addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.errorf("store.redis.addr", "use a port from 1 to 65535", "%q has port %q", r.Addr, port)
	}
	if r.DB < 0 {
		v.errorf("store.redis.db", "use 0, Redis's default database, or another database number", "%d is negative", r.DB)
	}
	if r.KeyPrefix == "" {
		v.required("store.redis.key_prefix", "a prefix for the names of sensegate's keys, e.g. "+session.DefaultRedisPrefix)
	}

	const keyFix = "generate one with: openssl rand -base64 32, and give every replica the same keys"
	if len(s.RawEncryptionKeys) == 0 {
		v.errorf("store.encryption_keys", keyFix, "required when store.type is redis")
	}
	s.encryptionKeys = validateKeys(v, "store.encryption_keys", s.RawEncryptionKeys)
	if s.LocalCacheTTL < 0 || s.LocalCacheTTL > MaxLocalCacheTTL {
		v.errorf("store.local_cache_ttl", fmt.Sprintf("use 0 (no local cache) to %s, e.g. 1s", MaxLocalCacheTTL), "%s is out of range", s.LocalCacheTTL)
	}

	// A random cookie key per process would sign users out on every
	// replica but the one that logged them in.
	hasLogins := id.Provider == ProviderOIDC || id.Provider == ProviderJWT && id.JWT.Session
	if hasLogins && len(id.CookieSecrets) == 0 && len(id.OIDC.CookieSecrets) == 0 {
		v.errorf("identity.cookie_secrets", keyFix, "required when store.type is redis: every replica must open the login cookie")
	}
}

func validateRoutes(v *validator, routes []Route, prefix string, qlikPaths []string) {
	reserved := []string{ReservedPath}
	if isPrefix(prefix) {
		reserved = append(reserved, "/"+prefix+"/")
	}
	first := map[string]int{} // path → index of its first route
	for i := range routes {
		r := &routes[i]
		r.upstream = nil
		key := fmt.Sprintf("routes[%d]", i)
		if validateRoutePath(v, key+".path", r.Path, reserved, qlikPaths) {
			if j, dup := first[strings.ToLower(r.Path)]; dup {
				v.errorf(key+".path", "give each route its own path", "%q is also the path of routes[%d]", r.Path, j)
			} else {
				first[strings.ToLower(r.Path)] = i
			}
		}
		if r.Upstream == "" {
			v.required(key+".upstream", "the address requests are forwarded to, e.g. http://127.0.0.1:3000")
		} else {
			r.upstream = v.parseURL(key+".upstream", r.Upstream, urlRule{
				schemes:   httpSchemes,
				schemeFix: "use http or https",
				example:   "http://127.0.0.1:3000",
				allowPath: true,
			})
		}
	}
}

// validatePathSyntax reports whether p is a clean directory path, as a
// route's or an extra Qlik path must be, naming the problem at key if not.
func validatePathSyntax(v *validator, key, p string) bool {
	if p == "" {
		v.required(key, "the path prefix, e.g. /mashup/")
		return false
	}
	if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
		v.errorf(key, "write "+cleanDir(p), "%q must start and end with /", p)
		return false
	}
	if i := strings.IndexAny(p, "?#%\\ "); i >= 0 {
		v.errorf(key, "write a plain path, e.g. /mashup/", "%q contains %q", p, string(p[i]))
		return false
	}
	if want := cleanDir(p); want != p {
		v.errorf(key, "write "+want, "%q is not a clean path", p)
		return false
	}
	return true
}

// validateRoutePath reports the first problem of p, a route's path, and
// whether it has none: it must be a clean directory path that shadows
// neither a Qlik path nor a reserved one.
func validateRoutePath(v *validator, key, p string, reserved, qlikPaths []string) bool {
	if !validatePathSyntax(v, key, p) {
		return false
	}
	// Qlik matches paths without regard to case.
	lp := strings.ToLower(p)
	// "/" is the catch-all route (e.g. the mashup at the root): Qlik paths
	// and sensegate's own take precedence over it, so it shadows nothing.
	overlaps := func(q string) bool { return strings.HasPrefix(lp, q) || lp != "/" && strings.HasPrefix(q, lp) }
	for _, q := range qlikPaths {
		if overlaps(q) {
			v.errorf(key, "choose another path", "%q shadows the Qlik path %s", p, q)
			return false
		}
	}
	for _, q := range reserved {
		if overlaps(q) {
			what := "the virtual proxy prefix"
			if q == ReservedPath {
				what = "sensegate's reserved path"
			}
			v.errorf(key, "choose another path", "%q shadows %s %s", p, what, q)
			return false
		}
	}
	return true
}

// cleanDir returns p as a clean absolute path ending in "/".
func cleanDir(p string) string {
	c := path.Clean("/" + p)
	if c != "/" {
		c += "/"
	}
	return c
}

func (l *LogConfig) validate(v *validator) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errorf("log.level", "use debug, info, warn or error", "%q is unknown", l.Level)
	}
	switch l.Format {
	case LogFormatJSON, LogFormatConsole:
	default:
		v.errorf("log.format", "use json or console", "%q is unknown", l.Format)
	}
}

func (a *AdminConfig) validate(v *validator, serverListen string) {
	if a.Listen == "" {
		return // disabled
	}
	const fix = `write host:port, e.g. "127.0.0.1:9090" (loopback only) or ":9090" for a prober on the network, or "" to disable`
	_, port, err := net.SplitHostPort(a.Listen)
	if err != nil {
		v.errorf("admin.listen", fix, "%q is not host:port", a.Listen)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf("admin.listen", "use a port from 0 to 65535", "%q has port %q", a.Listen, port)
		return
	}
	if a.Listen == serverListen && port != "0" {
		v.errorf("admin.listen", "give the admin listener a port of its own, e.g. 127.0.0.1:9090: metrics and probes do not belong on the public listener", "%q is also server.listen", a.Listen)
	}
}
