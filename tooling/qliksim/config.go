package qliksim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults of the simulator. Listen addresses are loopback so that a
// simulator started by hand is never reachable from another machine.
const (
	DefaultProxyListen = "127.0.0.1:8443"
	DefaultQPSListen   = "127.0.0.1:4243"
	// DefaultSessionTimeout is QSEoW's default virtual proxy
	// sessionInactivityTimeout (30 minutes).
	DefaultSessionTimeout = 30 * time.Minute
	// DefaultCookieName is the session cookie header name of the default
	// virtual proxy.
	DefaultCookieName = "X-Qlik-Session"
	// MaxParallelSessions is QSEoW's fixed cap of parallel sessions per user.
	MaxParallelSessions = 5
	// TicketLifetime is how long QPS keeps an unredeemed ticket.
	TicketLifetime = time.Minute
	// DefaultMaxEvents bounds the request log kept for inspection.
	DefaultMaxEvents = 100_000
	// DefaultProxyIdleTimeout is how long the proxy side keeps an idle
	// keep-alive connection open: the default of HTTP.sys and IIS (2
	// minutes; Kestrel's is 130 s). Load balancers in front of Qlik often
	// close sooner.
	DefaultProxyIdleTimeout = 2 * time.Minute
)

// Config is the simulator's configuration: listeners, virtual proxies and
// the seed data (users, apps, reload tasks). The zero value is not usable;
// start from DefaultConfig or LoadConfig.
type Config struct {
	// ProxyListen is the address of the proxy side (QSEoW's port 443).
	ProxyListen string `yaml:"proxy_listen"`
	// QPSListen is the address of the QPS API (QSEoW's port 4243), always
	// HTTPS with a required client certificate.
	QPSListen string `yaml:"qps_listen"`
	// AdminListen is the optional loopback listener of the inspection and
	// fault controls; empty disables it.
	AdminListen string `yaml:"admin_listen"`
	// ProxyHTTP serves the proxy side over plain HTTP; session cookies then
	// get QSEoW's "-HTTP" suffix.
	ProxyHTTP bool `yaml:"proxy_http"`
	// CertDir holds the Qlik-style certificate export (see EnsureCerts).
	CertDir string `yaml:"cert_dir"`
	// WebsocketCSRF turns on the Nov-2024 websocket CSRF protection on
	// every virtual proxy, in addition to those that enable it themselves.
	WebsocketCSRF bool `yaml:"websocket_csrf"`
	// ScriptSize is the size in bytes of each app's load script returned by
	// the Engine's GetScript, to exercise large payloads. 0 means a short script.
	ScriptSize int `yaml:"script_size"`
	// MaxEvents bounds the inspection request log (DefaultMaxEvents if 0).
	MaxEvents int `yaml:"max_events"`
	// UserCase is how the simulator compares user directories and ids
	// (for sessions per user, the user API, logout, seeded users):
	// UserCaseUnicode (the default, also when empty) or UserCaseASCII.
	UserCase string `yaml:"user_case"`
	// ProxyIdleTimeout is how long the proxy side keeps an idle keep-alive
	// connection before closing it (DefaultProxyIdleTimeout if 0). A short
	// one plays a load balancer, or the race of a client reusing a
	// connection just as the server closes it.
	ProxyIdleTimeout time.Duration `yaml:"proxy_idle_timeout"`
	// RedeemConnection is what the proxy side does with the connection of
	// a ticket redemption (a GET carrying qlikTicket, not a websocket
	// upgrade) once it has answered: RedeemKeepAlive (the default, also
	// when empty) keeps it for the next request; RedeemClose answers with
	// "Connection: close" and closes it, as QPS is seen to do after a login
	// redirect (protocol notes §4) and as some load balancers do.
	RedeemConnection string `yaml:"redeem_connection"`
	// StaticResources are further static resources, served to authenticated
	// sessions like the built-in ones: stand-ins of a given size for the
	// multi-MB JavaScript bundles a real Qlik Sense serves.
	StaticResources []StaticResource `yaml:"static_resources"`

	VirtualProxies []VirtualProxy `yaml:"virtual_proxies"`
	Users          []User         `yaml:"users"`
	Apps           []App          `yaml:"apps"`
	ReloadTasks    []ReloadTask   `yaml:"reload_tasks"`
}

