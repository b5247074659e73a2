package qliksim

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names of a Qlik-style certificate export, as written by the QMC
// "Certificates" export in PEM format.
const (
	rootFile      = "root.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server_key.pem"
	clientFile    = "client.pem"
	clientKeyFile = "client_key.pem"
)

const (
	// rootCommonName is the subject CN of the generated root CA.
	rootCommonName = "QlikSim CA"
	// clientCommonName is the subject CN of the generated client certificate,
	// matching the "QlikClient" certificate that Qlik exports.
	clientCommonName = "QlikClient"
	// certValidity is how long generated certificates stay valid.
	certValidity = 10 * 365 * 24 * time.Hour
	// backdate moves NotBefore into the past to tolerate clock skew.
	backdate = time.Hour

	certMode = 0o644
	keyMode  = 0o600
	dirMode  = 0o700
)

// defaultHosts are the server certificate's SANs when none are given.
var defaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// CertFiles names the PEM files of a Qlik-style certificate export in one directory.
type CertFiles struct {
	Dir, Root, Server, ServerKey, Client, ClientKey string // absolute paths: root.pem, server.pem, server_key.pem, client.pem, client_key.pem
}

// CertFilesIn returns the CertFiles for dir (made absolute) without touching the disk.
func CertFilesIn(dir string) CertFiles {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	} else {
		dir = filepath.Clean(dir)
	}
	return CertFiles{
		Dir:       dir,
		Root:      filepath.Join(dir, rootFile),
		Server:    filepath.Join(dir, serverFile),
		ServerKey: filepath.Join(dir, serverKeyFile),
		Client:    filepath.Join(dir, clientFile),
		ClientKey: filepath.Join(dir, clientKeyFile),
	}
}

// paths lists the five files of the export in a fixed order.
func (f CertFiles) paths() []string {
	return []string{f.Root, f.Server, f.ServerKey, f.Client, f.ClientKey}
}

// WriteCerts generates a fresh export into dir (created with 0o700 if missing): a self-signed
// root CA (CN "QlikSim CA", ECDSA P-256, valid 10 years, not written: like Qlik, only root.pem is exported, never its key),
// server.pem/server_key.pem signed by it (CN = first host, SANs: every entry of hosts, IPs as IP SANs, names as DNS SANs; ExtKeyUsage ServerAuth),
// client.pem/client_key.pem (CN=QlikClient, ExtKeyUsage ClientAuth). Keys as PKCS#8 "PRIVATE KEY" PEM, files 0o600 (certs 0o644).
// Hosts default to {"localhost", "127.0.0.1", "::1"} when empty. Overwrites existing files.
func WriteCerts(dir string, hosts []string) (CertFiles, error) {
	f := CertFilesIn(dir)
	hosts = normalizeHosts(hosts)

	now := time.Now()
	notBefore := now.Add(-backdate)
	notAfter := now.Add(certValidity)

	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return CertFiles{}, fmt.Errorf("qliksim: pki: generate root key: %w", err)
	}
	rootSerial, err := randomSerial()
	if err != nil {
		return CertFiles{}, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{CommonName: rootCommonName},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return CertFiles{}, fmt.Errorf("qliksim: pki: create root certificate: %w", err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return CertFiles{}, fmt.Errorf("qliksim: pki: parse root certificate: %w", err)
	}

	serverTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			serverTmpl.IPAddresses = append(serverTmpl.IPAddresses, ip)
		} else {
			serverTmpl.DNSNames = append(serverTmpl.DNSNames, h)
		}
	}
	serverDER, serverKey, err := issueLeaf("server", serverTmpl, root, rootKey, notBefore, notAfter)
	if err != nil {
		return CertFiles{}, err
	}

	clientTmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: clientCommonName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, clientKey, err := issueLeaf("client", clientTmpl, root, rootKey, notBefore, notAfter)
	if err != nil {
		return CertFiles{}, err
	}

	if err := os.MkdirAll(f.Dir, dirMode); err != nil {
		return CertFiles{}, fmt.Errorf("qliksim: pki: create directory: %w", err)
	}
	files := []struct {
		path  string
		typ   string
		der   []byte
		perm  os.FileMode
		label string
	}{
		{f.Root, "CERTIFICATE", rootDER, certMode, rootFile},
		{f.Server, "CERTIFICATE", serverDER, certMode, serverFile},
		{f.ServerKey, "PRIVATE KEY", serverKey, keyMode, serverKeyFile},
		{f.Client, "CERTIFICATE", clientDER, certMode, clientFile},
		{f.ClientKey, "PRIVATE KEY", clientKey, keyMode, clientKeyFile},
	}
	for _, w := range files {
		data := pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der})
		if err := writeFileAtomic(w.path, data, w.perm); err != nil {
			return CertFiles{}, fmt.Errorf("qliksim: pki: write %s: %w", w.label, err)
		}
	}
	return f, nil
}

// issueLeaf fills in the common fields of tmpl, signs it with the root and
// returns the certificate DER and the PKCS#8 DER of its fresh P-256 key.
func issueLeaf(what string, tmpl, root *x509.Certificate, rootKey crypto.Signer, notBefore, notAfter time.Time) (certDER, keyDER []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("qliksim: pki: generate %s key: %w", what, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = notBefore
	tmpl.NotAfter = notAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		return nil, nil, fmt.Errorf("qliksim: pki: create %s certificate: %w", what, err)
	}
	keyDER, err = x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("qliksim: pki: marshal %s key: %w", what, err)
	}
	return certDER, keyDER, nil
}

