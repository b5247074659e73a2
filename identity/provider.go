package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"
)

// Provider identifies the end user of a request. Implementations are safe
// for concurrent use.
type Provider interface {
	// Identify returns the request's user, or an *Error saying why there
	// is none (401: not signed in, 403: refused).
	Identify(r *http.Request) (User, error)
}

// HeaderStripper is implemented by providers that read request headers
// which must not reach Qlik or another upstream.
type HeaderStripper interface {
	// StripHeaders names the headers to delete before forwarding.
	StripHeaders() []string
}

// CookieStripper is implemented by providers with cookies of their own,
// which must not reach any upstream.
type CookieStripper interface {
	// StripCookies names the cookies to remove before forwarding.
	StripCookies() []string
}

// Mounter is implemented by providers that serve pages of their own
// (login, callback, logout) under sensegate's reserved path prefix.
type Mounter interface {
	// Mount registers the provider's handlers on mux under prefix, which
	// starts and ends with "/" (e.g. "/.sensegate/").
	Mount(mux *http.ServeMux, prefix string)
}

// Logouter is implemented by providers that keep a session of their own
// (a login cookie): Logout ends it, typically by deleting it from its
// store and setting an expired cookie on w. It must not write the status
// or body: sensegate answers the logout request itself, sending browsers
// to next when it is not empty (e.g. the identity provider's
// end_session_endpoint for RP-initiated logout), else to "/".
type Logouter interface {
	Logout(w http.ResponseWriter, r *http.Request) (next string)
}

// TokenExchanger is implemented by providers that trade a bearer token
// for a login cookie, for single-page apps: a browser cannot put an
// Authorization header on a websocket handshake, so an app holding a token
// POSTs it to sensegate's /.sensegate/session once and its later requests
// and websockets authenticate with the cookie. *JWT is one.
type TokenExchanger interface {
	// ExchangesTokens reports whether the exchange is on; when it is not,
	// sensegate serves no /.sensegate/session.
	ExchangesTokens() bool
	// ExchangeToken verifies the request's bearer token as Identify does,
	// starts a login for its user, ending the login the request's cookie
	// named (whoever's it was), and sets the login cookie on w. It
	// returns the user and the user of the login it ended (zero if none).
	// It must not write the status or body. Errors are as Identify's.
	ExchangeToken(w http.ResponseWriter, r *http.Request) (u, replaced User, err error)
}

// SessionStore keeps the login sessions of providers that have them
// (OIDC) by opaque id, so that several replicas can share them. Data is
// the provider's own encoding. Implementations are safe for concurrent use.
type SessionStore interface {
	// Get returns the data stored under id, ok false when there is none
	// or it expired.
	Get(ctx context.Context, id string) (data []byte, ok bool, err error)
	// Put stores data under id for ttl.
	Put(ctx context.Context, id string, data []byte, ttl time.Duration) error
	// Delete removes id.
	Delete(ctx context.Context, id string) error
}

// Error is an identification failure: Status is 401 or 403, Msg is safe
// to show to the client, Err is for the log.
type Error struct {
	Status int
	Msg    string
	Err    error
	// LoginURL, when set on a 401, is where a browser navigation should be
	// redirected to sign in.
	LoginURL string
	// Challenge, when set, is the WWW-Authenticate header of the answer
	// (RFC 9110 §11.6.1): the JWT provider's RFC 6750 Bearer challenge,
	// with an error code when a token was presented but refused.
	Challenge string
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("identity: %s: %v", e.Msg, e.Err)
	}
	return "identity: " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNoIdentity is the cause of a 401 when a request carries no identity.
var ErrNoIdentity = errors.New("no identity in request")

// PeerTruster is the optional ability of a Provider to say whether a
// request's direct peer is a trusted front door, whose X-Forwarded-For
// and X-Request-Id sensegate may believe; *Header has it. A provider
// without it trusts no peer.
type PeerTruster interface {
	TrustsPeer(r *http.Request) bool
}

// peerAddr returns the IP of the request's direct peer.
func peerAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("peer address %q: %w", r.RemoteAddr, err)
	}
	return ap.Addr().Unmap(), nil
}