// VirtualProxy is the part of a QRS virtualproxyconfig the simulator honours.
type VirtualProxy struct {
	// Prefix is the lowercase path prefix; "" is the default virtual proxy.
	Prefix string `yaml:"prefix"`
	// SessionCookie is the "session cookie header name" (sessionCookieHeaderName).
	SessionCookie string `yaml:"session_cookie"`
	// SessionCookieDomain is sent as the cookie's Domain when set.
	SessionCookieDomain string `yaml:"session_cookie_domain"`
	// SessionTimeout is the sessionInactivityTimeout (DefaultSessionTimeout if 0).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// HostAllowList is websocketCrossOriginWhiteList: exact host names,
	// without scheme or port.
	HostAllowList []string `yaml:"host_allow_list"`
	// AuthModuleRedirectURI is authenticationModuleRedirectUri: where
	// unauthenticated requests are sent with proxyRestUri and targetId. Empty
	// means the internal forms login (/{prefix}/internal_forms_authentication/).
	AuthModuleRedirectURI string `yaml:"authentication_module_redirect_uri"`
	// SecureHTTPS and SameSiteHTTPS are hasSecureAttributeHttps and
	// sameSiteAttributeHttps; the HTTP pair applies to a plain HTTP listener.
	// SameSite is one of "" (no attribute), None, Lax, Strict.
	SecureHTTPS   *bool  `yaml:"secure_https"`
	SameSiteHTTPS string `yaml:"same_site_https"`
	SecureHTTP    bool   `yaml:"secure_http"`
	SameSiteHTTP  string `yaml:"same_site_http"`
	// WebsocketCSRF requires the qlik-csrf-token query parameter on Engine
	// websocket upgrades (QSEoW November 2024 and later).
	WebsocketCSRF bool `yaml:"websocket_csrf"`

	// The keys below choose how this virtual proxy says "I do not know this
	// session" where real sites differ (protocol notes §4b). Each defaults
	// to the simulator's behaviour before they existed.

	// UnknownCookie is how an HTTP request (not a websocket upgrade) with a
	// session cookie QPS has no record of is answered: after Sim.ExpireAll
	// (a restart) or, on a real site, a failover to another node. One of
	// UnknownCookie500Text (the default when empty), UnknownCookie500HTML
	// or UnknownCookie302. GET /{prefix}/qps/csrftoken follows it too; the
	// Personal API keeps answering {"session":"inactive"}. A session QPS
	// ended itself (idle timeout, logout) is remembered as ended and its
	// cookie gets the login redirect in every variant, as before: which of
	// the two answers a real QPS gives after its own idle timeout is not
	// known (§4b lists both without saying when).
	UnknownCookie string `yaml:"unknown_cookie"`
	// DeadSocket is how an Engine websocket upgrade (/{prefix}/app/…) with
	// a session cookie that is unknown or ended is answered. One of
	// DeadSocketMustAuthenticate (the default when empty), DeadSocketClose,
	// DeadSocket500, DeadSocket302 or DeadSocket401. An upgrade without a
	// session cookie always gets mustAuthenticate, whatever this says: the
	// only source on cookieless sockets says the upgrade succeeds [D21];
	// the refusals are reported for dead cookies [M1], and whether a site
	// that refuses those refuses cookieless upgrades too is not known (the
	// protocol notes do not say). With websocket CSRF protection a dead
	// cookie has no valid token, so its upgrade gets 403 before this
	// applies [C2][M1].
	DeadSocket string `yaml:"dead_socket"`
	// SessionCap is where the cap of MaxParallelSessions sessions per user
	// shows: SessionCapRedeem (the default when empty) refuses the 6th
	// login with 403 and the "too many sessions" text [C3];
	// SessionCapSocket creates the 6th session and answers the first
	// message on its Engine sockets with OnMaxParallelSessionsExceeded,
	// then closes them, as seen live [M1]. It applies to sessions created
	// on this virtual proxy; the user's sessions on every virtual proxy
	// count toward the cap.
	SessionCap string `yaml:"session_cap"`
	// DropPings makes Engine sockets behave as QPS is reported to [M1]
	// (third-party, unverified): a websocket ping from the client gets no
	// pong, and nothing the client sends after it is answered, while the
	// socket stays open. False (the default) answers pings with a pong.
	DropPings bool `yaml:"drop_pings"`
}

