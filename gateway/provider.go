package gateway

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/seal"
	"go.uber.org/zap"
)

// providerStartTimeout bounds the start of an identity provider (OIDC
// discovery).
const providerStartTimeout = 30 * time.Second

// newProvider builds the identity provider of cfg.Identity, keeping its
// logins in logins (required when cfg.Identity.KeepsLogins), with deps'
// clock and fallback cookie keys.
func newProvider(ctx context.Context, cfg *config.Config, log *zap.Logger, logins identity.SessionStore, deps Deps) (identity.Provider, error) {
	ic := cfg.Identity
	now := deps.Now
	switch ic.Provider {
	case config.ProviderHeader:
		hc := ic.Header
		return identity.NewHeader(identity.HeaderOptions{
			Name: hc.Name, DirectoryHeader: hc.DirectoryHeader, GroupsHeader: hc.GroupsHeader,
			Trusted: hc.TrustedProxies(), DefaultDirectory: cfg.Qlik.UserDirectory,
		}), nil
	case config.ProviderStatic:
		u, err := identity.ParseUser(ic.Static.User, cfg.Qlik.UserDirectory)
		if err != nil {
			return nil, fmt.Errorf("identity.static.user: %w", err)
		}
		if !cfg.Server.TLS() && !isLoopbackListen(cfg.Server.Listen) {
			log.Warn("DANGER: identity provider static serves every visitor as one Qlik user, without TLS, on a non-loopback address: use it for development only",
				zap.String("user", u.String()), zap.String("listen", cfg.Server.Listen))
		}
		return identity.NewStatic(u), nil
	case config.ProviderOIDC, config.ProviderJWT:
	default:
		return nil, fmt.Errorf("identity.provider: %q is not supported", ic.Provider)
	}
	mc := ic.Mapping
	mapping, err := identity.NewMapping(identity.MappingConfig{
		UserIDClaim: mc.UserIDClaim, UserIDPattern: mc.UserIDPattern, Directory: cfg.Qlik.UserDirectory,
		DirectoryClaim: mc.DirectoryClaim, GroupsClaim: mc.GroupsClaim, Attributes: mc.Attributes,
	})
	if err != nil {
		return nil, fmt.Errorf("identity.mapping: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, providerStartTimeout)
	defer cancel()
	if ic.Provider == config.ProviderJWT {
		jc := ic.JWT
		keys, err := identity.LoadPublicKeys(jc.PublicKeys...)
		if err != nil && len(jc.PublicKeys) > 0 {
			return nil, fmt.Errorf("identity.jwt.public_keys: %w", err)
		}
		var session *identity.JWTSessionConfig
		if jc.Session {
			session = &identity.JWTSessionConfig{
				Sessions: logins, CookieName: jc.CookieName, CookieKeys: cookieKeys(cfg, deps, log),
				Secure: cfg.Server.PublicURL().Scheme == "https", CrossSite: len(cfg.Server.CrossSiteOrigins()) > 0,
			}
		}
		p, err := identity.NewJWT(ctx, identity.JWTConfig{
			Issuer: jc.Issuer, Audiences: jc.Audiences, JWKSURL: jc.JWKSURL, PublicKeys: keys,
			Algorithms: jc.Algorithms, ClockSkew: jc.ClockSkew, RequiredScopes: jc.RequiredScopes, Session: session,
			Mapping: mapping, Now: now, Logger: log.Named("identity"),
		})
		if err != nil {
			return nil, fmt.Errorf("identity.jwt: %w", err)
		}
		return p, nil
	}
	oc := ic.OIDC
	p, err := identity.NewOIDC(ctx, identity.OIDCConfig{
		Issuer: oc.Issuer, ClientID: oc.ClientID, ClientSecret: oc.ClientSecret,
		RedirectURL: oc.EffectiveRedirectURL(), Scopes: oc.Scopes, Mapping: mapping,
		Sessions: logins, CookieName: oc.CookieName, CookieKeys: cookieKeys(cfg, deps, log), Userinfo: oc.Userinfo,
		Secure: cfg.Server.PublicURL().Scheme == "https", SessionLifetime: oc.SessionLifetime,
		PostLogoutRedirectURL: oc.EffectivePostLogoutURL(), Now: now, Logger: log.Named("identity"),
	})
	if err != nil {
		return nil, fmt.Errorf("identity.oidc: %w", err)
	}
	return p, nil
}

// cookieKeys returns the keys of the login cookies: identity.cookie_secrets,
// else deps.CookieKeys, else a random key (with a warning: logins then end
// when sensegate restarts, and replicas cannot share them).
func cookieKeys(cfg *config.Config, deps Deps, log *zap.Logger) [][]byte {
	if keys := cfg.Identity.CookieKeys(); len(keys) > 0 {
		return keys
	}
	if len(deps.CookieKeys) > 0 {
		return deps.CookieKeys
	}
	log.Warn(RandomKeyWarning)
	return RandomCookieKeys()
}

// RandomKeyWarning is logged when the login cookies are sealed with a
// random key.
const RandomKeyWarning = "identity.cookie_secrets is not set: using a random key, so logins end when sensegate restarts and replicas cannot share them"

// RandomCookieKeys returns one random key of seal.KeySize bytes, for
// Deps.CookieKeys when the configuration sets none.
func RandomCookieKeys() [][]byte {
	key := make([]byte, seal.KeySize)
	rand.Read(key)
	return [][]byte{key}
}

// isLoopbackListen reports whether a listen address binds only loopback.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
