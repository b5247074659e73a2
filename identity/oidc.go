package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/sensegate/sensegate/seal"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// Defaults of OIDCConfig fields, and of the identity.oidc keys of
// sensegate's configuration, which takes them from here.
const (
	// DefaultOIDCSessionLifetime is the OIDCConfig.SessionLifetime of 0.
	DefaultOIDCSessionLifetime = 12 * time.Hour
)

// DefaultOIDCScopes returns the scopes requested when OIDCConfig.Scopes
// is nil.
func DefaultOIDCScopes() []string { return []string{oidc.ScopeOpenID, "profile", "email"} }

// Fixed values of the OIDC provider.
const (
	hostCookiePrefix       = "__Host-"
	secureCookiePrefix     = "__Secure-"
	defaultOIDCHTTPTimeout = 30 * time.Second
	defaultMountPrefix     = "/.sensegate/"

	// loginCookieLifetime bounds a sign-in at the identity provider: the
	// login cookie (state, nonce, PKCE verifier) is refused after it.
	loginCookieLifetime = 10 * time.Minute
	// refreshTimeout bounds one refresh at the identity provider; the
	// requests of a session waiting for it share it.
	refreshTimeout = 30 * time.Second
	// recheckWithoutIDToken is how long a refresh that returned neither a
	// new ID token (OIDC Core 12.2 lets the provider omit it) nor an
	// access token expiry is trusted before the next refresh.
	recheckWithoutIDToken = 5 * time.Minute
)

// OIDCConfig configures an OIDC provider. Issuer, ClientID, RedirectURL,
// Mapping, Sessions and CookieKeys are required.
type OIDCConfig struct {
	// Issuer is the OpenID provider's issuer URL; discovery reads
	// {Issuer}/.well-known/openid-configuration, whose "issuer" must be
	// exactly this.
	Issuer string
	// ClientID and ClientSecret are sensegate's registration at the
	// provider. The secret may be empty for a public client: PKCE is
	// always used.
	ClientID, ClientSecret string
	// RedirectURL is the absolute callback URL registered at the
	// provider. Its path must be {prefix}callback, where prefix is what
	// Mount receives (by default "/.sensegate/").
	RedirectURL string
	// Scopes requested; nil means DefaultOIDCScopes. openid is
	// always added. Add offline_access where the provider issues refresh
	// tokens only for it (Azure AD, Zitadel): without a refresh token a
	// login lasts SessionLifetime regardless of the ID token's expiry.
	Scopes []string
	// Mapping turns ID token claims into the Qlik user. Required.
	Mapping *Mapping
	// Sessions keeps the login sessions. Required: NewMemorySessions for
	// a single replica, a shared store for several.
	Sessions SessionStore
	// Locker, when not nil, makes a session's refresh happen once across
	// the replicas sharing Sessions (oidc_lock.go): with refresh tokens
	// that rotate, two replicas refreshing at once would sign the user
	// out. Nil means Sessions itself when it is a Locker
	// (session.RedisSessions is one), else none: refreshes are then
	// deduplicated within this process only, which is enough for a
	// single replica.
	Locker Locker
	// CookieName is the session cookie. Empty means
	// "__Host-sensegate_session" when Secure (a __Host- cookie is
	// host-only, on path /, and only ever set over HTTPS, so a site on a
	// sibling or parent domain cannot plant one) and "sensegate_session"
	// otherwise. A __Host- or __Secure- name needs Secure. The sign-in in
	// progress uses CookieName + "_login" on the mount path, with a
	// __Host- prefix turned into __Secure- (a __Host- cookie must have
	// path /).
	CookieName string
	// CookieKeys are AES-256-GCM keys of seal.KeySize (32) bytes sealing
	// the cookies and the stored sessions: the first seals, all open, so a
	// key is rotated by putting the new one first and dropping the old one
	// after SessionLifetime. Required.
	CookieKeys [][]byte
	// Secure marks the cookies Secure (for HTTPS).
	Secure bool
	// SessionLifetime is the absolute bound on a login, refreshes
	// included: the session cookie's Max-Age and the stored session's TTL
	// (DefaultOIDCSessionLifetime if zero).
	SessionLifetime time.Duration
	// PostLogoutRedirectURL is sent as post_logout_redirect_uri in
	// RP-initiated logout; empty means none (the provider decides).
	PostLogoutRedirectURL string
	// Userinfo fetches the provider's UserInfo endpoint with the access
	// token after each sign-in and refresh and merges its claims into the
	// ID token's before Mapping (oidc_userinfo.go): for providers that
	// keep groups out of the ID token. The provider's discovery document
	// must name a userinfo_endpoint. False (the default): the ID token's
	// claims only.
	Userinfo bool
	// HTTPClient makes the discovery, JWKS and token requests (nil: a
	// client with a 30 s timeout).
	HTTPClient *http.Client
	// Now returns the time (time.Now if nil); it also checks ID token
	// expiry.
	Now func() time.Time
	// Logger receives sign-in, refresh and failure events (nil: none).
	// Tokens, codes, cookies and keys are never logged.
	Logger *zap.Logger
}

