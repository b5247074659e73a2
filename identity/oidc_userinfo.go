package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// errUserinfoSubject is why a UserInfo answer is refused: OIDC Core 5.3.2
// requires its sub to be the ID token's, else its claims must not be used
// (they may be another user's).
var errUserinfoSubject = errors.New("userinfo names another subject than the id token")

// withUserinfo fetches the UserInfo endpoint with tok's access token and
// merges its claims into idClaims, those of the ID token of subject sub
// (mergeClaims). A UserInfo answer for another subject is
// errUserinfoSubject; a provider that cannot be reached or refuses is
// another error.
func (o *OIDC) withUserinfo(ctx context.Context, tok *oauth2.Token, sub string, idClaims map[string]any) (map[string]any, error) {
	ui, err := o.userinfo.UserInfo(oidc.ClientContext(ctx, o.client), oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, err
	}
	if ui.Subject != sub {
		return nil, fmt.Errorf("%w: %q, want %q", errUserinfoSubject, ui.Subject, sub)
	}
	var uiClaims map[string]any
	if err := ui.Claims(&uiClaims); err != nil {
		return nil, fmt.Errorf("userinfo claims: %w", err)
	}
	return mergeClaims(idClaims, uiClaims, o.mapping.groupsClaim), nil
}

// mergeClaims returns the ID token's claims with those of userinfo added:
// the ID token's win where both have a claim (they are signed and bound to
// this client), except the groups claim (the Mapping's), which comes from
// userinfo when the ID token lacks it or leaves it empty, as providers
// that keep groups out of ID tokens do. Neither map is changed.
func mergeClaims(id, userinfo map[string]any, groupsClaim string) map[string]any {
	out := make(map[string]any, len(id)+len(userinfo))
	for k, v := range id {
		out[k] = v
	}
	for k, v := range userinfo {
		cur, ok := out[k]
		if !ok || k == groupsClaim && groupsClaim != "" && len(claimStrings(cur)) == 0 {
			out[k] = v
		}
	}
	return out
}

// storedIDTokenClaims returns the claims of a stored raw ID token without
// verifying it again: it was verified when it was received, and the
// session that holds it is sealed. For a refresh that brought no new ID
// token.
func storedIDTokenClaims(raw string) (map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	return claims, nil
}
