// Package devidp is a development OpenID Provider on loopback for the demo
// and tests, built on zitadel/oidc's OpenID-certified OP library
// (github.com/zitadel/oidc/v3/pkg/op).
//
// It serves discovery, JWKS, the authorization code flow with PKCE,
// refresh tokens (with offline_access), userinfo, introspection,
// revocation and RP-initiated logout over plain http on a loopback
// address, with a username and password form and a sign-in session of its
// own (a cookie), so that a second sign-in of the same browser goes
// through without the form until RP-initiated logout ends it. Users,
// passwords, clients and sessions live in memory, and the keys are made at
// Start (unless Config.SigningKey is given): it is not an identity
// provider for production.
//
// ID tokens carry sub, preferred_username and name (scope profile), email
// and email_verified (scope email), and groups (unless the client has
// GroupsInUserinfoOnly; userinfo always has them), which is what
// sensegate's default claim mapping reads. Access tokens are opaque, or
// JWTs with the same claims for clients with JWTAccessTokens (single-page
// apps calling sensegate's jwt provider). Every endpoint answers CORS
// from any origin (the OP library's default), so that such an app's page
// can read discovery and the keys and call the token endpoint.
package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"go.uber.org/zap"
)

// Lifetimes of what the IdP issues, and its fixed names and paths.
const (
	// DefaultIDTokenLifetime is the ID token lifetime of a Client that
	// sets none.
	DefaultIDTokenLifetime = time.Hour
	accessTokenLifetime    = 15 * time.Minute
	refreshTokenLifetime   = 24 * time.Hour
	// authRequestLifetime bounds a sign-in at the form and the use of
	// its authorization code.
	authRequestLifetime = 10 * time.Minute
	// sessionLifetime bounds the IdP's own sign-in session (its cookie).
	sessionLifetime = 8 * time.Hour

	sessionCookie     = "devidp_session"
	loginPath         = "/login"
	loggedOutPath     = "/logged-out"
	readHeaderTimeout = 10 * time.Second
)

// User is an account at the IdP.
type User struct {
	// Username and Password are what the login form takes. Both are
	// required; usernames are unique.
	Username, Password string
	// Subject is the "sub" claim, stable and unique (Username if empty).
	Subject string
	// PreferredUsername is the preferred_username claim (Username if
	// empty).
	PreferredUsername string
	// Name is the "name" claim (none if empty).
	Name string
	// Email is the email claim, marked verified (none if empty).
	Email string
	// Groups is the groups claim, in every userinfo answer and in ID
	// tokens (but those of clients with GroupsInUserinfoOnly).
	Groups []string
}

// Client is a relying party registered at the IdP: a web application
// using the authorization code flow.
type Client struct {
	// ID is the client_id. Required and unique.
	ID string
	// Secret authenticates the client at the token endpoint
	// (client_secret_basic or client_secret_post). Empty makes a public
	// client, which must use PKCE.
	Secret string
	// RedirectURIs are the exact redirect_uri values allowed (at least
	// one; absolute http or https URLs).
	RedirectURIs []string
	// PostLogoutRedirectURIs are the exact post_logout_redirect_uri
	// values allowed in RP-initiated logout.
	PostLogoutRedirectURIs []string
	// IDTokenLifetime is that of the ID tokens issued to the client
	// (DefaultIDTokenLifetime if zero).
	IDTokenLifetime time.Duration
	// GroupsInUserinfoOnly keeps the groups claim out of the client's ID
	// tokens, as providers with many groups do (Entra ID's overage, Okta
	// by default): the userinfo endpoint still answers it.
	GroupsInUserinfoOnly bool
	// JWTAccessTokens makes the client's access tokens JWTs signed with
	// the IdP's key (RS256, verifiable against the JWKS), as an API such
	// as sensegate's jwt provider needs: iss, sub, aud (the client ID),
	// exp, iat, nbf, jti, client_id, scope (space-separated), and the
	// user's claims for the scopes granted as in ID tokens
	// (preferred_username, name, email, email_verified; groups unless
	// GroupsInUserinfoOnly). A JWT stays valid until it expires, whatever
	// RevokeUser or a logout does; the userinfo and introspection
	// endpoints refuse it from then on. False (the default): opaque
	// access tokens, which only the IdP itself understands.
	JWTAccessTokens bool
}