// OIDC is an identity provider signing users in with OpenID Connect: the
// authorization code flow with PKCE, state and nonce. A sign-in creates a
// session in OIDCConfig.Sessions, referenced by an encrypted cookie; the
// session is refreshed with the refresh token when the ID token expires.
// Build it with NewOIDC; it is safe for concurrent use.
type OIDC struct {
	issuer       string
	clientID     string
	oauth        *oauth2.Config
	verifier     *oidc.IDTokenVerifier
	endSession   string         // "" when the provider has no end_session_endpoint
	userinfo     *oidc.Provider // nil: no userinfo
	postLogout   string
	redirectPath string
	mapping      *Mapping
	store        SessionStore
	locker       Locker // nil: refreshes deduplicated in this process only
	logins       *loginStore
	ring         *seal.Ring // also seals the sign-in in progress
	cookieName   string
	loginCookie  string
	secure       bool
	lifetime     time.Duration
	client       *http.Client
	now          func() time.Time
	log          *zap.Logger

	prefix    string // set by Mount, before serving
	refreshes singleflight.Group
}

// NewOIDC checks cfg and runs discovery at the issuer, bounded by ctx.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("identity: oidc: "+format, a...))
	}
	if cfg.Issuer == "" {
		bad("Issuer is required")
	}
	if cfg.ClientID == "" {
		bad("ClientID is required")
	}
	var redirectPath string
	switch ru, err := url.Parse(cfg.RedirectURL); {
	case cfg.RedirectURL == "":
		bad("RedirectURL is required (e.g. https://sensegate.example.com/.sensegate/callback)")
	case err != nil:
		bad("RedirectURL: %w", err)
	case ru.Scheme != "https" && ru.Scheme != "http", ru.Host == "":
		bad("RedirectURL %q is not an absolute http(s) URL", cfg.RedirectURL)
	case !strings.HasSuffix(ru.Path, "/callback"):
		bad("RedirectURL %q: the path must be sensegate's callback, e.g. /.sensegate/callback", cfg.RedirectURL)
	default:
		redirectPath = ru.Path
	}
	if cfg.PostLogoutRedirectURL != "" {
		if u, err := url.Parse(cfg.PostLogoutRedirectURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("PostLogoutRedirectURL %q is not an absolute http(s) URL", cfg.PostLogoutRedirectURL)
		}
	}
	if cfg.Mapping == nil {
		bad("Mapping is required")
	}
	if cfg.Sessions == nil {
		bad("Sessions is required (NewMemorySessions for a single replica)")
	}
	ring, err := seal.New(cfg.CookieKeys)
	if err != nil {
		bad("CookieKeys: %w", err)
	}
	cookieName, err := sessionCookieName(cfg.CookieName, cfg.Secure)
	if err != nil {
		bad("CookieName %w", err)
	}
	switch {
	case cfg.SessionLifetime == 0:
		cfg.SessionLifetime = DefaultOIDCSessionLifetime
	case cfg.SessionLifetime < 0:
		bad("SessionLifetime %v is negative", cfg.SessionLifetime)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: defaultOIDCHTTPTimeout}
	}

	// The provider keeps the client for its JWKS fetches (key rotation:
	// an unknown key id refetches the set).
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, cfg.HTTPClient), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("identity: oidc: discovery at issuer %q: %w", cfg.Issuer, err)
	}
	var meta struct {
		EndSession  string   `json:"end_session_endpoint"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("identity: oidc: discovery at issuer %q: %w", cfg.Issuer, err)
	}
	if cfg.Userinfo && p.UserInfoEndpoint() == "" {
		return nil, fmt.Errorf("identity: oidc: Userinfo: the discovery document of issuer %q has no userinfo_endpoint", cfg.Issuer)
	}
	ep := p.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" {
		return nil, fmt.Errorf("identity: oidc: discovery at issuer %q: no authorization_endpoint or token_endpoint", cfg.Issuer)
	}
	ep.AuthStyle = authStyle(meta.AuthMethods, cfg.ClientSecret != "")

	scopes := []string{oidc.ScopeOpenID}
	if cfg.Scopes == nil {
		cfg.Scopes = DefaultOIDCScopes()
	}
	for _, s := range cfg.Scopes {
		if s != "" && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	log := cfg.Logger.Named("oidc").With(zap.String("issuer", cfg.Issuer))
	o := &OIDC{
		issuer:   cfg.Issuer,
		clientID: cfg.ClientID,
		oauth: &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     ep,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       scopes,
		},
		verifier:     p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Now}),
		endSession:   meta.EndSession,
		postLogout:   cfg.PostLogoutRedirectURL,
		redirectPath: redirectPath,
		mapping:      cfg.Mapping,
		store:        cfg.Sessions,
		locker:       cfg.Locker,
		ring:         ring,
		cookieName:   cookieName,
		loginCookie:  loginCookieName(cookieName),
		secure:       cfg.Secure,
		lifetime:     cfg.SessionLifetime,
		client:       cfg.HTTPClient,
		now:          cfg.Now,
		log:          log,
		prefix:       defaultMountPrefix,
		logins: &loginStore{
			store: cfg.Sessions, ring: ring, cookie: cookieName, secure: cfg.Secure, sameSite: http.SameSiteLaxMode,
			ad: oidcSessionAD, errPrefix: "identity: oidc", log: log,
		},
	}
	if o.locker == nil {
		o.locker, _ = cfg.Sessions.(Locker)
	}
	if cfg.Userinfo {
		o.userinfo = p
	}
	return o, nil
}

// authStyle picks how the client authenticates at the token endpoint from
// the discovery document, so that a failed request is not sent twice as
// oauth2's auto-detection would.
func authStyle(methods []string, hasSecret bool) oauth2.AuthStyle {
	switch {
	case !hasSecret:
		return oauth2.AuthStyleInParams // a public client sends only client_id
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		// client_secret_basic is the default (OpenID Connect Discovery 1.0, 3).
		return oauth2.AuthStyleInHeader
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleAutoDetect
}

// oidcSessionAD starts the associated data of stored OIDC logins, before
// their id.
const oidcSessionAD = "session "

// oidcSession is a login session, stored as JSON sealed with the cookie
// keys (associated data oidcSessionAD + id), so that a dump of a shared
// store yields no tokens.
type oidcSession struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	// User is the mapped Qlik user: a Mapping change applies at the next
	// sign-in or refresh.
	User         User   `json:"user"`
	RefreshToken string `json:"rt,omitempty"`
	// IDToken is the raw ID token, the id_token_hint of logout.
	IDToken string `json:"idt"`
	// Expiry is the ID token's: a refresh is due after it.
	Expiry  time.Time `json:"exp"`
	Created time.Time `json:"created"`
}

// loginState is the sign-in in progress, in the login cookie.
type loginState struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Redirect string    `json:"rd"`
	Expires  time.Time `json:"exp"`
}

// Identify implements Provider. It runs on every request, so it costs one
// cookie decryption, one SessionStore Get, one decryption and one JSON
// decode; only a session whose ID token expired and that has a refresh
// token calls the identity provider, once for all its concurrent
// requests. (A small in-process cache in front of the store may come
// later.) No or a bad cookie, no session, an expired one or one the
// provider refused to refresh is a 401 *Error with LoginURL; claims that
// no longer map after a refresh are a 403; a store or provider that
// cannot be reached is a plain error, and the session is kept.
func (o *OIDC) Identify(r *http.Request) (User, error) {
	id, ok, err := o.sessionID(r)
	if err != nil {
		o.log.Warn("request refused: two session cookies", zap.String("path", r.URL.Path))
		return User{}, err
	}
	if !ok {
		return User{}, o.notSignedIn(r)
	}
	s, err := o.load(r.Context(), id)
	switch {
	case errors.Is(err, errNoSession):
		return User{}, o.notSignedIn(r)
	case err != nil:
		return User{}, err
	}
	if o.now().Before(s.Expiry) || s.RefreshToken == "" {
		// Without a refresh token the provider's sign-in is trusted for
		// the session's lifetime.
		return s.User, nil
	}
	u, err := o.refresh(r, id)
	var ce *ClaimError
	switch {
	case err == nil:
		return u, nil
	case errors.Is(err, errNoSession):
		return User{}, o.notSignedIn(r)
	case errors.As(err, &ce):
		return User{}, &Error{Status: http.StatusForbidden, Msg: "your account cannot be used with Qlik Sense", Err: ce}
	}
	return User{}, err
}

func (o *OIDC) notSignedIn(r *http.Request) error {
	return &Error{Status: http.StatusUnauthorized, Msg: "not signed in", Err: ErrNoIdentity, LoginURL: o.prefix + "login?rd=" + url.QueryEscape(r.URL.RequestURI())}
}

// sessionID returns the login id sealed in the request's session cookie
// (loginStore.id).
func (o *OIDC) sessionID(r *http.Request) (string, bool, error) { return o.logins.id(r) }

// loginCookieName is the cookie of a sign-in in progress for session
// cookie name: name + "_login", on the mount path, so a __Host- prefix
// (which requires path /) becomes __Secure-.
func loginCookieName(name string) string {
	if base, ok := strings.CutPrefix(name, hostCookiePrefix); ok {
		return secureCookiePrefix + base + "_login"
	}
	return name + "_login"
}

// load reads session id; errNoSession when there is none or it is over.
func (o *OIDC) load(ctx context.Context, id string) (*oidcSession, error) {
	var s oidcSession
	if err := o.logins.get(ctx, id, &s); err != nil {
		return nil, err
	}
	if s.Issuer != o.issuer || !o.now().Before(s.Created.Add(o.lifetime)) {
		// Another issuer's (configuration changed) or past the absolute
		// lifetime (a store whose clock or TTL differs from ours).
		o.store.Delete(ctx, id)
		return nil, errNoSession
	}
	return &s, nil
}

// save stores s under id until the end of its lifetime (errNoSession
// past it).
func (o *OIDC) save(ctx context.Context, id string, s *oidcSession) error {
	return o.logins.put(ctx, id, s, s.Created.Add(o.lifetime).Sub(o.now()))
}

// refresh renews session id at the identity provider. Concurrent requests
// of one session share one refresh, which runs to its end (bounded by
// refreshTimeout) even if the request that started it goes away; with a
// Locker, the replicas share it too (refreshOnce).
func (o *OIDC) refresh(r *http.Request, id string) (User, error) {
	ch := o.refreshes.DoChan(id, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refreshTimeout)
		defer cancel()
		return o.refreshOnce(ctx, id)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return User{}, res.Err
		}
		return res.Val.(User), nil
	case <-r.Context().Done():
		return User{}, r.Context().Err()
	}
}

// doRefresh refreshes session id. The provider refusing (an OAuth error,
// an ID token that does not verify or names another subject) ends the
// session: errNoSession. A provider that cannot be reached keeps it, so
// that the next request tries again.
func (o *OIDC) doRefresh(ctx context.Context, id string) (User, error) {
	// Read again: a request that loaded the session before another one
	// finished refreshing it must not refresh with a rotated token.
	s, err := o.load(ctx, id)
	if err != nil {
		return User{}, err
	}
	now := o.now()
	if now.Before(s.Expiry) {
		return s.User, nil
	}
	end := func(reason string, fields ...zap.Field) (User, error) {
		o.log.Warn("session ended: "+reason, append(fields, zap.String("user", s.User.String()))...)
		if err := o.store.Delete(ctx, id); err != nil {
			o.log.Warn("session delete failed", zap.String("user", s.User.String()), zap.Error(err))
		}
		return User{}, errNoSession
	}
	tok, err := o.oauth.TokenSource(oidc.ClientContext(ctx, o.client), &oauth2.Token{RefreshToken: s.RefreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return end("refresh refused", retrieveErrorFields(re)...)
		}
		o.log.Warn("refresh failed", zap.String("user", s.User.String()), zap.Error(err))
		return User{}, fmt.Errorf("identity: oidc: refresh at %s: %w", o.issuer, err)
	}
	ns := *s
	if tok.RefreshToken != "" {
		ns.RefreshToken = tok.RefreshToken
	}
	// The claims to map again: the new ID token's, or with userinfo the
	// stored one's (it was verified) when the provider sent none.
	var claims map[string]any
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, c, err := o.verify(ctx, raw, tok.AccessToken)
		if err != nil {
			return end("refreshed id token refused", zap.Error(err))
		}
		if idt.Subject != s.Subject {
			// OIDC Core 12.2: iss and sub must be those of the original.
			return end("refreshed id token names another subject", zap.String("sub", idt.Subject), zap.String("want_sub", s.Subject))
		}
		claims, ns.IDToken, ns.Expiry = c, raw, idt.Expiry
	} else {
		ns.Expiry = tok.Expiry
		if !now.Before(ns.Expiry) {
			ns.Expiry = now.Add(recheckWithoutIDToken)
		}
		if o.userinfo != nil {
			if claims, err = storedIDTokenClaims(s.IDToken); err != nil {
				return end("stored id token does not decode", zap.Error(err))
			}
		}
	}
	if claims != nil && o.userinfo != nil {
		claims, err = o.withUserinfo(ctx, tok, s.Subject, claims)
		switch {
		case errors.Is(err, errUserinfoSubject):
			return end("userinfo names another subject", zap.Error(err))
		case err != nil:
			// Keep a rotated refresh token, not the new expiry: the next
			// request refreshes again.
			kept := *s
			kept.RefreshToken = ns.RefreshToken
			if serr := o.save(ctx, id, &kept); serr != nil {
				o.log.Warn("session not stored", zap.String("user", s.User.String()), zap.Error(serr))
			}
			o.log.Warn("userinfo failed after refresh", zap.String("user", s.User.String()), zap.String("error", truncate(err.Error(), 200)))
			return User{}, fmt.Errorf("identity: oidc: userinfo at %s: %w", o.issuer, err)
		}
	}
	if claims != nil {
		u, err := o.mapping.User(claims)
		if err != nil {
			var ce *ClaimError
			if errors.As(err, &ce) {
				o.store.Delete(ctx, id)
				o.log.Warn("claim refused", zap.String("claim", ce.Claim), zap.String("reason", ce.Reason), zap.String("sub", s.Subject))
			}
			return User{}, err
		}
		ns.User = u
	}
	if err := o.save(ctx, id, &ns); err != nil {
		return User{}, err // errNoSession past the lifetime, else a store error
	}
	o.log.Info("session refreshed", zap.String("user", ns.User.String()), zap.Time("id_token_expiry", ns.Expiry))
	return ns.User, nil
}

// verify checks a raw ID token (signature, issuer, audience, expiry,
// authorized party, access token hash) and returns it with its claims.
// The nonce is the caller's.
func (o *OIDC) verify(ctx context.Context, raw, accessToken string) (*oidc.IDToken, map[string]any, error) {
	idt, err := o.verifier.Verify(oidc.ClientContext(ctx, o.client), raw)
	if err != nil {
		return nil, nil, err
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, nil, err
	}
	// OIDC Core 3.1.3.7: with several audiences, azp must be us; if
	// present, it must be us anyway.
	azp, hasAZP := claims["azp"].(string)
	if (hasAZP || len(idt.Audience) > 1) && azp != o.clientID {
		return nil, nil, fmt.Errorf("authorized party %q is not client %q", azp, o.clientID)
	}
	if idt.AccessTokenHash != "" && accessToken != "" {
		if err := idt.VerifyAccessToken(accessToken); err != nil {
			return nil, nil, err
		}
	}
	return idt, claims, nil
}

// Mount implements Mounter: GET {prefix}login?rd=… starts a sign-in,
// GET {prefix}callback completes it.
func (o *OIDC) Mount(mux *http.ServeMux, prefix string) {
	o.prefix = prefix
	if o.redirectPath != prefix+"callback" {
		o.log.Error("oidc redirect url does not end at the callback: sign-ins will fail",
			zap.String("redirect_path", o.redirectPath), zap.String("callback", prefix+"callback"))
	}
	mux.HandleFunc("GET "+prefix+"login", o.serveLogin)
	mux.HandleFunc("GET "+prefix+"callback", o.serveCallback)
}

// serveLogin starts a sign-in: state, nonce and PKCE verifier go into the
// login cookie with the page to return to, and the browser goes to the
// identity provider.
func (o *OIDC) serveLogin(w http.ResponseWriter, r *http.Request) {
	ls := loginState{
		State:    randomToken(),
		Nonce:    randomToken(),
		Verifier: oauth2.GenerateVerifier(),
		Redirect: SafeRedirect(r.URL.Query().Get("rd")),
		Expires:  o.now().Add(loginCookieLifetime),
	}
	data, err := json.Marshal(ls)
	if err != nil {
		o.writePage(w, http.StatusInternalServerError, "Sign-in failed", "The sign-in could not be started.", "")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: o.loginCookie, Value: sealString(o.ring, o.loginCookie, data), Path: o.prefix,
		MaxAge: int(loginCookieLifetime / time.Second), HttpOnly: true, Secure: o.secure, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, o.oauth.AuthCodeURL(ls.State, oidc.Nonce(ls.Nonce), oauth2.S256ChallengeOption(ls.Verifier)), http.StatusFound)
}

// errorCode matches the RFC 6749 error codes shown on the callback page.
var errorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// serveCallback completes a sign-in: it checks state against the login
// cookie, exchanges the code with the PKCE verifier, verifies the ID
// token and its nonce, maps the claims and starts a session.
func (o *OIDC) serveCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ls, ok := o.loginState(r)
	http.SetCookie(w, &http.Cookie{Name: o.loginCookie, Value: "", Path: o.prefix, MaxAge: -1, HttpOnly: true, Secure: o.secure, SameSite: http.SameSiteLaxMode})
	retry := o.prefix + "login?rd=%2F"
	if !ok {
		if _, err := o.Identify(r); err == nil {
			// A repeated callback (back button) of a browser signed in.
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		o.log.Info("callback without a valid login cookie")
		o.writePage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in was not started in this browser or took too long.", retry)
		return
	}
	retry = o.prefix + "login?rd=" + url.QueryEscape(ls.Redirect)
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(ls.State)) != 1 {
		o.log.Warn("callback refused: state mismatch")
		o.writePage(w, http.StatusForbidden, "Sign-in refused", "The answer of the identity provider does not belong to this sign-in.", retry)
		return
	}
	// RFC 9207: a provider that names itself must be ours (mix-up attacks).
	if q.Has("iss") && q.Get("iss") != o.issuer {
		o.log.Warn("callback refused: another issuer", zap.String("iss", q.Get("iss")))
		o.writePage(w, http.StatusForbidden, "Sign-in refused", "The answer comes from another identity provider.", retry)
		return
	}
	if e := q.Get("error"); e != "" {
		o.log.Info("identity provider refused sign-in", zap.String("error", e), zap.String("description", truncate(q.Get("error_description"), 200)))
		status, msg := http.StatusUnauthorized, "The identity provider did not sign you in"
		if e == "access_denied" {
			status, msg = http.StatusForbidden, "The identity provider denied access"
		}
		if errorCode.MatchString(e) {
			msg += " (" + e + ")"
		}
		o.writePage(w, status, "Sign-in failed", msg+".", retry)
		return
	}
	code := q.Get("code")
	if code == "" {
		o.writePage(w, http.StatusBadRequest, "Sign-in failed", "The identity provider's answer has no authorization code.", retry)
		return
	}
	ctx := oidc.ClientContext(r.Context(), o.client)
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			o.log.Warn("code exchange refused", retrieveErrorFields(re)...)
			o.writePage(w, http.StatusUnauthorized, "Sign-in failed", "The identity provider did not accept the sign-in.", retry)
			return
		}
		o.log.Error("code exchange failed", zap.Error(err))
		o.writePage(w, http.StatusServiceUnavailable, "Identity provider unavailable", "The identity provider cannot be reached. Try again in a moment.", retry)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		o.log.Error("token response without an id token")
		o.writePage(w, http.StatusBadGateway, "Sign-in failed", "The identity provider returned no ID token.", retry)
		return
	}
	idt, claims, err := o.verify(r.Context(), raw, tok.AccessToken)
	if err == nil && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(ls.Nonce)) != 1 {
		err = errors.New("nonce mismatch")
	}
	if err != nil {
		o.log.Warn("id token refused", zap.Error(err))
		o.writePage(w, http.StatusForbidden, "Sign-in refused", "The identity provider's ID token is not valid for sensegate.", retry)
		return
	}
	if o.userinfo != nil {
		if claims, err = o.withUserinfo(r.Context(), tok, idt.Subject, claims); err != nil {
			if errors.Is(err, errUserinfoSubject) {
				o.log.Warn("userinfo refused", zap.Error(err))
				o.writePage(w, http.StatusForbidden, "Sign-in refused", "The identity provider's user information does not belong to this sign-in.", retry)
				return
			}
			o.log.Error("userinfo failed", zap.String("sub", idt.Subject), zap.String("error", truncate(err.Error(), 200)))
			o.writePage(w, http.StatusServiceUnavailable, "Identity provider unavailable", "Your user information could not be read at the identity provider. Try again in a moment.", retry)
			return
		}
	}
	u, err := o.mapping.User(claims)
	if err != nil {
		var ce *ClaimError
		if errors.As(err, &ce) {
			o.log.Warn("claim refused", zap.String("claim", ce.Claim), zap.String("reason", ce.Reason), zap.String("sub", idt.Subject))
		} else {
			o.log.Error("claim mapping failed", zap.String("sub", idt.Subject), zap.Error(err))
		}
		o.writePage(w, http.StatusForbidden, "Access refused", "Your account cannot be used to sign in to Qlik Sense. Ask your administrator.", "")
		return
	}
	// A sign-in always gets a new id (no session fixation); the old
	// session, if any, ends.
	if old, ok, _ := o.sessionID(r); ok {
		o.store.Delete(r.Context(), old)
	}
	now := o.now()
	s := &oidcSession{Issuer: o.issuer, Subject: idt.Subject, User: u, RefreshToken: tok.RefreshToken, IDToken: raw, Expiry: idt.Expiry, Created: now}
	id := randomToken()
	if err := o.save(r.Context(), id, s); err != nil {
		o.log.Error("session not stored", zap.String("user", u.String()), zap.Error(err))
		o.writePage(w, http.StatusServiceUnavailable, "Sign-in failed", "The sign-in could not be saved. Try again in a moment.", retry)
		return
	}
	o.logins.setCookie(w, id, o.lifetime)
	o.log.Info("signed in", zap.String("user", u.String()), zap.String("sub", idt.Subject), zap.Bool("refresh_token", tok.RefreshToken != ""))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, ls.Redirect, http.StatusFound)
}

// loginState returns the request's unexpired sign-in in progress.
func (o *OIDC) loginState(r *http.Request) (loginState, bool) {
	for _, c := range r.CookiesNamed(o.loginCookie) {
		plain, err := openString(o.ring, o.loginCookie, c.Value)
		if err != nil {
			continue
		}
		var ls loginState
		if json.Unmarshal(plain, &ls) == nil && ls.State != "" && o.now().Before(ls.Expires) {
			return ls, true
		}
	}
	return loginState{}, false
}

// Logout implements Logouter: the session is deleted from the store and
// its cookie expired. It returns the provider's end_session_endpoint for
// RP-initiated logout, with id_token_hint (when the session was found),
// post_logout_redirect_uri (when configured) and client_id, or "" when
// the provider has none.
func (o *OIDC) Logout(w http.ResponseWriter, r *http.Request) string {
	var hint string
	if id, ok, _ := o.sessionID(r); ok {
		user := "unknown"
		if s, err := o.load(r.Context(), id); err == nil {
			hint, user = s.IDToken, s.User.String()
		}
		if err := o.store.Delete(r.Context(), id); err != nil {
			o.log.Error("session delete failed", zap.String("user", user), zap.Error(err))
		}
		o.log.Info("signed out", zap.String("user", user))
	}
	o.logins.clearCookie(w)
	if o.endSession == "" {
		return ""
	}
	u, err := url.Parse(o.endSession)
	if err != nil {
		o.log.Error("end_session_endpoint does not parse", zap.Error(err))
		return ""
	}
	// OpenID Connect RP-Initiated Logout 1.0, 2.
	v := u.Query()
	if hint != "" {
		v.Set("id_token_hint", hint)
	}
	if o.postLogout != "" {
		v.Set("post_logout_redirect_uri", o.postLogout)
	}
	v.Set("client_id", o.clientID)
	u.RawQuery = v.Encode()
	return u.String()
}

// writePage answers with a small HTML page (title, message, optional
// link to sign in again). It is written without html/template: a template
// execution anywhere in the binary keeps every exported method of every
// reachable type (text/template calls them by name), which makes the
// linker keep all of go-redis's commands, megabytes of pages resident in
// every sensegate process.
func (o *OIDC) writePage(w http.ResponseWriter, status int, title, msg, retry string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	title, msg = html.EscapeString(title), html.EscapeString(msg)
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sensegate: ")
	b.WriteString(title)
	b.WriteString("</title>\n<style>body{font:16px system-ui,sans-serif;max-width:32rem;margin:4rem auto}</style></head>\n<body><h1>")
	b.WriteString(title)
	b.WriteString("</h1><p>")
	b.WriteString(msg)
	b.WriteString("</p>")
	if retry != "" {
		b.WriteString(`<p><a href="`)
		b.WriteString(html.EscapeString(retry))
		b.WriteString(`">Sign in again</a></p>`)
	}
	b.WriteString("</body></html>\n")
	io.WriteString(w, b.String())
}

// retrieveErrorFields logs a token endpoint's refusal: its RFC 6749 error
// code and description, never the response body.
func retrieveErrorFields(re *oauth2.RetrieveError) []zap.Field {
	fs := []zap.Field{zap.String("error", re.ErrorCode), zap.String("description", truncate(re.ErrorDescription, 200))}
	if re.Response != nil {
		fs = append(fs, zap.Int("status", re.Response.StatusCode))
	}
	return fs
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// randomToken returns 256 random bits in base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var (
	_ Provider = (*OIDC)(nil)
	_ Mounter  = (*OIDC)(nil)
	_ Logouter = (*OIDC)(nil)
)

// StripCookies implements CookieStripper: the login cookies never reach
// an upstream.
func (o *OIDC) StripCookies() []string { return []string{o.cookieName, o.loginCookie} }

var _ CookieStripper = (*OIDC)(nil)
