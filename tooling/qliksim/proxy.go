package qliksim

import (
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"
)

// Texts QSEoW answers with (observed on live servers, see the protocol notes).
const (
	msgAuthError       = "Authentication error: Restart the browser."
	msgHeaderIncorrect = "The http request header is incorrect"
	msgNoTargetID      = "Virtual proxy not possible to determine, since neither TargetId nor Virtual Proxy were specified"
	msgXSRF            = "XSRF prevention check failed. Possible XSRF discovered."
)

// proxyRequest is a request on the proxy side after virtual proxy selection
// and authentication.
type proxyRequest struct {
	vp *vproxy
	// path is the request path without the virtual proxy prefix, e.g.
	// "/app/engineData".
	path string
	// sess is the request's live session, nil when unauthenticated.
	sess *session
	// setCookie is the session cookie to send when this request redeemed a
	// ticket (it must also go on a websocket's 101 response).
	setCookie *http.Cookie
	// unknownCookie is set when the request carried a session cookie QPS
	// has never seen (or forgot in a restart).
	unknownCookie bool
	// deadCookie is set when the request carried a session cookie that
	// names no live session: unknown, or ended (timed out, logged out).
	deadCookie bool
	// variant is the §4b variant the answer played (Event.Variant).
	variant string
	// conn is the number of the request's connection and connRequest
	// the request's place on it (Event.Conn, Event.ConnRequest).
	conn, connRequest int64
}

// user returns the session user, or the zero Identity.
func (pr *proxyRequest) user() Identity {
	if pr.sess == nil {
		return Identity{}
	}
	return pr.sess.user
}

func (pr *proxyRequest) userString() string {
	if pr.sess == nil {
		return ""
	}
	return pr.sess.user.String()
}

func (s *Sim) proxyHandler() http.Handler { return http.HandlerFunc(s.serveProxy) }

