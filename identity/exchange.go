package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sensegate/sensegate/seal"
	"go.uber.org/zap"
)

// JWTSessionConfig turns on the JWT provider's token exchange, for
// single-page apps: POST /.sensegate/session with "Authorization: Bearer
// <token>" verifies the token exactly as a request's and answers with a
// login cookie, with which the app's later requests and websocket
// handshakes (which cannot carry an Authorization header) authenticate.
// The login lasts until the token's expiry; DELETE /.sensegate/session
// ends it. Logins are kept in Sessions under a random id, sealed, as OIDC
// sign-ins are, so that ending one ends it on every replica sharing the
// store.
type JWTSessionConfig struct {
	// Sessions keeps the logins. Required: NewMemorySessions for a single
	// replica, a store the replicas share (session.RedisSessions) for
	// several.
	Sessions SessionStore
	// CookieName is the login cookie. Empty means
	// "__Host-sensegate_session" when Secure and "sensegate_session"
	// otherwise, as OIDCConfig.CookieName; a __Host- or __Secure- name
	// needs Secure.
	CookieName string
	// CookieKeys are AES-256-GCM keys of 32 bytes sealing the cookie and
	// the stored logins, as OIDCConfig.CookieKeys: the first seals, all
	// open. Required.
	CookieKeys [][]byte
	// Secure marks the cookie Secure (for HTTPS).
	Secure bool
	// CrossSite is for apps on another site than sensegate's (an origin of
	// server.allowed_origins whose scheme or registrable domain differs):
	// the cookie is then SameSite=None, so that the browser sends it on
	// the app's credentialed requests and websockets, and Partitioned
	// (CHIPS), so that it is kept apart per top-level site and sent only
	// from pages of the site that obtained it, where browsers support
	// that. It needs Secure. Browsers that block third-party cookies
	// outright (Safari) keep no such cookie: serve the app from
	// sensegate's own site where possible. False (the default):
	// SameSite=Lax, which same-site apps' requests carry.
	CrossSite bool
}

// jwtSessionAD starts the associated data of stored token-exchange
// logins, before their id: an OIDC login does not open as one.
const jwtSessionAD = "jwt session "

// jwtLogin is a login of the token exchange, stored sealed.
type jwtLogin struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// User is the token's mapped user.
	User User `json:"user"`
	// Expiry is the token's: the login ends with it.
	Expiry time.Time `json:"exp"`
}

// minExchangeLifetime is the shortest remaining lifetime of a token that
// is exchanged for a login.
const minExchangeLifetime = time.Second

// newJWTLogins checks cfg and returns the login store of the exchange.
func newJWTLogins(cfg *JWTSessionConfig, log *zap.Logger) (*loginStore, []error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("Session.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if cfg.Sessions == nil {
		bad("Sessions", "required (NewMemorySessions for a single replica)")
	}
	ring, err := seal.New(cfg.CookieKeys)
	if err != nil {
		bad("CookieKeys", "%v", err)
	}
	name, err := sessionCookieName(cfg.CookieName, cfg.Secure)
	if err != nil {
		bad("CookieName", "%v", err)
	}
	if cfg.CrossSite && !cfg.Secure {
		bad("CrossSite", "needs Secure: browsers keep SameSite=None cookies only when they are Secure (HTTPS)")
	}
	if len(errs) > 0 {
		return nil, errs
	}
	l := &loginStore{
		store: cfg.Sessions, ring: ring, cookie: name, secure: cfg.Secure, sameSite: http.SameSiteLaxMode,
		ad: jwtSessionAD, errPrefix: "identity: jwt", log: log,
	}
	if cfg.CrossSite {
		l.sameSite, l.partitioned = http.SameSiteNoneMode, true
	}
	return l, nil
}

// ExchangesTokens implements TokenExchanger: JWTConfig.Session is set.
func (j *JWT) ExchangesTokens() bool { return j.logins != nil }

