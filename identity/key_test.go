package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Issue 14: look-alike identities shared one key, and so one Qlik session.
// Every pair here is two users, each of which must keep a key of its own.
func TestUserKeyLookAlikes(t *testing.T) {
	sales := []Attribute{{Key: "Group", Value: "Sales"}}
	tests := []struct {
		name string
		a, b User
	}{
		{"dotted capital I (U+0130) lower-cases to i", User{"ACME", "alice", nil}, User{"ACME", "al\u0130ce", nil}},
		{"Kelvin sign (U+212A) lower-cases to k", User{"ACME", "kim", nil}, User{"ACME", "\u212aim", nil}},
		{"long s (U+017F) upper-cases to S", User{"ACMES", "bob", nil}, User{"ACME\u017f", "bob", nil}},
		{"dotless i (U+0131) upper-cases to I", User{"ACME", "IVAN", nil}, User{"ACME", "\u0131van", nil}},
		{"old attribute digest spelt in the id", User{"ACME", "alice", sales}, User{"ACME", "alice#" + oldAttrDigest(sales), nil}},
		{"new attribute digest spelt in the id", User{"ACME", "alice", sales}, User{"ACME", "alice#" + newAttrDigest(sales), nil}},
		{"separator moved between the fields", User{"AC", "ME,bob", nil}, User{"AC,ME", "bob", nil}},
		{"length prefix spelt in the id", User{"A", "1:b", nil}, User{"A,1:B", "", nil}},
		{"backslash form of the old key", User{`ACME\x`, "y", nil}, User{"ACME", `x\y`, nil}},
		{"attribute separators in a value", User{"ACME", "a", []Attribute{{"G", "x\x00G\x01y"}}}, User{"ACME", "a", []Attribute{{"G", "x"}, {"G", "y"}}}},
		{"attribute key and value split otherwise", User{"ACME", "a", []Attribute{{"Gr", "oup"}}}, User{"ACME", "a", []Attribute{{"G", "roup"}}}},
		{"attribute value case", User{"ACME", "a", []Attribute{{"Group", "sales"}}}, User{"ACME", "a", sales}},
		{"repeated attribute", User{"ACME", "a", sales}, User{"ACME", "a", append(slices.Clone(sales), sales...)}},
		{"no attributes and one empty one", User{"ACME", "a", nil}, User{"ACME", "a", []Attribute{{"", ""}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ka, kb := tt.a.Key(), tt.b.Key(); ka == kb {
				t.Errorf("%+v and %+v share the key %q", tt.a, tt.b, ka)
			}
		})
	}
}

// The same user, spelt otherwise, keeps one key: Qlik compares user ids
// without regard to case, and attributes are a set of pairs.
func TestUserKeySameUser(t *testing.T) {
	tests := []struct {
		name string
		a, b User
	}{
		{"ASCII case", User{"acme", "Alice", nil}, User{"ACME", "alice", nil}},
		{"attribute order", User{"ACME", "a", []Attribute{{"Group", "A"}, {"Group", "B"}}}, User{"ACME", "a", []Attribute{{"Group", "B"}, {"Group", "A"}}}},
		{"non-ASCII kept as it is", User{"ÉCOLE", "élise", nil}, User{"ÉCOLE", "élise", nil}},
	}
	for _, tt := range tests {
		if ka, kb := tt.a.Key(), tt.b.Key(); ka != kb {
			t.Errorf("%s: Key(%+v) = %q, Key(%+v) = %q, want equal", tt.name, tt.a, ka, tt.b, kb)
		}
	}
	if got, want := (User{"acme", "Alice", []Attribute{{"Group", "A"}}}).QlikUserKey(), (User{"ACME", "alice", nil}).QlikUserKey(); got != want {
		t.Errorf("QlikUserKey = %q and %q: attributes or case made another Qlik user", got, want)
	}
}

// The keys are stored (the session jar, Redis shared by replicas): the
// same user must get the same bytes from every build.
func TestUserKeyGolden(t *testing.T) {
	var many []Attribute
	for i := range 40 {
		many = append(many, Attribute{"Group", fmt.Sprintf("group-%02d-with-a-longer-name", 39-i)})
	}
	tests := []struct {
		u    User
		want string
	}{
		{User{"ACME", "alice", nil}, "4:ACME,5:alice"},
		{User{"acme", "Élise", nil}, "4:ACME,6:Élise"},
		{User{"ACME", "bob", []Attribute{{"Group", "Sales"}, {"Group", "EMEA"}, {"Group", "Analysts"}}}, "4:ACME,3:bob#69aea8d04958658b4d639391470dbecd79ad2f1e1f7fcc11a70e26cd719ad04c"},
		{User{"ACME", "a", []Attribute{{"", ""}}}, "4:ACME,1:a#96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"},
		// More attributes than the key's buffers on the stack hold.
		{User{"ACME", "carol", many}, "4:ACME,5:carol#6be46b46ad0a097c17da2f0ac0d3f4c4c5ee267c32687254031c34bc5bb1938f"},
	}
	for _, tt := range tests {
		if got := tt.u.Key(); got != tt.want {
			t.Errorf("Key(%+v) = %q, want %q", tt.u, got, tt.want)
		}
	}
}

// FuzzUserKey checks the key's contract on arbitrary users: two users share
// a key exactly when their directories and ids are equal under ASCII case
// folding and their attributes are equal as multisets; the key decodes
// back to the folded fields (so it is injective by construction); and
// flipping ASCII case or shuffling attributes never changes it.
//
// Attributes are given as lines of "key=value".
func FuzzUserKey(f *testing.F) {
	f.Add("ACME", "alice", "", "ACME", "al\u0130ce", "", uint64(0))
	f.Add("ACME", "kim", "", "ACME", "\u212aim", "", uint64(1))
	f.Add("ACMES", "bob", "", "ACME\u017f", "bob", "", uint64(2))
	f.Add("ACME", "alice", "Group=Sales", "ACME", "alice#"+oldAttrDigest([]Attribute{{"Group", "Sales"}}), "", uint64(3))
	f.Add("acme", "Alice", "Group=A\nGroup=B", "ACME", "alice", "Group=B\nGroup=A", uint64(4))
	f.Add("AC", "ME,bob", "", "AC,ME", "bob", "", uint64(5))
	f.Add("A", "1:b", "", "A,1:B", "", "", uint64(6))
	f.Add("ACME", "a", "G=x\x00G\x01y", "ACME", "a", "G=x\nG=y", uint64(7))
	f.Fuzz(func(t *testing.T, dir1, id1, attrs1, dir2, id2, attrs2 string, seed uint64) {
		a := User{Directory: dir1, ID: id1, Attributes: parseAttrs(attrs1)}
		b := User{Directory: dir2, ID: id2, Attributes: parseAttrs(attrs2)}
		same := foldEqual(a.Directory, b.Directory) && foldEqual(a.ID, b.ID) && sameAttributes(a.Attributes, b.Attributes)
		if got := a.Key() == b.Key(); got != same {
			t.Fatalf("Key(%+v) = %q, Key(%+v) = %q: equal = %v, want %v", a, a.Key(), b, b.Key(), got, same)
		}
		for _, u := range []User{a, b} {
			dir, id, digest, ok := decodeKey(u.Key())
			if !ok || dir != asciiOnly(u.Directory, true) || id != asciiOnly(u.ID, false) {
				t.Fatalf("Key(%+v) = %q decodes to %q %q %v", u, u.Key(), dir, id, ok)
			}
			if (digest != "") != (len(u.Attributes) > 0) {
				t.Fatalf("Key(%+v) = %q: attribute field %q", u, u.Key(), digest)
			}
			v := User{Directory: flipCase(u.Directory, seed), ID: flipCase(u.ID, seed>>1), Attributes: shuffled(u.Attributes, seed)}
			if u.Key() != v.Key() {
				t.Fatalf("Key(%+v) = %q but Key(%+v) = %q", u, u.Key(), v, v.Key())
			}
		}
	})
}

// TestValidateRefusesControlCharacters: ids and directories with control
// characters or invalid UTF-8 are not Qlik users (Issue 14).
func TestValidateRefusesControlCharacters(t *testing.T) {
	for _, u := range []User{
		{"ACME", "ali\x00ce", nil},
		{"ACME", "alice\r\nX-Evil: 1", nil},
		{"AC\tME", "alice", nil},
		{"ACME", "ali\u0085ce", nil}, // NEL, a C1 control
		{"ACME", "ali\x7fce", nil},
		{"ACME", "al\xffce", nil},
		{"AC\xfeME", "alice", nil},
	} {
		if err := u.Validate(); err == nil {
			t.Errorf("Validate(%q) = nil, want an error", u.String())
		}
		if _, err := ParseUser(u.String(), "ACME"); err == nil {
			t.Errorf("ParseUser(%q) = nil error, want one", u.String())
		}
	}
	for _, u := range []User{{"ACME", "al\u0130ce", nil}, {"ÉCOLE", "élise", nil}, {"ACME", "a b", nil}} {
		if err := u.Validate(); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", u.String(), err)
		}
	}
}

