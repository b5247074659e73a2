// Package qlik is sensegate's one owner of Qlik's vocabulary: the paths
// the Qlik proxy serves, the rules for session cookie names, what a
// redirect to Qlik's login looks like, every answer by which Qlik says
// that it no longer knows a session (on HTTP, on the websocket handshake,
// in the first message, in notifications), origins, and Qlik's fixed
// limits. Every other package asks here instead of keeping a copy: the
// copies had drifted apart.
//
// Where public sources disagree on what Qlik answers
// (shared/qseow-protocol.md §4b), the functions here accept every answer
// that is reported, and say so.
package qlik

import (
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
)

// paths are the path prefixes (below a virtual proxy prefix) that the
// Qlik proxy serves to browsers and mashups, and that sensegate forwards.
// An entry without a trailing "/" is one endpoint, not a tree.
var paths = []string{
	"/app/", "/qrs/", "/resources/", "/api/", "/sense/", "/hub/", "/extensions/",
	"/content/", "/single/", "/dev-hub/",
	// Exports: exportData answers a /tempcontent/{guid}/… URL.
	"/tempcontent/",
	// Images uploaded to apps, and the media library.
	"/appcontent/", "/media/",
	// The Personal API and the websocket CSRF token, not the rest of /qps/.
	"/qps/user", "/qps/csrftoken",
}

// EnginePath is the prefix of the Engine's websockets
// (/app/{appId|engineData}). Other websockets on Qlik paths are not the
// Engine's.
const EnginePath = "/app/"

// DefaultPaths returns the path prefixes sensegate forwards to Qlik
// without any configured extra ones.
func DefaultPaths() []string { return slices.Clone(paths) }

// Paths is a set of Qlik path prefixes: Qlik's own and a site's extra
// ones. The zero Paths holds Qlik's own. It is immutable.
type Paths struct {
	extra []string
}

// NewPaths returns Qlik's paths and extra, each a prefix that starts and
// ends with "/" (config validates them).
func NewPaths(extra []string) Paths { return Paths{extra: slices.Clone(extra)} }

// List returns every prefix of p.
func (p Paths) List() []string { return append(DefaultPaths(), p.extra...) }

// Match reports whether path (without a virtual proxy prefix) is one of
// p's. A path equal to a tree's prefix without its "/" matches too (/hub).
func (p Paths) Match(path string) bool {
	return matchAny(paths, path) || matchAny(p.extra, path)
}

func matchAny(list []string, path string) bool {
	for _, q := range list {
		if q[len(q)-1] != '/' {
			// One endpoint (/qps/user), not a tree: /qps/username is
			// none of Qlik's.
			if path == q {
				return true
			}
			continue
		}
		if strings.HasPrefix(path, q) || path+"/" == q {
			return true
		}
	}
	return false
}

// IsEnginePath reports whether path (without a virtual proxy prefix) is
// an Engine websocket's.
func IsEnginePath(path string) bool { return strings.HasPrefix(path, EnginePath) }

// DefaultSessionCookie is the session cookie name of a virtual proxy that
// keeps Qlik's default; any other header name may be configured.
const DefaultSessionCookie = "X-Qlik-Session"

// httpSuffix is what Qlik appends to a virtual proxy's session cookie
// name when it is served over plain http.
const httpSuffix = "-HTTP"

// IsSessionCookie reports whether a cookie name is the session cookie of
// the virtual proxy whose configured name is configured: that name in any
// case, with or without Qlik's "-HTTP" suffix. Virtual proxies name their
// cookie freely (sessionCookieHeaderName), so the configured name is the
// rule, not a prefix.
func IsSessionCookie(name, configured string) bool {
	if configured == "" {
		return false
	}
	return strings.EqualFold(name, configured) ||
		len(name) == len(configured)+len(httpSuffix) && strings.EqualFold(name[:len(configured)], configured) && strings.EqualFold(name[len(configured):], httpSuffix)
}

// IsAnySessionCookie reports whether a cookie name is the configured
// session cookie (IsSessionCookie) or looks like any virtual proxy's
// default one (X-Qlik-Session…): what sensegate never lets through to a
// browser or an upstream that is not Qlik.
func IsAnySessionCookie(name, configured string) bool {
	return IsSessionCookie(name, configured) ||
		len(name) >= len(DefaultSessionCookie) && strings.EqualFold(name[:len(DefaultSessionCookie)], DefaultSessionCookie)
}

// IsLoginRedirect reports whether a redirect (a 3xx status with
// Location) sends the client to Qlik's authentication: the internal forms
// or Windows login, an authentication module (QPS hands it proxyRestUri
// and targetId), or the virtual proxy's configured module URL
// (authModuleURL, "" if none).
func IsLoginRedirect(status int, location, authModuleURL string) bool {
	if status < 300 || status > 399 || location == "" {
		return false
	}
	return IsLoginURL(location) || authModuleURL != "" && strings.HasPrefix(strings.ToLower(location), strings.ToLower(authModuleURL))
}

// IsLoginURL reports whether a URL is one of Qlik's logins: the internal
// forms or Windows login, or an authentication module (proxyRestUri and
// targetId in its query, as QPS sends them).
func IsLoginURL(loc string) bool {
	l := strings.ToLower(loc)
	return strings.Contains(l, "/internal_forms_authentication") || strings.Contains(l, "/internal_windows_authentication") ||
		strings.Contains(l, "proxyresturi=") && strings.Contains(l, "targetid=")
}