func (s *Sim) serveProxy(w http.ResponseWriter, r *http.Request) {
	vp, rest, ok := s.vpFor(r.URL.Path)
	if !ok {
		// No virtual proxy has this prefix and there is no default one.
		http.Error(w, msgHeaderIncorrect, http.StatusBadRequest)
		return
	}
	pr := &proxyRequest{vp: vp, path: rest}
	pr.conn, pr.connRequest = connRequest(r)
	if t := ticketParam(r.URL.Query()); t != "" && r.Method == http.MethodGet && !websocket.IsWebSocketUpgrade(r) {
		if !s.redemptionConn(w, r, pr, t) {
			panic(http.ErrAbortHandler) // net/http closes the connection without an answer
		}
	}
	if strings.HasPrefix(rest, "/internal_forms_authentication") {
		s.serveFormsLogin(w, r, pr)
		return
	}
	if err := s.authenticate(r, pr); err != nil {
		s.recordHTTP(r, pr, http.StatusForbidden)
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	if websocket.IsWebSocketUpgrade(r) && strings.HasPrefix(rest, "/app/") {
		s.serveEngine(w, r, pr)
		return
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() { s.recordHTTP(r, pr, sw.status) }()
	if pr.setCookie != nil {
		http.SetCookie(sw, pr.setCookie)
	}
	if rest == "/qps/user" {
		s.servePersonal(sw, r, pr)
		return
	}
	if pr.sess == nil {
		if pr.unknownCookie {
			s.answerUnknownCookie(sw, r, pr)
			return
		}
		s.redirectToLogin(sw, r, vp)
		return
	}
	switch {
	case rest == "/qps/csrftoken":
		s.serveCSRFToken(sw, r, pr)
	case strings.HasPrefix(rest, "/qrs/"):
		s.serveQRS(sw, r, pr)
	case strings.HasPrefix(rest, "/tempcontent/"):
		s.serveTempContent(sw, r, pr)
	default:
		s.serveStatic(sw, r, pr)
	}
}

// authenticate redeems a ticket or resolves the session cookie of r. The
// only error is a login refused by the parallel-session cap.
func (s *Sim) authenticate(r *http.Request, pr *proxyRequest) error {
	vp := pr.vp
	if t := ticketParam(r.URL.Query()); t != "" && r.Method == http.MethodGet {
		// Only a GET may redeem a ticket; a ticket on another method is
		// ignored and the request proceeds as unauthenticated.
		if rec, ok := s.st.redeemTicket(vp, t); ok {
			sess, err := s.st.createSession(vp, rec.user, rec.attrs, "")
			if err != nil {
				return err
			}
			pr.sess = sess
			pr.setCookie = s.sessionCookie(vp, sess.id)
			return nil
		}
		// An invalid, used or expired ticket: the request goes on as if it
		// had none, so without a session it is sent to the login module [D16].
	}
	c, err := r.Cookie(vp.cookieName)
	if err != nil || c.Value == "" {
		return nil
	}
	sess, st := s.st.lookup(vp, c.Value, true)
	switch st {
	case sessionLive:
		pr.sess = sess
	case sessionUnknown:
		pr.unknownCookie, pr.deadCookie = true, true
	case sessionEnded:
		pr.deadCookie = true
	}
	return nil
}

// answerUnknownCookie answers an HTTP request whose session cookie QPS
// does not know (after a restart, or a failover to another node) as
// vp.UnknownCookie says. The observed answer is a 500, not a login
// redirect [G14b]; it is also described as an error page [M1], and most
// reports see the redirect (protocol notes §4b).
func (s *Sim) answerUnknownCookie(w http.ResponseWriter, r *http.Request, pr *proxyRequest) {
	pr.variant = "unknown-cookie=" + pr.vp.UnknownCookie
	switch pr.vp.UnknownCookie {
	case UnknownCookie500HTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, authErrorPage)
	case UnknownCookie302:
		s.redirectToLogin(w, r, pr.vp)
	default:
		http.Error(w, msgAuthError, http.StatusInternalServerError)
	}
}

// authErrorPage is the UnknownCookie500HTML body: an error page whose
// sentence msgAuthError comes after a few hundred bytes of head and styles,
// so that a client must search the body rather than compare it. [M1]
// reports an error page with this sentence; the markup is the simulator's.
const authErrorPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Qlik Sense</title>
<style>
html, body { margin: 0; padding: 0; height: 100%; background-color: #f2f2f2; }
body { font-family: "Source Sans Pro", "Helvetica Neue", Arial, sans-serif; font-size: 14px; color: #404040; }
.qs-error { position: absolute; top: 30%; left: 50%; width: 480px; margin-left: -240px; padding: 24px 32px;
  background: #fff; border: 1px solid #d9d9d9; border-radius: 3px; box-shadow: 0 2px 6px rgba(0, 0, 0, 0.15); }
.qs-error h1 { margin: 0 0 12px; font-size: 20px; font-weight: normal; color: #595959; }
.qs-error p { margin: 0; line-height: 20px; }
</style>
</head>
<body>
<div class="qs-error">
<h1>Error</h1>
<p>` + msgAuthError + `</p>
</div>
</body>
</html>
`

// ticketParam returns the qlikTicket (or QlikTicket) query parameter. Only
// these two spellings are honoured; both appear in working clients.
func ticketParam(q url.Values) string {
	if t := q.Get("qlikTicket"); t != "" {
		return t
	}
	return q.Get("QlikTicket")
}

// sessionCookie is the Set-Cookie a virtual proxy sends for a new session:
// Path=/, HttpOnly, Secure and SameSite as configured per scheme, Domain
// only when a session cookie domain is set.
func (s *Sim) sessionCookie(vp *vproxy, id string) *http.Cookie {
	return &http.Cookie{
		Name: vp.cookieName, Value: id, Path: "/", HttpOnly: true,
		Secure: vp.secure, SameSite: vp.sameSite, Domain: vp.SessionCookieDomain,
	}
}

// scheme is the proxy side's URL scheme.
func (s *Sim) scheme() string {
	if s.cfg.ProxyHTTP {
		return "http"
	}
	return "https"
}

// vpBase is the absolute base URL of vp as the client addressed it, without
// a trailing slash.
func (s *Sim) vpBase(r *http.Request, vp *vproxy) string {
	base := s.scheme() + "://" + r.Host
	if vp.Prefix != "" {
		base += "/" + vp.Prefix
	}
	return base
}

// requestURI is the absolute URL of r without ticket parameters.
func (s *Sim) requestURI(r *http.Request) string {
	u := *r.URL
	q := u.Query()
	if q.Has("qlikTicket") || q.Has("QlikTicket") {
		q.Del("qlikTicket")
		q.Del("QlikTicket")
		u.RawQuery = q.Encode()
	}
	return s.scheme() + "://" + r.Host + u.RequestURI()
}

// loginURL returns where an unauthenticated request for targetURI goes: the
// external authentication module with proxyRestUri and targetId, or the
// internal forms login with targetId.
func (s *Sim) loginURL(r *http.Request, vp *vproxy, targetURI string) string {
	id := s.st.addTarget(vp, targetURI)
	if vp.AuthModuleRedirectURI == "" {
		return s.vpBase(r, vp) + "/internal_forms_authentication/?targetId=" + id
	}
	rest := s.QPSURL() + "/qps/"
	if vp.Prefix != "" {
		rest += vp.Prefix + "/"
	}
	sep := "?"
	if strings.Contains(vp.AuthModuleRedirectURI, "?") {
		sep = "&"
	}
	// QPS writes the escapes in lower case: proxyRestUri=https%3a%2f%2f…
	return vp.AuthModuleRedirectURI + sep + "proxyRestUri=" + lowerEscape(rest) + "&targetId=" + id
}

// redirectToLogin answers an unauthenticated request (browser, REST and QRS
// alike) with a 302 to the login module.
func (s *Sim) redirectToLogin(w http.ResponseWriter, r *http.Request, vp *vproxy) {
	http.Redirect(w, r, s.loginURL(r, vp, s.requestURI(r)), http.StatusFound)
}

// lowerEscape query-escapes v with lower-case hex digits, as QPS does.
func lowerEscape(v string) string {
	e := []byte(url.QueryEscape(v))
	for i := 0; i+2 < len(e); i++ {
		if e[i] == '%' {
			e[i+1] = lowerHex(e[i+1])
			e[i+2] = lowerHex(e[i+2])
		}
	}
	return string(e)
}

func lowerHex(c byte) byte {
	if c >= 'A' && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// servePersonal implements the Personal API at /{prefix}/qps/user.
func (s *Sim) servePersonal(w http.ResponseWriter, r *http.Request, pr *proxyRequest) {
	switch r.Method {
	case http.MethodGet:
		if pr.sess == nil {
			resp := map[string]string{"session": "inactive"}
			if t := r.URL.Query().Get("targetUri"); t != "" && s.validTargetURI(r, pr.vp, t) {
				resp["loginUri"] = s.loginURL(r, pr.vp, t)
			}
			writeJSON(w, http.StatusOK, resp)
			return
		}
		u := pr.sess.user
		writeJSON(w, http.StatusOK, map[string]string{
			"userDirectory": u.Directory, "userId": u.ID, "userName": s.userName(u),
			"logoutUri": s.vpBase(r, pr.vp) + "/qps/user",
		})
	case http.MethodDelete:
		if pr.sess == nil {
			writeJSON(w, http.StatusOK, map[string]string{"session": "inactive"})
			return
		}
		// Logging out ends the user's sessions on this virtual proxy; their
		// websockets get OnSessionLoggedOut. The response does not expire
		// the cookie (open question 10: the stricter choice).
		s.st.endUser(pr.vp, pr.sess.user, endLogout)
		writeJSON(w, http.StatusOK, map[string]string{"session": "ended"})
	default:
		w.Header().Set("Allow", "GET, DELETE")
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
	}
}

// validTargetURI reports whether a targetUri names the proxy itself or a
// host on the allow list.
func (s *Sim) validTargetURI(r *http.Request, vp *vproxy, target string) bool {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return vp.allowsHost(u.Hostname()) || strings.EqualFold(u.Hostname(), hostOnly(r.Host))
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// originHost returns the host of the request's Origin header, or of its
// Host header when there is no Origin.
func originHost(r *http.Request) (string, bool) {
	o := r.Header.Get("Origin")
	if o == "" {
		return hostOnly(r.Host), false
	}
	u, err := url.Parse(o)
	if err != nil {
		return "", true
	}
	return u.Hostname(), true
}

// serveCSRFToken implements GET /{prefix}/qps/csrftoken. Virtual proxies
// without websocket CSRF protection answer 404, as servers before
// November 2024 do.
func (s *Sim) serveCSRFToken(w http.ResponseWriter, r *http.Request, pr *proxyRequest) {
	if !pr.vp.csrf {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h, _ := originHost(r); !pr.vp.allowsHost(h) {
		http.Error(w, "Forbidden: host not in the host allow list", http.StatusForbidden)
		return
	}
	tok, ok := s.st.csrfToken(pr.sess.id)
	if !ok {
		s.redirectToLogin(w, r, pr.vp)
		return
	}
	w.Header().Set("qlik-csrf-token", tok)
	w.WriteHeader(http.StatusNoContent)
}

// serveFormsLogin is the internal forms authentication module: a login page
// on GET, and on POST a login of a seeded user (any non-empty password)
// that creates a session and redirects to the target.
func (s *Sim) serveFormsLogin(w http.ResponseWriter, r *http.Request, pr *proxyRequest) {
	targetID := r.URL.Query().Get("targetId")
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, formsPage, html.EscapeString(targetID), "")
	case http.MethodPost:
		if targetID == "" {
			targetID = r.PostFormValue("targetId")
		}
		t, ok := s.st.target(targetID)
		if targetID == "" || !ok || t.vp != pr.vp {
			http.Error(w, msgNoTargetID, http.StatusBadRequest)
			return
		}
		d, id, ok := splitUser(r.PostFormValue("username"))
		u := Identity{Directory: d, ID: id}.normalized()
		if _, seeded := s.user(u); !ok || !seeded || r.PostFormValue("pwd") == "" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, formsPage, html.EscapeString(targetID), "Incorrect user name or password")
			return
		}
		sess, err := s.st.createSession(pr.vp, u, nil, "")
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		http.SetCookie(w, s.sessionCookie(pr.vp, sess.id))
		http.Redirect(w, r, t.uri, http.StatusFound)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
	}
}

const formsPage = `<!doctype html><title>Qlik Sense login</title>
<form method="post" action="?targetId=%[1]s"><p>%[2]s</p>
<label>User name <input name="username" placeholder="DOMAIN\user"></label>
<label>Password <input name="pwd" type="password"></label>
<button>Log in</button></form>
`

func (s *Sim) recordHTTP(r *http.Request, pr *proxyRequest, status int) {
	e := Event{Kind: "http", Prefix: pr.vp.Prefix, Method: r.Method, Path: r.URL.Path, User: pr.userString(), Status: status, Tag: r.Header.Get("X-Sim-Tag"), Variant: pr.variant, Conn: pr.conn, ConnRequest: pr.connRequest}
	if pr.sess != nil {
		e.SessionID = pr.sess.id
	}
	s.record(e)
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
