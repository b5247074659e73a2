// Package proxy is sensegate's http.Handler: it identifies the user of each
// request, forwards Qlik paths to the Qlik proxy with that user's Qlik
// session cookie (HTTP through httputil.ReverseProxy, Engine websockets
// through a frame relay), forwards other configured routes to their
// upstreams, and never lets a Qlik cookie or ticket reach the browser.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// Sessions hands out users' Qlik sessions; *session.Broker is one.
type Sessions interface {
	// Ensure returns u's Qlik session, logging u in when there is none.
	Ensure(ctx context.Context, u identity.User) (session.Entry, error)
	// Invalidate drops u's session if it still holds cookie.
	Invalidate(ctx context.Context, u identity.User, cookie string) error
	// Update stores a session cookie Qlik set on a proxied response.
	Update(ctx context.Context, u identity.User, e session.Entry) error
}

// Nodes routes sessions to several Qlik proxy nodes, each holding its
// own sessions; *ticket.Nodes is one. A session's node is its
// session.Entry.Node.
type Nodes interface {
	// URL returns the proxy-side base URL of node, nil if unknown.
	URL(node string) *url.URL
	// Down marks node down after err, a failure to reach it, so that
	// logins go elsewhere for a while.
	Down(node string, err error)
}

// nodeLister is the optional ability of Nodes to list the proxy-side
// base URLs of every node; *ticket.Nodes has it. Redirects that name any
// of them are rewritten to sensegate's public URL.
type nodeLister interface {
	URLs() []*url.URL
}

// Route forwards a path prefix to another upstream, e.g. the mashup's web
// server, so the browser sees one origin.
type Route struct {
	// Path is the prefix, starting and ending with "/".
	Path string
	// Upstream is the base URL requests go to.
	Upstream *url.URL
	// StripPrefix removes Path (keeping one "/") before forwarding.
	StripPrefix bool
}

// CSRFMode selects the handling of Qlik's websocket CSRF token.
type CSRFMode string

// CSRF modes: CSRFAuto asks Qlik once per session whether it has a token.
const (
	CSRFAuto CSRFMode = "auto"
	CSRFOn   CSRFMode = "on"
	CSRFOff  CSRFMode = "off"
)

// CSRFTokener fetches the websocket CSRF token of a Qlik session;
// *ticket.Client is one. supported is false when the server has no
// websocket CSRF protection (before November 2024).
type CSRFTokener interface {
	CSRFToken(ctx context.Context, sessionCookie string) (token string, supported bool, err error)
}

// Defaults of Options, and of the qlik keys of sensegate's
// configuration, which takes them from here.
const (
	// DefaultReplayLimit is the usual Options.ReplayLimit and the default
	// of qlik.replay_limit, in bytes. A zero ReplayLimit buffers no body,
	// so callers set it.
	DefaultReplayLimit = 1 << 20
	// DefaultUpstreamTimeout bounds the wait for an upstream's response
	// headers on the transports the Handler makes itself (Transport nil,
	// Routes), and is the default of qlik.timeout.
	DefaultUpstreamTimeout  = 30 * time.Second
	DefaultWebsocketReadMax = 256 << 20
	DefaultWriteWait        = 30 * time.Second
	DefaultHandshakeTimeout = 15 * time.Second
)

