package ticket

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sensegate/sensegate/qlik"
)

// Kinds of failure. Every *Error returned by this package has exactly one
// of them as its Kind (except a call ended by its caller's cancelled
// context, whose Kind is nil), and errors.Is(err, ErrX) reports it.
var (
	// ErrUnreachable: no answer because of a network failure (connection
	// refused or reset, DNS, closed without a response). Temporary.
	ErrUnreachable = errors.New("qlik unreachable")
	// ErrTimeout: no answer within Config.Timeout, or the caller's deadline
	// passed. Temporary.
	ErrTimeout = errors.New("qlik timed out")
	// ErrUnavailable: QPS or the Qlik proxy answered 5xx, or QPS answered
	// a success whose body is not JSON (cut off or garbled on the way).
	// Temporary.
	ErrUnavailable = errors.New("qlik unavailable")
	// ErrRejected: Qlik refused the request (4xx, a TLS certificate
	// problem on either side, no session cookie in the redemption answer,
	// an answer that makes no sense). Retrying does not help; it almost
	// always needs an operator to fix the configuration, which the message
	// names.
	ErrRejected = errors.New("rejected by qlik")
	// ErrTicketRefused: the Qlik proxy did not accept a ticket (it sent the
	// redemption to the login page): the ticket expired, was used already,
	// or belongs to another virtual proxy or Qlik node. A new Login may
	// succeed once; a repeat points to a prefix or load-balancer problem.
	ErrTicketRefused = errors.New("ticket refused by the qlik proxy")
	// ErrTooManySessions: Qlik refused a new session because the user
	// already has the maximum of parallel sessions (5, fixed in QSEoW).
	// Sessions leak when cookies are lost; Logout ends them all.
	ErrTooManySessions = errors.New("too many parallel qlik sessions")
	// ErrSessionRefused: the Qlik proxy no longer accepts a session cookie
	// (a 302 to the login page, 401, or its 500 "Authentication error" for
	// a cookie it does not know): the session ended (inactivity timeout,
	// logout, EndSession) or the proxy forgot it (restart, failover to
	// another node). Not temporary: the cookie is dead, a new Login is
	// needed. errors.Is finds qlik.ErrSessionGone in it, the one sentinel
	// for a dead session that every package checks.
	ErrSessionRefused = fmt.Errorf("session refused by the qlik proxy: %w", qlik.ErrSessionGone)
)

// Error is the error of every Client call. Its message names the cause an
// operator can act on and never contains a ticket or cookie value.
type Error struct {
	// Op is the call: "ticket", "redeem", "session", "logout", "ping",
	// "csrftoken" or "endsession".
	Op string
	// User is the Qlik user ("DIRECTORY\id") the call was for, if any.
	User string
	// Kind is one of the Err* sentinels; nil when the caller's context
	// was cancelled (Cause is then context.Canceled).
	Kind error
	// Status is the HTTP status of the last answer, 0 if there was none.
	Status int
	// Msg explains the failure for operators (no secrets).
	Msg string
	// Cause is the underlying error, if any (network, TLS, context).
	Cause error
	// Temporary reports whether a later call may succeed without a
	// configuration change (network errors, timeouts, 5xx).
	Temporary bool
	// Attempts is how many attempts were made.
	Attempts int
}

// Error formats "ticket: OP[ for USER]: MSG[ (after N attempts)][: CAUSE]".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("ticket: ")
	b.WriteString(e.Op)
	if e.User != "" {
		b.WriteString(" for ")
		b.WriteString(e.User)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

// Unwrap returns Cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is e's Kind, or what the Kind wraps (the
// Kind ErrSessionRefused is qlik.ErrSessionGone too).
func (e *Error) Is(target error) bool {
	return e.Kind != nil && (target == e.Kind || errors.Is(e.Kind, target))
}

// Permanent reports whether retrying soon cannot help: Qlik refused the
// call for a reason an operator must fix (ErrRejected: certificates, the
// configuration, a user Qlik does not accept) or the user has too many
// sessions (ErrTooManySessions, until some end). It lets packages that do
// not import ticket tell such a failure from a passing one (QPS down,
// slow or failing) through an interface{ Permanent() bool }.
func (e *Error) Permanent() bool { return e.Kind == ErrRejected || e.Kind == ErrTooManySessions }

// reusedConnError is the error of an attempt that got no answer on a
// pooled (reused) connection. Client.Login tells by it that a
// redemption's ticket may or may not have been read.
type reusedConnError struct{ err error }

func (e *reusedConnError) Error() string { return e.err.Error() + " (on a reused connection)" }
func (e *reusedConnError) Unwrap() error { return e.err }

// lostOnReusedConn reports whether err is a failure without an answer on
// a reused connection, the connection broken or closed (ErrUnreachable:
// not a timeout, a slow proxy, nor a cancellation).
func lostOnReusedConn(err error) bool {
	var rc *reusedConnError
	return errors.Is(err, ErrUnreachable) && errors.As(err, &rc)
}

// redacted hides a secret (a ticket or session id) that an underlying
// error might quote, while keeping the error chain for errors.Is.
type redacted struct {
	err    error
	secret string
}

func (r redacted) Error() string { return strings.ReplaceAll(r.err.Error(), r.secret, "[redacted]") }
func (r redacted) Unwrap() error { return r.err }

func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return redacted{err, secret}
}

// Substrings of QPS answers that identify a cause.
const (
	xsrfText = "XSRF prevention check failed"
	// noSessionText is in QPS's answer for an unknown session id (observed;
	// its status is undocumented).
	noSessionText = "No session with id"
)

