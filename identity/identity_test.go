package identity

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeaderProvider(t *testing.T) {
	h := NewHeader(HeaderOptions{Name: "x-forwarded-user", Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, DefaultDirectory: "ACME"})
	tests := []struct {
		name       string
		remote     string
		values     []string
		want       User
		wantStatus int
	}{
		{"bare user", "10.1.2.3:5555", []string{"alice"}, User{Directory: "ACME", ID: "alice"}, 0},
		{"directory and user", "10.1.2.3:5555", []string{`CORP\bob`}, User{Directory: "CORP", ID: "bob"}, 0},
		{"ipv6 trusted", "[::1]:5555", []string{"alice"}, User{Directory: "ACME", ID: "alice"}, 0},
		{"ipv4-mapped trusted", "[::ffff:10.0.0.1]:5555", []string{"alice"}, User{Directory: "ACME", ID: "alice"}, 0},
		{"untrusted peer with header", "192.168.1.1:5555", []string{"alice"}, User{}, 403},
		{"untrusted peer without header", "192.168.1.1:5555", nil, User{}, 401},
		{"trusted peer without header", "10.1.2.3:5555", nil, User{}, 401},
		{"repeated header", "10.1.2.3:5555", []string{"alice", "bob"}, User{}, 403},
		{"two backslashes", "10.1.2.3:5555", []string{`A\B\c`}, User{}, 403},
		{"empty user", "10.1.2.3:5555", []string{`ACME\`}, User{}, 403},
		{"blank", "10.1.2.3:5555", []string{"  "}, User{}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.values {
				r.Header.Add("X-Forwarded-User", v)
			}
			got, err := h.Identify(r)
			var ie *Error
			switch {
			case tt.wantStatus == 0 && err != nil:
				t.Fatalf("Identify = %v, want %v", err, tt.want)
			case tt.wantStatus != 0 && (!errors.As(err, &ie) || ie.Status != tt.wantStatus):
				t.Fatalf("Identify = %v, %v; want status %d", got, err, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
	if got := h.StripHeaders(); len(got) != 1 || got[0] != "X-Forwarded-User" {
		t.Errorf("StripHeaders = %v", got)
	}
}

func TestHeaderDirectoryAndGroups(t *testing.T) {
	h := NewHeader(HeaderOptions{Name: "X-User", DirectoryHeader: "X-Dir", GroupsHeader: "X-Groups", Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, DefaultDirectory: "ACME"})
	tests := []struct {
		name    string
		remote  string
		hdr     [][2]string
		want    User
		wantErr int
	}{
		{"directory header", "10.0.0.1:1", [][2]string{{"X-User", "alice"}, {"X-Dir", "CORP"}}, User{Directory: "CORP", ID: "alice"}, 0},
		{"user header's directory wins", "10.0.0.1:1", [][2]string{{"X-User", `EU\alice`}, {"X-Dir", "CORP"}}, User{Directory: "EU", ID: "alice"}, 0},
		{"groups", "10.0.0.1:1", [][2]string{{"X-User", "bob"}, {"X-Groups", "Sales, EMEA"}, {"X-Groups", "Ops"}},
			User{Directory: "ACME", ID: "bob", Attributes: []Attribute{{Key: "Group", Value: "Sales"}, {Key: "Group", Value: "EMEA"}, {Key: "Group", Value: "Ops"}}}, 0},
		{"groups header alone from an untrusted peer", "192.0.2.1:1", [][2]string{{"X-Groups", "Admins"}}, User{}, 403},
		{"repeated directory", "10.0.0.1:1", [][2]string{{"X-User", "bob"}, {"X-Dir", "A"}, {"X-Dir", "B"}}, User{}, 403},
		{"directory with backslash", "10.0.0.1:1", [][2]string{{"X-User", "bob"}, {"X-Dir", `A\B`}}, User{}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, kv := range tt.hdr {
				r.Header.Add(kv[0], kv[1])
			}
			got, err := h.Identify(r)
			var ie *Error
			if tt.wantErr != 0 {
				if !errors.As(err, &ie) || ie.Status != tt.wantErr {
					t.Fatalf("Identify = %v, %v; want status %d", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
		})
	}
	if got := h.StripHeaders(); strings.Join(got, ",") != "X-User,X-Dir,X-Groups" {
		t.Errorf("StripHeaders = %v", got)
	}
}

func TestStaticProvider(t *testing.T) {
	u := User{Directory: "ACME", ID: "dev"}
	got, err := NewStatic(u).Identify(httptest.NewRequest("GET", "/", nil))
	if err != nil || got.String() != `ACME\dev` {
		t.Errorf("Identify = %v, %v", got, err)
	}
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		in, dir string
		want    string
		ok      bool
	}{
		{"alice", "ACME", `ACME\alice`, true},
		{`CORP\bob`, "ACME", `CORP\bob`, true},
		{"alice", "", "", false},
		{`\alice`, "ACME", "", false},
		{" alice", "ACME", "", false},
		{`a\b\c`, "ACME", "", false},
	}
	for _, tt := range tests {
		u, err := ParseUser(tt.in, tt.dir)
		if (err == nil) != tt.ok || (tt.ok && u.String() != tt.want) {
			t.Errorf("ParseUser(%q, %q) = %v, %v; want %q ok=%v", tt.in, tt.dir, u, err, tt.want, tt.ok)
		}
	}
}

func TestSafeRedirect(t *testing.T) {
	for in, want := range map[string]string{
		"/mashup/?a=1":         "/mashup/?a=1",
		"":                     "/",
		"//evil.example":       "/",
		`/\evil.example`:       "/",
		"/\t/evil.example":     "/",
		"/\n/evil.example":     "/",
		"https://evil.example": "/",
		"evil.example":         "/",
	} {
		if got := SafeRedirect(in); got != want {
			t.Errorf("SafeRedirect(%q) = %q, want %q", in, got, want)
		}
	}
}