// Config configures an IDP.
type Config struct {
	// Users are the accounts that can sign in.
	Users []User
	// Clients are the relying parties registered at Start; SetClient
	// adds more (for those whose address is known only later).
	Clients []Client
	// Listen is the loopback address to listen on ("127.0.0.1:0", a free
	// port, if empty). Other addresses are refused: tokens travel over
	// plain http.
	Listen string
	// Hostname is the host of the issuer URL: empty for Listen's IP, or
	// "localhost". Browsers share cookies between the ports of a host, so
	// give the IdP the name the relying party does not use (sensegate's
	// demo is at localhost, its IdP at 127.0.0.1).
	Hostname string
	// SigningKey signs the ID tokens with RS256 (nil: a new 2048-bit
	// key). Its key id is its RFC 7638 thumbprint, so IdPs given the same
	// key publish the same key set, as the tenants of a multi-tenant
	// provider do.
	SigningKey *rsa.PrivateKey
	// Notice, when set, is shown on the login page (the demo lists its
	// users there).
	Notice string
	// Logger receives sign-in and sign-out events (nil: none). Passwords,
	// codes, tokens and cookies are never logged. The OP library itself
	// reports request errors through log/slog's default logger.
	Logger *zap.Logger
}

// IDP is a running development OpenID Provider. Build it with Start and
// end it with Close; its methods are safe for concurrent use.
type IDP struct {
	issuer   string
	st       *storage
	provider *op.Provider
	srv      *http.Server
	served   chan error
	notice   string

	closeOnce sync.Once
	serveErr  error
	log       *zap.Logger
}