// maxSnippet bounds the part of an answer body quoted in an error.
const maxSnippet = 200

// snippet returns the start of body as one short line, without secret.
func snippet(body []byte, secret string) string {
	s := string(body)
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxSnippet {
		cut := maxSnippet
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return s
}

// statusError interprets a QPS API answer that is not a success.
func (c *Client) statusError(r *request, status int, body []byte) *Error {
	e := &Error{Op: r.op, User: r.user, Status: status, Kind: ErrRejected}
	text := http.StatusText(status)
	path := r.url.Path
	if r.secret != "" {
		// The session API has the session id in its path.
		path = strings.ReplaceAll(path, r.secret, "[redacted]")
	}
	switch {
	case status >= 500:
		e.Kind, e.Temporary = ErrUnavailable, true
		e.Msg = fmt.Sprintf("QPS answered %d %s", status, text)
	case status == http.StatusBadRequest:
		e.Msg = fmt.Sprintf("QPS refused the request (400 Bad Request): %q", snippet(body, r.secret))
	case status == http.StatusForbidden && strings.Contains(string(body), xsrfText):
		e.Msg = "Xrfkey check failed (403): QPS did not receive a matching X-Qlik-Xrfkey header and xrfkey query parameter; check that nothing between sensegate and QPS rewrites them"
	case status == http.StatusForbidden && strings.Contains(strings.ToLower(string(body)), qlik.TooManySessionsText):
		e.Kind = ErrTooManySessions
		e.Msg = fmt.Sprintf("QPS refused the session (403): the user has too many sessions active in parallel (Qlik allows %d)", qlik.MaxParallelSessions)
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		e.Msg = fmt.Sprintf("QPS refused the client certificate or the user (%d %s): check qlik.qps.client_cert/client_key are the client certificate exported from this Qlik site", status, text)
	case status == http.StatusNotFound && c.cfg.Prefix == "":
		e.Msg = fmt.Sprintf("QPS has no API at %s (404): check the QPS URL and port (4243)", path)
	case status == http.StatusNotFound:
		e.Msg = fmt.Sprintf("unknown virtual proxy prefix %q (QPS has no API at %s, 404)", c.cfg.Prefix, path)
	case status == http.StatusConflict:
		// The body quotes the session id: never include it.
		e.Msg = "QPS answered 409 Conflict: the session id is already in use"
	case status >= 300 && status < 400:
		e.Msg = fmt.Sprintf("QPS answered with a redirect (%d %s) instead of its API: check the QPS URL and port (4243)", status, text)
	default:
		e.Msg = fmt.Sprintf("QPS answered unexpected status %d %s", status, text)
	}
	return e
}

// transportError interprets a failure without an answer (or with an
// unreadable one) of an attempt with parent context ctx and the given
// per-attempt timeout.
func transportError(ctx context.Context, r *request, err error, timeout time.Duration) *Error {
	// *url.Error quotes the full URL, which for a redemption holds the
	// ticket: keep only what it wraps.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	err = redact(err, r.secret)
	if ctx.Err() != nil {
		return canceled(ctx, r, nil)
	}
	e := &Error{Op: r.op, User: r.user, Cause: err}
	where := r.where()

	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verifyErr *tls.CertificateVerificationError
		recErr    tls.RecordHeaderError
		opErr     *net.OpError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		e.Kind, e.Temporary = ErrTimeout, true
		e.Msg = fmt.Sprintf("no answer from %s within %s (timeout)", where, timeout)
	case errors.As(err, &unknownCA):
		e.Kind = ErrRejected
		e.Msg = fmt.Sprintf("the TLS certificate of %s is signed by an unknown authority: check qlik.ca (the root.pem exported from this Qlik site)", where)
	case errors.As(err, &hostErr):
		e.Kind = ErrRejected
		e.Msg = fmt.Sprintf("the TLS certificate of %s is not valid for host %q: use a host name the certificate names in the URL", where, r.url.Hostname())
	case errors.As(err, &invalid), errors.As(err, &verifyErr):
		e.Kind = ErrRejected
		e.Msg = fmt.Sprintf("the TLS certificate of %s does not verify: check qlik.ca and the server certificate", where)
	case errors.As(err, &recErr):
		e.Kind = ErrRejected
		e.Msg = fmt.Sprintf("%s does not speak TLS: check the URL's scheme and port", where)
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// A TLS alert from the server: with a client certificate it did not
		// accept, QPS aborts the handshake ("bad certificate", "unknown
		// certificate authority", "certificate required").
		e.Kind = ErrRejected
		if r.qps {
			e.Msg = fmt.Sprintf("%s rejected the TLS handshake: check qlik.qps.client_cert/client_key (the client certificate exported from this Qlik site) and qlik.ca", where)
		} else {
			e.Msg = fmt.Sprintf("%s rejected the TLS handshake", where)
		}
	default:
		e.Kind, e.Temporary = ErrUnreachable, true
		e.Msg = fmt.Sprintf("cannot reach %s", where)
	}
	return e
}

// canceled is the error of a call whose caller's context ended; last is
// the error of the previous attempt, if any.
func canceled(ctx context.Context, r *request, last *Error) *Error {
	e := &Error{Op: r.op, User: r.user, Cause: ctx.Err(), Msg: "cancelled by the caller"}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.Kind, e.Msg = ErrTimeout, "the caller's deadline passed"
	}
	if last != nil {
		e.Status = last.Status
		e.Msg += fmt.Sprintf(" while waiting to retry (last error: %s)", last.Msg)
	}
	return e
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
