package ticket

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// The client speaks TLS 1.2 or later to QPS and the proxy side: a server
// that offers only TLS 1.0 and 1.1 is refused, and reaches no handler,
// though a client allowing TLS 1.0 gets through to it.
func TestRefusesTLSBelow12(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"Ticket":"t0123456789abcdef"}`)
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	// The control: the server does answer an old client.
	old := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10}}
	t.Cleanup(old.CloseIdleConnections)
	resp, err := (&http.Client{Transport: old, Timeout: 10 * time.Second}).Get(srv.URL)
	if err != nil {
		t.Fatalf("a TLS 1.0 client cannot reach the test server: %v", err)
	}
	resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version > tls.VersionTLS11 {
		t.Fatalf("the test server spoke %x, want TLS 1.1 or older", resp.TLS.Version)
	}

	_, cfg := fakeQPS(t, nil)
	cfg.ProxyURL, cfg.QPSURL, cfg.RootCAs = mustURL(t, srv.URL), mustURL(t, srv.URL), pool
	cfg.Retries = 0
	c, _ := newClient(t, cfg, nil)
	before := calls.Load()
	if _, err := c.Ticket(context.Background(), alice); err == nil {
		t.Error("Ticket over TLS 1.1 succeeded, want a refusal")
	}
	if _, err := c.Redeem(context.Background(), "t0123456789abcdef"); err == nil {
		t.Error("Redeem over TLS 1.1 succeeded, want a refusal")
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("the TLS 1.1 server handled %d requests of the client, want none", n)
	}
}
