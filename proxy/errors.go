package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math"
	"net"
	"net/http"
	"strings"

	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// HeaderRequestID carries the request id in responses and in requests
// forwarded to Qlik and routes. An incoming one is adopted only from a
// trusted front door (see Handler.ServeHTTP).
const HeaderRequestID = "X-Request-Id"

// headerSensegate marks responses that sensegate made itself, as opposed to
// ones relayed from Qlik or an upstream.
const headerSensegate = "X-Sensegate-Response"

// StatusClientClosedRequest is the non-standard status logged when the
// client went away before the answer (nginx's 499). It is never written.
const StatusClientClosedRequest = 499

// Error is a failure sensegate answers itself: Status and Msg go to the
// client, Err only to the log.
type Error struct {
	Status int
	Msg    string
	Err    error
	// RetryAfter, in seconds, is sent (with 503 and 429 answers) when > 0.
	RetryAfter int
	// reason, when set, counts the answer in
	// sensegate_requests_refused_total (a refuse* constant).
	reason string
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// temporary is implemented by errors of transient upstream trouble (the
// ticket package's QPS errors, network errors).
type temporary interface{ Temporary() bool }

// upstreamError classifies an error from talking to Qlik or an upstream:
// a timeout is 504, a client that went away is 499, a transient failure
// (QPS calls over qlik.qps.max_concurrent too) is 503 with Retry-After,
// a login over the user's login rate 429 with Retry-After, anything else
// 502.
func upstreamError(msg string, err error) *Error {
	var ne net.Error
	var tmp temporary
	var rl *session.RateLimitError
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Status: StatusClientClosedRequest, Msg: "client closed request", Err: err}
	case errors.As(err, &rl):
		secs := max(1, int(math.Ceil(rl.RetryAfter.Seconds())))
		return &Error{Status: http.StatusTooManyRequests, Msg: fmt.Sprintf("too many logins to Qlik for this user: retry in %d s", secs), Err: err, RetryAfter: secs}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Status: http.StatusGatewayTimeout, Msg: msg + ": timed out", Err: err}
	case errors.As(err, &tmp) && tmp.Temporary():
		return &Error{Status: http.StatusServiceUnavailable, Msg: msg + ": temporarily unavailable", Err: err, RetryAfter: 5}
	}
	return &Error{Status: http.StatusBadGateway, Msg: msg, Err: err}
}

// permanent is implemented by login errors that retrying soon cannot fix
// (the ticket package's: a refused certificate, a wrong prefix).
type permanent interface{ Permanent() bool }

// loginRetryAfter is the Retry-After, in seconds, of a login that failed
// for a reason that passes.
const loginRetryAfter = 5

// loginError classifies a failure to get the user's Qlik session (a login
// through QPS, or the session store): 499 when the client went away and
// 429 over the user's login rate, as upstreamError says; 502 when Qlik
// refused the login in a way only an operator can fix (Permanent: a
// certificate, the configuration), not worth retrying; otherwise 503
// with Retry-After, since the trouble passes: QPS down, slow, failing or
// answering nonsense, too busy, the session store unreachable, a login
// that timed out.
func loginError(err error) *Error {
	const msg = "could not get a Qlik session"
	if e := upstreamError(msg, err); e.Status == StatusClientClosedRequest {
		return e
	} else if e.Status == http.StatusTooManyRequests {
		e.reason = refuseRateLimited
		return e
	}
	var p permanent
	if errors.As(err, &p) && p.Permanent() {
		return &Error{Status: http.StatusBadGateway, Msg: msg + ": the Qlik login was refused", Err: err, reason: refuseLoginFailed}
	}
	return &Error{Status: http.StatusServiceUnavailable, Msg: msg + ": temporarily unavailable", Err: err, RetryAfter: loginRetryAfter, reason: refuseLoginFailed}
}

// randomHex returns 2n random hex characters.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// writeError answers a request with e as JSON or HTML (by Accept) and logs
// it. A client that went away gets no answer and no error log.
func writeError(w http.ResponseWriter, r *http.Request, log *zap.Logger, e *Error) {
	id := requestID(r.Context())
	if e.Status == StatusClientClosedRequest {
		if st := stateFrom(r.Context()); st != nil {
			st.clientGone = true
		}
		log.Debug("client closed request", zap.String("request_id", id), zap.String("path", r.URL.Path))
		return
	}
	if st := stateFrom(r.Context()); st != nil && e.reason != "" {
		st.refused = e.reason
	}
	fields := []zap.Field{zap.String("request_id", id), zap.Int("status", e.Status), zap.String("method", r.Method), zap.String("path", r.URL.Path)}
	if u, ok := userFrom(r.Context()); ok {
		fields = append(fields, zap.String("user", u.String()))
	}
	if e.Err != nil {
		fields = append(fields, zap.Error(e.Err))
	}
	if e.Status >= 500 {
		log.Error(e.Msg, fields...)
	} else {
		log.Info(e.Msg, fields...)
	}
	h := w.Header()
	h.Set(headerSensegate, "1")
	h.Set("Cache-Control", "no-store")
	h.Set(HeaderRequestID, id)
	if e.RetryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	if wantsHTML(r) {
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(e.Status)
		fmt.Fprintf(w, "<!doctype html><title>%d %s</title><h1>%s</h1><p>%s</p><p><small>Request id %s</small></p>\n",
			e.Status, http.StatusText(e.Status), http.StatusText(e.Status), html.EscapeString(e.Msg), id)
		return
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(struct {
		Error     string `json:"error"`
		Status    int    `json:"status"`
		RequestID string `json:"request_id"`
	}{e.Msg, e.Status, id})
}

// wantsHTML reports whether the client prefers an HTML page (a browser
// navigation) over JSON (XHR, fetch, API clients).
func wantsHTML(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "text/html") && r.Header.Get("X-Requested-With") == ""
}
