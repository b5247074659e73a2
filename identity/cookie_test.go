package identity

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/seal"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, seal.KeySize) }

func testRing(t testing.TB, keys ...[]byte) *seal.Ring {
	t.Helper()
	r, err := seal.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSealString covers the cookie form; package seal tests the sealing
// itself (rotation, tampering, keys).
func TestSealString(t *testing.T) {
	r := testRing(t, testKey(1))
	sealed := sealString(r, "sensegate_session", []byte("session-id"))
	if strings.ContainsAny(sealed, "+/=;, ") {
		t.Fatalf("sealString = %q, want unpadded base64url", sealed)
	}

	tests := []struct {
		name   string
		cookie string
		value  string
		want   string // "" for refused
	}{
		{"round trip", "sensegate_session", sealed, "session-id"},
		{"other cookie name", "sensegate_session_login", sealed, ""},
		{"not base64url", "sensegate_session", "a+b/c==", ""},
		{"padded", "sensegate_session", sealed + "=", ""},
		{"empty", "sensegate_session", "", ""},
		{"too short", "sensegate_session", "AAAA", ""},
		{"truncated", "sensegate_session", sealed[:len(sealed)-4], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := openString(r, tt.cookie, tt.value)
			switch {
			case tt.want == "" && !errors.Is(err, seal.ErrInvalid):
				t.Errorf("openString = %q, %v; want seal.ErrInvalid", got, err)
			case tt.want != "" && (err != nil || string(got) != tt.want):
				t.Errorf("openString = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestOpenStringSealedBeforeSeal: cookies and stored sessions sealed
// before package seal (by identity's own cookieCipher, key testKey(1))
// still open, also with that key second after a rotation.
func TestOpenStringSealedBeforeSeal(t *testing.T) {
	tests := []struct{ name, value, want string }{
		{"sensegate_session", "ZVXFpnEjs0KAVbDkDwAvs6yU6tGhCmEZzn1oIik1gjKpA1JTPAU", "session-id"},
		{"session abc", "mrse3B1KpbiCM21qRE30AfO_Sf4P8kIkAXnW9ef9ToK0iGVGCmK4", `{"iss":"x"}`},
	}
	for _, r := range []*seal.Ring{testRing(t, testKey(1)), testRing(t, testKey(2), testKey(1))} {
		for _, tt := range tests {
			if got, err := openString(r, tt.name, tt.value); err != nil || string(got) != tt.want {
				t.Errorf("openString(%q, %q) = %q, %v; want %q", tt.name, tt.value, got, err, tt.want)
			}
		}
	}
}

// FuzzOpenString: a cookie value from a client never panics and never
// opens unless it is a value we sealed.
func FuzzOpenString(f *testing.F) {
	r := testRing(f, testKey(1), testKey(2))
	f.Add(sealString(r, "n", []byte("secret")))
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 60))
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, v string) {
		if got, err := openString(r, "n", v); err == nil && string(got) != "secret" {
			t.Errorf("openString(%q) = %q: a forged value opened", v, got)
		}
	})
}
