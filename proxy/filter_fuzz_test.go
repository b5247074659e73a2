package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzStripTicketParams strips qlikTicket from arbitrary raw queries: no
// parameter named qlikTicket in any case remains, as the query decodes,
// and every other parameter keeps its values in order.
func FuzzStripTicketParams(f *testing.F) {
	for _, q := range []string{
		"", "a=1", "qlikTicket=abc", "QLIKTICKET=abc&x=1", "x=1&qlikticket=a&qlikTicket=b&y=2",
		"qlikTicket", "qlikTicket=&qlikTicket=", "qlik+ticket=1",
		"qlikTicket=a;x=1", "a=%zz&qlikTicket=x",
		"xrfkey=0123456789abcdef&qlikTicket=T", "a=1&a=2&b=%20", "qlıkticket=1", "qlikticKet%00=1",
		"qlik%54icket=abc", "q%6CikTicket=abc", "%71likticket=1", // percent-encoded names (a bug it found)
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u := &url.URL{Path: "/hub/", RawQuery: raw}
		before, _ := url.ParseQuery(raw)
		stripTicketParams(u)
		after, _ := url.ParseQuery(u.RawQuery)
		for k := range after {
			if strings.EqualFold(k, "qlikticket") {
				t.Fatalf("query %q: %q survives as %q", raw, k, u.RawQuery)
			}
		}
		for k, vs := range before {
			if strings.EqualFold(k, "qlikticket") {
				continue
			}
			if !slices.Equal(after[k], vs) {
				t.Fatalf("query %q: parameter %q was %q, now %q (%q)", raw, k, vs, after[k], u.RawQuery)
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok {
				t.Fatalf("query %q: parameter %q appeared (%q)", raw, k, u.RawQuery)
			}
		}
	})
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
		dropCookies(hdr, names)
		if hdr.Get("Other") != "x" {
			t.Fatal("another header was touched")
		}
		var want []string
		for _, l := range lines {
			for p := range strings.SplitSeq(l, ";") {
				p = strings.TrimSpace(p)
				name, _, _ := strings.Cut(p, "=")
				if p == "" || strings.HasPrefix(strings.ToLower(strings.TrimSpace(name)), "x-qlik-session") || slices.Contains(names, strings.TrimSpace(name)) {
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

// FuzzIsLoginRedirect checks the login-redirect detection on arbitrary
// statuses and Locations: only 3xx statuses, only Locations naming a
// Qlik authentication target, regardless of ASCII case.
func FuzzIsLoginRedirect(f *testing.F) {
	for _, s := range []struct {
		status int
		loc    string
	}{
		{302, "https://qlik/internal_forms_authentication/?targetId=x"},
		{302, "https://qlik/sales/internal_windows_authentication/?targetId=x"},
		{302, "https://idp.example.com/login?proxyRestUri=https://qlik:4243/qps/&targetId=abc"},
		{302, "https://auth.example.com/module?x=1"},
		{200, "https://qlik/internal_forms_authentication/"},
		{302, "/hub/"},
		{307, ""},
		{399, "HTTPS://AUTH.EXAMPLE.COM/MODULE"},
		{-1, "\x00"},
		{400, "proxyresturi=&targetid="},
	} {
		f.Add(s.status, s.loc)
	}
	h := &Handler{opts: Options{AuthModuleURL: "https://auth.example.com/module"}}
	f.Fuzz(func(t *testing.T, status int, loc string) {
		got := h.isLoginRedirect(status, loc)
		if got && (status < 300 || status > 399) {
			t.Fatalf("status %d counted as a login redirect", status)
		}
		l := strings.ToLower(loc)
		if got && !strings.Contains(l, "authentication") && !strings.Contains(l, "targetid=") && !strings.HasPrefix(l, "https://auth.example.com/module") {
			t.Fatalf("%d %q counted as a login redirect", status, loc)
		}
		if isASCII(loc) {
			if h.isLoginRedirect(status, strings.ToUpper(loc)) != got || h.isLoginRedirect(status, l) != got {
				t.Fatalf("%d %q: detection depends on case", status, loc)
			}
		}
		if status >= 300 && status <= 399 && strings.Contains(l, "/internal_forms_authentication") && !got {
			t.Fatalf("%d %q: forms login not detected", status, loc)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