// oldAttrDigest is the attribute part of the key before issue 14: the
// first 8 bytes of SHA-256 over "key\x00value" pairs joined by "\x01".
func oldAttrDigest(attrs []Attribute) string {
	s := make([]string, len(attrs))
	for i, a := range attrs {
		s[i] = a.Key + "\x00" + a.Value
	}
	slices.Sort(s)
	h := sha256.Sum256([]byte(strings.Join(s, "\x01")))
	return hex.EncodeToString(h[:8])
}

// newAttrDigest is the attribute field of today's key.
func newAttrDigest(attrs []Attribute) string {
	k := User{"A", "b", attrs}.Key()
	return k[strings.IndexByte(k, '#')+1:]
}

func parseAttrs(s string) []Attribute {
	if s == "" {
		return nil
	}
	var out []Attribute
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, "=")
		out = append(out, Attribute{Key: k, Value: v})
	}
	return out
}

// foldEqual reports whether a and b are equal but for the case of ASCII
// letters (written apart from the code under test).
func foldEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if lx := x | 0x20; lx == y|0x20 && 'a' <= lx && lx <= 'z' {
			continue
		}
		return false
	}
	return true
}

func sameAttributes(a, b []Attribute) bool {
	key := func(x []Attribute) []string {
		s := make([]string, len(x))
		for i, at := range x {
			s[i] = strconv.Quote(at.Key) + "=" + strconv.Quote(at.Value)
		}
		slices.Sort(s)
		return s
	}
	return slices.Equal(key(a), key(b))
}

