package ticket

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
)

// Ping's probe user: a user no directory has, so that QPS only lists
// (no) sessions. See Client.Ping.
const (
	pingDirectory = "SENSEGATE"
	pingUserID    = "readiness-probe"
)

// Client talks to QPS and the Qlik proxy for one virtual proxy. Create it
// with New. It is safe for concurrent use and holds no per-user state.
type Client struct {
	cfg   Config
	log   *zap.Logger
	rt    *retrier     // makes the attempts of every call (retry.go)
	qps   *http.Client // QPS API: presents the client certificate
	proxy *http.Client // Qlik proxy side: no client certificate, no redirects, kept-alive connections; nil without ProxyURL
	fresh *http.Client // like proxy, but a new connection per request (Login's second redemption); nil without ProxyURL
}

// New validates cfg (naming every bad field at once), fills in defaults and
// returns a Client. log receives one entry per attempt (nil discards them);
// name it in the caller. New makes no network calls: see Ping. The Client
// keeps connections alive to QPS and to the Qlik proxy (redemptions
// included: see Redeem for why a ticket still goes out once); call
// CloseIdleConnections when done with it.
func New(cfg Config, log *zap.Logger) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	c := &Client{cfg: cfg, log: log.With(zap.String("prefix", cfg.Prefix))}
	c.rt = &retrier{
		retries: cfg.Retries,
		backoff: cfg.Backoff,
		timeout: cfg.Timeout,
		slots:   make(chan struct{}, cfg.MaxConcurrent),
		log:     c.log,
		send:    c.attempt,
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	qtr := newTransport(&tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      cfg.RootCAs,
		Certificates: []tls.Certificate{cfg.ClientCert},
	})
	c.qps = &http.Client{Transport: qtr, CheckRedirect: noRedirect}
	if cfg.ProxyURL != nil {
		proxyTLS := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
		// Redemptions reuse connections: a new one costs a TLS handshake
		// per login, most of a cold login's CPU. net/http would re-send a
		// GET on its own when a reused connection breaks before the
		// answer, and the proxy may have consumed the single-use ticket by
		// then; attempt sends redemptions in a form it does not re-send,
		// and Login handles the unknown outcome.
		// Both speak HTTP/1.1 only: what is said above of re-sending is
		// HTTP/1.1's (HTTP/2's transport has rules of its own), and one
		// request per login needs no multiplexing.
		ptr := newHTTP1Transport(proxyTLS)
		ptr.IdleConnTimeout = proxyIdleTimeout
		c.proxy = &http.Client{Transport: ptr, CheckRedirect: noRedirect}
		ftr := newHTTP1Transport(proxyTLS)
		ftr.DisableKeepAlives = true
		c.fresh = &http.Client{Transport: ftr, CheckRedirect: noRedirect}
	}
	return c, nil
}

// CloseIdleConnections closes the idle connections to QPS and the proxy
// (redemptions' included), e.g. at shutdown.
func (c *Client) CloseIdleConnections() {
	c.qps.CloseIdleConnections()
	if c.proxy != nil {
		c.proxy.CloseIdleConnections()
		c.fresh.CloseIdleConnections()
	}
}