// The values of VirtualProxy.UnknownCookie.
const (
	// UnknownCookie500Text answers 500 with the text/plain body
	// "Authentication error: Restart the browser." (observed [G14b]).
	UnknownCookie500Text = "500-text"
	// UnknownCookie500HTML answers 500 with an HTML error page (text/html)
	// that carries the same sentence after a few hundred bytes of head and
	// styles: Qlik's error *page* [M1]. The markup is the simulator's own.
	UnknownCookie500HTML = "500-html"
	// UnknownCookie302 redirects to the login module, like a request
	// without a cookie (most reports).
	UnknownCookie302 = "302"
)

// The values of VirtualProxy.DeadSocket.
const (
	// DeadSocketMustAuthenticate accepts the upgrade and answers the first
	// message with OnAuthenticationInformation mustAuthenticate:true, then
	// closes with 1008 [D21].
	DeadSocketMustAuthenticate = "must-authenticate"
	// DeadSocketClose accepts the upgrade and drops the connection, with
	// no greeting and no close frame, when the first message arrives: a
	// socket closed before any greeting, as a restart mid-handshake looks
	// (live report [M1]).
	DeadSocketClose = "close"
	// DeadSocket500 refuses the handshake with 500 and the text/plain
	// "Authentication error: Restart the browser." [M1].
	DeadSocket500 = "500"
	// DeadSocket302 answers the handshake with a redirect to the login
	// module [M1].
	DeadSocket302 = "302"
	// DeadSocket401 refuses the handshake with 401 [M1].
	DeadSocket401 = "401"
)

// The values of VirtualProxy.SessionCap.
const (
	// SessionCapRedeem refuses a user's 6th parallel session when it would
	// be created (ticket redemption, session API, forms login) [C3].
	SessionCapRedeem = "redeem"
	// SessionCapSocket creates every session and refuses the Engine
	// sockets of those beyond the cap [M1].
	SessionCapSocket = "socket"
)

// The values of Config.RedeemConnection.
const (
	// RedeemKeepAlive keeps a redemption's connection open for the next
	// request, like any other.
	RedeemKeepAlive = "keep-alive"
	// RedeemClose answers a redemption with "Connection: close" and closes
	// its connection.
	RedeemClose = "close"
)

// UserCase values. QSEoW compares user directories and ids without regard
// to case [D4], but how it folds letters beyond ASCII is not documented.
// The simulator plays both readings: UserCaseUnicode folds with Unicode's
// simple case mapping (directories upper-cased, ids lower-cased, so
// "alİce" with U+0130 is alice and the Kelvin sign is k), UserCaseASCII
// folds ASCII letters only (a .NET ordinal comparison of upper-cased
// names keeps those apart). A proxy in front must be right under either.
const (
	UserCaseUnicode = "unicode"
	UserCaseASCII   = "ascii"
)

// variantValues are the allowed values of each variant key, the default
// first.
var (
	unknownCookieValues = []string{UnknownCookie500Text, UnknownCookie500HTML, UnknownCookie302}
	deadSocketValues    = []string{DeadSocketMustAuthenticate, DeadSocketClose, DeadSocket500, DeadSocket302, DeadSocket401}
	sessionCapValues    = []string{SessionCapRedeem, SessionCapSocket}
	userCaseValues      = []string{UserCaseUnicode, UserCaseASCII}
	redeemConnValues    = []string{RedeemKeepAlive, RedeemClose}
)

// StaticResource is a configured static resource with deterministic content.
type StaticResource struct {
	// Path is the resource's path after the virtual proxy prefix, under
	// /resources/, /extensions/ or /content/ (e.g. "/resources/assets/app.js");
	// every virtual proxy serves it.
	Path string `yaml:"path"`
	// Size is the length of the body in bytes, at most MaxStaticSize.
	Size int `yaml:"size"`
}

// MaxStaticSize bounds a configured static resource, which is held in memory.
const MaxStaticSize = 256 << 20

// User is a seeded user. Users that are not seeded may still log in (as
// QSEoW creates users on first login); they see only apps open to everyone.
type User struct {
	Directory string   `yaml:"directory"`
	ID        string   `yaml:"id"`
	Name      string   `yaml:"name"`
	Groups    []string `yaml:"groups"`
}