// decodeKey parses "<len>:<dir>,<len>:<id>[#<64 hex>]".
func decodeKey(k string) (dir, id, digest string, ok bool) {
	field := func(s string) (string, string, bool) {
		n, rest, found := strings.Cut(s, ":")
		l, err := strconv.Atoi(n)
		if !found || err != nil || l < 0 || l > len(rest) {
			return "", "", false
		}
		return rest[:l], rest[l:], true
	}
	dir, rest, ok := field(k)
	if !ok || !strings.HasPrefix(rest, ",") {
		return "", "", "", false
	}
	id, rest, ok = field(rest[1:])
	switch {
	case !ok:
		return "", "", "", false
	case rest == "":
		return dir, id, "", true
	case len(rest) == 1+64 && rest[0] == '#':
		if _, err := hex.DecodeString(rest[1:]); err != nil {
			return "", "", "", false
		}
		return dir, id, rest[1:], true
	}
	return "", "", "", false
}

// asciiOnly folds ASCII letters to upper (or lower) case, byte by byte.
func asciiOnly(s string, upper bool) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 32
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + 32
		}
	}
	return string(b)
}

// flipCase flips the case of the ASCII letters whose bit in seed is set.
func flipCase(s string, seed uint64) string {
	b := []byte(s)
	for i, c := range b {
		if seed>>(uint(i)%64)&1 == 1 && ('a' <= c|0x20 && c|0x20 <= 'z') {
			b[i] = c ^ 0x20
		}
	}
	return string(b)
}

func shuffled(attrs []Attribute, seed uint64) []Attribute {
	out := slices.Clone(attrs)
	for i := len(out) - 1; i > 0; i-- {
		seed = seed*6364136223846793005 + 1442695040888963407
		j := int(seed>>33) % (i + 1)
		out[i], out[j] = out[j], out[i]
	}
	return out
}