// Login establishes a Qlik session for u and returns its session cookie,
// to be sent upstream with u's requests. In ModeTicket it calls Ticket and
// Redeem; once more with a new ticket when the first was refused at
// redemption (ErrTicketRefused: QPS restarted between the two), or when
// its redemption got no answer on a reused connection (the ticket's fate
// is unknown: never presented again; the new one goes on a new
// connection). At most one new ticket per Login. When the second try
// fails, its error is returned (its Kind is the second failure's), the
// message saying why there was one. In ModeSession it calls CreateSession
// with a fresh random id and returns {Name: SessionCookie, Value: id,
// Path: "/"}.
func (c *Client) Login(ctx context.Context, u identity.User) (*http.Cookie, error) {
	start := time.Now()
	var (
		cookie *http.Cookie
		err    error
	)
	if c.cfg.Mode == ModeSession {
		id := newSessionID()
		if err = c.CreateSession(ctx, u, id); err == nil {
			cookie = &http.Cookie{Name: c.cfg.SessionCookie, Value: id, Path: "/"}
		}
	} else {
		// A ticket is never presented twice, but a new one may be asked
		// for, once.
		var why string // why there is a second try
		fresh := false
		for try := 1; ; try++ {
			var t string
			if t, err = c.Ticket(ctx, u); err == nil {
				cookie, err = c.redeem(ctx, t, u.String(), fresh)
			}
			if err == nil || try == 2 || ctx.Err() != nil {
				break
			}
			if errors.Is(err, ErrTicketRefused) {
				// A ticket lives in QPS's memory: one issued just before
				// a restart or failover is unknown at redemption.
				why = "the first ticket was refused at redemption"
				c.log.Info("ticket refused at redemption: asking for a new one", zap.String("user", u.String()))
				continue
			}
			if !lostOnReusedConn(err) {
				break
			}
			// The pooled connection broke with no answer, e.g. closed by
			// the server (idle timeout, restart) as the request went out:
			// the proxy may have read the ticket, and consumed it, or not.
			// The new ticket goes on a new connection, which a server
			// cannot have closed already.
			why, fresh = "the first ticket's redemption got no answer on a reused connection", true
			c.log.Info("redemption got no answer on a reused connection: asking for a new ticket", zap.String("user", u.String()), zap.Error(err))
		}
		var e *Error
		if why != "" && errors.As(err, &e) {
			e.Msg += " (a second ticket: " + why + ")"
		}
	}
	if err != nil {
		return nil, err
	}
	c.log.Debug("qlik login", zap.String("user", u.String()), zap.Stringer("mode", c.cfg.Mode), zap.Duration("duration", time.Since(start)))
	return cookie, nil
}

// attribute is an identity.Attribute as QPS reads it: {"Key":"Value"}.
type attribute identity.Attribute

func (a attribute) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{a.Key: a.Value})
}

// userBody is the body of the ticket and session APIs.
type userBody struct {
	UserDirectory string      `json:"UserDirectory"`
	UserID        string      `json:"UserId"`
	Attributes    []attribute `json:"Attributes"`
	SessionID     string      `json:"SessionId,omitempty"`
}

func newUserBody(u identity.User, sessionID string) ([]byte, error) {
	b := userBody{UserDirectory: u.Directory, UserID: u.ID, Attributes: make([]attribute, len(u.Attributes)), SessionID: sessionID}
	for i, a := range u.Attributes {
		b.Attributes[i] = attribute(a)
	}
	return json.Marshal(b)
}

// checkUser validates u before a call, so a bad identity is reported here
// rather than as QPS's 400.
func (c *Client) checkUser(op string, u identity.User) *Error {
	if err := u.Validate(); err != nil {
		return &Error{Op: op, User: u.String(), Kind: ErrRejected, Msg: "invalid Qlik user", Cause: err}
	}
	return nil
}

// Ticket requests a ticket for u from QPS: POST
// {QPSURL}/qps/{prefix}/ticket with a fresh Xrfkey, u's directory, id and
// attributes. It accepts 200 and 201 and returns the non-empty Ticket of
// the answer. Network errors and 5xx are retried (an unused ticket expires
// after a minute, so a duplicate is harmless). The ticket is a credential:
// never log it.
func (c *Client) Ticket(ctx context.Context, u identity.User) (string, error) {
	if e := c.checkUser("ticket", u); e != nil {
		return "", e
	}
	body, err := newUserBody(u, "")
	if err != nil {
		return "", &Error{Op: "ticket", User: u.String(), Kind: ErrRejected, Msg: "encoding the request", Cause: err}
	}
	r := &request{op: "ticket", user: u.String(), method: http.MethodPost, url: c.qpsURL("ticket"), body: body, qps: true, retry: retryReplay}
	var t string
	err = c.rt.do(ctx, r, func(res *response) *Error {
		if res.status != http.StatusOK && res.status != http.StatusCreated {
			return c.statusError(r, res.status, res.body)
		}
		var out struct {
			Ticket string `json:"Ticket"`
		}
		// The body holds the ticket: the error may describe it, not quote it.
		if err := json.Unmarshal(res.body, &out); err != nil {
			// Not what QPS sends: an answer cut off or garbled on the way
			// (a failing node, something in between). Another attempt may
			// get a whole one; a ticket issued but lost expires unused.
			return &Error{Op: r.op, User: r.user, Kind: ErrUnavailable, Temporary: true, Status: res.status, Msg: fmt.Sprintf("QPS answered %d with a body that is not a ticket (invalid JSON)", res.status)}
		}
		if strings.TrimSpace(out.Ticket) == "" {
			return &Error{Op: r.op, User: r.user, Kind: ErrRejected, Status: res.status, Msg: "QPS answered without a Ticket"}
		}
		t = out.Ticket
		return nil
	})
	if err != nil {
		return "", err
	}
	return t, nil
}

