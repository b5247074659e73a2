package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sensegate/sensegate/seal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// loginStore is what the providers that keep logins on the server share
// (OIDC's sign-ins, the JWT provider's token exchange): a login is stored
// in a SessionStore under a random id, sealed with the cookie keys, and
// the browser holds only that id, sealed in an HttpOnly cookie. Deleting
// the stored login ends it on every replica that shares the store. Safe
// for concurrent use.
type loginStore struct {
	store SessionStore
	ring  *seal.Ring
	// cookie is the login cookie's name; its value is the id sealed for
	// that name.
	cookie      string
	secure      bool
	sameSite    http.SameSite
	partitioned bool
	// ad starts the associated data of stored values, before the id, so
	// that one provider's login does not open as another's.
	ad string
	// errPrefix starts the errors returned ("identity: oidc").
	errPrefix string
	log       *zap.Logger
}

// DefaultLoginCookie is the login cookie's name (of OIDC sign-ins and of
// the SPA token exchange) when none is configured, after "__Host-" over
// HTTPS; identity.oidc.cookie_name and identity.jwt.cookie_name default to
// it.
const DefaultLoginCookie = "sensegate_session"

// sessionCookieName returns the login cookie's name: name, or the default
// for secure ("__Host-sensegate_session" over HTTPS: a __Host- cookie is
// host-only, on path /, and only ever set over HTTPS, so a site on a
// sibling or parent domain cannot plant one; "sensegate_session"
// otherwise). A name that is no cookie name, or a __Host- or __Secure- one
// without secure, is an error.
func sessionCookieName(name string, secure bool) (string, error) {
	if name == "" {
		name = DefaultLoginCookie
		if secure {
			name = hostCookiePrefix + DefaultLoginCookie
		}
	}
	if err := (&http.Cookie{Name: name, Value: "x"}).Valid(); err != nil {
		return name, fmt.Errorf("%q: %w", name, err)
	}
	if !secure && (strings.HasPrefix(name, hostCookiePrefix) || strings.HasPrefix(name, secureCookiePrefix)) {
		return name, fmt.Errorf("%q: browsers keep %s and %s cookies only when they are Secure (HTTPS)", name, hostCookiePrefix, secureCookiePrefix)
	}
	return name, nil
}

// errNoSession is why a request has no usable login: no cookie, a cookie
// that does not open, nothing stored, expired, or ended by the identity
// provider. Clients see ErrNoIdentity.
var errNoSession = errors.New("no valid login session")

// errTwoSessions refuses a request that carries two valid login cookies.
var errTwoSessions = &Error{
	Status: http.StatusBadRequest,
	Msg:    "this browser holds two sensegate sign-ins (one may have been set by a site on a parent domain): clear this site's cookies and sign in again",
	Err:    errors.New("identity: two valid login cookies of different logins"),
}

// id returns the login id sealed in the request's login cookie. Every
// cookie of that name is tried, so that one planted on a parent domain
// does not hide ours; two that open to different logins are
// errTwoSessions: a site on a sibling or parent domain may have planted
// its own sign-in (cookie tossing), and serving the first would run the
// user as whoever it names.
func (l *loginStore) id(r *http.Request) (string, bool, error) {
	var id string
	for _, c := range r.CookiesNamed(l.cookie) {
		v, err := openString(l.ring, l.cookie, c.Value)
		if err != nil {
			continue
		}
		if id != "" && string(v) != id {
			return "", false, errTwoSessions
		}
		id = string(v)
	}
	if id != "" {
		return id, true, nil
	}
	if ce := l.log.Check(zapcore.DebugLevel, "no valid session cookie"); ce != nil {
		ce.Write(zap.Int("cookies", len(r.CookiesNamed(l.cookie))))
	}
	return "", false, nil
}

// get decodes login id into v: errNoSession when there is none. A stored
// value that does not open or decode was altered in the store (or written
// by something else): it is deleted, and errNoSession returned.
func (l *loginStore) get(ctx context.Context, id string, v any) error {
	data, ok, err := l.store.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: session store: %w", l.errPrefix, err)
	}
	if !ok {
		return errNoSession
	}
	plain, err := openString(l.ring, l.ad+id, string(data))
	if err != nil {
		l.log.Warn("stored session does not open")
		l.store.Delete(ctx, id)
		return errNoSession
	}
	if err := json.Unmarshal(plain, v); err != nil {
		l.log.Warn("stored session does not decode", zap.Error(err))
		l.store.Delete(ctx, id)
		return errNoSession
	}
	return nil
}

// put stores v, sealed, under id for ttl; errNoSession when ttl is not
// positive (the login is over).
func (l *loginStore) put(ctx context.Context, id string, v any, ttl time.Duration) error {
	if ttl <= 0 {
		return errNoSession
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode session: %w", l.errPrefix, err)
	}
	if err := l.store.Put(ctx, id, []byte(sealString(l.ring, l.ad+id, data)), ttl); err != nil {
		return fmt.Errorf("%s: session store: %w", l.errPrefix, err)
	}
	return nil
}

// delete removes login id from the store, on every replica.
func (l *loginStore) delete(ctx context.Context, id string) error {
	if err := l.store.Delete(ctx, id); err != nil {
		return fmt.Errorf("%s: session store: %w", l.errPrefix, err)
	}
	return nil
}

// setCookie sets the login cookie holding id, for maxAge (whole seconds,
// rounded down: a cookie never outlives its login).
func (l *loginStore) setCookie(w http.ResponseWriter, id string, maxAge time.Duration) {
	c := l.newCookie(sealString(l.ring, l.cookie, []byte(id)))
	c.MaxAge = max(int(maxAge/time.Second), 1)
	http.SetCookie(w, c)
}

// clearCookie expires the login cookie.
func (l *loginStore) clearCookie(w http.ResponseWriter) {
	c := l.newCookie("")
	c.MaxAge = -1
	http.SetCookie(w, c)
}

func (l *loginStore) newCookie(value string) *http.Cookie {
	return &http.Cookie{
		Name: l.cookie, Value: value, Path: "/", HttpOnly: true,
		Secure: l.secure, SameSite: l.sameSite, Partitioned: l.partitioned,
	}
}