// Options configure a Handler. Qlik, CookieName, Identity and Sessions are
// required.
type Options struct {
	// Qlik is the base URL of the Qlik proxy side, e.g. https://qlik:443.
	Qlik *url.URL
	// Prefix is the virtual proxy prefix ("" for the default one).
	Prefix string
	// CookieName is the virtual proxy's session cookie name.
	CookieName string
	// QlikOrigin is the Origin sent to Qlik on websocket upgrades and on
	// requests that carried one; it must match Qlik's host allow list.
	// Empty means the origin of Qlik.
	QlikOrigin string
	// Identity identifies users. Its optional abilities are found by type
	// assertion: one that exchanges bearer tokens for its login cookie
	// (identity.TokenExchanger, with the exchange on) also gets POST and
	// DELETE /.sensegate/session (exchange.go) and CORS that lets allowed
	// origins send Authorization.
	Identity identity.Provider
	// Sessions is the session broker.
	Sessions Sessions
	// Nodes, if not nil, sends each session to its node's URL instead of
	// Qlik (which serves sessions without a node), and a replayable
	// request that cannot reach the node is replayed on a new session
	// from Sessions, after Nodes.Down.
	Nodes Nodes
	// Transport carries requests to Qlik (nil: NewTransport's). When it
	// is an *http.Transport, requests without a body (GET, HEAD,
	// OPTIONS) go over connections of the Handler's own that follow its
	// settings (see h1Transport), the others through it; its TLS config
	// also serves websocket dials.
	Transport http.RoundTripper
	// Routes are the non-Qlik upstreams.
	Routes []Route
	// PublicURL is sensegate's own origin as browsers see it; websocket
	// upgrades and requests that may change state must come from it or from
	// AllowedOrigins (or carry no Origin).
	PublicURL *url.URL
	// AllowedOrigins are further origins ("scheme://host[:port]") allowed
	// to open websockets and send requests that may change state; pages
	// of them also get CORS answers with credentials on Qlik's paths and
	// sensegate's own endpoints (cors.go).
	AllowedOrigins []string
	// WebsocketReadLimit bounds one websocket message in either direction
	// (DefaultWebsocketReadMax if 0).
	WebsocketReadLimit int64
	// WebsocketPing is the interval of pings to Qlik on relayed sockets,
	// which keep load balancers from cutting idle ones (0: none).
	WebsocketPing time.Duration
	// WebsocketsPerUser bounds the Engine websockets relayed for one user
	// (by identity.User.Key) at once; an upgrade over it is refused with
	// 429 before Qlik is dialled. 0 sets no bound.
	WebsocketsPerUser int
	// WebsocketCSRF selects Qlik's websocket CSRF token handling
	// (CSRFAuto if empty); CSRF fetches the tokens.
	WebsocketCSRF CSRFMode
	CSRF          CSRFTokener
	// ReplayLimit is the largest request body, in bytes, buffered for a
	// replay after Qlik refused the session; larger bodies stream through
	// unreplayable. 0 buffers none: only requests without a body are
	// replayed. DefaultReplayLimit is the usual value. It must not be
	// negative.
	ReplayLimit int64
	// AuthModuleURL is the virtual proxy's authentication module redirect
	// URI, if any (redirects there mean the session is gone).
	AuthModuleURL string
	// Paths are the path prefixes forwarded to Qlik (the zero Paths:
	// Qlik's own, qlik.DefaultPaths).
	Paths qlik.Paths
	// PublicPaths are path prefixes of routes served without login (a
	// mashup's static assets). Qlik paths are never public.
	PublicPaths []string
	// Logger receives the logs (nil discards them).
	Logger *zap.Logger
	// Metrics receives the proxy's metrics (nil: none are kept).
	Metrics *Metrics
	// Audit receives the audit events of logouts and opened apps (nil:
	// none). Logins are the broker's: give it Audit.Login.
	Audit *Audit
	// AccessLog, when not nil, receives one entry per request, and per
	// relayed websocket when it ends (see accesslog.go). nil (the
	// default) logs none and costs nothing.
	AccessLog *zap.Logger
}

// Handler is sensegate's front handler. It is safe for concurrent use.
type Handler struct {
	opts         Options
	log          *zap.Logger
	upstream     http.RoundTripper // opts.Transport, or an h1Transport in front of it
	qlik         *qlikProxy
	ws           *relay
	routes       []*routeProxy   // longest path first
	strip        []string        // headers of the identity provider to drop
	stripCookies []string        // cookies of the identity provider to drop
	prefix       string          // "/{prefix}" or ""
	qlikHosts    []string        // hostKey of Qlik's URL and of every node's
	origins      map[string]bool // sensegate's public origin and the allowed ones, normalised
	corsOrigins  map[string]bool // the allowed ones only (cors.go)
	corsHeaders  map[string]bool // request headers preflights may ask for (corsConfig)
	corsExposed  string          // response headers exposed to allowed origins
	idPrefix     string          // random per Handler
	idSeq        atomic.Uint64   // request counter
	own          *http.ServeMux  // sensegate's own pages under ReservedPrefix
	metrics      *Metrics
	audit        *Audit
	access       *zap.Logger          // nil: no access log
	trust        identity.PeerTruster // nil: no peer is a trusted front door
	// The metrics of Qlik, sensegate's own endpoints and unrouted paths
	// (routes keep theirs).
	mQlik, mSensegate, mNone routeMetrics
}

// ReservedPrefix is the path prefix of sensegate's own endpoints (identity
// pages, /.sensegate/me); it is never forwarded.
const ReservedPrefix = "/.sensegate/"