// randomSerial returns a random positive serial number of at most 128 bits.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("qliksim: pki: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// normalizeHosts trims the entries of hosts, drops empty ones and
// duplicates, strips brackets from IPv6 literals, and falls back to
// defaultHosts when nothing is left.
func normalizeHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	seen := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		out = append(out, h)
	}
	if len(out) == 0 {
		return append([]string(nil), defaultHosts...)
	}
	return out
}

// writeFileAtomic writes data to path with exactly perm (regardless of the
// umask or of an existing file's mode) by renaming a temporary file over it.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// EnsureCerts loads dir if all five files exist and parse (and the server and client certificates verify against root.pem),
// generates with WriteCerts when none exist, and returns an error naming the missing/broken file when only some exist or they do not verify (never silently overwrite an operator's files).
//
// hosts is used only when generating; an existing export is accepted as is,
// whatever names its server certificate carries.
func EnsureCerts(dir string, hosts []string) (CertFiles, error) {
	f := CertFilesIn(dir)
	var present, missing []string
	for _, p := range f.paths() {
		_, err := os.Stat(p)
		switch {
		case err == nil:
			present = append(present, filepath.Base(p))
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, filepath.Base(p))
		default:
			return CertFiles{}, fmt.Errorf("qliksim: pki: stat %s: %w", filepath.Base(p), err)
		}
	}
	if len(present) == 0 {
		return WriteCerts(dir, hosts)
	}
	if len(missing) > 0 {
		return CertFiles{}, fmt.Errorf("qliksim: pki: incomplete certificate export in %s: missing %s (present: %s); restore the missing files or remove the rest to regenerate",
			f.Dir, strings.Join(missing, ", "), strings.Join(present, ", "))
	}
	if err := f.check(); err != nil {
		return CertFiles{}, err
	}
	return f, nil
}

// check parses all five files and verifies the server and client
// certificates against root.pem for their respective usages.
func (f CertFiles) check() error {
	pool, err := f.RootPool()
	if err != nil {
		return err
	}
	leaves := []struct {
		cert, key string
		usage     x509.ExtKeyUsage
	}{
		{f.Server, f.ServerKey, x509.ExtKeyUsageServerAuth},
		{f.Client, f.ClientKey, x509.ExtKeyUsageClientAuth},
	}
	for _, l := range leaves {
		pair, err := loadKeyPair(l.cert, l.key)
		if err != nil {
			return err
		}
		opts := x509.VerifyOptions{
			Roots:     pool,
			KeyUsages: []x509.ExtKeyUsage{l.usage},
		}
		chain := make([]*x509.Certificate, 0, len(pair.Certificate))
		for _, der := range pair.Certificate {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				return fmt.Errorf("qliksim: pki: parse %s: %w", filepath.Base(l.cert), err)
			}
			chain = append(chain, c)
		}
		if len(chain) > 1 {
			opts.Intermediates = x509.NewCertPool()
			for _, c := range chain[1:] {
				opts.Intermediates.AddCert(c)
			}
		}
		if _, err := chain[0].Verify(opts); err != nil {
			return fmt.Errorf("qliksim: pki: %s does not verify against %s: %w", filepath.Base(l.cert), filepath.Base(f.Root), err)
		}
	}
	return nil
}

// loadKeyPair loads a certificate and its private key, naming the file at
// fault in errors.
func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("qliksim: pki: read %s: %w", filepath.Base(certPath), err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("qliksim: pki: read %s: %w", filepath.Base(keyPath), err)
	}
	if _, err := parseCertsPEM(certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("qliksim: pki: parse %s: %w", filepath.Base(certPath), err)
	}
	if block, _ := pem.Decode(keyPEM); block == nil || !strings.HasSuffix(block.Type, "PRIVATE KEY") {
		return tls.Certificate{}, fmt.Errorf("qliksim: pki: parse %s: %w", filepath.Base(keyPath), errors.New("no PEM private key found"))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("qliksim: pki: load %s with %s: %w", filepath.Base(certPath), filepath.Base(keyPath), err)
	}
	return pair, nil
}

// parseCertsPEM parses every CERTIFICATE block of data and fails when there
// is none or one does not parse.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ServerTLS returns a tls.Config (MinVersion TLS 1.2) serving server.pem; when requireClient is true it requires
// and verifies a client certificate signed by root.pem (tls.RequireAndVerifyClientCert), as Qlik's QPS/QRS API ports do.
func (f CertFiles) ServerTLS(requireClient bool) (*tls.Config, error) {
	pair, err := loadKeyPair(f.Server, f.ServerKey)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
	}
	if requireClient {
		pool, err := f.RootPool()
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLS returns a tls.Config that trusts root.pem and presents client.pem (for tests and tools).
func (f CertFiles) ClientTLS() (*tls.Config, error) {
	pool, err := f.RootPool()
	if err != nil {
		return nil, err
	}
	pair, err := loadKeyPair(f.Client, f.ClientKey)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      pool,
		Certificates: []tls.Certificate{pair},
	}, nil
}

// RootPool returns a cert pool holding root.pem.
func (f CertFiles) RootPool() (*x509.CertPool, error) {
	data, err := os.ReadFile(f.Root)
	if err != nil {
		return nil, fmt.Errorf("qliksim: pki: read %s: %w", filepath.Base(f.Root), err)
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, fmt.Errorf("qliksim: pki: parse %s: %w", filepath.Base(f.Root), err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
