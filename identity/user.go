// Package identity decides who the end user of a request is. A Provider
// (trusted header, static development user, later OIDC and JWT) turns a
// request into a User: the Qlik user directory, user id and ticket
// attributes sensegate logs that user into Qlik as.
package identity

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Attribute is one Qlik ticket attribute (keys may repeat, values may be empty).
type Attribute struct {
	Key   string
	Value string
}

// User is a Qlik identity. The zero User is "nobody".
type User struct {
	// Directory is the Qlik user directory, e.g. "ACME".
	Directory string
	// ID is the user id within Directory, e.g. "alice".
	ID string
	// Attributes become ticket attributes (X-Qlik-Security downstream),
	// e.g. repeated Group attributes.
	Attributes []Attribute
}

// String returns "DIRECTORY\id", the form Qlik and the logs use.
func (u User) String() string { return u.Directory + `\` + u.ID }

// IsZero reports whether u is the zero User.
func (u User) IsZero() bool { return u.Directory == "" && u.ID == "" && len(u.Attributes) == 0 }

// Key is u's key: the one name under which everything per user is kept
// and decided (the session jar, the login single-flight and lock, the
// login rate, the choice of Qlik node, "close this user's websockets").
// It contains no secrets.
//
// Two users have the same key exactly when their directories and ids are
// equal but for the case of ASCII letters and their attributes are equal
// as multisets (two logins with different attributes are different Qlik
// identities). Qlik compares user ids without regard to case, but only
// ASCII is folded here: Unicode case mapping merges distinct names ("alİce"
// with U+0130 lower-cases to "alice", the Kelvin sign to "k"), and two
// names sensegate must keep apart may share a session with nobody. The
// fields are length-prefixed, so no id can spell another user's key, and
// the attributes are a SHA-256 digest in a field of their own:
//
//	<len>:<DIRECTORY>,<len>:<id>[#<hex SHA-256 of the sorted attributes>]
//
// Lengths are in bytes, after folding (which keeps lengths).
func (u User) Key() string {
	// Key runs for every proxied request (the jar lookup): the key is
	// built in a buffer on the stack, so that the string is its one
	// allocation (a longer key grows the buffer onto the heap).
	var buf [128]byte
	b := u.appendQlikUserKey(buf[:0])
	if len(u.Attributes) > 0 {
		d := attributesDigest(u.Attributes)
		b = append(b, '#')
		b = hex.AppendEncode(b, d[:])
	}
	return string(b)
}

// QlikUserKey is the key of the Qlik user u is, whatever its attributes:
// Key without the attribute field, for what is bounded per Qlik user
// rather than per identity (the login rate: Qlik's sessions and tickets
// are counted per user).
func (u User) QlikUserKey() string {
	return string(u.appendQlikUserKey(make([]byte, 0, len(u.Directory)+len(u.ID)+24)))
}

// appendQlikUserKey appends "<len>:<DIRECTORY>,<len>:<id>" to b.
func (u User) appendQlikUserKey(b []byte) []byte {
	b = appendField(b, u.Directory, asciiUpper)
	b = append(b, ',')
	return appendField(b, u.ID, asciiLower)
}

// appendField appends "<len>:<fold(s)>" to b.
func appendField(b []byte, s string, fold func(byte) byte) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	for i := 0; i < len(s); i++ {
		b = append(b, fold(s[i]))
	}
	return b
}

// asciiLower and asciiUpper fold the case of ASCII letters only; every
// other byte (UTF-8 sequences included) is kept as it is.
func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func asciiUpper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// attributesDigest is the SHA-256 of attrs in a canonical order, each key
// and value length-prefixed, so that neither order nor separators in
// values can make two different sets alike.
//
// It runs for every request of a user with attributes (Key), so the usual
// few attributes are sorted and encoded in buffers on the stack and hashed
// in one go: no allocation. More of them spill onto the heap; the digest
// is the same either way.
func attributesDigest(attrs []Attribute) [sha256.Size]byte {
	var sortBuf [16]Attribute
	sorted := append(sortBuf[:0], attrs...)
	slices.SortFunc(sorted, func(a, b Attribute) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	var encBuf [512]byte
	enc := encBuf[:0]
	for _, a := range sorted {
		enc = binary.AppendUvarint(enc, uint64(len(a.Key)))
		enc = append(enc, a.Key...)
		enc = binary.AppendUvarint(enc, uint64(len(a.Value)))
		enc = append(enc, a.Value...)
	}
	return sha256.Sum256(enc)
}

// Validate applies Qlik's rules for UserDirectory and UserId (neither may be
// blank or contain a backslash) and sensegate's: both must be valid UTF-8
// without control characters (a ticket request carries them as JSON,
// which would turn different invalid bytes into the same U+FFFD, and no
// Qlik user is named with a control character) and without leading or
// trailing spaces.
func (u User) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"user directory", u.Directory}, {"user id", u.ID}} {
		switch {
		case strings.TrimSpace(f.v) == "":
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		case !utf8.ValidString(f.v):
			errs = append(errs, fmt.Errorf("%s %q is not valid UTF-8", f.name, f.v))
		case strings.ContainsFunc(f.v, unicode.IsControl):
			errs = append(errs, fmt.Errorf("%s %q contains a control character", f.name, f.v))
		case strings.Contains(f.v, `\`):
			errs = append(errs, fmt.Errorf("%s %q contains a backslash", f.name, f.v))
		case f.v != strings.TrimSpace(f.v):
			errs = append(errs, fmt.Errorf("%s %q has leading or trailing spaces", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// ParseUser reads "DIRECTORY\id", or a bare "id" in defaultDirectory.
func ParseUser(s, defaultDirectory string) (User, error) {
	u := User{Directory: defaultDirectory, ID: s}
	if d, id, ok := strings.Cut(s, `\`); ok {
		u = User{Directory: d, ID: id}
	}
	if err := u.Validate(); err != nil {
		return User{}, fmt.Errorf("identity: user %q: %w", s, err)
	}
	return u, nil
}