// Redeem presents ticket to the Qlik proxy (GET
// {ProxyURL}/{prefix}{RedeemPath}?qlikTicket=…, no redirects followed) and
// returns the session cookie named SessionCookie from its answer,
// whatever the status (Qlik may redirect after a successful redemption).
// Without that cookie: a redirect (or the cookie being cleared) means the
// ticket was refused (ErrTicketRefused); a 2xx means the cookie has
// another name, which the error lists (names only, never values); a 403
// about parallel sessions is ErrTooManySessions; other 4xx and 5xx are
// ErrRejected and ErrUnavailable.
//
// A ticket is single-use and the proxy consumes it when it reads the
// request, so Redeem retries only when the request never left (dial or TLS
// handshake failures); after that, even a 5xx or a broken connection is
// final: re-sending the same ticket could only fail, and would hide the
// real error. A new Login, with a new ticket, may succeed.
//
// Redeem uses a kept-alive connection when one is idle, and sends the
// request in a form net/http's Transport never re-sends by itself (see
// attempt), so the ticket goes out at most once. A pooled connection the
// server closes as the request goes out fails without an answer: the
// error is then ErrUnreachable on a reused connection, on which Login
// asks for a new ticket. The body of the answer is read (up to 64 KiB)
// so that the connection can serve the next redemption.
func (c *Client) Redeem(ctx context.Context, ticket string) (*http.Cookie, error) {
	return c.redeem(ctx, ticket, "", false)
}

// redeem is Redeem, with the ticket's user (if known) for logs and
// errors; fresh sends it on a new connection instead of a pooled one.
func (c *Client) redeem(ctx context.Context, ticket, user string, fresh bool) (*http.Cookie, error) {
	if c.proxy == nil {
		return nil, &Error{Op: "redeem", User: user, Kind: ErrRejected, Msg: "no ProxyURL configured"}
	}
	if ticket == "" {
		return nil, &Error{Op: "redeem", User: user, Kind: ErrRejected, Msg: "empty ticket"}
	}
	u := c.vpURL(c.cfg.RedeemPath)
	u.RawQuery = "qlikTicket=" + url.QueryEscape(ticket)
	r := &request{op: "redeem", user: user, method: http.MethodGet, url: u, secret: ticket, retry: retryUnsent, fresh: fresh}
	var (
		cookie *http.Cookie
		stray  []string // values of Qlik session cookies of another name
	)
	err := c.rt.do(ctx, r, func(res *response) *Error {
		var names []string
		cleared := false
		stray = stray[:0]
		for _, k := range res.cookies {
			if k.Name == c.cfg.SessionCookie && (k.Value == "" || k.MaxAge < 0) {
				cleared = true
				continue
			}
			if k.Name == c.cfg.SessionCookie {
				cookie = &http.Cookie{
					Name: k.Name, Value: k.Value, Path: k.Path, Domain: k.Domain,
					Expires: k.Expires, MaxAge: k.MaxAge, Secure: k.Secure, HttpOnly: k.HttpOnly,
					SameSite: k.SameSite, Partitioned: k.Partitioned,
				}
				if res.status >= 300 {
					c.log.Warn("redeem path answered an error status with a session cookie", zap.String("user", user), zap.Int("status", res.status), zap.String("redeem_path", c.cfg.RedeemPath))
				}
				return nil
			}
			names = append(names, k.Name)
			if qlik.IsAnySessionCookie(k.Name, "") && k.Value != "" && k.MaxAge >= 0 {
				stray = append(stray, k.Value)
			}
		}
		return c.noCookieError(r, res, names, cleared)
	})
	if err != nil {
		// The proxy made a session under a cookie name we do not use:
		// end it, or it counts toward the user's parallel sessions
		// until it times out.
		for _, id := range stray {
			if _, eerr := c.EndSession(ctx, id); eerr != nil {
				c.log.Debug("session under another cookie name not ended", zap.String("user", user), zap.Error(eerr))
			}
		}
		return nil, err
	}
	return cookie, nil
}

