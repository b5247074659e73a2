package devidp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is the IdP's state, in memory: op.Storage for the OP library,
// plus users, sign-in sessions and clients. Everything is under mu;
// what it hands to op are copies, so that op never reads what a later
// request changes.
type storage struct {
	key      signingKey
	loginURL string // issuer + "/login?authRequestID=", set before serving

	mu           sync.Mutex
	users        map[string]*User // by subject
	usernames    map[string]string
	clients      map[string]Client
	authRequests map[string]*authRequest
	codes        map[string]string // code → auth request id
	access       map[string]*accessToken
	refresh      map[string]*refreshToken
	sessions     map[string]*browserSession
}

func newStorage(users []User, key *rsa.PrivateKey) (*storage, error) {
	kid, err := (&jose.JSONWebKey{Key: &key.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devidp: signing key: %w", err)
	}
	s := &storage{
		key:          signingKey{id: base64.RawURLEncoding.EncodeToString(kid), key: key},
		users:        map[string]*User{},
		usernames:    map[string]string{},
		clients:      map[string]Client{},
		authRequests: map[string]*authRequest{},
		codes:        map[string]string{},
		access:       map[string]*accessToken{},
		refresh:      map[string]*refreshToken{},
		sessions:     map[string]*browserSession{},
	}
	var errs []error
	for n, u := range users {
		u.Groups = slices.Clone(u.Groups)
		if u.Subject == "" {
			u.Subject = u.Username
		}
		if u.PreferredUsername == "" {
			u.PreferredUsername = u.Username
		}
		if u.Username == "" || u.Password == "" {
			errs = append(errs, fmt.Errorf("devidp: Users[%d]: Username and Password are required", n))
			continue
		}
		if _, dup := s.usernames[u.Username]; dup {
			errs = append(errs, fmt.Errorf("devidp: Users[%d]: username %q is listed twice", n, u.Username))
			continue
		}
		if _, dup := s.users[u.Subject]; dup {
			errs = append(errs, fmt.Errorf("devidp: Users[%d]: subject %q is listed twice", n, u.Subject))
			continue
		}
		s.users[u.Subject] = &u
		s.usernames[u.Username] = u.Subject
	}
	return s, errors.Join(errs...)
}

// randomID returns 256 random bits in base64url, for ids, codes and
// tokens alike.
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Users, sessions and clients.

// browserSession is a sign-in at the IdP, referenced by its cookie.
type browserSession struct {
	id, subject, username string
	authTime, expires     time.Time
}

func (s *storage) checkPassword(username, password string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[s.usernames[username]]
	// Compared in constant time even for an unknown user.
	want := "\x00unknown user"
	if ok {
		want = u.Password
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 || !ok {
		return User{}, false
	}
	return *u, true
}

func (s *storage) subjectOf(username string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub, ok := s.usernames[username]
	return sub, ok
}

func (s *storage) newSession(u User, now time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	bs := &browserSession{id: randomID(), subject: u.Subject, username: u.Username, authTime: now, expires: now.Add(sessionLifetime)}
	s.sessions[bs.id] = bs
	return bs.id
}

func (s *storage) session(id string) (browserSession, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bs, ok := s.sessions[id]
	if !ok || !time.Now().Before(bs.expires) {
		return browserSession{}, false
	}
	return *bs, true
}

func (s *storage) endSession(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
}

func (s *storage) signedIn() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var out []string
	for _, bs := range s.sessions {
		if now.Before(bs.expires) {
			out = append(out, bs.username)
		}
	}
	return out
}

// revoke ends subject's sign-in sessions (when clientID is empty) and
// revokes their tokens (for clientID only, if set), returning how many of
// each ended.
func (s *storage) revoke(subject, clientID string) (sessions, tokens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if clientID == "" {
		for id, bs := range s.sessions {
			if bs.subject == subject {
				delete(s.sessions, id)
				sessions++
			}
		}
	}
	for id, t := range s.access {
		if t.subject == subject && (clientID == "" || t.clientID == clientID) {
			delete(s.access, id)
			tokens++
		}
	}
	for id, t := range s.refresh {
		if t.subject == subject && (clientID == "" || t.clientID == clientID) {
			delete(s.refresh, id)
			tokens++
		}
	}
	return sessions, tokens
}

// sweepLocked forgets what has expired, so that a long-running demo does
// not grow.
func (s *storage) sweepLocked(now time.Time) {
	for id, ar := range s.authRequests {
		if !now.Before(ar.created.Add(authRequestLifetime)) {
			delete(s.authRequests, id)
		}
	}
	for code, id := range s.codes {
		if _, ok := s.authRequests[id]; !ok {
			delete(s.codes, code)
		}
	}
	for id, t := range s.access {
		if !now.Before(t.expires) {
			delete(s.access, id)
		}
	}
	for id, t := range s.refresh {
		if !now.Before(t.expires) {
			delete(s.refresh, id)
		}
	}
	for id, bs := range s.sessions {
		if !now.Before(bs.expires) {
			delete(s.sessions, id)
		}
	}
}

func (s *storage) setClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = c
}

