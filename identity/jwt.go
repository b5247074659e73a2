package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
)

// Defaults of a JWTConfig.
const (
	// DefaultJWTClockSkew is the leeway on exp, nbf and iat.
	DefaultJWTClockSkew = 60 * time.Second
	// DefaultJWKSRefetchInterval is the shortest time between two fetches
	// of the JWKS.
	DefaultJWKSRefetchInterval = 30 * time.Second
	// DefaultJWKSTimeout bounds one fetch of the JWKS when the HTTPClient
	// has no Timeout of its own.
	DefaultJWKSTimeout = 10 * time.Second
)

// DefaultJWTAlgorithms returns the signature algorithms accepted when
// JWTConfig.Algorithms is empty.
func DefaultJWTAlgorithms() []string { return []string{"RS256", "ES256"} }

const (
	// maxTokenLen caps the token parsed per request. Access tokens with
	// a few hundred groups stay well below it.
	maxTokenLen = 64 << 10
	// maxJWKSLen caps a JWKS document.
	maxJWKSLen = 1 << 20
	// minRSABits is the smallest RSA key accepted in PublicKeys.
	minRSABits = 2048
)

// signatureAlgorithms are the "alg" values a JWTConfig may allow: the
// asymmetric JWS algorithms go-jose verifies. "none" is not among them and
// neither are HS256/384/512: with a shared secret anyone who can verify a
// token can also mint one, and a verifier holding public keys is the
// classic target of the "HS256 signed with the public key" confusion.
var signatureAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// JWTConfig describes a JWT provider.
type JWTConfig struct {
	// Issuer is the required value of the "iss" claim, compared exactly.
	// Required.
	Issuer string
	// Audiences lists the accepted audiences: the token's "aud" must
	// contain at least one of them. Required.
	Audiences []string
	// JWKSURL is where the signing keys are fetched from (https; http
	// only for a loopback host). They are fetched on first use and again
	// when a signature does not verify with the keys at hand (a key id not
	// seen yet after a rotation), at most once per JWKSRefetchInterval; a
	// key removed from the JWKS stays trusted until that next fetch.
	// Exactly one of JWKSURL and PublicKeys is set.
	JWKSURL string
	// PublicKeys are static signing keys (*rsa.PublicKey of at least 2048
	// bits, *ecdsa.PublicKey on P-256/384/521, ed25519.PublicKey), e.g.
	// from LoadPublicKeys. The "kid" header is not used to pick among them.
	PublicKeys []crypto.PublicKey
	// Algorithms lists the accepted "alg" values (DefaultJWTAlgorithms if
	// empty): RS256/384/512, PS256/384/512, ES256/384/512, EdDSA. "none"
	// and HS256/384/512 are refused.
	Algorithms []string
	// ClockSkew is the leeway on exp, nbf and iat; 0 allows none, as
	// identity.jwt.clock_skew: 0s does. DefaultJWTClockSkew is the usual
	// value (the configuration's default).
	ClockSkew time.Duration
	// JWKSRefetchInterval is the shortest time between two fetches of
	// JWKSURL (DefaultJWKSRefetchInterval if zero). Within it, a token with
	// an unknown key id is checked against the keys already fetched, so
	// tokens with made-up key ids cannot make sensegate hammer the
	// identity provider.
	JWKSRefetchInterval time.Duration
	// RequiredScopes, when not empty, must each be granted by the token,
	// in its "scope" claim (space-separated, RFC 9068) or its "scp" claim
	// (a string or a list, as Entra ID issues). A token without one of
	// them is refused with 403 and an RFC 6750 insufficient_scope
	// challenge. Empty (the default): no scope is required.
	RequiredScopes []string
	// Mapping turns the token's claims into the Qlik user. Required.
	Mapping *Mapping
	// Session, when not nil, turns on the token exchange for single-page
	// apps (exchange.go): the provider is then a TokenExchanger, and
	// Identify also accepts its login cookie. Nil (the default): bearer
	// tokens only.
	Session *JWTSessionConfig
	// HTTPClient fetches JWKSURL (a client with a DefaultJWKSTimeout
	// timeout if nil; given one without a Timeout, that timeout is added
	// to a copy). It is not modified.
	HTTPClient *http.Client
	// Now returns the current time (time.Now if nil).
	Now func() time.Time
	// Logger logs key fetches (no logging if nil). Tokens are never logged.
	Logger *zap.Logger
}

