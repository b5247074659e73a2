package qliksim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pkiWrite generates an export in a fresh temporary directory.
func pkiWrite(t *testing.T, hosts []string) CertFiles {
	t.Helper()
	f, err := WriteCerts(filepath.Join(t.TempDir(), "certs"), hosts)
	if err != nil {
		t.Fatalf("WriteCerts: %v", err)
	}
	return f
}

// pkiReadPEM returns the first PEM block of the file at path, which must
// be of type typ, and what follows it.
func pkiReadPEM(t *testing.T, path, typ string) (*pem.Block, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != typ {
		t.Fatalf("%s: no %q PEM block, got %v", path, typ, block)
	}
	return block, rest
}

// pkiReadCert parses the single certificate in the PEM file at path.
func pkiReadCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, rest := pkiReadPEM(t, path, "CERTIFICATE")
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s: trailing data after certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// pkiSnapshot returns the contents of every file of the export.
func pkiSnapshot(t *testing.T, f CertFiles) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	for _, p := range f.paths() {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = data
	}
	return out
}

// pkiCopy copies the named files from one export directory to another.
func pkiCopy(t *testing.T, from, to CertFiles, names ...string) {
	t.Helper()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(from.Dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to.Dir, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCertFilesIn(t *testing.T) {
	t.Chdir(t.TempDir())
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	f := CertFilesIn("export")
	want := CertFiles{
		Dir:       filepath.Join(wd, "export"),
		Root:      filepath.Join(wd, "export", "root.pem"),
		Server:    filepath.Join(wd, "export", "server.pem"),
		ServerKey: filepath.Join(wd, "export", "server_key.pem"),
		Client:    filepath.Join(wd, "export", "client.pem"),
		ClientKey: filepath.Join(wd, "export", "client_key.pem"),
	}
	if f != want {
		t.Fatalf("CertFilesIn(%q) = %+v, want %+v", "export", f, want)
	}
	if _, err := os.Stat(f.Dir); !os.IsNotExist(err) {
		t.Fatalf("CertFilesIn touched the disk: stat %s: %v", f.Dir, err)
	}
}

func TestWriteCertsFileModes(t *testing.T) {
	f := pkiWrite(t, nil)

	st, err := os.Stat(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode = %o, want 700", got)
	}

	tests := []struct {
		path string
		mode os.FileMode
	}{
		{f.Root, 0o644},
		{f.Server, 0o644},
		{f.ServerKey, 0o600},
		{f.Client, 0o644},
		{f.ClientKey, 0o600},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			st, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != tt.mode {
				t.Errorf("mode = %o, want %o", got, tt.mode)
			}
			if !st.Mode().IsRegular() {
				t.Errorf("not a regular file: %v", st.Mode())
			}
		})
	}

	// Only the five export files: in particular no root key, no temp files.
	entries, err := os.ReadDir(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	want := []string{"client.pem", "client_key.pem", "root.pem", "server.pem", "server_key.pem"}
	if !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}

func TestWriteCertsOverwritesAndFixesModes(t *testing.T) {
	f := pkiWrite(t, nil)
	before := pkiSnapshot(t, f)
	// An operator loosened the key's mode; regenerating must tighten it again.
	if err := os.Chmod(f.ServerKey, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCerts(f.Dir, nil); err != nil {
		t.Fatalf("WriteCerts again: %v", err)
	}
	after := pkiSnapshot(t, f)
	for name := range before {
		if bytes.Equal(before[name], after[name]) {
			t.Errorf("%s was not regenerated", name)
		}
	}
	st, err := os.Stat(f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("server_key.pem mode after overwrite = %o, want 600", got)
	}
}

func TestWriteCertsRootCA(t *testing.T) {
	start := time.Now()
	f := pkiWrite(t, nil)
	root := pkiReadCert(t, f.Root)

	if root.Subject.CommonName != "QlikSim CA" {
		t.Errorf("root CN = %q, want QlikSim CA", root.Subject.CommonName)
	}
	if !root.IsCA || !root.BasicConstraintsValid {
		t.Errorf("root is not a CA: IsCA=%v BasicConstraintsValid=%v", root.IsCA, root.BasicConstraintsValid)
	}
	if root.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("root lacks KeyUsageCertSign")
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Errorf("root is not self-signed: %v", err)
	}
	pub, ok := root.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	if d := start.Sub(root.NotBefore); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("root NotBefore is %v before now, want about one hour", d)
	}
	if years := root.NotAfter.Sub(root.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("root validity = %.2f years, want 10", years)
	}
}

