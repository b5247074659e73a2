package identity

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Default claim names of a Mapping.
const (
	DefaultUserIDClaim = "preferred_username"
	DefaultGroupsClaim = "groups"
)

// Mapping turns token claims (OIDC ID token or userinfo, JWT bearer) into
// the Qlik identity sensegate logs the user in as. The zero value is not
// usable; build it with NewMapping.
type Mapping struct {
	userIDClaim    string
	userIDPattern  *regexp.Regexp
	directory      string
	directoryClaim string
	groupsClaim    string
	attributes     []attrClaim // sorted by attribute name
}

type attrClaim struct{ attr, claim string }

// MappingConfig describes a Mapping.
type MappingConfig struct {
	// UserIDClaim names the claim holding the user id
	// (DefaultUserIDClaim if empty), e.g. preferred_username, email, upn, sub.
	UserIDClaim string
	// UserIDPattern, when set, is a regular expression applied to the
	// user id claim; its first capture group (or the whole match) is the
	// user id, e.g. `^([^@]+)@` strips an email domain. A claim it does
	// not match is refused.
	UserIDPattern string
	// Directory is the fixed Qlik user directory, used when
	// DirectoryClaim is empty or absent from the token.
	Directory string
	// DirectoryClaim names a claim holding the directory, if any.
	DirectoryClaim string
	// GroupsClaim names a claim whose values become repeated "Group"
	// ticket attributes (DefaultGroupsClaim if empty; "-" for none).
	GroupsClaim string
	// Attributes maps ticket attribute names to claim names, e.g.
	// {"email": "email", "Department": "department"}.
	Attributes map[string]string
}

// NewMapping checks c and returns its Mapping.
func NewMapping(c MappingConfig) (*Mapping, error) {
	m := &Mapping{userIDClaim: c.UserIDClaim, directory: c.Directory, directoryClaim: c.DirectoryClaim, groupsClaim: c.GroupsClaim}
	if m.userIDClaim == "" {
		m.userIDClaim = DefaultUserIDClaim
	}
	switch m.groupsClaim {
	case "":
		m.groupsClaim = DefaultGroupsClaim
	case "-":
		m.groupsClaim = ""
	}
	if c.UserIDPattern != "" {
		re, err := regexp.Compile(c.UserIDPattern)
		if err != nil {
			return nil, fmt.Errorf("identity: user id pattern: %w", err)
		}
		m.userIDPattern = re
	}
	if strings.TrimSpace(m.directory) == "" && m.directoryClaim == "" {
		return nil, fmt.Errorf("identity: a directory or a directory claim is required")
	}
	for attr, claim := range c.Attributes {
		if strings.TrimSpace(attr) == "" || claim == "" {
			return nil, fmt.Errorf("identity: attribute %q from claim %q: both names are required", attr, claim)
		}
		m.attributes = append(m.attributes, attrClaim{attr, claim})
	}
	sort.Slice(m.attributes, func(i, j int) bool { return m.attributes[i].attr < m.attributes[j].attr })
	return m, nil
}

// ClaimError is a claim that cannot make a Qlik identity; Claim names it
// for the log. It is answered with 403.
type ClaimError struct {
	Claim  string
	Reason string
}

func (e *ClaimError) Error() string { return fmt.Sprintf("claim %q: %s", e.Claim, e.Reason) }

// User maps claims to a User. A missing user id claim, a value Qlik
// refuses (blank, a backslash) or a pattern that does not match is a
// *ClaimError.
func (m *Mapping) User(claims map[string]any) (User, error) {
	id, ok := claimString(claims[m.userIDClaim])
	if !ok {
		return User{}, &ClaimError{m.userIDClaim, "missing or not a string"}
	}
	if m.userIDPattern != nil {
		sub := m.userIDPattern.FindStringSubmatch(id)
		switch {
		case sub == nil:
			return User{}, &ClaimError{m.userIDClaim, fmt.Sprintf("does not match the user id pattern %s", m.userIDPattern)}
		case len(sub) > 1:
			id = sub[1]
		default:
			id = sub[0]
		}
	}
	dir := m.directory
	if m.directoryClaim != "" {
		if d, ok := claimString(claims[m.directoryClaim]); ok {
			dir = d
		} else if strings.TrimSpace(dir) == "" {
			return User{}, &ClaimError{m.directoryClaim, "missing and no fixed directory is configured"}
		}
	}
	u := User{Directory: dir, ID: id}
	if err := u.Validate(); err != nil {
		claim := m.userIDClaim
		if strings.Contains(err.Error(), "directory") && m.directoryClaim != "" {
			claim = m.directoryClaim
		}
		return User{}, &ClaimError{claim, err.Error()}
	}
	if m.groupsClaim != "" {
		for _, g := range claimStrings(claims[m.groupsClaim]) {
			u.Attributes = append(u.Attributes, Attribute{Key: "Group", Value: g})
		}
	}
	for _, a := range m.attributes {
		for _, v := range claimStrings(claims[a.claim]) {
			u.Attributes = append(u.Attributes, Attribute{Key: a.attr, Value: v})
		}
	}
	return u, nil
}

// claimString returns a claim's single string value.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []any:
		if len(x) == 1 {
			return claimString(x[0])
		}
	}
	return "", false
}

// claimStrings returns a claim's values as strings: a string, a list of
// strings, or numbers and booleans written out.
func claimStrings(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return []string{x}
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, claimStrings(e)...)
		}
		return out
	case float64, bool, int, int64:
		return []string{fmt.Sprint(x)}
	}
	return nil
}