// JWT identifies machine clients and single-page applications that already
// hold a token from the identity provider: it verifies the bearer token of
// each request (signature, algorithm, issuer, audience, expiry) and maps
// its claims to a User. Verifying is local: the network is used only to
// fetch the JWKS, on first use and when a signature does not verify with
// the keys at hand, at most once per JWKSRefetchInterval. A JWT is safe
// for concurrent use.
type JWT struct {
	keys      oidc.KeySet
	algs      []jose.SignatureAlgorithm
	validator *jwt.Validator
	mapping   *Mapping
	scopes    []string // required
	issuer    string
	now       func() time.Time
	log       *zap.Logger
	logins    *loginStore // nil: no token exchange
}

// NewJWT checks cfg and returns its provider. Errors name the JWTConfig
// field at fault; all problems are reported at once. ctx carries no
// deadline for later key fetches (go-oidc keeps only its values); the
// JWKS is not fetched here, so an unreachable identity provider does not
// stop sensegate from starting.
func NewJWT(ctx context.Context, cfg JWTConfig) (*JWT, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	if cfg.Issuer == "" {
		bad("Issuer", "required (the exact \"iss\" of accepted tokens)")
	} else if strings.TrimSpace(cfg.Issuer) != cfg.Issuer {
		bad("Issuer", "%q has leading or trailing spaces", cfg.Issuer)
	}
	if len(cfg.Audiences) == 0 {
		bad("Audiences", "required (at least one accepted \"aud\" value)")
	}
	for i, a := range cfg.Audiences {
		if strings.TrimSpace(a) == "" {
			bad(fmt.Sprintf("Audiences[%d]", i), "empty")
		}
	}

	algs, algErrs := parseAlgorithms(cfg.Algorithms)
	errs = append(errs, algErrs...)

	switch {
	case cfg.JWKSURL == "" && len(cfg.PublicKeys) == 0:
		bad("JWKSURL", "either JWKSURL or PublicKeys is required")
	case cfg.JWKSURL != "" && len(cfg.PublicKeys) > 0:
		bad("JWKSURL", "set either JWKSURL or PublicKeys, not both")
	case cfg.JWKSURL != "":
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			bad("JWKSURL", "%v", err)
		}
	default:
		for i, k := range cfg.PublicKeys {
			if err := checkPublicKey(k); err != nil {
				bad(fmt.Sprintf("PublicKeys[%d]", i), "%v", err)
			} else if len(algs) > 0 && !slices.ContainsFunc(algs, func(a jose.SignatureAlgorithm) bool { return keyFits(k, a) }) {
				bad(fmt.Sprintf("PublicKeys[%d]", i), "a %s key verifies none of the Algorithms %v", keyKind(k), algs)
			}
		}
	}

	if cfg.ClockSkew < 0 {
		bad("ClockSkew", "%v is negative", cfg.ClockSkew)
	}
	if cfg.JWKSRefetchInterval < 0 {
		bad("JWKSRefetchInterval", "%v is negative", cfg.JWKSRefetchInterval)
	}
	if cfg.Mapping == nil {
		bad("Mapping", "required")
	}
	for i, sc := range cfg.RequiredScopes {
		if err := checkScopeToken(sc); err != nil {
			bad(fmt.Sprintf("RequiredScopes[%d]", i), "%v", err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("jwt")
	var logins *loginStore
	if cfg.Session != nil {
		var lerrs []error
		logins, lerrs = newJWTLogins(cfg.Session, log)
		errs = append(errs, lerrs...)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("identity: jwt: %w", errors.Join(errs...))
	}

	skew := cfg.ClockSkew
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	j := &JWT{
		algs:    algs,
		mapping: cfg.Mapping,
		scopes:  slices.Clone(cfg.RequiredScopes),
		issuer:  cfg.Issuer,
		now:     now,
		log:     log,
		logins:  logins,
		validator: jwt.NewValidator(
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithLeeway(skew),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
		),
	}
	if cfg.JWKSURL == "" {
		j.keys = &oidc.StaticKeySet{PublicKeys: slices.Clone(cfg.PublicKeys)}
		return j, nil
	}

	interval := cfg.JWKSRefetchInterval
	if interval == 0 {
		interval = DefaultJWKSRefetchInterval
	}
	client := &http.Client{Timeout: DefaultJWKSTimeout}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
		if client.Timeout == 0 {
			// go-oidc fetches in a goroutine of its own that waits for no
			// request: without a timeout, a hung fetch would block every
			// later key rotation.
			client.Timeout = DefaultJWKSTimeout
		}
	}
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	u, _ := url.Parse(cfg.JWKSURL) // checked above
	client.Transport = &jwksTransport{
		next:     next,
		interval: interval,
		now:      now,
		log:      log.With(zap.String("jwks_url", u.Redacted())),
	}
	j.keys = oidc.NewRemoteKeySet(oidc.ClientContext(ctx, client), cfg.JWKSURL)
	return j, nil
}

// Identify implements Provider. It reads "Authorization: Bearer <token>"
// (scheme case-insensitive, RFC 6750 §2.1; tokens in the query string are
// not accepted because URLs end up in logs). A missing or malformed token,
// a bad signature or an unacceptable claim is a 401 *Error whose Msg
// names the problem; a token without JWTConfig.RequiredScopes and claims
// the Mapping refuses are a 403. Every 401 carries an RFC 6750 Bearer
// challenge (Error.Challenge): with error="invalid_token" and the problem
// as error_description when a token was presented, without an error code
// when none was (§3.1); the 403 of missing scopes carries
// error="insufficient_scope". When the JWKS cannot be fetched to look up a
// new key id, the error is not an *Error: the identity provider is
// unavailable. With the token exchange on (JWTConfig.Session), a request
// without a token is identified by its login cookie, and one whose token
// and login are of different users is refused with 400.
func (j *JWT) Identify(r *http.Request) (User, error) {
	if j.logins != nil {
		return j.identifyWithLogin(r)
	}
	token, err := bearerToken(r.Header)
	if err != nil {
		return User{}, err
	}
	u, _, err := j.bearerUser(r.Context(), token)
	return u, err
}

// bearerUser verifies token, checks its scopes and maps its claims: the
// one path by which a bearer token becomes a user, for requests and for
// the token exchange alike.
func (j *JWT) bearerUser(ctx context.Context, token string) (User, jwt.MapClaims, error) {
	claims, err := j.verify(ctx, token)
	if err != nil {
		return User{}, nil, err
	}
	if missing := missingScopes(claims, j.scopes); len(missing) > 0 {
		const msg = "token lacks a required scope"
		return User{}, nil, &Error{
			Status: http.StatusForbidden, Msg: msg, Err: fmt.Errorf("jwt: scopes %q not granted", missing),
			Challenge: bearerChallenge(bearerInsufficientScope, msg, j.scopes),
		}
	}
	u, err := j.mapping.User(claims)
	if err != nil {
		return User{}, nil, &Error{Status: http.StatusForbidden, Msg: "token claims do not make a valid Qlik user", Err: err}
	}
	return u, claims, nil
}

// StripHeaders implements HeaderStripper: the bearer token is for
// sensegate, never for Qlik.
func (j *JWT) StripHeaders() []string { return []string{"Authorization"} }

// bearerToken returns the token of the request's only Authorization
// header.
func bearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", noBearerToken(msgBearerRequired)
	case 1:
	default:
		// RFC 6750 §3.1: repeating a parameter is invalid_request.
		return "", badBearerRequest("authorization header repeated", errAuthorizationRepeated)
	}
	scheme, token, _ := strings.Cut(vals[0], " ")
	token = strings.TrimLeft(token, " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		// Another scheme (Basic) is no bearer token: no error code (§3.1).
		return "", noBearerToken(msgBearerRequired)
	}
	return token, nil
}