// Start checks cfg, listens on loopback and serves the IdP until Close.
func Start(cfg Config) (*IDP, error) {
	var errs []error
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	if ap, err := netip.ParseAddrPort(listen); err != nil || !ap.Addr().IsLoopback() {
		errs = append(errs, fmt.Errorf("devidp: Listen %q is not a loopback address and port (e.g. 127.0.0.1:0)", listen))
	}
	if cfg.Hostname != "" && cfg.Hostname != "localhost" {
		errs = append(errs, fmt.Errorf("devidp: Hostname %q: use \"\" (Listen's IP) or \"localhost\"", cfg.Hostname))
	}
	key := cfg.SigningKey
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("devidp: signing key: %w", err)
		}
	}
	st, err := newStorage(cfg.Users, key)
	if err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for n, c := range cfg.Clients {
		c, err := checkClient(c)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("devidp: Clients[%d]: %w", n, err))
		case seen[c.ID]:
			errs = append(errs, fmt.Errorf("devidp: Clients[%d]: client %q is listed twice", n, c.ID))
		default:
			seen[c.ID] = true
			st.setClient(c)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("devidp: listen: %w", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if cfg.Hostname != "" {
		host = cfg.Hostname
	}
	i := &IDP{issuer: "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)), st: st, served: make(chan error, 1), notice: cfg.Notice, log: log}
	st.loginURL = i.issuer + loginPath + "?authRequestID="
	var cryptoKey [32]byte
	rand.Read(cryptoKey[:])
	i.provider, err = op.NewProvider(&op.Config{
		// Encrypts the opaque access tokens (token id and subject).
		CryptoKey:                cryptoKey,
		CryptoKeyId:              "devidp",
		DefaultLogoutRedirectURI: loggedOutPath,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedClaims:          append(slices.Clone(op.DefaultSupportedClaims), "groups"),
	}, st, op.StaticIssuer(i.issuer), op.WithAllowInsecure())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("devidp: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+loginPath, i.serveLoginPage)
	mux.HandleFunc("POST "+loginPath, i.serveLogin)
	mux.HandleFunc("GET "+loggedOutPath, func(w http.ResponseWriter, r *http.Request) {
		i.writePage(w, http.StatusOK, pageData{Title: "Signed out", Msg: "You are signed out of the development identity provider."})
	})
	mux.Handle("/", i.provider)
	i.srv = &http.Server{
		Handler:           i.withSession(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	go func() { i.served <- i.srv.Serve(ln) }()
	log.Info("development identity provider listening", zap.String("issuer", i.issuer), zap.Int("users", len(cfg.Users)))
	return i, nil
}

// Issuer returns the issuer URL, such as http://127.0.0.1:port: discovery is at
// Issuer() + "/.well-known/openid-configuration".
func (i *IDP) Issuer() string { return i.issuer }

// JWKSURL returns the URL of the IdP's signing keys (the discovery
// document's jwks_uri), against which JWTs it issues verify.
func (i *IDP) JWKSURL() string { return i.provider.KeysEndpoint().Absolute(i.issuer) }

// Close stops the IdP, waiting up to ctx for requests in progress. Calling
// it again is harmless.
func (i *IDP) Close(ctx context.Context) error {
	err := i.srv.Shutdown(ctx)
	// Serve returns as soon as Shutdown starts.
	i.closeOnce.Do(func() { i.serveErr = <-i.served })
	if i.serveErr != nil && !errors.Is(i.serveErr, http.ErrServerClosed) {
		err = errors.Join(err, i.serveErr)
	}
	return err
}

// SetClient registers c, replacing the client with the same ID (its
// tokens stay valid).
func (i *IDP) SetClient(c Client) error {
	c, err := checkClient(c)
	if err != nil {
		return fmt.Errorf("devidp: %w", err)
	}
	i.st.setClient(c)
	return nil
}

// checkClient returns c with its defaults, or why it cannot be
// registered.
func checkClient(c Client) (Client, error) {
	if c.ID == "" {
		return Client{}, errors.New("client ID is required")
	}
	if len(c.RedirectURIs) == 0 {
		return Client{}, fmt.Errorf("client %q: RedirectURIs: at least one is required", c.ID)
	}
	for field, list := range map[string][]string{"RedirectURIs": c.RedirectURIs, "PostLogoutRedirectURIs": c.PostLogoutRedirectURIs} {
		for _, s := range list {
			if u, err := url.Parse(s); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Fragment != "" {
				return Client{}, fmt.Errorf("client %q: %s: %q is not an absolute http(s) URL without fragment", c.ID, field, s)
			}
		}
	}
	if c.IDTokenLifetime < 0 {
		return Client{}, fmt.Errorf("client %q: IDTokenLifetime %v is negative", c.ID, c.IDTokenLifetime)
	}
	if c.IDTokenLifetime == 0 {
		c.IDTokenLifetime = DefaultIDTokenLifetime
	}
	c.RedirectURIs, c.PostLogoutRedirectURIs = slices.Clone(c.RedirectURIs), slices.Clone(c.PostLogoutRedirectURIs)
	return c, nil
}

// RevokeUser ends every sign-in session of the user with username at the
// IdP and revokes their access and refresh tokens, as an administrator
// would: their next refresh fails with invalid_grant and their next
// sign-in shows the form. It reports whether the user exists.
func (i *IDP) RevokeUser(username string) bool {
	sub, ok := i.st.subjectOf(username)
	if !ok {
		return false
	}
	sessions, tokens := i.st.revoke(sub, "")
	i.log.Info("user revoked", zap.String("username", username), zap.Int("sessions", sessions), zap.Int("tokens", tokens))
	return true
}

// SignedIn returns the usernames of the live sign-in sessions at the IdP,
// one per browser, sorted.
func (i *IDP) SignedIn() []string {
	out := i.st.signedIn()
	sort.Strings(out)
	return out
}

// sessionCtxKey carries the request's live sign-in session, if any, from
// withSession to the storage (prompt=none, RP-initiated logout) and the
// login page.
type sessionCtxKey struct{}

// withSession puts the browser's sign-in session into the request context.
func (i *IDP) withSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, c := range r.CookiesNamed(sessionCookie) {
			if s, ok := i.st.session(c.Value); ok {
				r = r.WithContext(context.WithValue(r.Context(), sessionCtxKey{}, s))
				break
			}
		}
		next.ServeHTTP(w, r)
	})
}

func sessionFrom(ctx context.Context) (browserSession, bool) {
	s, ok := ctx.Value(sessionCtxKey{}).(browserSession)
	return s, ok
}

// serveLoginPage is where the OP sends the browser for an authorization
// request: a browser signed in at the IdP goes straight back (unless the
// client asked for prompt=login or a max_age it exceeds), others get the
// form.
func (i *IDP) serveLoginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	ar, ok := i.st.authRequest(id)
	if !ok {
		i.writePage(w, http.StatusBadRequest, pageData{Title: "Sign-in expired", Msg: "This sign-in is unknown or took too long. Go back to the application and start again."})
		return
	}
	if ar.done {
		http.Redirect(w, r, i.callbackURL(r.Context(), id), http.StatusFound)
		return
	}
	if s, ok := sessionFrom(r.Context()); ok && ar.acceptsSession(s, time.Now()) {
		if i.st.complete(id, s.subject, s.authTime) {
			i.log.Info("signed in from session", zap.String("username", s.username), zap.String("client_id", ar.clientID))
			http.Redirect(w, r, i.callbackURL(r.Context(), id), http.StatusFound)
			return
		}
	}
	i.writePage(w, http.StatusOK, pageData{Title: "Sign in", Form: true, ID: id, Username: ar.loginHint, Notice: i.notice})
}

