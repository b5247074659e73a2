// Package sensegatetest holds what the integration tests of sensegate's
// packages and commands share: a simulator and configurations for it, a
// development OpenID provider that knows sensegate as a client, an HTTP
// client that navigates like a browser and signs in there, and servers
// and commands run in the background (Proc).
//
// It imports none of sensegate's product packages, only tooling/, so that
// the tests of every one of them may use it.
package sensegatetest

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
)

// StartSim starts a simulator with the default seed and options for t
// (qliksimtest.Start), shut down when t ends.
func StartSim(t testing.TB) *qliksim.Sim {
	t.Helper()
	return qliksimtest.Start(t, nil, qliksim.Options{})
}

// HeaderIdentity is the identity section of WriteConfig: provider header
// (X-Forwarded-User), trusting loopback peers.
const HeaderIdentity = `identity:
  provider: header
  header:
    trusted_proxies: ["127.0.0.1/32", "::1/128"]
`

// OIDCIdentity returns the identity section of a configuration that signs
// users in at the development OpenID provider at issuer as the client
// StartIDP registers, with a zero cookie secret. Keys of the section may
// follow, indented.
func OIDCIdentity(issuer string) string {
	return fmt.Sprintf(`identity:
  provider: oidc
  oidc:
    issuer: %q
    client_id: sensegate
    client_secret: client-secret
    cookie_secrets: [%q]
`, issuer, base64.StdEncoding.EncodeToString(make([]byte, 32)))
}

// WriteConfig writes a sensegate configuration for a running simulator,
// with HeaderIdentity followed by extra, and returns its path.
func WriteConfig(t testing.TB, sim *qliksim.Sim, extra string) string {
	t.Helper()
	return WriteConfigWith(t, sim, "http://localhost:8080", HeaderIdentity+extra)
}

// WriteConfigWith writes a sensegate configuration for a running
// simulator with public URL publicURL, followed by rest (identity,
// routes), and returns its path. rest may go on with keys of the qlik
// section, indented. sensegate listens on a free loopback port, without
// an admin listener (tests of it set admin.listen themselves).
func WriteConfigWith(t testing.TB, sim *qliksim.Sim, publicURL, rest string) string {
	t.Helper()
	c := sim.Certs()
	body := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  public_url: %q
  shutdown_grace: 5s
admin:
  listen: ""
qlik:
  url: %q
  user_directory: ACME
  ca: %q
  qps:
    url: %q
    client_cert: %q
    client_key: %q
%s`, publicURL, sim.ProxyURL(), c.Root, sim.QPSURL(), c.Client, c.ClientKey, rest)
	f := filepath.Join(t.TempDir(), "sensegate.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