var errAuthorizationRepeated = errors.New("more than one Authorization header")

// msgBearerRequired is the client's message for a request without a
// bearer token.
const msgBearerRequired = "bearer token required"

// verify checks token's algorithm, signature and registered claims and
// returns its claims.
//
// go-oidc's KeySet verifies the signature (it owns the JWKS cache and
// refetches when the cached keys fail, e.g. on a new key id; jwksTransport
// rate-limits that) and golang-jwt's Validator checks the
// claims. golang-jwt end to end would need a Keyfunc returning the key,
// which go-oidc's key sets do not expose, so its parser is not used; go-jose
// (which go-oidc verifies with) checks "alg" first, as go-oidc's KeySets
// accept any algorithm the key fits.
func (j *JWT) verify(ctx context.Context, token string) (jwt.MapClaims, error) {
	if len(token) > maxTokenLen {
		return nil, unauthorized("malformed token", fmt.Errorf("token is %d bytes, more than %d", len(token), maxTokenLen))
	}
	// JWTs use the compact serialization only (RFC 7519 §1); ParseSigned
	// would also take JWS JSON.
	if _, err := jose.ParseSignedCompact(token, j.algs); err != nil {
		var ua *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ua) {
			return nil, unauthorized("token algorithm not accepted", err)
		}
		return nil, unauthorized("malformed token", err)
	}
	payload, err := j.keys.VerifySignature(ctx, token)
	switch {
	case errors.Is(err, errJWKSUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Not the token's fault: the proxy answers 503 (or 499 for a
		// client that went away).
		return nil, fmt.Errorf("identity: jwt: verify signature: %w", err)
	case err != nil:
		return nil, unauthorized("token signature not valid", err)
	}
	var claims jwt.MapClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, unauthorized("malformed token", fmt.Errorf("claims: %w", err))
	}
	if err := j.validator.Validate(claims); err != nil {
		return nil, unauthorized(claimsMsg(claims, err), err)
	}
	return claims, nil
}