// noCookieError explains a redemption answer without the session cookie.
// names are the cookies that were set; their values are never quoted.
func (c *Client) noCookieError(r *request, res *response, names []string, cleared bool) *Error {
	status := res.status
	e := &Error{Op: r.op, User: r.user, Kind: ErrRejected, Status: status}
	text := http.StatusText(status)
	switch {
	case status == http.StatusForbidden && strings.Contains(strings.ToLower(string(res.body)), qlik.TooManySessionsText):
		e.Kind = ErrTooManySessions
		e.Msg = fmt.Sprintf("the Qlik proxy refused the session (403): the user has too many sessions active in parallel (Qlik allows %d)", qlik.MaxParallelSessions)
	case status >= 300 && status < 400:
		e.Kind = ErrTicketRefused
		e.Msg = fmt.Sprintf("the Qlik proxy refused the ticket (%d %s to the login page): it expired, was used already, or was issued for another virtual proxy than %q or another Qlik node", status, text, c.cfg.Prefix)
	case status >= 500:
		e.Kind, e.Temporary = ErrUnavailable, true
		e.Msg = fmt.Sprintf("the Qlik proxy answered %d %s", status, text)
	case status >= 400:
		e.Msg = fmt.Sprintf("the Qlik proxy answered %d %s to %s: check the proxy URL, prefix %q and redeem path", status, text, r.url.Path, c.cfg.Prefix)
	case cleared:
		e.Kind = ErrTicketRefused
		e.Msg = fmt.Sprintf("the Qlik proxy answered %d clearing the session cookie %q instead of setting it: the ticket was not accepted", status, c.cfg.SessionCookie)
	case len(names) == 0:
		e.Msg = fmt.Sprintf("the Qlik proxy answered %d without setting any cookie, expected %q: is %s served by the Qlik proxy?", status, c.cfg.SessionCookie, r.where())
	default:
		names = uniq(names)
		e.Msg = fmt.Sprintf("expected session cookie %q but the Qlik proxy set %s", c.cfg.SessionCookie, quoteAll(names))
		for _, n := range names {
			if qlik.IsAnySessionCookie(n, "") {
				e.Msg += fmt.Sprintf(": the configured session cookie name does not match the virtual proxy's (Qlik appends \"-HTTP\" over plain http); configure %q", n)
				break
			}
		}
	}
	return e
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// CreateSession creates a Qlik session for u with the caller-chosen id
// through the session API (POST {QPSURL}/qps/{prefix}/session); the caller
// then sends id as the value of the SessionCookie cookie. id is a
// credential: use a long random value (Login uses 128 bits). Network
// errors and 5xx are retried with the same id; a 409 Conflict on a retry
// means the earlier attempt created the session, and counts as success.
func (c *Client) CreateSession(ctx context.Context, u identity.User, id string) error {
	if e := c.checkUser("session", u); e != nil {
		return e
	}
	if strings.TrimSpace(id) == "" {
		return &Error{Op: "session", User: u.String(), Kind: ErrRejected, Msg: "empty session id"}
	}
	body, err := newUserBody(u, id)
	if err != nil {
		return &Error{Op: "session", User: u.String(), Kind: ErrRejected, Msg: "encoding the request", Cause: err}
	}
	r := &request{op: "session", user: u.String(), method: http.MethodPost, url: c.qpsURL("session"), body: body, qps: true, retry: retryReplay, secret: id}
	err = c.rt.do(ctx, r, func(res *response) *Error {
		switch {
		case res.status == http.StatusOK || res.status == http.StatusCreated:
			return nil
		case res.status == http.StatusConflict && res.attempt > 1:
			return nil
		}
		return c.statusError(r, res.status, res.body)
	})
	return err
}

// Logout ends all of u's sessions on the virtual proxy (DELETE
// {QPSURL}/qps/{prefix}/user/{dir}/{id}); QPS closes their websockets.
// It returns how many sessions QPS reports ended (0 when its answer is
// not the documented array). Retried like Ticket.
func (c *Client) Logout(ctx context.Context, u identity.User) (int, error) {
	if e := c.checkUser("logout", u); e != nil {
		return 0, e
	}
	r := &request{op: "logout", user: u.String(), method: http.MethodDelete, url: c.qpsURL("user", u.Directory, u.ID), qps: true, retry: retryReplay}
	var n int
	err := c.rt.do(ctx, r, func(res *response) *Error {
		if res.status < 200 || res.status > 299 {
			return c.statusError(r, res.status, res.body)
		}
		var ended []json.RawMessage
		if err := json.Unmarshal(res.body, &ended); err != nil {
			c.log.Warn("logout answer is not a list of sessions", zap.String("user", r.user), zap.Int("status", res.status))
			return nil
		}
		n = len(ended)
		return nil
	})
	return n, err
}

// Ping checks that QPS is reachable for this virtual proxy with the
// configured trust, client certificate and Xrfkey handling, cheaply: it
// lists the sessions of a user no directory has (GET
// {QPSURL}/qps/{prefix}/user/SENSEGATE/readiness-probe), which changes
// nothing and succeeds with any 2xx. An unknown prefix fails (404). It
// makes one attempt (readiness probes repeat anyway) and does not touch
// the proxy side.
func (c *Client) Ping(ctx context.Context) error {
	r := &request{op: "ping", method: http.MethodGet, url: c.qpsURL("user", pingDirectory, pingUserID), qps: true, retry: attemptOnce, uncapped: true}
	err := c.rt.do(ctx, r, func(res *response) *Error {
		if res.status < 200 || res.status > 299 {
			return c.statusError(r, res.status, res.body)
		}
		return nil
	})
	return err
}

// CSRFToken fetches the websocket CSRF token of the Qlik session whose
// cookie value is sessionCookie: GET {ProxyURL}/{prefix}/qps/csrftoken
// with "Cookie: {SessionCookie}={sessionCookie}" and "Origin: {Origin}",
// no redirects followed. The token is meant for the qlik-csrf-token query
// parameter of Engine websocket upgrades, which must carry the same cookie
// and Origin. QSEoW gives the same token for the life of the session, so
// callers may keep it with the cookie.
//
// A 204 or 200 with a non-empty qlik-csrf-token header returns (token,
// true, nil). A 404 returns ("", false, nil): the server predates the
// November 2024 websocket CSRF protection (or has it off) and websockets
// need no token. A 302 to the login page, a 401, or the proxy's 500
// "Authentication error" (a cookie it does not know) is ErrSessionRefused:
// the cookie is dead and a new Login is needed. A 403 is ErrRejected: the
// host of Origin is probably not on the virtual proxy's host allow list.
// Network errors and other 5xx are retried (the call is idempotent) and
// end as ErrUnreachable, ErrTimeout or ErrUnavailable; any other answer,
// including a success without a token, is ErrRejected.
//
// The cookie and the token are credentials: they never appear in errors
// or logs.
func (c *Client) CSRFToken(ctx context.Context, sessionCookie string) (token string, supported bool, err error) {
	const op = "csrftoken"
	if c.proxy == nil {
		return "", false, &Error{Op: op, Kind: ErrRejected, Msg: "no ProxyURL configured"}
	}
	if sessionCookie == "" {
		return "", false, &Error{Op: op, Kind: ErrRejected, Msg: "empty session cookie"}
	}
	if !validCookieValue(sessionCookie) {
		// Not quoted: it is a credential, even if mangled.
		return "", false, &Error{Op: op, Kind: ErrRejected, Msg: "the session cookie value has characters a cookie value cannot hold (RFC 6265 §4.1.1)"}
	}
	r := &request{
		op: op, method: http.MethodGet, url: c.vpURL("/qps/csrftoken"),
		retry: retryReplay, secret: sessionCookie,
		header: http.Header{
			"Cookie": {c.cfg.SessionCookie + "=" + sessionCookie},
			"Origin": {c.cfg.Origin},
		},
	}
	err = c.rt.do(ctx, r, func(res *response) *Error {
		switch res.status {
		case http.StatusOK, http.StatusNoContent:
			if t := res.header.Get(qlik.CSRFTokenHeader); t != "" {
				token, supported = t, true
				return nil
			}
			return &Error{Op: r.op, Kind: ErrRejected, Status: res.status, Msg: fmt.Sprintf("the Qlik proxy answered %d without a %s header at %s: is it served by a Qlik proxy, and does nothing in between drop the header?", res.status, qlik.CSRFTokenHeader, r.url.Path)}
		case http.StatusNotFound:
			return nil
		}
		return c.csrfError(r, res)
	})
	if err != nil {
		return "", false, err
	}
	return token, supported, nil
}

// csrfError interprets an answer of the csrftoken endpoint that is not a
// token or a 404.
func (c *Client) csrfError(r *request, res *response) *Error {
	status := res.status
	text := http.StatusText(status)
	e := &Error{Op: r.op, Kind: ErrRejected, Status: status}
	loc := res.header.Get("Location")
	switch {
	case status >= 300 && status < 400 && qlik.IsLoginURL(loc):
		e.Kind = ErrSessionRefused
		e.Msg = fmt.Sprintf("the Qlik proxy sent the session to the login page (%d %s): the session ended (inactivity timeout, logout) or belongs to another virtual proxy than %s; log in again", status, text, c.vpName())
	case status == http.StatusUnauthorized:
		e.Kind = ErrSessionRefused
		e.Msg = fmt.Sprintf("the Qlik proxy refused the session cookie %q (401 Unauthorized); log in again", c.cfg.SessionCookie)
	case qlik.IsAuthError(status, res.body):
		// Not a failure of the proxy: it answers so for a cookie it does
		// not know, e.g. after a restart or a failover to another node.
		e.Kind = ErrSessionRefused
		e.Msg = "the Qlik proxy does not know the session (500 Authentication error): it forgot it in a restart or failover to another node; log in again"
	case status >= 500:
		e.Kind, e.Temporary = ErrUnavailable, true
		e.Msg = fmt.Sprintf("the Qlik proxy answered %d %s", status, text)
	case status >= 300 && status < 400:
		e.Msg = fmt.Sprintf("the Qlik proxy answered %d %s to %s, redirecting to %s instead of the login page: check the proxy URL (scheme, host, port)", status, text, r.url.Path, redactedLocation(loc))
	case status == http.StatusForbidden:
		e.Msg = fmt.Sprintf("the Qlik proxy refused the websocket CSRF token for origin %q (403 Forbidden): the host %q is probably not on the host allow list of %s: add it to that list in the QMC, or set qlik.origin to an origin whose host is on it", c.cfg.Origin, originHost(c.cfg.Origin), c.vpName())
	case status == http.StatusBadRequest:
		e.Msg = fmt.Sprintf("the Qlik proxy answered 400 Bad Request to %s: check the prefix %q, and that the virtual proxy is linked to this proxy (and to the central node's proxy)", r.url.Path, c.cfg.Prefix)
	default:
		e.Msg = fmt.Sprintf("the Qlik proxy answered unexpected status %d %s to %s", status, text, r.url.Path)
	}
	return e
}

// redactedLocation is a redirect target for messages: without its query,
// which may carry anything.
func redactedLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "an unparsable Location"
	}
	u.RawQuery, u.ForceQuery, u.Fragment = "", false, ""
	return fmt.Sprintf("%q", u.Redacted())
}