// App is a seeded Qlik Sense app with its visibility.
type App struct {
	ID     string `yaml:"id"`
	Name   string `yaml:"name"`
	Stream string `yaml:"stream"`
	// Owner is "DIRECTORY\id"; the owner always sees the app.
	Owner string `yaml:"owner"`
	// Everyone makes the app visible to every authenticated user.
	Everyone bool `yaml:"everyone"`
	// Users ("DIRECTORY\id") and Groups (ticket attribute Group, or the
	// seeded user's groups) who may see and open the app.
	Users  []string `yaml:"users"`
	Groups []string `yaml:"groups"`
}

// ReloadTask is a seeded reload task; it is visible to whoever sees its app.
type ReloadTask struct {
	ID      string `yaml:"id"`
	Name    string `yaml:"name"`
	AppID   string `yaml:"app_id"`
	Enabled bool   `yaml:"enabled"`
}

// DefaultConfig returns the deterministic seed: directory ACME with users
// alice, bob, carol and dev, four apps with per-user visibility, one reload
// task per app, the default virtual proxy and a "ticket" virtual proxy whose
// logins go to an external authentication module.
func DefaultConfig() Config {
	return Config{
		ProxyListen: DefaultProxyListen,
		QPSListen:   DefaultQPSListen,
		VirtualProxies: []VirtualProxy{
			{Prefix: "", SessionCookie: DefaultCookieName, HostAllowList: []string{"localhost"}},
			{
				Prefix: "ticket", SessionCookie: DefaultCookieName + "-ticket",
				HostAllowList:         []string{"localhost"},
				AuthModuleRedirectURI: "http://localhost:3000/login",
			},
		},
		Users: []User{
			{Directory: "ACME", ID: "alice", Name: "Alice Andersson", Groups: []string{"Sales"}},
			{Directory: "ACME", ID: "bob", Name: "Bob Berg", Groups: []string{"Finance"}},
			{Directory: "ACME", ID: "carol", Name: "Carol Carlsson", Groups: []string{"Sales", "Finance"}},
			{Directory: "ACME", ID: "dev", Name: "Developer"},
		},
		Apps: []App{
			{ID: "5a8a1b2c-0001-4c1e-9d3f-000000000001", Name: "Sales Dashboard", Stream: "Sales", Owner: `ACME\carol`, Groups: []string{"Sales"}},
			{ID: "5a8a1b2c-0002-4c1e-9d3f-000000000002", Name: "Finance Overview", Stream: "Finance", Owner: `ACME\carol`, Groups: []string{"Finance"}},
			{ID: "5a8a1b2c-0003-4c1e-9d3f-000000000003", Name: "Company Handbook", Stream: "Everyone", Owner: `ACME\carol`, Everyone: true},
			{ID: "5a8a1b2c-0004-4c1e-9d3f-000000000004", Name: "Alice Sandbox", Owner: `ACME\alice`},
		},
		ReloadTasks: []ReloadTask{
			{ID: "7b9c2d3e-0001-4f2a-8e4b-000000000001", Name: "Reload Sales Dashboard", AppID: "5a8a1b2c-0001-4c1e-9d3f-000000000001", Enabled: true},
			{ID: "7b9c2d3e-0002-4f2a-8e4b-000000000002", Name: "Reload Finance Overview", AppID: "5a8a1b2c-0002-4c1e-9d3f-000000000002", Enabled: true},
			{ID: "7b9c2d3e-0003-4f2a-8e4b-000000000003", Name: "Reload Company Handbook", AppID: "5a8a1b2c-0003-4c1e-9d3f-000000000003", Enabled: false},
			{ID: "7b9c2d3e-0004-4f2a-8e4b-000000000004", Name: "Reload Alice Sandbox", AppID: "5a8a1b2c-0004-4c1e-9d3f-000000000004", Enabled: true},
		},
	}
}

// LoadConfig reads a YAML file over DefaultConfig: keys present in the file
// replace the defaults (a list replaces the whole default list). Unknown keys
// are an error, and so is any value Validate rejects.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("qliksim: config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("qliksim: config %s: %w", path, err)
	}
	if err := dec.Decode(&yaml.Node{}); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("qliksim: config %s: only one YAML document is allowed", path)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("qliksim: config %s: %w", path, err)
	}
	return cfg, nil
}