// GetClientByClientID implements op.OPStorage.
func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q not found", id)
	}
	return &client{c: c, loginURL: s.loginURL}, nil
}

// AuthorizeClientIDSecret implements op.OPStorage.
func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok || c.Secret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(c.Secret)) != 1 {
		return errors.New("invalid client id or secret")
	}
	return nil
}

// Authorization requests and codes.

// authRequest is a sign-in in progress; it implements op.AuthRequest.
type authRequest struct {
	id, clientID, redirectURI, state, nonce string
	created                                 time.Time
	scopes, prompt                          []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	challenge                               *oidc.CodeChallenge
	maxAge                                  *time.Duration
	loginHint                               string
	// hintSubject is the subject of a valid id_token_hint, if any.
	hintSubject string

	done     bool
	subject  string
	authTime time.Time
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// GetAMR implements op.AuthRequest: the only method is a password.
func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}

// CreateAuthRequest implements op.AuthStorage. With prompt=none the
// browser's sign-in session answers at once, or the client gets
// login_required.
func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	now := time.Now()
	ar := &authRequest{
		id: randomID(), created: now, clientID: req.ClientID, redirectURI: req.RedirectURI, state: req.State, nonce: req.Nonce,
		scopes: slices.Clone([]string(req.Scopes)), prompt: slices.Clone([]string(req.Prompt)),
		responseType: req.ResponseType, responseMode: req.ResponseMode, loginHint: req.LoginHint, hintSubject: hintSubject,
	}
	if req.CodeChallenge != "" {
		ar.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	if req.MaxAge != nil {
		d := time.Duration(*req.MaxAge) * time.Second
		ar.maxAge = &d
	}
	if slices.Contains(ar.prompt, oidc.PromptNone) {
		bs, ok := sessionFrom(ctx)
		if !ok || !ar.acceptsSession(bs, now) {
			return nil, oidc.ErrLoginRequired()
		}
		ar.done, ar.subject, ar.authTime = true, bs.subject, bs.authTime
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	s.authRequests[ar.id] = ar
	c := *ar
	return &c, nil
}

// authRequest returns a copy of the unexpired request id.
func (s *storage) authRequest(id string) (authRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.authRequests[id]
	if !ok || !time.Now().Before(ar.created.Add(authRequestLifetime)) {
		return authRequest{}, false
	}
	return *ar, true
}

// complete marks request id done for subject, signed in at authTime; it
// reports false for an unknown or expired request.
func (s *storage) complete(id, subject string, authTime time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.authRequests[id]
	if !ok || !time.Now().Before(ar.created.Add(authRequestLifetime)) {
		return false
	}
	if !ar.done {
		ar.done, ar.subject, ar.authTime = true, subject, authTime
	}
	return true
}

// AuthRequestByID implements op.AuthStorage.
func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	ar, ok := s.authRequest(id)
	if !ok {
		return nil, errors.New("auth request not found or expired")
	}
	return &ar, nil
}

// AuthRequestByCode implements op.AuthStorage.
func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code invalid or used")
	}
	return s.AuthRequestByID(ctx, id)
}

