package seal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func newRing(t testing.TB, keys ...[]byte) *Ring {
	t.Helper()
	r, err := New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRing(t *testing.T) {
	r := newRing(t, testKey(1))
	ad := []byte("sensegate_session")
	sealed := r.Seal(nil, []byte("session-id"), ad)
	if again := r.Seal(nil, []byte("session-id"), ad); bytes.Equal(again, sealed) {
		t.Errorf("two seals of one value are equal (%x): the nonce is not random", sealed)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	other := newRing(t, testKey(2))
	rotated := newRing(t, testKey(2), testKey(1))

	tests := []struct {
		name   string
		r      *Ring
		sealed []byte
		ad     string
		want   string // "" for refused
	}{
		{"round trip", r, sealed, "sensegate_session", "session-id"},
		{"tampered", r, flipped, "sensegate_session", ""},
		{"other associated data", r, sealed, "sensegate_session_login", ""},
		{"other key", other, sealed, "sensegate_session", ""},
		{"old key second", rotated, sealed, "sensegate_session", "session-id"},
		{"empty", r, nil, "sensegate_session", ""},
		{"too short", r, []byte{0, 0, 0}, "sensegate_session", ""},
		{"truncated", r, sealed[:len(sealed)-4], "sensegate_session", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.r.Open(tt.sealed, []byte(tt.ad))
			switch {
			case tt.want == "" && !errors.Is(err, ErrInvalid):
				t.Errorf("Open = %q, %v; want ErrInvalid", got, err)
			case tt.want != "" && (err != nil || string(got) != tt.want):
				t.Errorf("Open = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	// After rotation the new key seals: the old ring alone cannot open.
	if _, err := r.Open(rotated.Seal(nil, []byte("x"), ad), ad); err == nil {
		t.Error("a value sealed after rotation opens with the old key alone")
	}
}

// TestSealAppends: Seal extends dst and leaves its bytes, as the Redis
// store's values (a header, then the sealed value) need.
func TestSealAppends(t *testing.T) {
	r := newRing(t, testKey(1))
	head := []byte("head")
	v := r.Seal(head, []byte("plain"), []byte("k"))
	if !bytes.HasPrefix(v, head) {
		t.Fatalf("Seal(%q, …) = %x, want it to start with %q", head, v, head)
	}
	if got, err := r.Open(v[len(head):], []byte("k")); err != nil || string(got) != "plain" {
		t.Errorf("Open of the appended value = %q, %v; want plain", got, err)
	}
}

// TestOpenSealedBeforeSeal: values sealed by the two copies this package
// replaced (identity's cookieCipher and session's sealer) still open. The
// vectors were made by that code with the keys shown.
func TestOpenSealedBeforeSeal(t *testing.T) {
	tests := []struct {
		name   string
		keys   [][]byte
		sealed string // hex
		ad     string
		want   string
	}{
		{
			// identity: the raw bytes of a login cookie value.
			name:   "cookie",
			keys:   [][]byte{testKey(1)},
			sealed: "6555c5a67123b3428055b0e40f002fb3ac94ead1a10a6119ce7d682229358232a90352533c05",
			ad:     "sensegate_session",
			want:   "session-id",
		},
		{
			// session: a RedisSessions value; the old key is second.
			name:   "redis",
			keys:   [][]byte{testKey(2), testKey(1)},
			sealed: "9db9d044ec2b3a274131052e26aec445a37bbb6574e58f39f0aa354ed563bd11d27ca3a80e348343c4",
			ad:     "sensegate:login:abc",
			want:   "login-session",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := hex.DecodeString(tt.sealed)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := newRing(t, tt.keys...).Open(sealed, []byte(tt.ad)); err != nil || string(got) != tt.want {
				t.Errorf("Open = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	tests := []struct {
		name string
		keys [][]byte
		want string
	}{
		{"none", nil, "at least one key is required"},
		{"empty list", [][]byte{}, "at least one key is required"},
		{"AES-128 first", [][]byte{make([]byte, 16)}, "key 0 is 16 bytes, want 32"},
		{"short second", [][]byte{testKey(1), make([]byte, 31)}, "key 1 is 31 bytes, want 32"},
		{"long", [][]byte{make([]byte, 33)}, "key 0 is 33 bytes, want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := New(tt.keys); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, %v; want an error containing %q", r, err, tt.want)
			}
		})
	}
}

// FuzzOpen: a value from outside (a cookie, a Redis value) never panics
// and never opens unless it is a value we sealed.
func FuzzOpen(f *testing.F) {
	r := newRing(f, testKey(1), testKey(2))
	f.Add(r.Seal(nil, []byte("secret"), []byte("n")))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0})
	f.Add(make([]byte, 60))
	f.Fuzz(func(t *testing.T, v []byte) {
		if got, err := r.Open(v, []byte("n")); err == nil && string(got) != "secret" {
			t.Errorf("Open(%x) = %q: a forged value opened", v, got)
		}
	})
}