func TestWriteCertsKeysArePKCS8(t *testing.T) {
	f := pkiWrite(t, nil)
	for _, p := range []string{f.ServerKey, f.ClientKey} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			block, _ := pkiReadPEM(t, p, "PRIVATE KEY") // PKCS#8
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatalf("ParsePKCS8PrivateKey: %v", err)
			}
			if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("key is %T, want ECDSA P-256", key)
			}
		})
	}
}

func TestWriteCertsSerials(t *testing.T) {
	a, b := pkiWrite(t, nil), pkiWrite(t, nil)
	seen := make(map[string]string)
	for _, f := range []CertFiles{a, b} {
		for _, p := range []string{f.Root, f.Server, f.Client} {
			c := pkiReadCert(t, p)
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("%s: serial %v is not a positive 128-bit number", p, c.SerialNumber)
			}
			s := c.SerialNumber.String()
			if prev, dup := seen[s]; dup {
				t.Errorf("serial %s reused by %s and %s", s, prev, p)
			}
			seen[s] = p
		}
	}
}

func TestClientCert(t *testing.T) {
	f := pkiWrite(t, nil)
	client := pkiReadCert(t, f.Client)
	if client.Subject.CommonName != "QlikClient" {
		t.Errorf("client CN = %q, want QlikClient", client.Subject.CommonName)
	}
	if !slices.Equal(client.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("client ExtKeyUsage = %v, want [ClientAuth]", client.ExtKeyUsage)
	}
	if client.IsCA {
		t.Errorf("client certificate is a CA")
	}
	pool, err := f.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify for client auth: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Errorf("client certificate verifies for server auth, want only client auth")
	}
}

func TestServerCertVerifies(t *testing.T) {
	tests := []struct {
		name    string
		hosts   []string
		wantCN  string
		verify  []string // names that must verify
		reject  []string // names that must not
		wantDNS []string
		wantIPs []string
	}{
		{
			name:    "defaults",
			hosts:   nil,
			wantCN:  "localhost",
			verify:  []string{"localhost", "127.0.0.1", "::1"},
			reject:  []string{"example.com", "127.0.0.2"},
			wantDNS: []string{"localhost"},
			wantIPs: []string{"127.0.0.1", "::1"},
		},
		{
			name:    "custom",
			hosts:   []string{"qlik.example.com", " 10.0.0.5 ", "[fe80::1]", "", "qlik.example.com", "sense"},
			wantCN:  "qlik.example.com",
			verify:  []string{"qlik.example.com", "10.0.0.5", "fe80::1", "sense"},
			reject:  []string{"localhost", "127.0.0.1"},
			wantDNS: []string{"qlik.example.com", "sense"},
			wantIPs: []string{"10.0.0.5", "fe80::1"},
		},
		{
			name:   "blank entries fall back to defaults",
			hosts:  []string{"", "  "},
			wantCN: "localhost",
			verify: []string{"localhost", "127.0.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := pkiWrite(t, tt.hosts)
			server := pkiReadCert(t, f.Server)
			pool, err := f.RootPool()
			if err != nil {
				t.Fatal(err)
			}
			if server.Subject.CommonName != tt.wantCN {
				t.Errorf("server CN = %q, want %q", server.Subject.CommonName, tt.wantCN)
			}
			if !slices.Equal(server.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
				t.Errorf("server ExtKeyUsage = %v, want [ServerAuth]", server.ExtKeyUsage)
			}
			if tt.wantDNS != nil && !slices.Equal(server.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs = %v, want %v", server.DNSNames, tt.wantDNS)
			}
			if tt.wantIPs != nil {
				var ips []string
				for _, ip := range server.IPAddresses {
					ips = append(ips, ip.String())
				}
				if !slices.Equal(ips, tt.wantIPs) {
					t.Errorf("IP SANs = %v, want %v", ips, tt.wantIPs)
				}
			}
			for _, name := range tt.verify {
				opts := x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
				if _, err := server.Verify(opts); err != nil {
					t.Errorf("verify for %q: %v", name, err)
				}
			}
			for _, name := range tt.reject {
				opts := x509.VerifyOptions{Roots: pool, DNSName: name}
				if _, err := server.Verify(opts); err == nil {
					t.Errorf("verify for %q succeeded, want a hostname error", name)
				}
			}
		})
	}
}

func TestServerCertRejectedByOtherRoot(t *testing.T) {
	a, b := pkiWrite(t, nil), pkiWrite(t, nil)
	otherPool, err := b.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	server := pkiReadCert(t, a.Server)
	if _, err := server.Verify(x509.VerifyOptions{Roots: otherPool, DNSName: "localhost"}); err == nil {
		t.Fatal("server certificate verifies against another export's root")
	}
}

func TestEnsureCertsGeneratesWhenEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "certs")
	f, err := EnsureCerts(dir, []string{"sim.local"})
	if err != nil {
		t.Fatalf("EnsureCerts: %v", err)
	}
	if f != CertFilesIn(dir) {
		t.Errorf("EnsureCerts returned %+v, want %+v", f, CertFilesIn(dir))
	}
	if cn := pkiReadCert(t, f.Server).Subject.CommonName; cn != "sim.local" {
		t.Errorf("server CN = %q, want sim.local", cn)
	}
}

func TestEnsureCertsReusesExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	f1, err := EnsureCerts(dir, nil)
	if err != nil {
		t.Fatalf("first EnsureCerts: %v", err)
	}
	first := pkiSnapshot(t, f1)
	// Different hosts must not cause a regeneration either.
	f2, err := EnsureCerts(dir, []string{"other.example"})
	if err != nil {
		t.Fatalf("second EnsureCerts: %v", err)
	}
	if f1 != f2 {
		t.Errorf("CertFiles differ: %+v vs %+v", f1, f2)
	}
	second := pkiSnapshot(t, f2)
	for name, data := range first {
		if !bytes.Equal(data, second[name]) {
			t.Errorf("%s changed on second EnsureCerts", name)
		}
	}
}

func TestEnsureCertsRefusesPartialSet(t *testing.T) {
	for _, name := range []string{"root.pem", "server.pem", "server_key.pem", "client.pem", "client_key.pem"} {
		t.Run(name, func(t *testing.T) {
			f := pkiWrite(t, nil)
			before := pkiSnapshot(t, f)
			if err := os.Remove(filepath.Join(f.Dir, name)); err != nil {
				t.Fatal(err)
			}
			_, err := EnsureCerts(f.Dir, nil)
			if err == nil {
				t.Fatalf("EnsureCerts with %s missing succeeded", name)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
			if !strings.HasPrefix(err.Error(), "qliksim: pki: ") {
				t.Errorf("error %q lacks the qliksim: pki: prefix", err)
			}
			if _, err := os.Stat(filepath.Join(f.Dir, name)); !os.IsNotExist(err) {
				t.Errorf("%s was recreated: %v", name, err)
			}
			for n, data := range before {
				if n == name {
					continue
				}
				got, err := os.ReadFile(filepath.Join(f.Dir, n))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s was modified or removed (err %v)", n, err)
				}
			}
		})
	}
}

func TestEnsureCertsRefusesBrokenFile(t *testing.T) {
	tests := []struct {
		file    string
		content string
	}{
		{"root.pem", "not a certificate\n"},
		{"server.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
		{"server_key.pem", ""},
		{"client.pem", "garbage"},
		{"client_key.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f := pkiWrite(t, nil)
			if err := os.WriteFile(filepath.Join(f.Dir, tt.file), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := EnsureCerts(f.Dir, nil)
			if err == nil {
				t.Fatalf("EnsureCerts with broken %s succeeded", tt.file)
			}
			if !strings.Contains(err.Error(), tt.file) {
				t.Errorf("error %q does not name %s", err, tt.file)
			}
			got, rerr := os.ReadFile(filepath.Join(f.Dir, tt.file))
			if rerr != nil || string(got) != tt.content {
				t.Errorf("broken %s was overwritten", tt.file)
			}
		})
	}
}

func TestEnsureCertsRefusesForeignCert(t *testing.T) {
	tests := []struct {
		name     string
		copy     []string // files taken from another export
		wantName string   // file the error must name
	}{
		{"server signed by another root", []string{"server.pem", "server_key.pem"}, "server.pem"},
		{"client signed by another root", []string{"client.pem", "client_key.pem"}, "client.pem"},
		{"root replaced", []string{"root.pem"}, "server.pem"},
		{"server key mismatch", []string{"server_key.pem"}, "server_key.pem"},
		{"client key mismatch", []string{"client_key.pem"}, "client_key.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pkiWrite(t, nil), pkiWrite(t, nil)
			pkiCopy(t, b, a, tt.copy...)
			_, err := EnsureCerts(a.Dir, nil)
			if err == nil {
				t.Fatalf("EnsureCerts accepted %v from another export", tt.copy)
			}
			if !strings.Contains(err.Error(), tt.wantName) {
				t.Errorf("error %q does not name %s", err, tt.wantName)
			}
		})
	}
}

