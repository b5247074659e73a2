// Package sensegatetest holds what the integration tests of sensegate's
// packages and commands share: configurations for a running simulator, a
// development OpenID provider that knows sensegate as a client, and an
// HTTP client that navigates like a browser and signs in there.
package sensegatetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sensegate/sensegate/tooling/qliksim"
)

// HeaderIdentity is the identity section of WriteConfig: provider header
// (X-Forwarded-User), trusting loopback peers.
const HeaderIdentity = `identity:
  provider: header
  header:
    trusted_proxies: ["127.0.0.1/32", "::1/128"]
`

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