// originHost is the host of a normalised origin.
func originHost(origin string) string {
	if u, err := url.Parse(origin); err == nil {
		return u.Hostname()
	}
	return origin
}

// vpName names the virtual proxy for messages.
func (c *Client) vpName() string {
	if c.cfg.Prefix == "" {
		return "the default virtual proxy"
	}
	return fmt.Sprintf("virtual proxy %q", c.cfg.Prefix)
}

// validCookieValue reports whether v is a cookie-value of RFC 6265
// §4.1.1 (without the optional quotes), so that it can go into a Cookie
// header verbatim. net/http's own sanitising would log the bad bytes.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == ',' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// EndSession ends the Qlik session with the given id (DELETE
// {QPSURL}/qps/{prefix}/session/{id}, the id path-escaped); QPS closes its
// websockets. It reports true when QPS ended it and false, with a nil
// error, when QPS does not know it (404: it ended already, or a retry
// follows an attempt whose answer was lost). Either way the session no
// longer exists. Retried like Ticket. The id is the session cookie value,
// a credential: errors and logs say "session" only.
func (c *Client) EndSession(ctx context.Context, id string) (bool, error) {
	const op = "endsession"
	if strings.TrimSpace(id) == "" {
		return false, &Error{Op: op, Kind: ErrRejected, Msg: "empty session id"}
	}
	r := &request{op: op, method: http.MethodDelete, url: c.qpsURL("session", id), qps: true, retry: retryReplay, secret: id}
	var ended bool
	err := c.rt.do(ctx, r, func(res *response) *Error {
		switch {
		case res.status >= 200 && res.status <= 299:
			ended = true
			return nil
		case res.status == http.StatusNotFound:
			if !strings.Contains(string(res.body), noSessionText) {
				// QPS's 404 for an unknown session names it; one that
				// does not may be a wrong prefix or URL. Ping tells.
				c.log.Warn("end session: qps answered 404 without naming the session", zap.Int("status", res.status), zap.Int("attempt", res.attempt))
			}
			return nil
		}
		return c.statusError(r, res.status, res.body)
	})
	if err != nil {
		return false, err
	}
	return ended, nil
}

