// Package spa is the sample single-page app of the demo
// (cmd/sensegate-demo --spa, issue 18): a page that signs its user in
// itself at an OpenID provider with oidc-client-ts (authorization code
// flow with PKCE, in the browser), trades the access token for sensegate's
// login cookie at POST /.sensegate/session (the jwt provider's
// identity.jwt.session), and lists the user's apps with enigma.js over the
// Engine websocket, which that cookie authenticates. The page never holds
// a Qlik cookie or sensegate's cookie (HttpOnly); sign-out is DELETE
// /.sensegate/session, then the provider's own sign-out.
package spa

import (
	"embed"
	"encoding/json"
	"net/http"

	"github.com/sensegate/sensegate/examples/mashup"
)

// files holds the page and the vendored oidc-client-ts.
//
//go:embed index.html app.js spa.css vendor/oidc-client-ts.min.js
var files embed.FS

// mashupFiles are the files of examples/mashup the page loads, served
// from its embedded copy: enigma.js and its schema are vendored once.
var mashupFiles = []string{"vendor/enigma.min.js", "vendor/enigma-schema-12.2027.0.json"}

// Config is what the page reads from config.json: where and as which
// client it signs in.
type Config struct {
	// Authority is the OpenID provider's issuer URL; the page reads its
	// discovery document, so the provider must answer CORS from the
	// page's origin.
	Authority string `json:"authority"`
	// ClientID is the app's client at the provider: a public client
	// (no secret) whose redirect and post-logout redirect URI is the
	// page's own URL, and whose access tokens sensegate accepts
	// (identity.jwt: a JWT with an audience it requires).
	ClientID string `json:"clientId"`
	// Scope is the space-separated scopes asked for. With offline_access
	// the page renews its token with the refresh token and trades each
	// renewed one for a new login.
	Scope string `json:"scope"`
}

// Handler serves the app from the root of its path (mount it under a
// prefix with http.StripPrefix or a sensegate route with strip_prefix):
// index.html, app.js, spa.css, the vendored oidc-client-ts, enigma.js and
// its schema from examples/mashup, and config.json made of c.
func Handler(c Config) http.Handler {
	cfg, err := json.Marshal(c)
	if err != nil {
		panic(err) // strings only
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(files))
	for _, f := range mashupFiles {
		mux.Handle("GET /"+f, http.FileServerFS(mashup.Files))
	}
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(cfg)
	})
	return mux
}
