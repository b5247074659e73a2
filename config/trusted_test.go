package config

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// complement returns prefixes that together cover space except holes.
func complement(space netip.Prefix, holes ...string) []string {
	for _, h := range holes {
		hp := netip.MustParsePrefix(h)
		if hp.Bits() <= space.Bits() && hp.Contains(space.Addr()) {
			return nil // space is within a hole
		}
	}
	for _, h := range holes {
		if space.Overlaps(netip.MustParsePrefix(h)) {
			// Split space in halves: the first keeps its address, the
			// second has the next bit set.
			b := space.Addr().AsSlice()
			b[space.Bits()/8] |= 0x80 >> (space.Bits() % 8)
			second, _ := netip.AddrFromSlice(b)
			return append(complement(netip.PrefixFrom(space.Addr(), space.Bits()+1), holes...),
				complement(netip.PrefixFrom(second, space.Bits()+1), holes...)...)
		}
	}
	return []string{space.String()}
}

func TestTrustedProxies(t *testing.T) {
	const (
		key    = "identity.header.trusted_proxies"
		unions = " together trust every %s address: any client could claim to be any user (list only your front door's addresses)"
		every  = " trusts every %s address: any client could claim to be any user (list only your front door's addresses)"
		broad  = " is broader than a /%d: every host in it that can reach sensegate can claim to be any user (list only your front door's addresses, or make sure nothing else in the range can reach sensegate)"
	)
	c := writeCerts(t)
	tests := []struct {
		name    string
		raw     []string
		errs    []string // lines of Validate's error; nil: valid
		warns   []string // lines of Warnings
		trusted []string // TrustedProxies, when valid
	}{
		{
			name:    "front door addresses",
			raw:     []string{"10.1.2.3", "192.168.1.0/24", "2001:db8::7", "2001:db8:1::/64"},
			trusted: []string{"10.1.2.3/32", "192.168.1.0/24", "2001:db8::7/128", "2001:db8:1::/64"},
		},
		{
			name: "private ranges are broad",
			raw:  []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "10.9.0.0/23", "fd00::/8", "2001:db8::/63"},
			warns: []string{
				key + `[0]: "10.0.0.0/8"` + fmt.Sprintf(broad, 24),
				key + `[1]: "172.16.0.0/12"` + fmt.Sprintf(broad, 24),
				key + `[2]: "192.168.0.0/16"` + fmt.Sprintf(broad, 24),
				key + `[3]: "10.9.0.0/23"` + fmt.Sprintf(broad, 24),
				key + `[4]: "fd00::/8"` + fmt.Sprintf(broad, 64),
				key + `[5]: "2001:db8::/63"` + fmt.Sprintf(broad, 64),
			},
			trusted: []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "10.9.0.0/23", "fd00::/8", "2001:db8::/63"},
		},
		{
			name: "0.0.0.0/0 and ::/0",
			raw:  []string{"0.0.0.0/0", "::/0"},
			errs: []string{
				key + `[0]: "0.0.0.0/0"` + fmt.Sprintf(every, "IPv4"),
				key + `[1]: "::/0"` + fmt.Sprintf(every, "IPv6"),
			},
		},
		{
			name: "two halves of IPv4",
			raw:  []string{"0.0.0.0/1", "128.0.0.0/1"},
			errs: []string{key + `: "0.0.0.0/1" and "128.0.0.0/1"` + fmt.Sprintf(unions, "IPv4")},
		},
		{
			name: "two halves of IPv6",
			raw:  []string{"8000::/1", "::/1"},
			errs: []string{
				key + `: "::/1" and "8000::/1"` + fmt.Sprintf(unions, "IPv6"),
				// ::/1 holds ::ffff:0:0/96.
				key + `[1]: "::/1" trusts every IPv4 address (it holds every IPv4-mapped IPv6 address): any client could claim to be any user (list only your front door's addresses)`,
			},
		},
		{
			name: "three pieces, out of order, with entries inside them",
			raw:  []string{"128.0.0.0/1", "10.0.0.0/8", "64.0.0.0/2", "0.0.0.0/2", "0.0.0.0/2", "192.168.1.1"},
			errs: []string{key + `: "0.0.0.0/2", "64.0.0.0/2" and "128.0.0.0/1"` + fmt.Sprintf(unions, "IPv4")},
		},
		{
			name: "a gap in the middle",
			raw:  []string{"0.0.0.0/1", "192.0.0.0/2"}, // 128.0.0.0/2 missing
			warns: []string{
				key + `[0]: "0.0.0.0/1"` + fmt.Sprintf(broad, 24),
				key + `[1]: "192.0.0.0/2"` + fmt.Sprintf(broad, 24),
			},
			trusted: []string{"0.0.0.0/1", "192.0.0.0/2"},
		},
		{
			name: "all but multicast and reserved",
			raw:  []string{"0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3"}, // 224.0.0.0/3 missing
			errs: []string{key + `: "0.0.0.0/1", "128.0.0.0/2" and "192.0.0.0/3"` + fmt.Sprintf(unions, "IPv4")},
		},
		{
			name: "all but IPv4-mapped and multicast",
			raw:  complement(netip.MustParsePrefix("::/0"), "::ffff:0:0/96", "ff00::/8"),
			errs: []string{key + `: "::/81", "::8000:0:0/82", "::c000:0:0/83", "::e000:0:0/84", "::f000:0:0/85" and 97 more` + fmt.Sprintf(unions, "IPv6")},
		},
		{
			name: "five pieces of IPv6",
			raw:  []string{"c000::/2", "2000::/3", "4000::/2", "8000::/2", "::/3"},
			errs: []string{
				key + `: "::/3", "2000::/3", "4000::/2", "8000::/2" and "c000::/2"` + fmt.Sprintf(unions, "IPv6"),
				key + `[4]: "::/3" trusts every IPv4 address (it holds every IPv4-mapped IPv6 address): any client could claim to be any user (list only your front door's addresses)`,
			},
		},
		{
			name: "IPv4 halves, one written IPv4-mapped",
			raw:  []string{"::ffff:0.0.0.0/97", "128.0.0.0/1"},
			errs: []string{key + `: "::ffff:0.0.0.0/97" and "128.0.0.0/1"` + fmt.Sprintf(unions, "IPv4")},
		},
		{
			name: "all of IPv4, IPv4-mapped",
			raw:  []string{"::ffff:0:0/96"},
			errs: []string{key + `[0]: "::ffff:0:0/96"` + fmt.Sprintf(every, "IPv4")},
		},
		{
			name: "an IPv6 prefix holding the IPv4-mapped range",
			raw:  []string{"::/64"},
			errs: []string{key + `[0]: "::/64" trusts every IPv4 address (it holds every IPv4-mapped IPv6 address): any client could claim to be any user (list only your front door's addresses)`},
		},
		{
			name:    "IPv4-mapped entries are matched as IPv4",
			raw:     []string{"::ffff:10.1.2.3", "::ffff:10.0.0.0/104"},
			warns:   []string{key + `[1]: "::ffff:10.0.0.0/104"` + fmt.Sprintf(broad, 24)},
			trusted: []string{"10.1.2.3/32", "10.0.0.0/8"},
		},
		{
			name: "not addresses, with everything",
			raw:  []string{"10.0.0.300", "0.0.0.0/1", "128.0.0.0/1"},
			errs: []string{
				key + `: "0.0.0.0/1" and "128.0.0.0/1"` + fmt.Sprintf(unions, "IPv4"),
				key + `[0]: "10.0.0.300" is not a CIDR or IP address (write a CIDR such as 10.0.0.0/8 or an IP such as 127.0.0.1)`,
			},
		},
	}
	// Every address but one, at either end of each family: the merge must
	// find the gap, and none once the address is added. Addresses no
	// client connects from (multicast, IPv4-mapped IPv6) are no gap.
	all4, all6 := netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")
	for _, tc := range []struct {
		space netip.Prefix
		hole  string   // a client's address
		never []string // the ranges left out besides hole
	}{
		{all4, "1.0.0.0", nil},
		{all4, "1.0.0.0", []string{"0.0.0.0/8"}},
		{all4, "223.255.255.255", nil},
		{all4, "223.255.255.255", []string{"224.0.0.0/3"}},
		{all4, "100.64.1.7", []string{"0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"}},
		{all6, "::1", []string{"::ffff:0:0/96"}},
		{all6, "::1", []string{"::/128", "::ffff:0:0/96"}},
		{all6, "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::ffff:0:0/96"}},
		{all6, "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::ffff:0:0/96", "ff00::/8"}},
		{all6, "2001:db8::1", []string{"::/128", "::ffff:0:0/96", "ff00::/8"}},
	} {
		fam := "IPv4"
		if tc.space.Addr().Is6() {
			fam = "IPv6"
		}
		t.Run(fmt.Sprintf("every %s address but %s and %v", fam, tc.hole, tc.never), func(t *testing.T) {
			raw := complement(tc.space, append([]string{tc.hole + "/" + fmt.Sprint(tc.space.Addr().BitLen())}, tc.never...)...)
			cfg := minimalConfig(c)
			cfg.Identity.Header.RawTrustedProxies = raw
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate(%d prefixes) = %v, want nil", len(raw), err)
			}
			cfg.Identity.Header.RawTrustedProxies = append(raw, tc.hole)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), key+`: "`) || strings.Contains(err.Error(), "\n") ||
				!strings.HasSuffix(err.Error(), fmt.Sprintf(unions, fam)) {
				t.Errorf("Validate(%d prefixes and %s) = %v, want %s: ..."+unions, len(raw), tc.hole, err, key, fam)
			}
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := minimalConfig(c)
			cfg.Identity.Header.RawTrustedProxies = tc.raw
			if diff := cmp.Diff(tc.errs, errLines(cfg.Validate())); diff != "" {
				t.Errorf("Validate(%q) mismatch (-want +got):\n%s", tc.raw, diff)
			}
			var warns []string
			for _, w := range cfg.Warnings() {
				warns = append(warns, w.Error())
			}
			if diff := cmp.Diff(tc.warns, warns); diff != "" {
				t.Errorf("Warnings(%q) mismatch (-want +got):\n%s", tc.raw, diff)
			}
			if tc.errs != nil {
				return
			}
			var trusted []string
			for _, p := range cfg.Identity.Header.TrustedProxies() {
				trusted = append(trusted, p.String())
			}
			if diff := cmp.Diff(tc.trusted, trusted); diff != "" {
				t.Errorf("TrustedProxies(%q) mismatch (-want +got):\n%s", tc.raw, diff)
			}
		})
	}
}

