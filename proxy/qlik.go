package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// qlikProxy forwards HTTP requests (REST, QRS, static resources) to Qlik.
type qlikProxy struct {
	h  *Handler
	rp *httputil.ReverseProxy
}

func newQlikProxy(h *Handler) *qlikProxy {
	q := &qlikProxy{h: h}
	q.rp = &httputil.ReverseProxy{
		Rewrite:        q.rewrite,
		Transport:      &sessionTransport{h: h, next: h.mQlik.transport(h.upstream)},
		ModifyResponse: q.modifyResponse,
		ErrorHandler:   q.errorHandler,
		BufferPool:     newBufferPool(),
		ErrorLog:       zap.NewStdLog(h.log.Named("qlik")),
	}
	return q
}

func (q *qlikProxy) serve(w http.ResponseWriter, r *http.Request, u identity.User, path string) {
	var a *attempt
	if st := stateFrom(r.Context()); st != nil {
		a = &st.first
		a.n, a.replayable = 1, true
	} else {
		a = &attempt{n: 1, replayable: true}
	}
	if r.Body != nil && r.Body != http.NoBody {
		if err := q.bufferBody(r, a); err != nil {
			writeError(w, r, q.h.log, &Error{Status: http.StatusBadRequest, Msg: "could not read the request body", Err: err})
			return
		}
	}
	e, err := q.h.opts.Sessions.Ensure(r.Context(), u)
	if err != nil {
		writeError(w, r, q.h.log, loginError(err))
		return
	}
	a.entry = e
	if stateFrom(r.Context()) == nil {
		r = r.WithContext(withAttempt(r.Context(), a))
	}
	q.rp.ServeHTTP(w, r)
}

