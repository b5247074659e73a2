package identity

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// BearerRealm is the realm of the JWT provider's RFC 6750 challenges.
const BearerRealm = "sensegate"

// RFC 6750 §3.1 error codes.
const (
	bearerInvalidRequest    = "invalid_request"
	bearerInvalidToken      = "invalid_token"
	bearerInsufficientScope = "insufficient_scope"
)

// bearerChallenge is the WWW-Authenticate value of an RFC 6750 §3 refusal:
// the realm alone when the request carried no token (§3.1: no error code
// then), else the error code, its description and, for
// insufficient_scope, the scopes required.
func bearerChallenge(code, desc string, scopes []string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm="` + BearerRealm + `"`)
	if code == "" {
		return b.String()
	}
	b.WriteString(`, error="` + code + `"`)
	if desc != "" {
		b.WriteString(`, error_description="` + challengeText(desc) + `"`)
	}
	if len(scopes) > 0 {
		b.WriteString(`, scope="` + challengeText(strings.Join(scopes, " ")) + `"`)
	}
	return b.String()
}

// challengeText keeps the characters RFC 6750 §3 allows in
// error_description and scope (%x20-21 / %x23-5B / %x5D-7E: printable
// ASCII but '"' and '\'), so that no value can break out of its quotes.
func challengeText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// noBearerToken is the 401 of a request without a bearer token.
func noBearerToken(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Msg: msg, Err: ErrNoIdentity, Challenge: bearerChallenge("", "", nil)}
}

// badBearerRequest is the 400 of a request that presents its credentials
// in more than one way (RFC 6750 §3.1, invalid_request).
func badBearerRequest(msg string, err error) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: msg, Err: err, Challenge: bearerChallenge(bearerInvalidRequest, msg, nil)}
}

// checkScopeToken accepts an RFC 6749 §3.3 scope-token: one or more of
// %x21 / %x23-5B / %x5D-7E.
func checkScopeToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for _, c := range []byte(s) {
		if c <= 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return fmt.Errorf("%q is not a scope (printable ASCII without spaces, quotes or backslashes)", s)
		}
	}
	return nil
}

// grantedScopes returns the scopes a token grants: its "scope" claim (a
// space-separated string, RFC 9068 §2.2.3) and its "scp" claim (a string
// or a list of strings, as Entra ID and Okta issue).
func grantedScopes(claims map[string]any) []string {
	var out []string
	if s, ok := claims["scope"].(string); ok {
		out = append(out, strings.Fields(s)...)
	}
	switch v := claims["scp"].(type) {
	case string:
		out = append(out, strings.Fields(v)...)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// missingScopes returns those of required that claims do not grant.
func missingScopes(claims map[string]any, required []string) []string {
	if len(required) == 0 {
		return nil
	}
	granted := grantedScopes(claims)
	var missing []string
	for _, s := range required {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	return missing
}
