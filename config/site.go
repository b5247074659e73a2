package config

import (
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// site returns the site of origin u as browsers judge SameSite
// (schemeful same-site, RFC 6265bis §5.2): its scheme and its host's
// registrable domain (eTLD+1) by the public suffix list, so that
// portal.example.com and sense.example.com are one site, and
// a.github.io and b.github.io two. An IP address, or a host that is a
// public suffix itself (localhost), is a site of its own; the port does
// not count.
func site(u *url.URL) string {
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return u.Scheme + "://" + host
	}
	if d, err := publicsuffix.EffectiveTLDPlusOne(host); err == nil {
		host = d
	}
	return u.Scheme + "://" + host
}