// unauthorized is the 401 of a token that was presented but refused: an
// RFC 6750 invalid_token challenge that says why.
func unauthorized(msg string, err error) *Error {
	return &Error{Status: http.StatusUnauthorized, Msg: msg, Err: fmt.Errorf("jwt: %w", err), Challenge: bearerChallenge(bearerInvalidToken, msg, nil)}
}

// claimsMsg is the client's message for a validation error, most
// fundamental problem first (the Validator reports all of them).
func claimsMsg(claims jwt.MapClaims, err error) string {
	missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	for _, c := range []struct {
		claim   string
		invalid error
		msg     string
	}{
		{"iss", jwt.ErrTokenInvalidIssuer, "token issuer not accepted"},
		{"aud", jwt.ErrTokenInvalidAudience, "token audience not accepted"},
		{"exp", jwt.ErrTokenExpired, "token expired"},
	} {
		if _, ok := claims[c.claim]; !ok && missing {
			return "token has no " + c.claim + " claim"
		}
		if errors.Is(err, c.invalid) {
			return c.msg
		}
	}
	if errors.Is(err, jwt.ErrTokenNotValidYet) || errors.Is(err, jwt.ErrTokenUsedBeforeIssued) {
		return "token not valid yet"
	}
	return "token claims not valid"
}

// parseAlgorithms checks names (DefaultJWTAlgorithms if empty).
func parseAlgorithms(names []string) ([]jose.SignatureAlgorithm, []error) {
	if len(names) == 0 {
		names = DefaultJWTAlgorithms()
	}
	var algs []jose.SignatureAlgorithm
	var errs []error
	for i, n := range names {
		a := jose.SignatureAlgorithm(n)
		switch {
		case slices.Contains(signatureAlgorithms, a):
			if !slices.Contains(algs, a) {
				algs = append(algs, a)
			}
		case strings.EqualFold(n, "none") || strings.HasPrefix(strings.ToUpper(n), "HS"):
			errs = append(errs, fmt.Errorf("Algorithms[%d]: %q is never accepted (use an asymmetric algorithm such as RS256 or ES256)", i, n))
		default:
			errs = append(errs, fmt.Errorf("Algorithms[%d]: %q not supported (use one of %v)", i, n, signatureAlgorithms))
		}
	}
	return algs, errs
}

// checkJWKSURL requires https, or http to a loopback host: keys fetched
// over plain http could be replaced by anyone on the path.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%q is not an absolute URL", u.Redacted())
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q: scheme must be https (http only for a loopback host)", u.Redacted())
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkPublicKey accepts the key types go-oidc's StaticKeySet verifies
// with, on sizes and curves worth trusting.
func checkPublicKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return errors.New("nil RSA key")
		}
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too short (at least %d)", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if k == nil {
			return errors.New("nil ECDSA key")
		}
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return fmt.Errorf("ECDSA curve %s not supported (use P-256, P-384 or P-521)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
	default:
		return fmt.Errorf("key type %T not supported (use RSA, ECDSA or Ed25519)", k)
	}
	return nil
}

