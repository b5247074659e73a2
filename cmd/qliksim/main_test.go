package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
)

func TestQliksimCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if err := sensegatetest.Execute(context.Background(), newQliksimCmd(), &out, io.Discard, "certs", "--dir", dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"root.pem", "server.pem", "server_key.pem", "client.pem", "client_key.pem"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if !strings.Contains(out.String(), filepath.Join(dir, f)) {
			t.Errorf("output does not name %s: %q", f, out.String())
		}
	}
	// A partial export is refused rather than overwritten.
	os.Remove(filepath.Join(dir, "client.pem"))
	if err := sensegatetest.Execute(context.Background(), newQliksimCmd(), io.Discard, io.Discard, "certs", "--dir", dir); err == nil || !strings.Contains(err.Error(), "client.pem") {
		t.Errorf("certs on a partial export = %v, want an error naming client.pem", err)
	}
}

func TestQliksimStartsAndPrintsAddresses(t *testing.T) {
	dir := t.TempDir()
	p := sensegatetest.StartCommand(context.Background(), t, "qliksim", func(ctx context.Context, out io.Writer) error {
		return sensegatetest.Execute(ctx, newQliksimCmd(), out, io.Discard, "--cert-dir", dir, "--proxy-listen", "127.0.0.1:0", "--qps-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	})
	qpsURL := p.WaitOutput(t, regexp.MustCompile(`QPS +\(4243\) (https://\S+)`))[1]
	for _, want := range []string{"proxy (443)  https://localhost:", "admin        http://localhost:", filepath.Join(dir, "client.pem"), "curl --cert"} {
		if !strings.Contains(p.Out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, p.Out)
		}
	}
	// The printed QPS address answers with the printed certificates.
	tlsCfg, err := qliksim.CertFilesIn(dir).ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("POST", qpsURL+"/qps/ticket?xrfkey=0123456789abcdef", strings.NewReader(`{"UserDirectory":"ACME","UserId":"alice"}`))
	req.Header.Set("X-Qlik-Xrfkey", "0123456789abcdef")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.CloseIdleConnections()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("ticket from the printed QPS address = %d, want 201", resp.StatusCode)
	}
	// It stops cleanly when its context ends.
	p.Stop(t)
}