// qpsURL is {QPSURL}/qps/{prefix}/{segs...} with each segment
// path-escaped ("/" too), and "." and ".." escaped so they stay segments.
func (c *Client) qpsURL(segs ...string) *url.URL {
	parts := []string{"qps"}
	if c.cfg.Prefix != "" {
		parts = append(parts, c.cfg.Prefix)
	}
	parts = append(parts, segs...)
	return joinPath(c.cfg.QPSURL, parts...)
}

// vpURL is {ProxyURL}/{prefix}{path}.
func (c *Client) vpURL(path string) *url.URL {
	u := *c.cfg.ProxyURL
	p := strings.TrimSuffix(u.Path, "/")
	if c.cfg.Prefix != "" {
		p += "/" + c.cfg.Prefix
	}
	u.Path, u.RawPath = p+path, ""
	return &u
}

func joinPath(base *url.URL, segs ...string) *url.URL {
	u := *base
	u.RawQuery, u.Fragment = "", ""
	path := strings.TrimSuffix(u.Path, "/")
	raw := strings.TrimSuffix(u.EscapedPath(), "/")
	for _, s := range segs {
		path += "/" + s
		e := url.PathEscape(s)
		if s == "." || s == ".." {
			e = strings.Repeat("%2E", len(s))
		}
		raw += "/" + e
	}
	u.Path, u.RawPath = path, raw
	return &u
}

// newSessionID returns 128 random bits in hex.
func newSessionID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
