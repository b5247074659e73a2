package proxy

import (
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/qlik"
)

// FuzzStripTicketParams strips qlikTicket from arbitrary raw queries: no
// parameter named qlikTicket in any case remains, whether the query is
// decoded strictly (Go) or leniently (.NET, bad escapes kept), and every
// other parameter reaches Qlik byte for byte and in order (issue 14: a
// filter with ";" or "%20" was dropped or re-encoded).
func FuzzStripTicketParams(f *testing.F) {
	for _, q := range []string{
		"", "a=1", "qlikTicket=abc", "QLIKTICKET=abc&x=1", "x=1&qlikticket=a&qlikTicket=b&y=2",
		"qlikTicket", "qlikTicket=&qlikTicket=", "qlik+ticket=1",
		"qlikTicket=a;x=1", "a=%zz&qlikTicket=x",
		"xrfkey=0123456789abcdef&qlikTicket=T", "a=1&a=2&b=%20", "qlıkticket=1", "qlikticKet%00=1",
		"qlik%54icket=abc", "q%6CikTicket=abc", "%71likticket=1", // percent-encoded names (a bug it found)
		"qlik%54icket%zz=1", "qlik%54icket%=1&b", "filter=name%20eq%20'a;b'&qlikTicket=x&xrfkey=k",
		"a&&b=&qlikticket&", "z=1&a=2&m=%7e",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u := &url.URL{Path: "/hub/", RawQuery: raw}
		stripTicketParams(u)
		var want []string
		for _, pair := range strings.Split(raw, "&") {
			name, _, _ := strings.Cut(pair, "=")
			if !isTicketName(name) {
				want = append(want, pair)
			}
		}
		if w := strings.Join(want, "&"); u.RawQuery != w {
			t.Fatalf("query %q became %q, want %q: the pairs but the ticket's, as sent", raw, u.RawQuery, w)
		}
		after, _ := url.ParseQuery(u.RawQuery)
		for k := range after {
			if strings.EqualFold(k, "qlikticket") {
				t.Fatalf("query %q: %q survives as %q", raw, k, u.RawQuery)
			}
		}
	})
}

// isTicketName reports whether a raw query name means qlikTicket to a
// strict or a lenient decoder (written apart from the code under test).
func isTicketName(raw string) bool {
	strict, err := url.QueryUnescape(raw)
	if err == nil && strings.EqualFold(strict, "qlikticket") {
		return true
	}
	lenient := regexp.MustCompile(`%[0-9a-fA-F]{2}`).ReplaceAllStringFunc(strings.ReplaceAll(raw, "+", " "), func(m string) string {
		b, _ := hex.DecodeString(m[1:])
		return string(b)
	})
	return strings.EqualFold(lenient, "qlikticket")
}

// FuzzDropCookies filters arbitrary Cookie headers: no Qlik session
// cookie (X-Qlik-Session*, any case) nor a named one remains, and every
// other cookie is kept, in order.
func FuzzDropCookies(f *testing.F) {
	for _, c := range []string{
		"", "a=1", "X-Qlik-Session=abc; a=1", "x-qlik-session-sales=1;b=2", "sg_session=s; X-QLIK-SESSION=q; c=3",
		";;; ;", "=novalue; a", "X-Qlik-Session", " X-Qlik-Session =x", "a=1;\tX-Qlik-Session-x=\"q\"",
		"sg_session=1; sg_session=2; keep=yes", "a=b=c; d", "x-qlik-sessionX=1", "X-Qlik-Sessio=1",
	} {
		f.Add(c, "")
		f.Add(c, "a=0")
	}
	names := []string{"sg_session", "sg_state"}
	// The virtual proxy's cookie is Sense-VP; X-Qlik-Session… are other
	// virtual proxies' defaults.
	const vpCookie = "Sense-VP"
	isQlik := func(name string) bool { return qlik.IsAnySessionCookie(name, vpCookie) }
	f.Add("sense-vp=1; Sense-VP-HTTP=2; Sense-VPx=3", "")
	f.Fuzz(func(t *testing.T, line1, line2 string) {
		hdr := http.Header{}
		var lines []string
		for _, l := range []string{line1, line2} {
			if l != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			hdr["Cookie"] = slices.Clone(lines)
		}
		hdr.Set("Other", "x")
		dropCookies(hdr, isQlik, names)
		if hdr.Get("Other") != "x" {
			t.Fatal("another header was touched")
		}
		var want []string
		for _, l := range lines {
			for p := range strings.SplitSeq(l, ";") {
				p = strings.TrimSpace(p)
				name, _, _ := strings.Cut(p, "=")
				n := strings.TrimSpace(name)
				if p == "" || strings.HasPrefix(strings.ToLower(n), "x-qlik-session") || strings.EqualFold(n, vpCookie) || strings.EqualFold(n, vpCookie+"-http") || slices.Contains(names, n) {
					continue
				}
				want = append(want, p)
			}
		}
		got := hdr.Values("Cookie")
		if len(want) == 0 {
			if len(got) != 0 {
				t.Fatalf("Cookie %q: %q left, want none", lines, got)
			}
			return
		}
		if len(got) != 1 {
			t.Fatalf("Cookie %q: %d Cookie lines %q, want one", lines, len(got), got)
		}
		var kept []string
		for p := range strings.SplitSeq(got[0], ";") {
			p = strings.TrimSpace(p)
			name, _, _ := strings.Cut(p, "=")
			if strings.HasPrefix(strings.ToLower(name), "x-qlik-session") || slices.Contains(names, name) {
				t.Fatalf("Cookie %q: %q survives in %q", lines, name, got[0])
			}
			kept = append(kept, p)
		}
		if !slices.Equal(kept, want) {
			t.Fatalf("Cookie %q: kept %q, want %q", lines, kept, want)
		}
	})
}
