package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
)

// runCheck runs the CLI with args and returns what it wrote to standard
// output and standard error.
func runCheck(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = sensegatetest.Execute(context.Background(), newRootCmd(), &out, &errOut, args...)
	return out.String(), errOut.String(), err
}

// writeConfig writes a valid configuration, with a Qlik-style certificate
// export beside it, and returns its path.
func writeConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	certs, err := qliksim.WriteCerts(filepath.Join(dir, "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return writeTestFile(t, dir, "sensegate.yaml", fmt.Sprintf(`
qlik:
  url: https://localhost:8443
  user_directory: ACME
  ca: %q
  qps:
    url: https://localhost:4243
    client_cert: %q
    client_key: %q
identity:
  header:
    trusted_proxies: [127.0.0.1]
routes:
  - path: /mashup/
    upstream: http://127.0.0.1:3000
`, certs.Root, certs.Client, certs.ClientKey))
}

func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clearSensegateEnv hides SENSEGATE_* variables of the environment the
// tests run in (empty ones are ignored).
func clearSensegateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SENSEGATE_") {
			t.Setenv(k, "")
		}
	}
}

func TestCheck(t *testing.T) {
	valid := writeConfig(t)
	invalid := writeTestFile(t, t.TempDir(), "invalid.yaml", `
qlik:
  url: ftp://x
  prefix: Sales
  qps:
    clinet_cert: /certs/client.pem
identity:
  provider: oidc
log:
  level: verbose
`)
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantOut    string
		wantErr    string   // substring of the returned error; "" for none
		wantStderr []string // the lines of standard error
	}{
		{
			name:    "valid",
			args:    []string{"check", "--config", valid},
			wantOut: "config OK: " + valid + "\n",
		},
		{
			name:    "valid via SENSEGATE_CONFIG",
			args:    []string{"check"},
			env:     map[string]string{"SENSEGATE_CONFIG": valid},
			wantOut: "config OK: " + valid + "\n",
		},
		{
			name:    "--config wins over SENSEGATE_CONFIG",
			args:    []string{"check", "--config", valid},
			env:     map[string]string{"SENSEGATE_CONFIG": missing},
			wantOut: "config OK: " + valid + "\n",
		},
		{
			name:    "invalid through an environment override",
			args:    []string{"check", "--config", valid},
			env:     map[string]string{"SENSEGATE_QLIK_QPS_RETRIES": "99"},
			wantErr: valid + ": 1 problem",
			wantStderr: []string{
				"qlik.qps.retries: 99 is out of range (use 0 to 10)",
			},
		},
		{
			name:    "broad trusted_proxies: a warning, and valid",
			args:    []string{"check", "--config", valid},
			env:     map[string]string{"SENSEGATE_IDENTITY_HEADER_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.7"},
			wantOut: "config OK: " + valid + "\n",
			wantStderr: []string{
				`warning: identity.header.trusted_proxies[0]: "10.0.0.0/8" is broader than a /24: every host in it that can reach sensegate can claim to be any user (list only your front door's addresses, or make sure nothing else in the range can reach sensegate)`,
			},
		},
		{
			name:    "trusted_proxies that together trust everyone",
			args:    []string{"check", "--config", valid},
			env:     map[string]string{"SENSEGATE_IDENTITY_HEADER_TRUSTED_PROXIES": "0.0.0.0/1,128.0.0.0/1,::1"},
			wantErr: valid + ": 1 problem",
			wantStderr: []string{
				`identity.header.trusted_proxies: "0.0.0.0/1" and "128.0.0.0/1" together trust every IPv4 address: any client could claim to be any user (list only your front door's addresses)`,
			},
		},
		{
			name:    "invalid",
			args:    []string{"check", "--config", invalid},
			wantErr: invalid + ": 11 problems",
			wantStderr: []string{
				"identity.oidc.client_id: required (sensegate's client id at the OpenID provider)",
				"identity.oidc.issuer: required (the OpenID provider's issuer URL, e.g. https://login.microsoftonline.com/TENANT/v2.0)",
				`log.level: "verbose" is unknown (use debug, info, warn or error)`,
				`qlik.prefix: "Sales" has upper-case letters (virtual proxy prefixes are lower case: write sales)`,
				`qlik.qps.client_cert: required (the client.pem exported from the QMC)`,
				`qlik.qps.client_key: required (the client_key.pem exported from the QMC)`,
				`qlik.qps.clinet_cert: unknown key (did you mean qlik.qps.client_cert?)`,
				`qlik.qps.url: required (the address of the QPS API, e.g. https://qlik.example.com:4243)`,
				`qlik.url: "ftp://x" has scheme ftp (use https, or http for a test server)`,
				`qlik.user_directory: required (the Qlik user directory of users whose identity names none, e.g. ACME)`,
				`server.tls_cert: required when server.tls_key is set (serve HTTPS with both tls_cert and tls_key, or HTTP with neither)`,
			},
			env: map[string]string{"SENSEGATE_SERVER_TLS_KEY": "/x/key.pem"},
		},
		{
			name:    "missing file",
			args:    []string{"check", "--config", missing},
			wantErr: "open " + missing + ": no such file or directory",
		},
		{
			name:    "missing file via SENSEGATE_CONFIG",
			args:    []string{"check"},
			env:     map[string]string{"SENSEGATE_CONFIG": missing},
			wantErr: "open " + missing + ": no such file or directory",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearSensegateEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, errOut, err := runCheck(t, tc.args...)
			if out != tc.wantOut {
				t.Errorf("stdout = %q, want %q", out, tc.wantOut)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("check = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("check = %v, want an error containing %q", err, tc.wantErr)
			}
			var gotStderr []string
			if errOut != "" {
				gotStderr = strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
			}
			if diff := cmp.Diff(tc.wantStderr, gotStderr); diff != "" {
				t.Errorf("stderr lines mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckDefaultFile(t *testing.T) {
	clearSensegateEnv(t)
	cmd := newCheckCmd()
	if got := cmd.Flags().Lookup("config").DefValue; got != "/etc/sensegate/sensegate.yaml" {
		t.Errorf("--config default = %q, want /etc/sensegate/sensegate.yaml", got)
	}
}

// Every example configuration passes `sensegate check` once its
// certificate paths point at real files (given through the environment,
// which also proves the overrides work), without a warning: operators
// copy them.
func TestExampleConfigsPassCheck(t *testing.T) {
	certs, err := qliksim.WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SENSEGATE_QLIK_CA", certs.Root)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_CERT", certs.Client)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_KEY", certs.ClientKey)
	files, _ := filepath.Glob("../../deploy/examples/*.yaml")
	if len(files) < 2 {
		t.Fatalf("found %d example configs, want at least 2", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, errOut, err := runCheck(t, "check", "--config", f)
			if err != nil || !strings.Contains(out, "config OK") || errOut != "" {
				t.Errorf("check %s = %v, output %q, standard error %q, want config OK and nothing on standard error", f, err, out, errOut)
			}
		})
	}
}

// check --connect calls every node's QPS with the clients serve uses, and
// names the key of each that fails.
func TestCheckConnect(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	f := sensegatetest.WriteConfig(t, sim, "")
	var out strings.Builder
	if err := run(context.Background(), &out, "check", "--connect", "--config", f); err != nil || !strings.Contains(out.String(), "QPS OK") {
		t.Fatalf("check --connect = %v, %q", err, out.String())
	}
	sim.SetQPSFault(qliksim.Fault5xx)
	err := run(context.Background(), io.Discard, "check", "--connect", "--config", f)
	if err == nil || !strings.Contains(err.Error(), "qlik.qps.url") {
		t.Errorf("check --connect with QPS failing = %v, want an error naming qlik.qps.url", err)
	}
	// With several nodes every one is checked: one down fails the check,
	// naming it, though the other answers.
	down := sensegatetest.StartSim(t)
	nodes := sensegatetest.WriteConfig(t, sim, "")
	b, err := os.ReadFile(nodes)
	if err != nil {
		t.Fatal(err)
	}
	y := strings.NewReplacer(fmt.Sprintf("  url: %q\n", sim.ProxyURL()), "", fmt.Sprintf("    url: %q\n", sim.QPSURL()), "").Replace(string(b))
	y = strings.Replace(y, "qlik:\n", "qlik:\n  nodes:\n    - {url: "+sim.ProxyURL()+", qps_url: "+sim.QPSURL()+"}\n    - {url: "+down.ProxyURL()+", qps_url: "+down.QPSURL()+"}\n", 1)
	if err := os.WriteFile(nodes, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	sim.SetQPSFault(qliksim.FaultNone)
	down.SetQPSFault(qliksim.FaultDown)
	out.Reset()
	err = run(context.Background(), &out, "check", "--connect", "--config", nodes)
	if err == nil || !strings.Contains(err.Error(), "qlik.nodes[1].qps_url") || !strings.Contains(out.String(), "QPS OK: "+sim.QPSURL()) {
		t.Errorf("check --connect with the second node down = %v, %q; want node 0 OK and an error naming qlik.nodes[1].qps_url", err, out.String())
	}
	// A client certificate the QPS does not trust.
	other, _ := qliksim.WriteCerts(t.TempDir(), nil)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_CERT", other.Client)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_KEY", other.ClientKey)
	sim.SetQPSFault(qliksim.FaultNone)
	err = run(context.Background(), io.Discard, "check", "--connect", "--config", f)
	if err == nil || !strings.Contains(err.Error(), "client_cert") {
		t.Errorf("check --connect with a foreign client certificate = %v, want it to name client_cert", err)
	}
}