// TestWarningsOtherProviders shows that trusted_proxies is only looked at
// for the header provider.
func TestWarningsOtherProviders(t *testing.T) {
	cfg := minimalConfig(writeCerts(t))
	cfg.Identity.Header.RawTrustedProxies = []string{"10.0.0.0/8"}
	if err := cfg.Validate(); err != nil || len(cfg.Warnings()) != 1 {
		t.Fatalf("header provider: Validate = %v, Warnings = %v, want nil and one warning", err, cfg.Warnings())
	}
	cfg.Identity.Provider, cfg.Identity.Static.User = ProviderStatic, `ACME\dev`
	if err := cfg.Validate(); err != nil || cfg.Warnings() != nil {
		t.Errorf("static provider: Validate = %v, Warnings = %v, want nil and none", err, cfg.Warnings())
	}
}

func TestLastAddr(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"0.0.0.0/0", "255.255.255.255"},
		{"10.0.0.0/8", "10.255.255.255"},
		{"10.1.2.3/32", "10.1.2.3"},
		{"192.168.0.0/23", "192.168.1.255"},
		{"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"::/1", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"2001:db8::/33", "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff"},
		{"::1/128", "::1"},
	}
	for _, tc := range tests {
		if got := lastAddr(netip.MustParsePrefix(tc.prefix)); got.String() != tc.want {
			t.Errorf("lastAddr(%s) = %v, want %s", tc.prefix, got, tc.want)
		}
	}
}
