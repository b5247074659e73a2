package identity

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeaderProvider(t *testing.T) {
	h := NewHeader("x-forwarded-user", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}, "ACME")
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