// serveLogin checks the form's username and password, completes the
// authorization request and starts a sign-in session.
func (i *IDP) serveLogin(w http.ResponseWriter, r *http.Request) {
	id, username, password := r.PostFormValue("id"), r.PostFormValue("username"), r.PostFormValue("password")
	ar, ok := i.st.authRequest(id)
	if !ok {
		i.writePage(w, http.StatusBadRequest, pageData{Title: "Sign-in expired", Msg: "This sign-in is unknown or took too long. Go back to the application and start again."})
		return
	}
	u, ok := i.st.checkPassword(username, password)
	if !ok {
		i.log.Info("sign-in refused: wrong username or password", zap.String("username", username), zap.String("client_id", ar.clientID))
		i.writePage(w, http.StatusUnauthorized, pageData{Title: "Sign in", Form: true, ID: id, Username: username, Error: "Wrong username or password.", Notice: i.notice})
		return
	}
	now := time.Now()
	if !i.st.complete(id, u.Subject, now) {
		i.writePage(w, http.StatusBadRequest, pageData{Title: "Sign-in expired", Msg: "This sign-in is unknown or took too long. Go back to the application and start again."})
		return
	}
	// A new session id at every sign-in (no fixation); the browser's old
	// session ends.
	if old, ok := sessionFrom(r.Context()); ok {
		i.st.endSession(old.id)
	}
	sid := i.st.newSession(u, now)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sid, Path: "/", MaxAge: int(sessionLifetime / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode})
	i.log.Info("signed in", zap.String("username", u.Username), zap.String("client_id", ar.clientID))
	http.Redirect(w, r, i.callbackURL(r.Context(), id), http.StatusFound)
}

// callbackURL is the OP's endpoint that answers the client once the
// authorization request is done.
func (i *IDP) callbackURL(ctx context.Context, id string) string {
	return op.AuthCallbackURL(i.provider)(op.ContextWithIssuer(ctx, i.issuer), id)
}

type pageData struct {
	Title, Msg, Error, Notice string
	Form                      bool
	ID, Username              string
}

var page = template.Must(template.New("devidp").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Development IdP: {{.Title}}</title>
<style>body{font:16px system-ui,sans-serif;max-width:24rem;margin:4rem auto}label,input,button{display:block;width:100%;box-sizing:border-box}input{margin:.2rem 0 1rem;padding:.5rem;font-size:1rem}button{padding:.6rem;font-size:1rem}.error{color:#b00020}.notice{color:#555;font-size:.9rem}</style></head>
<body><h1>{{.Title}}</h1>
{{- if .Form}}
<p>Development identity provider (not for production).</p>
{{- if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="id" value="{{.ID}}">
<label for="username">Username</label><input id="username" name="username" value="{{.Username}}" autocomplete="username" autofocus required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
{{- if .Notice}}<p class="notice">{{.Notice}}</p>{{end}}
{{- else}}
<p>{{.Msg}}</p>
{{- end}}
</body></html>
`))

func (i *IDP) writePage(w http.ResponseWriter, status int, d pageData) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	page.Execute(w, d)
}

// authRequest is also op's view of a sign-in in progress; acceptsSession
// decides whether the browser's session may answer it without the form.
func (a *authRequest) acceptsSession(s browserSession, now time.Time) bool {
	if slices.Contains(a.prompt, oidc.PromptLogin) || slices.Contains(a.prompt, oidc.PromptSelectAccount) {
		return false
	}
	if a.hintSubject != "" && a.hintSubject != s.subject {
		return false
	}
	// max_age=0 asks for a new sign-in, like prompt=login.
	return a.maxAge == nil || now.Sub(s.authTime) < *a.maxAge
}
