package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/examples/spa"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/devidp"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"go.uber.org/zap"
)

// The demo's single-page app (--spa, issue 18): examples/spa signs its
// user in at devidp as the public client demoSPAClientID and trades the
// access token for sensegate's login cookie.
const (
	demoSPAClientID = "sensegate-spa"
	// demoSPAPath is where sensegate serves the app (a route to its web
	// server, public: the page loads before its user signs in).
	demoSPAPath = "/spa/"
	// demoSPAScope: offline_access brings a refresh token, with which the
	// page renews its access token and trades the new one again.
	demoSPAScope = "openid profile email offline_access"
)

// startDemoSPA starts devidp with the simulator's users of sensegate's
// user directory and a public client for the app, whose access tokens are
// JWTs with the client id as audience, and the app's own web server; then
// it points c at them: provider jwt verifying devidp's tokens (issuer,
// JWKS, audience) with the token exchange (identity.jwt.session) and a
// cookie key of the demo's own, and a public route demoSPAPath to the
// app. The app is on sensegate's origin and the IdP on another, as in
// production. stop closes the app's web server.
func startDemoSPA(c *config.Config, simUsers []qliksim.User, log *zap.Logger) (idp *devidp.IDP, stop func(), err error) {
	users := demoIDPUsers(c.Qlik.UserDirectory, simUsers)
	app := strings.TrimSuffix(c.Server.RawPublicURL, "/") + demoSPAPath
	idp, err = devidp.Start(devidp.Config{
		Users: users,
		Clients: []devidp.Client{{
			ID:           demoSPAClientID, // no secret: a public client, which must use PKCE
			RedirectURIs: []string{app}, PostLogoutRedirectURIs: []string{app},
			JWTAccessTokens: true,
		}},
		// sensegate is at localhost: the IdP's cookies stay apart.
		Listen: "127.0.0.1:0",
		Notice: fmt.Sprintf("Demo users: %s. Password: %s.", strings.Join(usernames(users), ", "), demoPassword),
		Logger: log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("demo: identity provider: %w", err)
	}

	// The app's web server, as a customer would run it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		idp.Close(context.Background())
		return nil, nil, err
	}
	srv := &http.Server{
		Handler:           spa.Handler(spa.Config{Authority: idp.Issuer(), ClientID: demoSPAClientID, Scope: demoSPAScope}),
		ReadHeaderTimeout: mashupReadHeaderTimeout,
	}
	go srv.Serve(ln)

	key := make([]byte, 32)
	rand.Read(key)
	c.Identity.Provider = config.ProviderJWT
	c.Identity.JWT.Issuer, c.Identity.JWT.JWKSURL = idp.Issuer(), idp.JWKSURL()
	c.Identity.JWT.Audiences = []string{demoSPAClientID}
	c.Identity.JWT.Session = true
	// A key of the demo's own, so that serve does not warn about it.
	c.Identity.CookieSecrets = []string{base64.StdEncoding.EncodeToString(key)}
	c.Identity.Mapping.UserIDClaim = identity.DefaultUserIDClaim
	c.Identity.Mapping.GroupsClaim = identity.DefaultGroupsClaim
	c.Identity.PublicPaths = append(c.Identity.PublicPaths, demoSPAPath)
	c.Routes = append(c.Routes, config.Route{Path: demoSPAPath, Upstream: "http://" + ln.Addr().String(), StripPrefix: true})
	return idp, func() { srv.Close() }, nil
}
