package identity

import (
	"bytes"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, cookieKeySize) }

func TestCookieCipher(t *testing.T) {
	c, err := newCookieCipher([][]byte{testKey(1)})
	if err != nil {
		t.Fatal(err)
	}
	sealed := c.seal("sensegate_session", []byte("session-id"))
	if strings.ContainsAny(sealed, "+/=;, ") {
		t.Fatalf("seal = %q, want unpadded base64url", sealed)
	}
	if again := c.seal("sensegate_session", []byte("session-id")); again == sealed {
		t.Errorf("two seals of one value are equal (%q): the nonce is not random", sealed)
	}
	flipped := []byte(sealed)
	flipped[len(flipped)/2] ^= 1
	other, _ := newCookieCipher([][]byte{testKey(2)})
	rotated, _ := newCookieCipher([][]byte{testKey(2), testKey(1)})

	tests := []struct {
		name   string
		c      *cookieCipher
		cookie string
		value  string
		want   string // "" for refused
	}{
		{"round trip", c, "sensegate_session", sealed, "session-id"},
		{"tampered", c, "sensegate_session", string(flipped), ""},
		{"other cookie name", c, "sensegate_session_login", sealed, ""},
		{"other key", other, "sensegate_session", sealed, ""},
		{"old key second", rotated, "sensegate_session", sealed, "session-id"},
		{"not base64url", c, "sensegate_session", "a+b/c==", ""},
		{"empty", c, "sensegate_session", "", ""},
		{"too short", c, "sensegate_session", "AAAA", ""},
		{"truncated", c, "sensegate_session", sealed[:len(sealed)-4], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.c.open(tt.cookie, tt.value)
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("open = %q, want refused", got)
			case tt.want != "" && (err != nil || string(got) != tt.want):
				t.Errorf("open = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	// After rotation the new key seals: the old cipher alone cannot open.
	if _, err := c.open("sensegate_session", rotated.seal("sensegate_session", []byte("x"))); err == nil {
		t.Error("a value sealed after rotation opens with the old key alone")
	}
}

func TestNewCookieCipherKeys(t *testing.T) {
	tests := []struct {
		name string
		keys [][]byte
		want string
	}{
		{"none", nil, "at least one key"},
		{"short", [][]byte{testKey(1), make([]byte, 16)}, "key 1 is 16 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newCookieCipher(tt.keys); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newCookieCipher = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzCookieCipherOpen: a cookie value from a client never panics and
// never opens unless it is a value we sealed.
func FuzzCookieCipherOpen(f *testing.F) {
	c, err := newCookieCipher([][]byte{testKey(1), testKey(2)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.seal("n", []byte("secret")))
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("A", 60))
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, v string) {
		if got, err := c.open("n", v); err == nil && string(got) != "secret" {
			t.Errorf("open(%q) = %q: a forged value opened", v, got)
		}
	})
}