// New checks opts and returns a Handler.
func New(opts Options) (*Handler, error) {
	var errs []error
	if opts.Qlik == nil || opts.Qlik.Host == "" {
		errs = append(errs, errors.New("proxy: Qlik URL is required"))
	}
	if opts.CookieName == "" {
		errs = append(errs, errors.New("proxy: Qlik session cookie name is required"))
	}
	if opts.Identity == nil || opts.Sessions == nil {
		errs = append(errs, errors.New("proxy: identity provider and session broker are required"))
	}
	if opts.PublicURL == nil {
		errs = append(errs, errors.New("proxy: public URL is required"))
	}
	if opts.WebsocketsPerUser < 0 {
		errs = append(errs, errors.New("proxy: websockets per user is negative (0 sets no bound)"))
	}
	if opts.ReplayLimit < 0 {
		errs = append(errs, errors.New("proxy: replay limit is negative (0 replays only requests without a body)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Transport == nil {
		opts.Transport = NewTransport(nil, DefaultUpstreamTimeout)
	}
	if opts.QlikOrigin == "" {
		opts.QlikOrigin = opts.Qlik.Scheme + "://" + opts.Qlik.Host
	}
	if opts.WebsocketReadLimit <= 0 {
		opts.WebsocketReadLimit = DefaultWebsocketReadMax
	}
	if opts.WebsocketCSRF == "" {
		opts.WebsocketCSRF = CSRFAuto
	}
	if opts.CSRF == nil {
		if opts.WebsocketCSRF == CSRFOn {
			return nil, errors.New("proxy: websocket CSRF mode on needs a CSRF token fetcher")
		}
		opts.WebsocketCSRF = CSRFOff
	}
	h := &Handler{opts: opts, log: opts.Logger, idPrefix: randomHex(4), metrics: opts.Metrics, audit: opts.Audit, access: opts.AccessLog}
	h.trust, _ = opts.Identity.(identity.PeerTruster)
	h.origins = map[string]bool{qlik.Origin(opts.PublicURL): true}
	h.corsOrigins = map[string]bool{}
	h.corsHeaders, h.corsExposed = corsConfig(opts.Identity)
	for _, a := range opts.AllowedOrigins {
		if o, ok := qlik.NormalizeOrigin(a); ok {
			h.origins[o] = true
			h.corsOrigins[o] = true
		}
	}
	h.qlikHosts = []string{hostKey(opts.Qlik.Scheme, opts.Qlik.Host)}
	if l, ok := opts.Nodes.(nodeLister); ok {
		for _, u := range l.URLs() {
			h.qlikHosts = append(h.qlikHosts, hostKey(u.Scheme, u.Host))
		}
	}
	h.mQlik = h.metrics.forRoute(routeQlik, true)
	h.mSensegate = h.metrics.forRoute(routeSensegate, false)
	h.mNone = h.metrics.forRoute(routeNone, false)
	if opts.Prefix != "" {
		h.prefix = "/" + opts.Prefix
	}
	if s, ok := opts.Identity.(identity.HeaderStripper); ok {
		// Canonical once, so that stripping each request is a map delete.
		for _, k := range s.StripHeaders() {
			h.strip = append(h.strip, http.CanonicalHeaderKey(k))
		}
	}
	if s, ok := opts.Identity.(identity.CookieStripper); ok {
		h.stripCookies = s.StripCookies()
	}
	h.own = http.NewServeMux()
	if m, ok := opts.Identity.(identity.Mounter); ok {
		m.Mount(h.own, ReservedPrefix)
	}
	h.own.HandleFunc("GET "+ReservedPrefix+"me", h.serveMe)
	h.own.HandleFunc("POST "+ReservedPrefix+"logout", h.serveLogout)
	if ex, ok := opts.Identity.(identity.TokenExchanger); ok && ex.ExchangesTokens() {
		h.own.HandleFunc("POST "+ReservedPrefix+"session", func(w http.ResponseWriter, r *http.Request) { h.serveSessionStart(w, r, ex) })
		h.own.HandleFunc("DELETE "+ReservedPrefix+"session", h.serveSessionEnd)
	}
	h.upstream = opts.Transport
	if t, ok := opts.Transport.(*http.Transport); ok {
		h.upstream = newH1Transport(t)
	}
	h.qlik = newQlikProxy(h)
	h.ws = newRelay(h)
	for _, rt := range opts.Routes {
		h.routes = append(h.routes, newRouteProxy(h, rt))
	}
	sort.SliceStable(h.routes, func(i, j int) bool { return len(h.routes[i].route.Path) > len(h.routes[j].route.Path) })
	return h, nil
}

// ServeHTTP implements http.Handler.
//
// The request id is the X-Request-Id of a trusted front door (a peer the
// identity provider trusts, see identity.PeerTruster) when it is a
// plausible id (adoptableID), else a new one. It goes back to the client
// and on to Qlik and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{}
	if v := r.Header[HeaderRequestID]; len(v) == 1 && adoptableID(v[0]) && h.trust != nil && h.trust.TrustsPeer(r) {
		st.id = v[0]
	} else {
		st.id = h.newRequestID()
	}
	st.idHdr[0] = st.id
	r = r.WithContext(withState(r.Context(), st))
	w.Header()[HeaderRequestID] = st.idHdr[:]
	if h.metrics == nil && h.access == nil {
		h.dispatch(w, r, st)
		return
	}
	if h.access != nil {
		st.start = time.Now()
	}
	st.rec.ResponseWriter = w
	defer h.finish(r, st)
	h.dispatch(&st.rec, r, st)
}

// maxRequestID bounds an adopted X-Request-Id.
const maxRequestID = 128

// adoptableID reports whether an incoming request id may be adopted: 1 to
// maxRequestID characters of [A-Za-z0-9._-], which are safe in logs and
// headers alike.
func adoptableID(id string) bool {
	if id == "" || len(id) > maxRequestID {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// finish counts a request in its route's metrics and its refusal, and
// writes its access log entry (a websocket handed to its relay writes
// its own when it ends).
func (h *Handler) finish(r *http.Request, st *reqState) {
	code := st.rec.code()
	if st.clientGone {
		code = StatusClientClosedRequest
	}
	if st.route != nil {
		st.route.request(code)
	}
	if st.refused != "" {
		h.metrics.refusedRequest(st.refused)
	}
	if h.access != nil && !st.handedOver {
		h.logAccess(r, st, code)
	}
}

// dispatch serves a request by its path: sensegate's own endpoints, Qlik,
// a route, or 404.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, st *reqState) {
	path := r.URL.Path
	if reason := suspiciousPath(r.URL); reason != "" {
		// net/http does not clean paths for a root handler: "/hub/../qmc/"
		// would match the /hub/ prefix here and mean /qmc/ upstream.
		writeError(w, r, h.log, &Error{Status: http.StatusBadRequest, Msg: "invalid request path: " + reason})
		return
	}
	if strings.HasPrefix(path, ReservedPrefix) {
		st.route = &h.mSensegate
		if h.cors(w, r) {
			return
		}
		if h.crossSiteRefused(w, r) {
			st.refused = refuseOrigin
			return
		}
		if h.limitOwnBody(w, r) {
			h.own.ServeHTTP(w, r)
		}
		return
	}
	// Clients that build Qlik URLs with the virtual proxy prefix (Qlik's
	// own capability APIs do) are served the same as without it.
	if h.prefix != "" && strings.HasPrefix(path, h.prefix+"/") {
		path = path[len(h.prefix):]
	}
	if h.opts.Paths.Match(path) {
		st.route = &h.mQlik
		if h.cors(w, r) {
			return
		}
		u, ok := h.admit(w, r, st)
		if !ok {
			return
		}
		if path == "/qps/user" && r.Method == http.MethodDelete {
			// Qlik's Personal API logout: end the user's sessions the
			// way /.sensegate/logout does, answering like Qlik.
			h.logout(w, r, u)
			w.Header().Set(headerSensegate, "1")
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Write([]byte(`{"session":"ended"}` + "\n"))
			return
		}
		if isWebsocket(r) {
			h.ws.serve(w, r, u, path)
			return
		}
		h.qlik.serve(w, r, u, path)
		return
	}
	for _, rp := range h.routes {
		if strings.HasPrefix(r.URL.Path, rp.route.Path) || r.URL.Path+"/" == rp.route.Path {
			st.route = &rp.metrics
			if h.isPublic(r.URL.Path) {
				rp.serve(w, r)
				return
			}
			if _, ok := h.admit(w, r, st); ok {
				rp.serve(w, r)
			}
			return
		}
	}
	st.route = &h.mNone
	writeError(w, r, h.log, &Error{Status: http.StatusNotFound, Msg: "no route for " + r.URL.Path})
}

// suspiciousPath says why a request path must not be routed by prefix:
// dot segments, encoded slashes or backslashes, NUL; "" when it is fine.
func suspiciousPath(u *url.URL) string {
	p := u.Path
	if p == "" || p[0] != '/' {
		return "not absolute"
	}
	if strings.Contains(p, "\x00") {
		return "NUL"
	}
	if strings.Contains(p, "\\") {
		return "backslash"
	}
	// Each segment: p[i] is a "/", the segment runs to the next one.
	for i := 0; i < len(p); {
		end := len(p)
		if j := strings.IndexByte(p[i+1:], '/'); j >= 0 {
			end = i + 1 + j
		}
		if seg := p[i+1 : end]; seg == "." || seg == ".." {
			return "dot segment"
		}
		i = end
	}
	if raw := strings.ToLower(u.RawPath); strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") {
		return "encoded slash"
	}
	return ""
}

// isPublic reports whether a (non-Qlik) path is served without login.
func (h *Handler) isPublic(path string) bool {
	for _, p := range h.opts.PublicPaths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// newRequestID returns an id unique to this process run: a random
// prefix and a counter (cheaper than fresh randomness per request), built
// in one allocation.
func (h *Handler) newRequestID() string {
	var b [32]byte
	id := append(b[:0], h.idPrefix...)
	return string(strconv.AppendUint(id, h.idSeq.Add(1), 16))
}

// admit lets a request for Qlik or a signed-in route in: refused when it
// is a cross-site write (crossSiteRefused), else identified (identify),
// its user recorded in st. false: the answer is written.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, st *reqState) (identity.User, bool) {
	if h.crossSiteRefused(w, r) {
		st.refused = refuseOrigin
		return identity.User{}, false
	}
	u, ok := h.identify(w, r)
	if ok {
		st.user, st.hasUser = u, true
	}
	return u, ok
}

// identify runs the identity provider; on failure it answers the request.
func (h *Handler) identify(w http.ResponseWriter, r *http.Request) (identity.User, bool) {
	u, err := h.opts.Identity.Identify(r)
	if err == nil {
		if st := stateFrom(r.Context()); st != nil {
			st.user, st.hasUser = u, true
		}
		return u, true
	}
	h.identityRefused(w, r, err)
	return identity.User{}, false
}

// identityRefused answers a request the identity provider refused with
// err: a browser navigation to a provider with a login page goes there,
// an *identity.Error is answered with its status, message and challenge
// (WWW-Authenticate), anything else means the provider is unavailable
// (503).
func (h *Handler) identityRefused(w http.ResponseWriter, r *http.Request, err error) {
	var ie *identity.Error
	if errors.As(err, &ie) && ie.LoginURL != "" && r.Method == http.MethodGet && wantsHTML(r) {
		// A browser navigation goes to the login page and comes back.
		if st := stateFrom(r.Context()); st != nil {
			st.refused = refuseNotSignedIn
		}
		w.Header().Set(headerSensegate, "1")
		http.Redirect(w, r, ie.LoginURL, http.StatusFound)
		return
	}
	if errors.As(err, &ie) {
		reason := refuseIdentity
		if ie.Status == http.StatusUnauthorized {
			reason = refuseNotSignedIn
		}
		if ie.Challenge != "" {
			w.Header().Set("WWW-Authenticate", ie.Challenge)
		}
		writeError(w, r, h.log, &Error{Status: ie.Status, Msg: ie.Msg, Err: err, reason: reason})
		return
	}
	writeError(w, r, h.log, &Error{Status: http.StatusServiceUnavailable, Msg: "identity provider unavailable", Err: err, RetryAfter: 5})
}

// sessionPeeker and sessionLogouter are the optional abilities of
// Sessions that /.sensegate/me and logout use; *session.Broker has both.
type (
	sessionPeeker interface {
		Peek(ctx context.Context, u identity.User) (session.Entry, bool, error)
	}
	sessionLogouter interface {
		Logout(ctx context.Context, u identity.User) (int, error)
	}
)

// serveMe answers GET /.sensegate/me with the signed-in user and the age
// of their Qlik session, as JSON.
func (h *Handler) serveMe(w http.ResponseWriter, r *http.Request) {
	u, ok := h.identify(w, r)
	if !ok {
		return
	}
	attrs := make([]map[string]string, 0, len(u.Attributes))
	for _, a := range u.Attributes {
		attrs = append(attrs, map[string]string{a.Key: a.Value})
	}
	qs := map[string]any{"active": false}
	if p, ok := h.opts.Sessions.(sessionPeeker); ok {
		if e, ok, err := p.Peek(r.Context(), u); err == nil && ok {
			qs["active"] = true
			if !e.Created.IsZero() {
				qs["ageSeconds"] = int(time.Since(e.Created).Seconds())
			}
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{"userDirectory": u.Directory, "userId": u.ID, "attributes": attrs, "qlikSession": qs})
}

// serveLogout answers POST /.sensegate/logout: the user's Qlik sessions
// end, their websockets close, sensegate's own login ends; browsers are
// sent to "/", other clients get JSON.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) {
	u, ok := h.identify(w, r)
	if !ok {
		return
	}
	n, next := h.logout(w, r, u)
	if next == "" {
		next = "/"
	}
	if wantsHTML(r) || strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(map[string]any{"loggedOut": true, "qlikSessionsEnded": n, "next": next})
}

// logout ends u's Qlik sessions through QPS, drops the jar entry, closes
// u's relayed websockets and ends the identity provider's own session,
// returning how many Qlik sessions ended and where the provider wants the
// browser to go next ("" for no preference). A QPS failure is logged: the
// rest goes on, and Qlik's sessions time out.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, u identity.User) (int, string) {
	n, closed, err := h.endQlik(r, u)
	next := ""
	if lo, ok := h.opts.Identity.(identity.Logouter); ok {
		next = lo.Logout(w, r)
	}
	h.loggedOut(r, u, "logout", n, closed, err)
	return n, next
}