// ExchangeToken implements TokenExchanger. The token is verified, its
// scopes checked and its claims mapped as Identify does; one that expires
// within a second is refused (invalid_token). The login the request's
// cookie named ends, whoever's it was, and a new one starts under a new
// id: no login outlives the token that started it, and none is fixed by
// a cookie set beforehand. A store that cannot be reached is a plain
// error.
func (j *JWT) ExchangeToken(w http.ResponseWriter, r *http.Request) (User, User, error) {
	if j.logins == nil {
		return User{}, User{}, errors.New("identity: jwt: the token exchange is off (JWTConfig.Session)")
	}
	token, err := bearerToken(r.Header)
	if err != nil {
		return User{}, User{}, err
	}
	ctx := r.Context()
	u, claims, err := j.bearerUser(ctx, token)
	if err != nil {
		return User{}, User{}, err
	}
	exp, _ := claims.GetExpirationTime() // required by the validator
	sub, _ := claims.GetSubject()
	now := j.now()
	ttl := exp.Sub(now)
	if ttl < minExchangeLifetime {
		return User{}, User{}, unauthorized("token expires too soon", fmt.Errorf("exp %v is within %v of now", exp.Time, minExchangeLifetime))
	}
	oldID, hasOld, err := j.logins.id(r)
	if err != nil {
		return User{}, User{}, err
	}
	var replaced User
	if hasOld {
		if old, err := j.loadLogin(ctx, oldID); err == nil {
			replaced = old.User
		}
		if err := j.logins.delete(ctx, oldID); err != nil {
			return User{}, User{}, err
		}
	}
	id := randomToken()
	if err := j.logins.put(ctx, id, &jwtLogin{Issuer: j.issuer, Subject: sub, User: u, Expiry: exp.Time}, ttl); err != nil {
		return User{}, User{}, err
	}
	j.logins.setCookie(w, id, ttl)
	fields := []zap.Field{zap.String("user", u.String()), zap.Time("expiry", exp.Time)}
	if !replaced.IsZero() {
		fields = append(fields, zap.String("replaced", replaced.String()))
	}
	j.log.Info("token exchanged for a login", fields...)
	return u, replaced, nil
}

// loadLogin reads login id; errNoSession when there is none, it is over
// or it is another issuer's (the configuration changed).
func (j *JWT) loadLogin(ctx context.Context, id string) (*jwtLogin, error) {
	var l jwtLogin
	if err := j.logins.get(ctx, id, &l); err != nil {
		return nil, err
	}
	if l.Issuer != j.issuer || !j.now().Before(l.Expiry) {
		j.logins.delete(ctx, id) // the store's TTL would drop it too
		return nil, errNoSession
	}
	return &l, nil
}

// identifyWithLogin is Identify with the exchange on: a bearer token
// wins, a login cookie serves requests without one, and a request whose
// token and login name different Qlik users is refused (400,
// invalid_request) rather than served as either. A cookie whose login is
// over, and no token, is a 401 as no credentials are.
func (j *JWT) identifyWithLogin(r *http.Request) (User, error) {
	token, tokenErr := bearerToken(r.Header)
	if tokenErr != nil && !errors.Is(tokenErr, ErrNoIdentity) {
		return User{}, tokenErr // a repeated header
	}
	ctx := r.Context()
	id, hasLogin, err := j.logins.id(r)
	if err != nil {
		return User{}, err
	}
	var login *jwtLogin
	if hasLogin {
		if login, err = j.loadLogin(ctx, id); err != nil && !errors.Is(err, errNoSession) {
			return User{}, err
		}
	}
	if tokenErr != nil {
		switch {
		case login != nil:
			return login.User, nil
		case hasLogin:
			return User{}, noBearerToken("sign-in ended: send a bearer token, or exchange a fresh one at " + defaultMountPrefix + "session")
		}
		return User{}, tokenErr
	}
	u, _, err := j.bearerUser(ctx, token)
	if err != nil {
		return User{}, err
	}
	if login != nil && login.User.QlikUserKey() != u.QlikUserKey() {
		j.log.Warn("request refused: login cookie and bearer token of different users",
			zap.String("login_user", login.User.String()), zap.String("token_user", u.String()))
		return User{}, errLoginTokenConflict
	}
	return u, nil
}

// errLoginTokenConflict refuses a request whose login cookie and bearer
// token are of different users (RFC 6750 §3.1: credentials sent more than
// one way are invalid_request).
var errLoginTokenConflict = badBearerRequest(
	"the sensegate login of this browser and the bearer token are of different users: exchange the token at "+defaultMountPrefix+"session to switch users, or send only one of them",
	errors.New("identity: jwt: login cookie and bearer token of different users"))

// Logout implements Logouter: the login the request's cookie names is
// deleted from the store, on every replica, and the cookie expired. It
// returns "" (no identity provider to send the browser to). Without the
// exchange it does nothing.
func (j *JWT) Logout(w http.ResponseWriter, r *http.Request) string {
	if j.logins == nil {
		return ""
	}
	if id, ok, _ := j.logins.id(r); ok {
		if err := j.logins.delete(r.Context(), id); err != nil {
			j.log.Error("login delete failed", zap.Error(err))
		}
	}
	j.logins.clearCookie(w)
	return ""
}

// StripCookies implements CookieStripper: the login cookie never reaches
// an upstream. Without the exchange there is none.
func (j *JWT) StripCookies() []string {
	if j.logins == nil {
		return nil
	}
	return []string{j.logins.cookie}
}

var (
	_ TokenExchanger = (*JWT)(nil)
	_ Logouter       = (*JWT)(nil)
	_ CookieStripper = (*JWT)(nil)
)
