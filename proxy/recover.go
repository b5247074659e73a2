package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// This file is sensegate's one recovery policy, used by HTTP requests
// (sessionTransport) and websocket handshakes (relay.serve) alike:
// attempt, classify Qlik's answer, and when it says the session is gone
// (or its node could not be reached) end that session, log the user in
// once through the broker, and try once more. A second failure is
// answered, never retried again.

// errSessionRefused says that Qlik answered as to a client without a
// valid session: it forgot the one sent (errors.Is finds
// qlik.ErrSessionGone in it).
var errSessionRefused = fmt.Errorf("qlik refused the session cookie: %w", qlik.ErrSessionGone)

// maxAttempts is how many times a request or a websocket handshake is
// tried: once, and once more on a fresh session.
const maxAttempts = 2

// renew ends the session of attempt a, which Qlik refused (nodeErr nil) or
// whose node could not be reached (nodeErr), and returns the session for
// the next attempt, logged in once for every request of the user that
// needs it. When no attempt is left it returns the *Error to answer:
// 502 after a second refusal, 503 for a request whose body could not be
// kept for a replay. websocket says which kind of request it is, for the
// log and the metrics.
func (h *Handler) renew(ctx context.Context, u identity.User, a *attempt, nodeErr error, websocket bool) (session.Entry, error) {
	cause := errSessionRefused
	if nodeErr != nil {
		cause = nodeErr
		h.opts.Nodes.Down(a.entry.Node, nodeErr)
	}
	// Only if the jar still holds the refused cookie: concurrent requests
	// of the user that met the same refusal do not drop each other's
	// fresh session.
	if err := h.opts.Sessions.Invalidate(ctx, u, a.entry.Cookie); err != nil {
		h.log.Warn("jar invalidate failed", zap.String("user", u.String()), zap.String("request_id", requestID(ctx)), zap.Error(err))
	}
	switch {
	case a.n >= maxAttempts && nodeErr != nil:
		return session.Entry{}, upstreamError("Qlik did not answer", nodeErr)
	case a.n >= maxAttempts:
		return session.Entry{}, &Error{Status: http.StatusBadGateway, Msg: "Qlik refused a fresh session", Err: cause}
	case !a.replayable && nodeErr != nil:
		return session.Entry{}, &Error{Status: http.StatusServiceUnavailable, Msg: "the Qlik node failed while a large request body was sent; retry the request", Err: cause, RetryAfter: 1}
	case !a.replayable:
		return session.Entry{}, &Error{Status: http.StatusServiceUnavailable, Msg: "the Qlik session expired while a large request body was sent; retry the request", Err: cause, RetryAfter: 1}
	}
	h.metrics.reauth(websocket)
	switch {
	case nodeErr != nil:
		h.log.Warn("qlik node unreachable: retrying on a new session", zap.String("user", u.String()), zap.String("node", a.entry.Node), zap.String("request_id", requestID(ctx)), zap.Bool("websocket", websocket), zap.Error(nodeErr))
	default:
		h.log.Info("qlik session gone: retrying on a new one", zap.String("user", u.String()), zap.String("request_id", requestID(ctx)), zap.Bool("websocket", websocket))
	}
	e, err := h.opts.Sessions.Ensure(ctx, u)
	if err != nil {
		return session.Entry{}, loginError(err)
	}
	return e, nil
}

// sessionTransport carries a request to Qlik on the user's session: the
// HTTP half of the recovery policy. It sends the request, and when Qlik's
// answer says the session is gone (sessionGone), or the session's node
// cannot be reached, it renews the session and sends the request once
// more, with its buffered body, to the new session's node. Only the
// answer of the last attempt reaches the ReverseProxy; an *Error of renew
// goes to its ErrorHandler.
type sessionTransport struct {
	h    *Handler
	next http.RoundTripper
}

func (t *sessionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h := t.h
	a, ok := attemptFrom(req.Context())
	u, hasUser := userFrom(req.Context())
	if !ok || !hasUser {
		return t.next.RoundTrip(req)
	}
	for {
		resp, err := t.next.RoundTrip(req)
		var nodeErr error
		switch {
		case err != nil && h.opts.Nodes != nil && a.entry.Node != "" && isNodeDown(err):
			nodeErr = err
		case err != nil:
			return nil, err
		case !h.sessionGone(req, resp):
			return resp, nil
		default:
			// Nothing of a refused answer goes on: read a little so the
			// connection can be reused, then let go of it.
			io.CopyN(io.Discard, resp.Body, 4<<10)
			resp.Body.Close()
		}
		e, err := h.renew(req.Context(), u, a, nodeErr, false)
		if err != nil {
			return nil, err
		}
		a = &attempt{entry: e, n: a.n + 1, body: a.body, replayable: a.replayable}
		req = h.retarget(req, a)
	}
}

// retarget returns req for attempt a: its context carries a, its URL
// points at a's node, its Cookie is a's session and its body, if any, is
// the buffered one again.
func (h *Handler) retarget(req *http.Request, a *attempt) *http.Request {
	r := req.WithContext(withAttempt(req.Context(), a))
	base := h.qlikBase(a.entry)
	u := *r.URL
	u.Scheme, u.Host = base.Scheme, base.Host
	r.URL = &u
	r.Header = r.Header.Clone()
	a.cookieHdr[0] = h.opts.CookieName + "=" + a.entry.Cookie
	r.Header["Cookie"] = a.cookieHdr[:]
	if a.body != nil {
		r.Body = io.NopCloser(bytes.NewReader(a.body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(a.body)), nil }
	}
	return r
}

// sessionGone reports whether Qlik's answer to req says that it does not
// know the session sent (qseow-protocol.md §4b): a 401, a redirect to its
// login, the 500 "Authentication error" page in any body, or the Personal
// API's {"session":"inactive"}. A body read to decide is put back.
func (h *Handler) sessionGone(req *http.Request, resp *http.Response) bool {
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return true
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		return qlik.IsLoginRedirect(resp.StatusCode, resp.Header.Get("Location"), h.opts.AuthModuleURL)
	case resp.StatusCode == http.StatusInternalServerError:
		// Plain text when observed, an HTML error page by another report:
		// the text is looked for in either, compressed or not.
		b, ok := peekBody(resp, qlik.AuthErrorPeek)
		return ok && qlik.IsAuthError(resp.StatusCode, decodedHead(resp.Header, b))
	case resp.StatusCode == http.StatusOK && req.Method == http.MethodGet && h.isPersonalAPI(req):
		// The Personal API answers a session it does not know with 200
		// {"session":"inactive"}: a client would think its user signed out.
		b, ok := peekBody(resp, personalPeekSize)
		return ok && isInactiveSession(resp.Header, b)
	}
	return false
}

// decodedHead returns what the head b of a body with header hdr says:
// b itself, or as much of it as gunzips. Another encoding gives nil.
func decodedHead(hdr http.Header, b []byte) []byte {
	switch hdr.Get("Content-Encoding") {
	case "", "identity":
		return b
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil
		}
		out, _ := io.ReadAll(io.LimitReader(zr, qlik.AuthErrorPeek))
		return out
	}
	return nil
}