// SaveAuthCode implements op.AuthStorage.
func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.authRequests[id]; !ok {
		return errors.New("auth request not found")
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest implements op.AuthStorage: after the token response,
// so a code works once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// Tokens.

type accessToken struct {
	id, clientID, subject string
	audience, scopes      []string
	expires               time.Time
}

type refreshToken struct {
	token, clientID, subject, accessID string
	audience, scopes, amr              []string
	authTime, expires                  time.Time
}

// refreshTokenRequest implements op.RefreshTokenRequest on a copy of a
// refresh token.
type refreshTokenRequest struct{ refreshToken }

func (r *refreshTokenRequest) GetAMR() []string             { return r.amr }
func (r *refreshTokenRequest) GetAudience() []string        { return r.audience }
func (r *refreshTokenRequest) GetAuthTime() time.Time       { return r.authTime }
func (r *refreshTokenRequest) GetClientID() string          { return r.clientID }
func (r *refreshTokenRequest) GetScopes() []string          { return r.scopes }
func (r *refreshTokenRequest) GetSubject() string           { return r.subject }
func (r *refreshTokenRequest) SetCurrentScopes(sc []string) { r.scopes = sc }

// clientOf returns the client a token request is for.
func clientOf(req op.TokenRequest) string {
	if c, ok := req.(interface{ GetClientID() string }); ok {
		return c.GetClientID()
	}
	return ""
}

func (s *storage) newAccessLocked(req op.TokenRequest, now time.Time) *accessToken {
	t := &accessToken{
		id: randomID(), clientID: clientOf(req), subject: req.GetSubject(),
		audience: slices.Clone(req.GetAudience()), scopes: slices.Clone(req.GetScopes()), expires: now.Add(accessTokenLifetime),
	}
	s.access[t.id] = t
	return t
}

// CreateAccessToken implements op.AuthStorage.
func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.newAccessLocked(req, now)
	return t.id, t.expires, nil
}

// CreateAccessAndRefreshTokens implements op.AuthStorage. A refresh
// rotates the refresh token: the old one and its access token end.
func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var amr []string
	var authTime time.Time
	if r, ok := req.(op.IDTokenRequest); ok {
		amr, authTime = r.GetAMR(), r.GetAuthTime()
	}
	if current != "" {
		old, ok := s.refresh[current]
		if !ok || !now.Before(old.expires) {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token invalid or used")
		}
		delete(s.refresh, current)
		delete(s.access, old.accessID)
	}
	at := s.newAccessLocked(req, now)
	rt := &refreshToken{
		token: randomID(), clientID: at.clientID, subject: at.subject, accessID: at.id,
		audience: at.audience, scopes: at.scopes, amr: slices.Clone(amr), authTime: authTime, expires: now.Add(refreshTokenLifetime),
	}
	s.refresh[rt.token] = rt
	return at.id, rt.token, at.expires, nil
}

// TokenRequestByRefreshToken implements op.AuthStorage.
func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || !time.Now().Before(rt.expires) {
		return nil, errors.New("refresh token invalid, used or revoked")
	}
	c := *rt
	c.scopes = slices.Clone(rt.scopes)
	return &refreshTokenRequest{c}, nil
}

// TerminateSession implements op.AuthStorage: userID's tokens for
// clientID end. (End-session requests go to TerminateSessionFromRequest.)
func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.revoke(userID, clientID)
	return nil
}

// TerminateSessionFromRequest implements op.CanTerminateSessionFromRequest
// for RP-initiated logout: the browser's sign-in session at the IdP ends,
// and so do the tokens of the user (named by id_token_hint, else by the
// session) for the client.
func (s *storage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	subject := req.UserID
	if bs, ok := sessionFrom(ctx); ok {
		s.endSession(bs.id)
		if subject == "" {
			subject = bs.subject
		}
	}
	if subject != "" && req.ClientID != "" {
		s.revoke(subject, req.ClientID)
	}
	return req.RedirectURI, nil
}

// RevokeToken implements op.AuthStorage.
func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.access[tokenOrID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.access, tokenOrID)
		return nil
	}
	if t, ok := s.refresh[tokenOrID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refresh, tokenOrID)
		delete(s.access, t.accessID)
	}
	// RFC 7009 2.2: an unknown token is not an error.
	return nil
}

// GetRefreshTokenInfo implements op.AuthStorage.
func (s *storage) GetRefreshTokenInfo(_ context.Context, _, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return t.subject, t.token, nil
}

// Keys.

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

// SigningKey implements op.AuthStorage.
func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

// SignatureAlgorithms implements op.AuthStorage.
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet implements op.AuthStorage.
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

// Claims.

// setClaims fills ui with subject's claims for scopes: sub, the profile
// and email claims for their scopes, and groups unless noGroups.
func (s *storage) setClaims(ui *oidc.UserInfo, subject string, scopes []string, noGroups bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[subject]
	if !ok {
		return fmt.Errorf("user %q not found", subject)
	}
	ui.Subject = u.Subject
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			ui.PreferredUsername, ui.Name = u.PreferredUsername, u.Name
		case oidc.ScopeEmail:
			if u.Email != "" {
				ui.Email, ui.EmailVerified = u.Email, true
			}
		}
	}
	if noGroups {
		return nil
	}
	groups := slices.Clone(u.Groups)
	if groups == nil {
		groups = []string{}
	}
	ui.AppendClaims("groups", groups)
	return nil
}