// AuthErrorText starts the Qlik proxy's answer to a session cookie it
// does not know (after a restart or a failover): "Authentication error:
// Restart the browser.", with status 500. Observed as text/plain and
// reported as Qlik's HTML error page: match it anywhere in the first
// AuthErrorPeek bytes of the body, whatever the Content-Type.
const AuthErrorText = "Authentication error"

// AuthErrorPeek is how much of a 500 answer is searched for AuthErrorText.
const AuthErrorPeek = 4 << 10

// IsAuthError reports whether a 500 answer's body head says the session
// cookie is unknown. Only the first AuthErrorPeek bytes are looked at.
func IsAuthError(status int, head []byte) bool {
	if status != 500 {
		return false
	}
	if len(head) > AuthErrorPeek {
		head = head[:AuthErrorPeek]
	}
	return strings.Contains(string(head), AuthErrorText)
}

// TooManySessionsText is in Qlik's refusal of a user with too many
// sessions in parallel (lower-cased: compare with the answer lower-cased).
const TooManySessionsText = "too many sessions"

// MaxParallelSessions is how many sessions Qlik allows one user at once;
// it is fixed.
const MaxParallelSessions = 5

// Proxy notifications on an Engine websocket (JSON-RPC methods without
// an id). The first message a client sends is answered by
// TopicAuthenticationInformation; with mustAuthenticate true the socket
// has no session.
const (
	TopicAuthenticationInformation = "OnAuthenticationInformation"
	TopicConnected                 = "OnConnected"
	TopicSessionTimedOut           = "OnSessionTimedOut"
	TopicSessionLoggedOut          = "OnSessionLoggedOut"
	TopicSessionClosed             = "OnSessionClosed"
	TopicMaxParallelSessions       = "OnMaxParallelSessionsExceeded"
)

// AuthenticationInformation is the params of the
// TopicAuthenticationInformation notification: who the socket runs as,
// or MustAuthenticate when it has no session.
type AuthenticationInformation struct {
	UserDirectory    string `json:"userDirectory"`
	UserID           string `json:"userId"`
	LogoutURI        string `json:"logoutUri"`
	MustAuthenticate bool   `json:"mustAuthenticate"`
}

// ProbeID is the JSON-RPC id of ProbeRequest; clients count their ids
// from 1 and never get near it.
const ProbeID = 1_000_000_007

// ProbeRequest is a first message to send on a new Engine socket to have
// QPS authenticate it (it does so only at the first message, answering
// TopicAuthenticationInformation): EngineVersion on the Global, which
// every Engine answers and which changes nothing. Its answer has ProbeID.
var ProbeRequest = []byte(`{"jsonrpc":"2.0","id":1000000007,"method":"EngineVersion","handle":-1,"params":[]}`)

// IsSessionEndingTopic reports whether a notification says that Qlik
// ended the session itself: the socket closes after it, and the session
// cookie is no good any more.
func IsSessionEndingTopic(method string) bool {
	switch method {
	case TopicSessionTimedOut, TopicSessionLoggedOut, TopicSessionClosed:
		return true
	}
	return false
}

// IsFatalTopic reports whether a notification ends the socket (Qlik
// closes it after): the session-ending ones, and those that end this
// socket only (no engine, a license refused, the parallel-session cap),
// as Qlik's own load tester treats them.
func IsFatalTopic(method string) bool {
	switch method {
	case "OnNoEngineAvailable", "OnEngineWebsocketFailed", "OnLicenseAccessDenied",
		"OnLicenseAccessDeniedPendingUserSync", "OnNoRepositoryAvailable", TopicMaxParallelSessions:
		return true
	}
	return IsSessionEndingTopic(method)
}

// CSRFTokenHeader is the header of Qlik's answer to GET /qps/csrftoken
// carrying the websocket CSRF token (November 2024 and later), and
// CSRFTokenParam the query parameter the websocket upgrade sends it in.
const (
	CSRFTokenHeader = "qlik-csrf-token"
	CSRFTokenParam  = "qlik-csrf-token"
)

// TicketParam is the query parameter by which Qlik redeems a ticket; a
// client must never send one through sensegate (compare without case).
const TicketParam = "qlikticket"

// ErrSessionGone is what errors.Is finds in any error that says Qlik no
// longer knows a session: a login redirect, a 401, a 500 Authentication
// error, the Personal API's "inactive", a mustAuthenticate greeting, a
// session-ending notification.
var ErrSessionGone = errors.New("qlik: the session is gone")

// Origin is the ASCII serialisation of u's origin (RFC 6454 §6.2):
// scheme://host[:port] with a lower-case scheme and host and no default
// port.
func Origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	switch {
	case port != "":
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	}
	return scheme + "://" + host
}

// NormalizeOrigin parses an Origin header value (or a configured origin)
// and returns its Origin form; ok is false for anything that is not an
// http(s) origin ("null", a path, garbage).
func NormalizeOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return Origin(u), true
	}
	return "", false
}

// IsEncryptedPEM reports whether b holds a password-protected private key
// (PKCS #8 "ENCRYPTED PRIVATE KEY", or a legacy key with a Proc-Type
// header): what the QMC's certificate export writes when given a
// password, which neither sensegate nor Go's TLS can use.
func IsEncryptedPEM(b []byte) bool {
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return false
		}
		if IsEncryptedBlock(block) {
			return true
		}
	}
}

// IsEncryptedBlock reports whether a PEM block is a password-protected
// private key (see IsEncryptedPEM).
func IsEncryptedBlock(b *pem.Block) bool {
	return b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != ""
}
