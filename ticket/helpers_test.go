package ticket

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
)

// TestMain checks that no connection or server goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var alice = identity.User{Directory: "ACME", ID: "alice"}

// newSim starts a simulator on loopback ports, on a clock that never
// moves in these tests; mutate may change the default configuration
// first.
func newSim(t *testing.T, mutate func(*qliksim.Config)) *qliksim.Sim {
	t.Helper()
	return qliksimtest.Start(t, mutate, qliksim.Options{Clock: fakeclock.New()})
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// simConfig is a Config for the simulator's virtual proxy prefix with the
// simulator's trust and client certificate, the default retries and a
// short backoff.
func simConfig(t testing.TB, sim *qliksim.Sim, prefix, cookie string) Config {
	t.Helper()
	certs := sim.Certs()
	pool, err := certs.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := LoadClientCert(certs.Client, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		ProxyURL:      mustURL(t, sim.ProxyURL()),
		QPSURL:        mustURL(t, sim.QPSURL()),
		Prefix:        prefix,
		SessionCookie: cookie,
		RootCAs:       pool,
		ClientCert:    cert,
		Timeout:       10 * time.Second,
		Retries:       DefaultRetries,
		Backoff:       time.Millisecond,
	}
}

// newClient builds a Client logging at debug level into the returned
// observer; hook, if not nil, runs synchronously on every entry.
func newClient(t *testing.T, cfg Config, hook func(zapcore.Entry)) (*Client, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	var c zapcore.Core = core
	if hook != nil {
		c = zapcore.RegisterHooks(core, func(e zapcore.Entry) error { hook(e); return nil })
	}
	cl, err := New(cfg, zap.New(c))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(cl.CloseIdleConnections)
	return cl, logs
}

// simClient starts a simulator (newSim with simMutate) and returns it
// with a Client of its default virtual proxy, from the simConfig mutate
// changes (each of them may be nil).
func simClient(t *testing.T, simMutate func(*qliksim.Config), mutate func(*Config)) (*qliksim.Sim, *Client, *observer.ObservedLogs) {
	t.Helper()
	sim := newSim(t, simMutate)
	cfg := simConfig(t, sim, "", "X-Qlik-Session")
	if mutate != nil {
		mutate(&cfg)
	}
	c, logs := newClient(t, cfg, nil)
	return sim, c, logs
}

// mustLogin logs u in with c and returns the session cookie.
func mustLogin(t *testing.T, c *Client, u identity.User) *http.Cookie {
	t.Helper()
	cookie, err := c.Login(context.Background(), u)
	if err != nil {
		t.Fatalf("Login(%s): %v", u, err)
	}
	return cookie
}

// qpsCalls counts the QPS API requests the simulator has seen.
func qpsCalls(sim *qliksim.Sim) int {
	n := 0
	for _, ev := range sim.Events(0) {
		if ev.Kind == "qps" {
			n++
		}
	}
	return n
}

// otherExport writes an unrelated certificate export (another Qlik site).
func otherExport(t *testing.T) qliksim.CertFiles {
	t.Helper()
	f, err := qliksim.WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fakeQPS starts an httptest TLS server standing in for QPS (and the
// proxy side) with h, and returns a Config pointing both URLs at it, with
// the default retries and a short backoff.
func fakeQPS(t *testing.T, h http.HandlerFunc) (*httptest.Server, Config) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	f := otherExport(t)
	cert, err := LoadClientCert(f.Client, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return srv, Config{
		ProxyURL:      mustURL(t, srv.URL),
		QPSURL:        mustURL(t, srv.URL),
		SessionCookie: "X-Qlik-Session",
		RootCAs:       pool,
		ClientCert:    cert,
		Timeout:       10 * time.Second,
		Retries:       DefaultRetries,
		Backoff:       time.Millisecond,
	}
}

// unavailableQPS starts a fake QPS (fakeQPS) that answers every request
// 503 and returns its Config and the count of its requests.
func unavailableQPS(t *testing.T) (Config, *counter) {
	t.Helper()
	n := &counter{}
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		n.inc()
		http.Error(w, "Service Unavailable", http.StatusServiceUnavailable)
	})
	return cfg, n
}

// counter counts requests.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) inc() int { c.mu.Lock(); defer c.mu.Unlock(); c.n++; return c.n }
func (c *counter) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// browser is a client of the simulator's proxy side that trusts its root
// and does not follow redirects.
func browser(t *testing.T, sim *qliksim.Sim) *http.Client {
	t.Helper()
	pool, err := sim.Certs().RootPool()
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tlsConfigWithRoots(pool)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches path on the proxy side with cookie and optional headers.
func get(t *testing.T, sim *qliksim.Sim, path string, cookie *http.Cookie, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, sim.ProxyURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := browser(t, sim).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// assertNoSecrets fails if any log message, field or the error texts
// contain one of the secrets.
func assertNoSecrets(t *testing.T, logs *observer.ObservedLogs, texts []string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			t.Fatal("assertNoSecrets: empty secret")
		}
		for _, e := range logs.All() {
			line := e.LoggerName + " " + e.Message + " " + fmt.Sprint(e.ContextMap())
			if strings.Contains(line, s) {
				t.Errorf("log entry leaks a secret: %s", line)
			}
		}
		for _, x := range texts {
			if strings.Contains(x, s) {
				t.Errorf("text leaks a secret: %s", x)
			}
		}
	}
}

func countMsg(logs *observer.ObservedLogs, msg string) int {
	return logs.FilterMessage(msg).Len()
}

func tlsConfigWithRoots(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
