package identity

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzHeaderIdentify sends arbitrary user, directory and groups headers
// from a trusted peer. An accepted user is a valid Qlik user whose
// directory and id hold no backslash, with one Group attribute per
// non-blank group; a refusal is an *Error with a 4xx status.
func FuzzHeaderIdentify(f *testing.F) {
	f.Add(`ACME\alice`, "", "Sales, Finance")
	f.Add("alice", "CORP", "")
	f.Add("alice", "", "")
	f.Add(`\alice`, "", "")
	f.Add(`ACME\`, "", "")
	f.Add(`ACME\a\b`, "", "")
	f.Add(" alice ", " CORP ", " , ,, ")
	f.Add("alice", `CO\RP`, "")
	f.Add("", "", "")
	f.Add("alice\x00", "CORP\t", "a\x7fb")
	f.Add("élise", "ÉCOLE", "grüppe,\u00a0")
	f.Add(`ACME\alice`, "OTHER", `Admin\x,,Sales`)
	f.Fuzz(func(t *testing.T, user, dir, groups string) {
		h := fuzzHeaderProvider()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.1.2.3:4567"
		// Set the values as they are: a server would refuse some, but
		// Identify must cope with whatever reaches it.
		r.Header["X-User"] = []string{user}
		if dir != "" {
			r.Header["X-Directory"] = []string{dir}
		}
		if groups != "" {
			r.Header["X-Groups"] = []string{groups}
		}
		u, err := h.Identify(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status < 400 || e.Status > 499 {
				t.Fatalf("Identify error %v is not an *Error with a 4xx status", err)
			}
			if !u.IsZero() {
				t.Fatalf("Identify returned %v with error %v", u, err)
			}
			return
		}
		checkUser(t, u)
		if !strings.Contains(user, `\`) {
			want := "DEFAULT"
			if dir != "" {
				want = dir
			}
			if u.Directory != want || u.ID != user {
				t.Fatalf("user %q dir %q: got %q %q", user, dir, u.Directory, u.ID)
			}
		}
		n := 0
		for g := range strings.SplitSeq(groups, ",") {
			if strings.TrimSpace(g) != "" {
				n++
			}
		}
		if len(u.Attributes) != n {
			t.Fatalf("groups %q: %d attributes, want %d", groups, len(u.Attributes), n)
		}
		for _, a := range u.Attributes {
			if a.Key != "Group" || a.Value == "" || a.Value != strings.TrimSpace(a.Value) || strings.Contains(a.Value, ",") {
				t.Fatalf("groups %q: bad attribute %+v", groups, a)
			}
		}
	})
}

// FuzzHeaderIdentifyUntrusted sends the same headers from an untrusted
// peer: never a user.
func FuzzHeaderIdentifyUntrusted(f *testing.F) {
	f.Add(`ACME\alice`, "", "Sales")
	f.Add("", "CORP", "")
	f.Add("", "", "Admins")
	f.Fuzz(func(t *testing.T, user, dir, groups string) {
		h := fuzzHeaderProvider()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "192.0.2.1:4567"
		r.Header["X-User"] = []string{user}
		r.Header["X-Directory"] = []string{dir}
		r.Header["X-Groups"] = []string{groups}
		u, err := h.Identify(r)
		if err == nil || !u.IsZero() {
			t.Fatalf("untrusted peer identified as %v", u)
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != http.StatusForbidden {
			t.Fatalf("untrusted peer with identity headers: %v, want a 403", err)
		}
	})
}

// FuzzParseUser parses arbitrary user strings: a result is valid, has no
// backslash, and reassembles the input.
func FuzzParseUser(f *testing.F) {
	f.Add(`ACME\alice`, "")
	f.Add("alice", "ACME")
	f.Add("alice", "")
	f.Add(`\`, "ACME")
	f.Add(`A\B\C`, "ACME")
	f.Add(" alice", "ACME")
	f.Add("alice", `AC\ME`)
	f.Add("\u3000alice", "ACME")
	f.Add("\xff\xfe", "ACME")
	f.Fuzz(func(t *testing.T, s, dir string) {
		u, err := ParseUser(s, dir)
		if err != nil {
			if !u.IsZero() {
				t.Fatalf("ParseUser(%q, %q) returned %v with error %v", s, dir, u, err)
			}
			return
		}
		checkUser(t, u)
		if len(u.Attributes) != 0 {
			t.Fatalf("ParseUser made attributes: %+v", u.Attributes)
		}
		if strings.Contains(s, `\`) {
			if u.String() != s {
				t.Fatalf("ParseUser(%q) = %q", s, u.String())
			}
		} else if u.Directory != dir || u.ID != s {
			t.Fatalf("ParseUser(%q, %q) = %q %q", s, dir, u.Directory, u.ID)
		}
		// The canonical form parses back to the same user.
		v, err := ParseUser(u.String(), "OTHER")
		if err != nil || v.Directory != u.Directory || v.ID != u.ID {
			t.Fatalf("ParseUser(%q) = %v, %v; want %v", u.String(), v, err, u)
		}
	})
}

func checkUser(t *testing.T, u User) {
	t.Helper()
	if err := u.Validate(); err != nil {
		t.Fatalf("accepted user %q is invalid: %v", u.String(), err)
	}
	if strings.Contains(u.ID, `\`) || strings.Contains(u.Directory, `\`) {
		t.Fatalf("accepted user %q has a backslash in its directory or id", u.String())
	}
	if strings.TrimSpace(u.ID) == "" || strings.TrimSpace(u.Directory) == "" {
		t.Fatalf("accepted user %q is blank", u.String())
	}
}

// FuzzSafeRedirect checks that a redirect target stays on this site.
func FuzzSafeRedirect(f *testing.F) {
	for _, s := range []string{
		"/", "/hub/", "/app/x?y=1#z", "", "//evil.example", `/\evil.example`, `\\evil`,
		"https://evil.example/", "javascript:alert(1)", "/\t/evil", "/%2F/evil", "/\r\nSet-Cookie: x=y",
		"/\x7f", " /x", "/x\u2028", "///x", "/.//x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got := SafeRedirect(rd)
		if got != "/" && got != rd {
			t.Fatalf("SafeRedirect(%q) = %q: neither the input nor /", rd, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, `/\`) {
			t.Fatalf("SafeRedirect(%q) = %q leaves the site", rd, got)
		}
		if strings.ContainsFunc(got, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			t.Fatalf("SafeRedirect(%q) = %q has a control character", rd, got)
		}
	})
}

// fuzzHeaderProvider is the header provider of the fuzz targets: user,
// directory and groups headers, trusting 10.0.0.0/8.
func fuzzHeaderProvider() *Header {
	return NewHeader(HeaderOptions{
		Name: "X-User", DirectoryHeader: "X-Directory", GroupsHeader: "X-Groups",
		Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, DefaultDirectory: "DEFAULT",
	})
}