// SetUserinfoFromScopes implements op.OPStorage; op documents it as
// deprecated and to be left empty (SetUserinfoFromRequest does the work).
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest implements op.CanSetUserinfoFromRequest: the
// claims of the ID token, without groups for a client with
// GroupsInUserinfoOnly.
func (s *storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	s.mu.Lock()
	noGroups := s.clients[req.GetClientID()].GroupsInUserinfoOnly
	s.mu.Unlock()
	return s.setClaims(ui, req.GetSubject(), scopes, noGroups)
}

// liveToken returns a copy of the unexpired access token id.
func (s *storage) liveToken(id string) (accessToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.access[id]
	if !ok || !time.Now().Before(t.expires) {
		return accessToken{}, false
	}
	return *t, true
}

// SetUserinfoFromToken implements op.OPStorage: the userinfo endpoint.
func (s *storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	t, ok := s.liveToken(tokenID)
	if !ok {
		return errors.New("access token invalid or expired")
	}
	return s.setClaims(ui, t.subject, t.scopes, false)
}

// SetIntrospectionFromToken implements op.OPStorage.
func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	t, ok := s.liveToken(tokenID)
	if !ok || !slices.Contains(t.audience, clientID) {
		return errors.New("access token invalid, expired or not for this client")
	}
	ui := new(oidc.UserInfo)
	if err := s.setClaims(ui, t.subject, t.scopes, false); err != nil {
		return err
	}
	resp.SetUserInfo(ui)
	resp.Scope, resp.ClientID, resp.Expiration = t.scopes, t.clientID, oidc.FromTime(t.expires)
	return nil
}

// GetPrivateClaimsFromScopes implements op.OPStorage. op asks
// GetPrivateClaimsFromRequest instead, which sees the whole request.
func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetPrivateClaimsFromRequest implements op.CanGetPrivateClaimsFromRequest:
// the claims a JWT access token (Client.JWTAccessTokens) carries beyond
// op's registered ones: the scopes granted, and the user's claims for
// them as in the client's ID tokens. op hands restricted scopes without
// profile and email, so the request's own are read.
func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	scopes := req.GetScopes()
	s.mu.Lock()
	noGroups := s.clients[clientOf(req)].GroupsInUserinfoOnly
	s.mu.Unlock()
	var ui oidc.UserInfo
	if err := s.setClaims(&ui, req.GetSubject(), scopes, noGroups); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&ui)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, err
	}
	delete(claims, "sub") // op's
	claims["scope"] = strings.Join(scopes, " ")
	return claims, nil
}

// errNoJWTProfile answers the JWT profile grant and private_key_jwt, which
// the IdP does not offer.
var errNoJWTProfile = errors.New("devidp: JWT profile and private_key_jwt are not supported")

// GetKeyByIDAndClientID implements op.OPStorage.
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNoJWTProfile
}

// ValidateJWTProfileScopes implements op.OPStorage.
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNoJWTProfile
}

// Health implements op.Storage.
func (s *storage) Health(context.Context) error { return nil }

// client is a Client as op sees it.
type client struct {
	c        Client
	loginURL string
}

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }
func (c *client) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.c.Secret == "" {
		return oidc.AuthMethodNone // PKCE is then required
	}
	return oidc.AuthMethodBasic // client_secret_post is accepted too (op.Config.AuthMethodPost)
}

func (c *client) AccessTokenType() op.AccessTokenType {
	if c.c.JWTAccessTokens {
		return op.AccessTokenTypeJWT
	}
	return op.AccessTokenTypeBearer
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}

func (c *client) LoginURL(id string) string { return c.loginURL + id }

func (c *client) IDTokenLifetime() time.Duration       { return c.c.IDTokenLifetime }
func (c *client) DevMode() bool                        { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true } // claims in the ID token, as most providers do
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// Interface guards.
var (
	_ op.Storage                        = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*storage)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*storage)(nil)
	_ op.AuthRequest                    = (*authRequest)(nil)
	_ op.RefreshTokenRequest            = (*refreshTokenRequest)(nil)
	_ op.Client                         = (*client)(nil)
	_ op.SigningKey                     = signingKey{}
	_ op.Key                            = publicKey{}
)
