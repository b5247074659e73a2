package identity

import (
	"net/http"
	"net/netip"
)

// Header identifies users by a header set by a trusted front door (an SSO
// gateway, a load balancer with authentication). The header is believed
// only from peers in the trusted networks; from anyone else it is refused,
// so a client cannot name itself.
type Header struct {
	name       string
	trusted    []netip.Prefix
	defaultDir string
}

// NewHeader returns a Header provider reading header name, whose value is
// "user" (in defaultDirectory) or "DIRECTORY\user", from peers in trusted.
func NewHeader(name string, trusted []netip.Prefix, defaultDirectory string) *Header {
	return &Header{name: http.CanonicalHeaderKey(name), trusted: trusted, defaultDir: defaultDirectory}
}

// Identify implements Provider.
func (h *Header) Identify(r *http.Request) (User, error) {
	vals := r.Header.Values(h.name)
	peer, err := peerAddr(r)
	if err != nil {
		return User{}, &Error{Status: http.StatusForbidden, Msg: "unknown peer", Err: err}
	}
	if !h.isTrusted(peer) {
		if len(vals) > 0 {
			return User{}, &Error{Status: http.StatusForbidden, Msg: "identity header from an untrusted peer", Err: &untrustedPeer{peer}}
		}
		return User{}, &Error{Status: http.StatusUnauthorized, Msg: "not signed in", Err: ErrNoIdentity}
	}
	switch len(vals) {
	case 0:
		return User{}, &Error{Status: http.StatusUnauthorized, Msg: "not signed in", Err: ErrNoIdentity}
	case 1:
	default:
		return User{}, &Error{Status: http.StatusForbidden, Msg: "identity header repeated"}
	}
	u, err := ParseUser(vals[0], h.defaultDir)
	if err != nil {
		return User{}, &Error{Status: http.StatusForbidden, Msg: "identity header is not a valid Qlik user", Err: err}
	}
	return u, nil
}

// StripHeaders implements HeaderStripper.
func (h *Header) StripHeaders() []string { return []string{h.name} }

func (h *Header) isTrusted(a netip.Addr) bool {
	for _, p := range h.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

type untrustedPeer struct{ addr netip.Addr }

func (e *untrustedPeer) Error() string {
	return "peer " + e.addr.String() + " is not in trusted_proxies"
}

var _ Provider = (*Header)(nil)
var _ HeaderStripper = (*Header)(nil)
