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
	"sync"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/qliksim"
)

// run executes the command with args and returns its output.
func run(ctx context.Context, t *testing.T, out io.Writer, args ...string) error {
	t.Helper()
	cmd := newQliksimCmd()
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	return cmd.ExecuteContext(ctx)
}

func TestQliksimCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out bytes.Buffer
	if err := run(context.Background(), t, &out, "certs", "--dir", dir); err != nil {
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
	if err := run(context.Background(), t, io.Discard, "certs", "--dir", dir); err == nil || !strings.Contains(err.Error(), "client.pem") {
		t.Errorf("certs on a partial export = %v, want an error naming client.pem", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func TestQliksimStartsAndPrintsAddresses(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, t, out, "--cert-dir", dir, "--proxy-listen", "127.0.0.1:0", "--qps-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	}()
	qpsRE := regexp.MustCompile(`QPS +\(4243\) (https://\S+)`)
	var qpsURL string
	deadline := time.Now().Add(20 * time.Second)
	for qpsURL == "" {
		if m := qpsRE.FindStringSubmatch(out.String()); m != nil {
			qpsURL = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("qliksim exited early: %v; output %q", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no QPS address printed: %q", out.String())
		}
	}
	for _, want := range []string{"proxy (443)  https://localhost:", "admin        http://localhost:", filepath.Join(dir, "client.pem"), "curl --cert"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
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
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("qliksim after cancel = %v, want clean shutdown", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("qliksim did not stop after its context ended")
	}
}