func TestTLSConfigs(t *testing.T) {
	f := pkiWrite(t, nil)
	tests := []struct {
		requireClient bool
		wantAuth      tls.ClientAuthType
		wantCAs       bool
	}{
		{false, tls.NoClientCert, false},
		{true, tls.RequireAndVerifyClientCert, true},
	}
	for _, tt := range tests {
		cfg, err := f.ServerTLS(tt.requireClient)
		if err != nil {
			t.Fatalf("ServerTLS(%v): %v", tt.requireClient, err)
		}
		if cfg.MinVersion != tls.VersionTLS12 {
			t.Errorf("ServerTLS(%v).MinVersion = %x, want TLS 1.2", tt.requireClient, cfg.MinVersion)
		}
		if cfg.ClientAuth != tt.wantAuth {
			t.Errorf("ServerTLS(%v).ClientAuth = %v, want %v", tt.requireClient, cfg.ClientAuth, tt.wantAuth)
		}
		if (cfg.ClientCAs != nil) != tt.wantCAs {
			t.Errorf("ServerTLS(%v).ClientCAs set = %v, want %v", tt.requireClient, cfg.ClientCAs != nil, tt.wantCAs)
		}
		if len(cfg.Certificates) != 1 {
			t.Errorf("ServerTLS(%v) has %d certificates, want 1", tt.requireClient, len(cfg.Certificates))
		}
	}
	ccfg, err := f.ClientTLS()
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	if ccfg.MinVersion != tls.VersionTLS12 || ccfg.RootCAs == nil || len(ccfg.Certificates) != 1 {
		t.Errorf("ClientTLS = MinVersion %x, RootCAs %v, %d certificates", ccfg.MinVersion, ccfg.RootCAs != nil, len(ccfg.Certificates))
	}

	missing := CertFilesIn(t.TempDir())
	if _, err := missing.ServerTLS(true); err == nil || !strings.Contains(err.Error(), "server.pem") {
		t.Errorf("ServerTLS on an empty directory: err = %v, want one naming server.pem", err)
	}
	if _, err := missing.ClientTLS(); err == nil || !strings.Contains(err.Error(), "root.pem") {
		t.Errorf("ClientTLS on an empty directory: err = %v, want one naming root.pem", err)
	}
	if _, err := missing.RootPool(); err == nil || !strings.Contains(err.Error(), "root.pem") {
		t.Errorf("RootPool on an empty directory: err = %v, want one naming root.pem", err)
	}
}

// pkiClient returns an HTTP client using cfg that shares no connections.
func pkiClient(t *testing.T, cfg *tls.Config) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func TestMutualTLSRoundTrip(t *testing.T) {
	f := pkiWrite(t, nil)
	other := pkiWrite(t, nil)

	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	cfg, err := f.ServerTLS(true)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // rejected handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	good, err := f.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := f.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	// Trusts the server but presents no certificate.
	noCert := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	// Trusts the server but presents a client certificate from another export,
	// so the handshake can only fail on the server's client verification.
	foreign, err := other.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	foreign.RootCAs = pool

	tests := []struct {
		name    string
		cfg     *tls.Config
		wantErr string // substring of the client's error; empty means success
	}{
		{"client certificate from the same export", good, ""},
		{"no client certificate", noCert, "certificate required"},
		{"client certificate from another export", foreign, "unknown certificate authority"},
		{"TLS 1.2 without client certificate", pkiTLS12(noCert), "handshake failure"},
		{"TLS 1.2 with foreign client certificate", pkiTLS12(foreign), "unknown certificate authority"},
		{"TLS 1.2 with good client certificate", pkiTLS12(good), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			resp, err := pkiClient(t, tt.cfg).Get(srv.URL)
			if tt.wantErr != "" {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request succeeded with status %d, want a handshake failure", resp.StatusCode)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if n := hits.Load() - before; n != 0 {
					t.Errorf("handler ran %d times for a rejected client", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", resp.StatusCode, body)
			}
			if string(body) != "QlikClient" {
				t.Errorf("server saw client CN %q, want QlikClient", body)
			}
		})
	}
}

// TestServerTLSWithoutClientAuth checks that ServerTLS(false) serves the
// export's certificate to clients that present none.
func TestServerTLSWithoutClientAuth(t *testing.T) {
	f := pkiWrite(t, nil)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	cfg, err := f.ServerTLS(false)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the last client's rejection is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)

	pool, err := f.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, serverName := range []string{"", "localhost", host} {
		resp, err := pkiClient(t, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: serverName}).Get(srv.URL)
		if err != nil {
			t.Fatalf("ServerName %q: GET: %v", serverName, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("ServerName %q: status = %d, want 204", serverName, resp.StatusCode)
		}
	}
	// A client trusting only another export's root must refuse the server.
	otherPool, err := pkiWrite(t, nil).RootPool()
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := pkiClient(t, &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: otherPool}).Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("client trusting another root accepted the server")
	}
}

// pkiTLS12 returns a copy of cfg limited to TLS 1.2, where client
// certificate failures surface during the handshake itself.
func pkiTLS12(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	c.MaxVersion = tls.VersionTLS12
	return c
}
