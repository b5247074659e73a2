package proxy

import (
	"net/http"

	"github.com/sensegate/sensegate/identity"
)

// The token exchange for single-page apps (issue 18): a browser cannot put
// an Authorization header on a websocket handshake, so an app holding a
// bearer token trades it for sensegate's login cookie.
//
//	POST   /.sensegate/session  Authorization: Bearer <token>  → 204 + Set-Cookie
//	DELETE /.sensegate/session                                 → 204, login and Qlik sessions ended
//
// Both exist only when the identity provider exchanges tokens
// (identity.TokenExchanger: the jwt provider with identity.jwt.session);
// otherwise they are 404. Apps of server.allowed_origins get the CORS
// answers they need (cors.go: Authorization may be sent, WWW-Authenticate
// read); pages of other origins are refused by crossSiteRefused, so no
// site can sign a browser in as a user of its choosing.

// serveSessionStart answers POST /.sensegate/session: the provider
// verifies the bearer token and sets its login cookie; 204. A refused
// token gets the provider's answer and challenge. When the exchange ended
// the login of another Qlik user (the app switched users), that user's
// Qlik sessions end and their websockets close, as at a logout: nothing
// of theirs stays live in this browser.
func (h *Handler) serveSessionStart(w http.ResponseWriter, r *http.Request, ex identity.TokenExchanger) {
	u, replaced, err := ex.ExchangeToken(w, r)
	if err != nil {
		h.identityRefused(w, r, err)
		return
	}
	if st := stateFrom(r.Context()); st != nil {
		st.user, st.hasUser = u, true
	}
	if !replaced.IsZero() && replaced.QlikUserKey() != u.QlikUserKey() {
		n, closed, err := h.endQlik(r, replaced)
		h.loggedOut(r, replaced, "logout: another user signed in in this browser", n, closed, err)
	}
	w.Header().Set(headerSensegate, "1")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// serveSessionEnd answers DELETE /.sensegate/session: the request is
// identified (login cookie or bearer token), the user's Qlik sessions end,
// their websockets close and the provider's login ends on every replica,
// as at POST /.sensegate/logout; 204.
func (h *Handler) serveSessionEnd(w http.ResponseWriter, r *http.Request) {
	u, ok := h.identify(w, r)
	if !ok {
		return
	}
	h.logout(w, r, u)
	w.Header().Set(headerSensegate, "1")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
