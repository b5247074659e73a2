package identity

import (
	"net/http"
	"net/netip"
	"strings"
)

// Header identifies users by headers set by a trusted front door (an SSO
// gateway, a load balancer with authentication). The headers are believed
// only from peers in the trusted networks; from anyone else they are
// refused, so a client cannot name itself.
type Header struct {
	name, dirName, groupsName string
	trusted                   []netip.Prefix
	defaultDir                string
}

// HeaderOptions configure a Header provider.
type HeaderOptions struct {
	// Name is the user header: "user" or "DIRECTORY\user". Required.
	Name string
	// DirectoryHeader, if set, names a header with the user directory,
	// used when the user header names none.
	DirectoryHeader string
	// GroupsHeader, if set, names a header with the user's groups,
	// comma-separated (repeated headers add up); each becomes a "Group"
	// ticket attribute.
	GroupsHeader string
	// Trusted are the networks of the front doors allowed to set them.
	Trusted []netip.Prefix
	// DefaultDirectory is the directory when no header names one.
	DefaultDirectory string
}

// NewHeader returns a Header provider.
func NewHeader(o HeaderOptions) *Header {
	h := &Header{name: http.CanonicalHeaderKey(o.Name), trusted: o.Trusted, defaultDir: o.DefaultDirectory}
	if o.DirectoryHeader != "" {
		h.dirName = http.CanonicalHeaderKey(o.DirectoryHeader)
	}
	if o.GroupsHeader != "" {
		h.groupsName = http.CanonicalHeaderKey(o.GroupsHeader)
	}
	return h
}

// Identify implements Provider.
func (h *Header) Identify(r *http.Request) (User, error) {
	vals := r.Header.Values(h.name)
	peer, err := peerAddr(r)
	if err != nil {
		return User{}, &Error{Status: http.StatusForbidden, Msg: "unknown peer", Err: err}
	}
	if !h.isTrusted(peer) {
		for _, n := range h.StripHeaders() {
			if len(r.Header.Values(n)) > 0 {
				return User{}, &Error{Status: http.StatusForbidden, Msg: "identity header from an untrusted peer", Err: &untrustedPeer{peer}}
			}
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
	dir := h.defaultDir
	if h.dirName != "" {
		switch d := r.Header.Values(h.dirName); len(d) {
		case 0:
		case 1:
			dir = d[0]
		default:
			return User{}, &Error{Status: http.StatusForbidden, Msg: "directory header repeated"}
		}
	}
	u, err := ParseUser(vals[0], dir)
	if err != nil {
		return User{}, &Error{Status: http.StatusForbidden, Msg: "identity header is not a valid Qlik user", Err: err}
	}
	if h.groupsName != "" {
		for _, line := range r.Header.Values(h.groupsName) {
			for _, g := range strings.Split(line, ",") {
				if g = strings.TrimSpace(g); g != "" {
					u.Attributes = append(u.Attributes, Attribute{Key: "Group", Value: g})
				}
			}
		}
	}
	return u, nil
}

// StripHeaders implements HeaderStripper.
func (h *Header) StripHeaders() []string {
	out := []string{h.name}
	for _, n := range []string{h.dirName, h.groupsName} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// TrustsPeer implements PeerTruster: the request's direct peer is one of
// the trusted front doors (identity.header.trusted_proxies).
func (h *Header) TrustsPeer(r *http.Request) bool {
	peer, err := peerAddr(r)
	return err == nil && h.isTrusted(peer)
}

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
var _ PeerTruster = (*Header)(nil)