// bufferBody reads a body of up to the replay limit into a.body so that
// the request can be replayed; a larger one is put back together and
// streams through, unreplayable.
func (q *qlikProxy) bufferBody(r *http.Request, a *attempt) error {
	limit := q.h.opts.ReplayLimit
	if r.ContentLength > limit {
		a.replayable = false
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(buf)) > limit {
		a.replayable = false
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	r.Body.Close()
	a.body = buf
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.ContentLength = int64(len(buf))
	return nil
}

// rewrite turns the client's request into Qlik's: the Qlik URL under the
// virtual proxy prefix, the user's Qlik cookie and nothing the client
// could use to act as someone else.
func (q *qlikProxy) rewrite(pr *httputil.ProxyRequest) {
	h := q.h
	out := pr.Out
	a, ok := attemptFrom(out.Context())
	base := h.opts.Qlik
	if ok {
		base = h.qlikBase(a.entry)
	}
	setQlikURL(out.URL, base, h.prefix, pr.In.URL)
	out.Host = ""
	stripTicketParams(out.URL)
	stripClientCredentials(out.Header, h.strip)
	if o := out.Header["Origin"]; len(o) == 1 && o[0] != "" && h.originAllowed(o[0]) {
		// Qlik's host allow list knows qlik.origin, not sensegate's
		// public origins. A foreign Origin (only safe methods get here
		// with one: crossSiteRefused) goes on as it is, for Qlik to judge:
		// turned into qlik.origin it could not refuse it.
		out.Header.Set("Origin", h.opts.QlikOrigin)
	}
	if out.Method == http.MethodGet && strings.HasSuffix(out.URL.Path, "/qps/user") {
		// modifyResponse reads the Personal API's answer: have it plain.
		delete(out.Header, "Accept-Encoding")
	}
	if ok {
		a.cookieHdr[0] = h.opts.CookieName + "=" + a.entry.Cookie
		out.Header["Cookie"] = a.cookieHdr[:]
	}
	setRequestID(out)
}

// setRequestID sends the request's id upstream in place of any the client
// sent (an adopted one is the request's id already).
func setRequestID(out *http.Request) {
	if st := stateFrom(out.Context()); st != nil {
		out.Header[HeaderRequestID] = st.idHdr[:]
	} else {
		delete(out.Header, HeaderRequestID)
	}
}

// qlikBase returns the base URL of the Qlik node holding session e.
func (h *Handler) qlikBase(e session.Entry) *url.URL {
	if h.opts.Nodes != nil && e.Node != "" {
		if u := h.opts.Nodes.URL(e.Node); u != nil {
			return u
		}
	}
	return h.opts.Qlik
}

// isNodeDown reports whether err, from forwarding or dialling, says the
// Qlik node could not be reached: the connection was refused, reset or
// closed before an answer, or the dial timed out. A timeout waiting for a
// slow answer is not: the node is alive and the request may have run.
func isNodeDown(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// setQlikURL points dst at qlik's base URL, under prefix, with in's path
// (without the prefix when the client used it) and query.
func setQlikURL(dst, qlik *url.URL, prefix string, in *url.URL) {
	path, raw := in.Path, in.EscapedPath()
	if prefix != "" && strings.HasPrefix(path, prefix+"/") {
		path = path[len(prefix):]
		if strings.HasPrefix(raw, prefix+"/") {
			raw = raw[len(prefix):]
		}
	}
	base := strings.TrimSuffix(qlik.Path, "/") + prefix
	dst.Scheme, dst.Host = qlik.Scheme, qlik.Host
	dst.Path = base + path
	dst.RawPath = ""
	if raw != path {
		dst.RawPath = strings.TrimSuffix(qlik.EscapedPath(), "/") + prefix + raw
	}
	dst.RawQuery = in.RawQuery
}

// stripTicketParams removes qlikTicket parameters in any spelling, so a
// client cannot log in to Qlik as someone else through sensegate. The
// rest of the query reaches Qlik byte for byte (see removeParams).
func stripTicketParams(u *url.URL) { stripParam(u, qlik.TicketParam) }

// stripParam removes the parameters named name (lower case) in any
// spelling, leaving the rest of the query as it was (removeParams). Names
// may be percent-encoded (qlik%54icket): only a query with neither the
// name nor any escape can skip the decoding.
func stripParam(u *url.URL, name string) {
	if strings.Contains(strings.ToLower(u.RawQuery), name) || strings.Contains(u.RawQuery, "%") {
		u.RawQuery = removeParams(u.RawQuery, name)
	}
}

// removeParams returns the raw query q without the parameters whose
// name, decoded, is name in any case. Everything else is kept as it was
// sent, byte for byte and in order: Qlik reads its own queries (QRS
// filters such as filter=name eq 'a;b', escapes it may compare), and a
// decode and re-encode would change them (url.Values drops pairs with
// a ";", sorts, and re-escapes). Only "&" separates parameters, as in
// Qlik's (.NET) query parsing. A name that does not decode (a bad
// escape) is decoded leniently, its good escapes only, which is how
// .NET reads it.
func removeParams(q, name string) string {
	var kept []string
	dropped := false
	for pair := range strings.SplitSeq(q, "&") {
		key, _, _ := strings.Cut(pair, "=")
		if strings.EqualFold(lenientUnescape(key), name) {
			dropped = true
			continue
		}
		kept = append(kept, pair)
	}
	if !dropped {
		return q
	}
	return strings.Join(kept, "&")
}

// lenientUnescape decodes a query component: "+" is a space and each
// valid %XX escape its byte; an invalid escape stays as it is.
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if v, err := url.QueryUnescape(s); err == nil {
		return v
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// stripClientCredentials deletes what a client could use to choose its Qlik
// identity: all its cookies (Qlik session cookies, sensegate's own),
// Authorization, X-Qlik-* headers but the Xrfkey (QRS's CSRF check needs
// it), and the identity provider's headers.
func stripClientCredentials(hdr http.Header, extra []string) {
	// The names are canonical already: delete skips Del's re-canonicalising.
	delete(hdr, "Cookie")
	delete(hdr, "Authorization")
	delete(hdr, "Proxy-Authorization")
	for k := range hdr {
		if len(k) > 7 && strings.EqualFold(k[:7], "X-Qlik-") && !strings.EqualFold(k, "X-Qlik-Xrfkey") {
			delete(hdr, k)
		}
	}
	for _, k := range extra {
		delete(hdr, k) // extra is canonical (New)
	}
}

// isQlikCookie reports whether a cookie name is a Qlik session cookie:
// the virtual proxy's, over HTTP or HTTPS, in any case, or any other
// virtual proxy's default one. None reaches a browser or a route.
func (h *Handler) isQlikCookie(name string) bool {
	return qlik.IsAnySessionCookie(name, h.opts.CookieName)
}

// modifyResponse keeps Qlik's session cookies out of the browser (a new
// one of the user's session updates the jar) and points redirects at
// sensegate. It sees only the answer of the last attempt: answers that
// say the session is gone were dealt with by sessionTransport.
func (q *qlikProxy) modifyResponse(resp *http.Response) error {
	h := q.h
	req := resp.Request
	// The header marks sensegate's own answers: Qlik's never carry it.
	delete(resp.Header, headerSensegate)
	stripCORS(resp.Header)
	if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
		keep := sc[:0:0]
		for _, line := range sc {
			c, err := http.ParseSetCookie(line)
			if err != nil || !h.isQlikCookie(c.Name) {
				keep = append(keep, line)
				continue
			}
			if strings.EqualFold(c.Name, h.opts.CookieName) && c.Value != "" && c.MaxAge >= 0 {
				q.storeCookie(req, c.Value)
			}
		}
		resp.Header["Set-Cookie"] = keep
		if len(keep) == 0 {
			resp.Header.Del("Set-Cookie")
		}
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		resp.Header.Set("Location", h.publicLocation(req.URL, loc))
	}
	return nil
}

// personalPeekSize bounds how much of a Personal API answer is read to
// see whether it reports no session: the answer is a small JSON object.
const personalPeekSize = 4 << 10

// isPersonalAPI reports whether req, as sent to Qlik, is for the Personal
// API, GET /{prefix}/qps/user.
func (h *Handler) isPersonalAPI(req *http.Request) bool {
	const p = "/qps/user"
	path := req.URL.Path
	if !strings.HasSuffix(path, p) {
		return false
	}
	base := h.opts.Qlik
	if a, ok := attemptFrom(req.Context()); ok {
		base = h.qlikBase(a.entry)
	}
	return path == strings.TrimSuffix(base.Path, "/")+h.prefix+p
}

// isInactiveSession reports whether a Personal API answer with header
// hdr and body b says that the request had no session:
// {"session":"inactive"}, perhaps with a loginUri.
func isInactiveSession(hdr http.Header, b []byte) bool {
	if ce := hdr.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return false // rewrite asks for none; a body we cannot read is passed on
	}
	var v struct {
		Session string `json:"session"`
		UserID  string `json:"userId"`
	}
	return json.Unmarshal(b, &v) == nil && v.Session == "inactive" && v.UserID == ""
}

// storeCookie records a session cookie Qlik set on a proxied response.
func (q *qlikProxy) storeCookie(req *http.Request, value string) {
	u, ok := userFrom(req.Context())
	if !ok {
		return
	}
	a, ok := attemptFrom(req.Context())
	if ok && a.entry.Cookie == value {
		return
	}
	e := session.Entry{Cookie: value, Created: time.Now()}
	if ok {
		// The cookie is the node's that answered.
		e.Node = a.entry.Node
	}
	if err := q.h.opts.Sessions.Update(req.Context(), u, e); err != nil {
		q.h.log.Warn("jar update failed", zap.String("user", u.String()), zap.String("request_id", requestID(req.Context())), zap.Error(err))
	}
}

// isQlikHost reports whether u names Qlik (qlik.url) or one of its nodes.
func (h *Handler) isQlikHost(u *url.URL) bool {
	k := hostKey(u.Scheme, u.Host)
	for _, q := range h.qlikHosts {
		if q == k {
			return true
		}
	}
	return false
}

// hostKey is host (host[:port]) lower-cased and without the default port
// of scheme, so that https://qlik and https://QLIK:443 are one host.
func hostKey(scheme, host string) string {
	host = strings.ToLower(host)
	switch strings.ToLower(scheme) {
	case "https", "wss":
		return strings.TrimSuffix(host, ":443")
	case "http", "ws":
		return strings.TrimSuffix(host, ":80")
	}
	return host
}

// publicLocation rewrites a Location that points at Qlik into one on
// sensegate's public URL, without the virtual proxy prefix.
func (h *Handler) publicLocation(reqURL *url.URL, loc string) string {
	u, err := reqURL.Parse(loc)
	// The answer may name the node that gave it (reqURL's host) or any
	// other Qlik node: each is rewritten, none may leak to the browser.
	if err != nil || !h.isQlikHost(u) && hostKey(u.Scheme, u.Host) != hostKey(reqURL.Scheme, reqURL.Host) {
		return loc
	}
	pub := *h.opts.PublicURL
	path := u.Path
	if h.prefix != "" && strings.HasPrefix(path, h.prefix+"/") {
		path = path[len(h.prefix):]
	}
	pub.Path = strings.TrimSuffix(pub.Path, "/") + path
	pub.RawPath = ""
	pub.RawQuery = u.RawQuery
	pub.Fragment = u.Fragment
	stripTicketParams(&pub)
	return pub.String()
}

func (q *qlikProxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if errors.As(err, &e) {
		// The recovery policy's answer (sessionTransport).
		writeError(w, r, q.h.log, e)
		return
	}
	writeError(w, r, q.h.log, upstreamError("Qlik did not answer", err))
}

// peekBody returns up to n first bytes of resp's body and puts them back,
// so the body still reads whole.
func peekBody(resp *http.Response, n int) ([]byte, bool) {
	buf := make([]byte, n)
	m, err := io.ReadFull(resp.Body, buf)
	buf = buf[:m]
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
	return buf, err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