// endQlik ends u's Qlik sessions through QPS, drops the jar entry and
// closes u's relayed websockets, returning how many sessions ended and
// websockets closed, and the QPS failure, if any.
func (h *Handler) endQlik(r *http.Request, u identity.User) (n, closed int, err error) {
	if lo, ok := h.opts.Sessions.(sessionLogouter); ok {
		if n, err = lo.Logout(r.Context(), u); err != nil {
			h.log.Warn("qlik logout failed", zap.String("user", u.String()), zap.String("request_id", requestID(r.Context())), zap.Error(err))
		}
	}
	closed = h.ws.closeUser(u.Key(), websocket.CloseNormalClosure, "logged out")
	return n, closed, err
}

// loggedOut logs msg about u's logout and writes its audit event.
func (h *Handler) loggedOut(r *http.Request, u identity.User, msg string, n, closed int, err error) {
	h.log.Info(msg, zap.String("user", u.String()), zap.Int("qlik_sessions", n), zap.Int("websockets", closed), zap.String("request_id", requestID(r.Context())))
	h.audit.logout(r.Context(), u, n, closed, err)
}

// Shutdown closes every relayed websocket with 1001 (going away), waiting
// up to ctx for the closes to be sent. net/http's Server.Shutdown does not
// touch hijacked connections, so call this from Server.RegisterOnShutdown
// or after it.
func (h *Handler) Shutdown(ctx context.Context) error { return h.ws.shutdown(ctx) }

// CloseIdleConnections closes the idle upstream connections of the Qlik
// and route transports (after Shutdown, so that nothing lingers).
func (h *Handler) CloseIdleConnections() {
	type idleCloser interface{ CloseIdleConnections() }
	if c, ok := h.upstream.(idleCloser); ok {
		c.CloseIdleConnections()
	}
	for _, rp := range h.routes {
		if c, ok := rp.rp.Transport.(idleCloser); ok {
			c.CloseIdleConnections()
		}
	}
}

// OpenWebsockets returns the number of relayed websockets.
func (h *Handler) OpenWebsockets() int { return h.ws.count() }

// isWebsocket reports whether r asks for a websocket upgrade. Upgrade is
// looked at first: most requests have none, so a browser's "Connection:
// keep-alive" is not even parsed.
func isWebsocket(r *http.Request) bool {
	return headerHasToken(r.Header, "Upgrade", "websocket") && headerHasToken(r.Header, "Connection", "upgrade")
}

// headerHasToken reports whether the comma-separated values of the header
// name (canonical) hold token, in any case. It runs for every request, so
// it neither canonicalises name nor splits into a slice: it allocates
// nothing.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