// keyFits reports whether a checked key k can verify algorithm a.
func keyFits(k crypto.PublicKey, a jose.SignatureAlgorithm) bool {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(string(a), "RS") || strings.HasPrefix(string(a), "PS")
	case *ecdsa.PublicKey:
		return a == jose.ES256 && k.Curve == elliptic.P256() ||
			a == jose.ES384 && k.Curve == elliptic.P384() ||
			a == jose.ES512 && k.Curve == elliptic.P521()
	case ed25519.PublicKey:
		return a == jose.EdDSA
	}
	return false
}

func keyKind(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

// LoadPublicKeys reads PEM files of "PUBLIC KEY" (PKIX) and "CERTIFICATE"
// blocks, several per file allowed, and returns their keys for
// JWTConfig.PublicKeys. Only a certificate's key is used: its validity
// period and issuer are not checked. Errors name the file.
func LoadPublicKeys(files ...string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for _, f := range files {
		ks, err := loadPublicKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("identity: public key file %q: %w", f, err)
		}
		keys = append(keys, ks...)
	}
	return keys, nil
}

func loadPublicKeyFile(f string) ([]crypto.PublicKey, error) {
	rest, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	var keys []crypto.PublicKey
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var k crypto.PublicKey
		switch b.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				k = c.PublicKey
			}
		default:
			if strings.Contains(b.Type, "PRIVATE") {
				return nil, fmt.Errorf("PEM block %d is a %s: only public keys belong here", n, b.Type)
			}
			return nil, fmt.Errorf("PEM block %d is a %s, want PUBLIC KEY or CERTIFICATE", n, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, b.Type, err)
		}
		if err := checkPublicKey(k); err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, b.Type, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM PUBLIC KEY or CERTIFICATE block")
	}
	return keys, nil
}

// errJWKSUnavailable is the cause of errors fetching the JWKS.
var errJWKSUnavailable = errors.New("jwks unavailable")

// jwksTransport rate-limits go-oidc's JWKS fetches. go-oidc refetches
// whenever a signature fails against the cached keys (an unknown key id,
// but also any forged signature) with no limit of its own. Within
// interval of the last fetch, the transport answers from the last good
// document instead of the network, or repeats the last fetch's error if
// it failed. Redirect hops of one fetch are not limited.
type jwksTransport struct {
	next     http.RoundTripper
	interval time.Duration
	now      func() time.Time
	log      *zap.Logger

	mu      sync.Mutex
	fetched time.Time   // start of the last fetch; zero before the first
	body    []byte      // last good document, nil before the first
	header  http.Header // its header
	err     error       // the last fetch's error, nil if it succeeded
}

func (t *jwksTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Response == nil { // not following a redirect
		t.mu.Lock()
		now := t.now()
		if !t.fetched.IsZero() && now.Sub(t.fetched) < t.interval {
			body, header, err, last := t.body, t.header, t.err, t.fetched
			t.mu.Unlock()
			if ce := t.log.Check(zap.DebugLevel, "jwks refetch rate-limited"); ce != nil {
				ce.Write(zap.Time("last_fetch", last), zap.Bool("last_failed", err != nil))
			}
			if err == nil && body == nil {
				err = fmt.Errorf("%w: first fetch in progress", errJWKSUnavailable)
			}
			if err != nil {
				return nil, err
			}
			return &http.Response{
				Status: "200 OK", StatusCode: http.StatusOK,
				Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
				Header: header.Clone(), Body: io.NopCloser(bytes.NewReader(body)),
				ContentLength: int64(len(body)), Request: req,
			}, nil
		}
		t.fetched = now
		t.mu.Unlock()
	}

	resp, err := t.next.RoundTrip(req)
	var body []byte
	switch {
	case err != nil:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp, nil // http.Client follows it
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		err = fmt.Errorf("status %s", resp.Status)
	default:
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKSLen+1))
		resp.Body.Close()
		if err == nil && len(body) > maxJWKSLen {
			err = fmt.Errorf("document larger than %d bytes", maxJWKSLen)
		}
	}
	if err != nil {
		err = fmt.Errorf("%w: %w", errJWKSUnavailable, err)
		t.log.Warn("jwks fetch failed", zap.Error(err))
	} else {
		t.log.Info("jwks fetched", zap.Int("bytes", len(body)))
	}

	t.mu.Lock()
	t.err = err
	if err == nil {
		t.body, t.header = body, resp.Header.Clone()
	}
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// Interface guards
var (
	_ Provider          = (*JWT)(nil)
	_ HeaderStripper    = (*JWT)(nil)
	_ http.RoundTripper = (*jwksTransport)(nil)
)