var (
	prefixRE = regexp.MustCompile(`^[a-z0-9._~-]*$`)
	// tokenRE is an HTTP token (RFC 7230 §3.2.6), what a cookie name must be.
	tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	guidRE  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// staticPathRE is where Qlik serves static files, in URL-safe characters.
	staticPathRE = regexp.MustCompile(`^/(resources|extensions|content)/[A-Za-z0-9._~/-]+$`)
)

// Validate reports every problem of c at once, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, kv := range []struct{ key, addr string }{{"proxy_listen", c.ProxyListen}, {"qps_listen", c.QPSListen}, {"admin_listen", c.AdminListen}} {
		if kv.addr == "" && kv.key == "admin_listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(kv.addr); err != nil {
			bad("%s: %q is not host:port (e.g. 127.0.0.1:4243)", kv.key, kv.addr)
		}
	}
	if c.ProxyIdleTimeout < 0 {
		bad("proxy_idle_timeout: %s is negative", c.ProxyIdleTimeout)
	}
	if c.RedeemConnection != "" && !slices.Contains(redeemConnValues, c.RedeemConnection) {
		bad("redeem_connection: %q must be one of %s", c.RedeemConnection, allowedList(redeemConnValues))
	}
	if c.ScriptSize < 0 {
		bad("script_size: %d is negative", c.ScriptSize)
	}
	statics := map[string]bool{}
	for i, r := range c.StaticResources {
		key := fmt.Sprintf("static_resources[%d]", i)
		switch {
		case !staticPathRE.MatchString(r.Path) || path.Clean(r.Path) != r.Path:
			bad("%s.path: %q must be a clean path under /resources/, /extensions/ or /content/", key, r.Path)
		case builtinStatic[r.Path].body != nil || statics[r.Path]:
			bad("%s.path: %q is served already", key, r.Path)
		}
		statics[r.Path] = true
		if r.Size < 0 || r.Size > MaxStaticSize {
			bad("%s.size: %d must be between 0 and %d", key, r.Size, MaxStaticSize)
		}
	}
	if len(c.VirtualProxies) == 0 {
		bad("virtual_proxies: at least one virtual proxy is required")
	}
	prefixes := map[string]bool{}
	cookies := map[string]bool{}
	for i, vp := range c.VirtualProxies {
		key := fmt.Sprintf("virtual_proxies[%d]", i)
		if !prefixRE.MatchString(vp.Prefix) {
			bad("%s.prefix: %q must be lowercase unreserved characters (a-z 0-9 . _ ~ -)", key, vp.Prefix)
		}
		if prefixes[vp.Prefix] {
			bad("%s.prefix: %q is used by another virtual proxy", key, vp.Prefix)
		}
		prefixes[vp.Prefix] = true
		if !tokenRE.MatchString(vp.SessionCookie) {
			bad("%s.session_cookie: %q is not a valid cookie name", key, vp.SessionCookie)
		}
		if cookies[vp.SessionCookie] {
			bad("%s.session_cookie: %q is used by another virtual proxy (names are unique per virtual proxy)", key, vp.SessionCookie)
		}
		cookies[vp.SessionCookie] = true
		if vp.SessionTimeout < 0 {
			bad("%s.session_timeout: %s is negative", key, vp.SessionTimeout)
		}
		if m := vp.AuthModuleRedirectURI; m != "" {
			if u, err := url.Parse(m); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("%s.authentication_module_redirect_uri: %q must be an absolute http or https URL", key, m)
			}
		}
		for j, h := range vp.HostAllowList {
			if h == "" || strings.ContainsAny(h, ":/ ") {
				bad("%s.host_allow_list[%d]: %q must be a bare host name, without scheme or port", key, j, h)
			}
		}
		for _, ss := range []struct{ k, v string }{{"same_site_https", vp.SameSiteHTTPS}, {"same_site_http", vp.SameSiteHTTP}} {
			if _, ok := sameSiteModes[strings.ToLower(ss.v)]; !ok {
				bad("%s.%s: %q must be one of \"\", None, Lax, Strict", key, ss.k, ss.v)
			}
		}
		for _, v := range []struct {
			k, v    string
			allowed []string
		}{
			{"unknown_cookie", vp.UnknownCookie, unknownCookieValues},
			{"dead_socket", vp.DeadSocket, deadSocketValues},
			{"session_cap", vp.SessionCap, sessionCapValues},
		} {
			if v.v != "" && !slices.Contains(v.allowed, v.v) {
				bad("%s.%s: %q must be one of %s", key, v.k, v.v, allowedList(v.allowed))
			}
		}
	}
	if c.UserCase != "" && !slices.Contains(userCaseValues, c.UserCase) {
		bad("user_case: %q must be one of %s", c.UserCase, allowedList(userCaseValues))
	}
	users := map[string]bool{}
	for i, u := range c.Users {
		key := fmt.Sprintf("users[%d]", i)
		if err := checkUserPart(u.Directory); err != nil {
			bad("%s.directory: %v", key, err)
		}
		if err := checkUserPart(u.ID); err != nil {
			bad("%s.id: %v", key, err)
		}
		k := caseRule(c.UserCase).key(u.Directory, u.ID)
		if users[k] {
			bad("%s: user %s\\%s is listed twice", key, u.Directory, u.ID)
		}
		users[k] = true
	}
	apps := map[string]bool{}
	for i, a := range c.Apps {
		key := fmt.Sprintf("apps[%d]", i)
		if !guidRE.MatchString(a.ID) {
			bad("%s.id: %q is not a GUID", key, a.ID)
		}
		if apps[strings.ToLower(a.ID)] {
			bad("%s.id: %q is used by another app", key, a.ID)
		}
		apps[strings.ToLower(a.ID)] = true
		if a.Name == "" {
			bad("%s.name: is empty", key)
		}
		if _, _, ok := splitUser(a.Owner); a.Owner != "" && !ok {
			bad("%s.owner: %q must be written DIRECTORY\\id", key, a.Owner)
		}
		for j, u := range a.Users {
			if _, _, ok := splitUser(u); !ok {
				bad("%s.users[%d]: %q must be written DIRECTORY\\id", key, j, u)
			}
		}
	}
	tasks := map[string]bool{}
	for i, t := range c.ReloadTasks {
		key := fmt.Sprintf("reload_tasks[%d]", i)
		if !guidRE.MatchString(t.ID) {
			bad("%s.id: %q is not a GUID", key, t.ID)
		}
		if tasks[strings.ToLower(t.ID)] {
			bad("%s.id: %q is used by another reload task", key, t.ID)
		}
		tasks[strings.ToLower(t.ID)] = true
		if !apps[strings.ToLower(t.AppID)] {
			bad("%s.app_id: %q names no app in apps", key, t.AppID)
		}
	}
	return errors.Join(errs...)
}

