package config

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Bounds beyond which a trusted_proxies entry is reported as a warning
// (Config.Warnings): more addresses than one subnet, which other hosts or
// workloads are likely to share with the front door. An IPv4 entry shorter
// than /24 (more than 256 addresses, e.g. 10.0.0.0/8, 172.16.0.0/12,
// 192.168.0.0/16) or an IPv6 entry shorter than /64 (more than one subnet)
// is broad.
const (
	broadTrustedBits4 = 24
	broadTrustedBits6 = 64
)

// trustFix is the fix of every trusted_proxies problem.
const trustFix = "list only your front door's addresses"

// v4InV6 is the IPv4-mapped IPv6 range, ::ffff:0:0/96.
var v4InV6 = netip.MustParsePrefix("::ffff:0:0/96")

// Addresses no client connects from, per family: a set of trusted
// prefixes that leaves out only these trusts every client.
var (
	noClients4 = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),   // "this network"
		netip.MustParsePrefix("224.0.0.0/4"), // multicast
		netip.MustParsePrefix("240.0.0.0/4"), // reserved, and the broadcast address
	}
	noClients6 = []netip.Prefix{
		netip.MustParsePrefix("::/128"),   // unspecified
		v4InV6,                            // IPv4 clients, matched as IPv4
		netip.MustParsePrefix("ff00::/8"), // multicast
	}
)

// trustedEntry is one trusted_proxies entry: its key, what the operator
// wrote, and the prefix it stands for.
type trustedEntry struct {
	key, raw string
	prefix   netip.Prefix
}

// validateTrustedProxies parses raw, the value of the trusted_proxies list
// at key, and returns the prefixes it trusts: bare IPs as single-address
// prefixes, every prefix masked, IPv4-mapped IPv6 prefixes
// (::ffff:10.0.0.0/104) as the IPv4 prefixes they map (10.0.0.0/8), since
// peers are matched by their IPv4 address. It reports as problems the
// entries that are not addresses, and sets that trust every IPv4 or every
// IPv6 address, by one entry (0.0.0.0/0, ::ffff:0:0/96, or ::/1, which
// holds every IPv4-mapped address) or together (0.0.0.0/1 and
// 128.0.0.0/1; leaving out only addresses no client has, such as
// multicast, counts as everything). It reports entries broader than
// broadTrustedBits4 or broadTrustedBits6 as warnings.
func validateTrustedProxies(v *validator, key string, raw []string) []netip.Prefix {
	var prefixes []netip.Prefix
	var v4, v6 []trustedEntry
	for i, r := range raw {
		e := trustedEntry{key: fmt.Sprintf("%s[%d]", key, i), raw: r}
		p, ok := parseTrustedProxy(r)
		if !ok {
			v.errorf(e.key, "write a CIDR such as 10.0.0.0/8 or an IP such as 127.0.0.1", "%q is not a CIDR or IP address", r)
			continue
		}
		prefixes = append(prefixes, p)
		e.prefix = p
		if p.Addr().Is4() {
			v4 = append(v4, e)
			continue
		}
		v6 = append(v6, e)
		if p.Bits() > 0 && p.Bits() < v4InV6.Bits() && p.Contains(v4InV6.Addr()) {
			// Every IPv4-mapped address: every IPv4 address (::/0 is
			// reported as every IPv6 address alone).
			v.errorf(e.key, trustFix, "%q trusts every IPv4 address (it holds every IPv4-mapped IPv6 address): any client could claim to be any user", r)
			v4 = append(v4, trustedEntry{prefix: netip.PrefixFrom(netip.IPv4Unspecified(), 0)})
		}
	}
	all4 := refuseEverything(v, key, "IPv4", v4, noClients4)
	all6 := refuseEverything(v, key, "IPv6", v6, noClients6)
	if all4 || all6 {
		return prefixes // refused: warnings would only repeat it
	}
	for _, e := range slices.Concat(v4, v6) {
		limit := broadTrustedBits4
		if e.prefix.Addr().Is6() {
			limit = broadTrustedBits6
		}
		if e.prefix.Bits() < limit {
			v.warnf(e.key, trustFix+", or make sure nothing else in the range can reach sensegate",
				"%q is broader than a /%d: every host in it that can reach sensegate can claim to be any user", e.raw, limit)
		}
	}
	return prefixes
}

// refuseEverything reports whether entries, of the family called name,
// trust every address of it but those in noClients, and if so reports it
// to v: each entry that does alone, or else the entries that do together
// under key. An entry without a key has been reported already.
func refuseEverything(v *validator, key, name string, entries []trustedEntry, noClients []netip.Prefix) bool {
	alone := false
	for _, e := range entries {
		if e.prefix.Bits() == 0 {
			alone = true
			if e.key != "" {
				v.errorf(e.key, trustFix, "%q trusts every %s address: any client could claim to be any user", e.raw, name)
			}
		}
	}
	if alone {
		return true
	}
	in := slices.Clone(entries)
	for _, p := range noClients {
		in = append(in, trustedEntry{prefix: p}) // no key: not the operator's
	}
	used := slices.DeleteFunc(covering(in), func(e trustedEntry) bool { return e.key == "" })
	if len(used) == 0 {
		return false
	}
	v.errorf(key, trustFix, "%s together trust every %s address: any client could claim to be any user", quotedList(used), name)
	return true
}

// parseTrustedProxy parses a trusted_proxies entry: a CIDR or a bare IP,
// masked, an IPv4-mapped IPv6 one as the IPv4 prefix it maps.
func parseTrustedProxy(raw string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(raw)
	if err != nil {
		a, aerr := netip.ParseAddr(raw)
		if aerr != nil {
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= v4InV6.Bits() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-v4InV6.Bits())
	}
	return p, p.IsValid()
}

// covering returns the entries of one address family that together cover
// the family's whole address space, in address order, or nil if there is
// a gap. Prefixes either nest or are disjoint, so
// sorted by first address, the wider first, the entries that reach past
// what those before them cover are disjoint and adjacent where the space
// is covered: a merge of intervals.
func covering(entries []trustedEntry) []trustedEntry {
	if len(entries) == 0 {
		return nil
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b trustedEntry) int {
		if c := a.prefix.Addr().Compare(b.prefix.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.prefix.Bits(), b.prefix.Bits())
	})
	next := sorted[0].prefix.Addr() // the first address not yet covered
	if next.Is4() {
		next = netip.IPv4Unspecified()
	} else {
		next = netip.IPv6Unspecified()
	}
	var used []trustedEntry
	for _, e := range sorted {
		if next.Less(e.prefix.Addr()) {
			return nil // next is trusted by no entry
		}
		last := lastAddr(e.prefix)
		if last.Less(next) {
			continue // within what is covered already
		}
		used = append(used, e)
		if next = last.Next(); !next.IsValid() {
			return used // last is the family's last address
		}
	}
	return nil
}

// lastAddr returns the last address of the masked prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := range b {
		switch {
		case bits >= 8*(i+1):
		case bits <= 8*i:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> (bits - 8*i)
		}
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// maxListed is the most entries a message names.
const maxListed = 5

// quotedList writes the entries' raw values quoted, as "a", "b" and "c",
// or, past maxListed, as "a", "b", "c", "d", "e" and 7 more.
func quotedList(entries []trustedEntry) string {
	q := make([]string, 0, min(len(entries), maxListed+1))
	for _, e := range entries[:min(len(entries), maxListed)] {
		q = append(q, fmt.Sprintf("%q", e.raw))
	}
	if len(entries) > maxListed {
		q = append(q, fmt.Sprintf("%d more", len(entries)-maxListed))
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
