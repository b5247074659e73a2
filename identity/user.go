// Package identity decides who the end user of a request is. A Provider
// (trusted header, static development user, later OIDC and JWT) turns a
// request into a User: the Qlik user directory, user id and ticket
// attributes sensegate logs that user into Qlik as.
package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
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

// Key is u's stable key in the session jar: Qlik compares directories and
// user ids without regard to case, and two logins with different
// attributes are different Qlik identities, so the attributes (sorted) are
// part of the key. It contains no secrets.
func (u User) Key() string {
	k := strings.ToUpper(u.Directory) + `\` + strings.ToLower(u.ID)
	if len(u.Attributes) == 0 {
		return k
	}
	attrs := make([]string, len(u.Attributes))
	for i, a := range u.Attributes {
		attrs[i] = a.Key + "\x00" + a.Value
	}
	sort.Strings(attrs)
	h := sha256.Sum256([]byte(strings.Join(attrs, "\x01")))
	return k + "#" + hex.EncodeToString(h[:8])
}

// Validate applies Qlik's rules for UserDirectory and UserId: neither may be
// blank or contain a backslash.
func (u User) Validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"user directory", u.Directory}, {"user id", u.ID}} {
		switch {
		case strings.TrimSpace(f.v) == "":
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
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