var sameSiteModes = map[string]int{"": 0, "none": 1, "lax": 2, "strict": 3}

// allowedList writes a variant key's values for an error message: quoted,
// the first marked as the default (which an empty value also means).
func allowedList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	q[0] += " (the default, also when empty)"
	return strings.Join(q, ", ")
}

// checkUserPart applies QPS's rules for UserDirectory and UserId: not blank
// and no backslash.
func checkUserPart(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty or whitespace")
	}
	if strings.Contains(s, `\`) {
		return errors.New(`must not contain a backslash`)
	}
	return nil
}

// splitUser splits "DIRECTORY\id".
func splitUser(s string) (dir, id string, ok bool) {
	dir, id, ok = strings.Cut(s, `\`)
	if !ok || checkUserPart(dir) != nil || checkUserPart(id) != nil {
		return "", "", false
	}
	return strings.TrimSpace(dir), strings.TrimSpace(id), true
}

// caseRule is a Config.UserCase.
type caseRule string

// key is the case-insensitive identity of a user under r: QSEoW
// upper-cases directories and compares user ids without regard to case.
func (r caseRule) key(dir, id string) string {
	dir, id = strings.TrimSpace(dir), strings.TrimSpace(id)
	if r == UserCaseASCII {
		return asciiCase(dir, 'a', 'z', -32) + `\` + asciiCase(id, 'A', 'Z', 32)
	}
	return strings.ToUpper(dir) + `\` + strings.ToLower(id)
}

// asciiCase shifts the ASCII letters from lo to hi by d, and nothing else.
func asciiCase(s string, lo, hi byte, d int) string {
	b := []byte(s)
	for i, c := range b {
		if lo <= c && c <= hi {
			b[i] = byte(int(c) + d)
		}
	}
	return string(b)
}
