package ticket

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sensegate/sensegate/qlik"
	"go.uber.org/zap"
)

func TestLoadClientCert(t *testing.T) {
	a, b := otherExport(t), otherExport(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "client.pfx")
	if err := os.WriteFile(notPEM, []byte("\x30\x82binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.pem")
	tests := []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"missing certificate", missing, a.ClientKey, []string{"client certificate", missing, "no such file"}},
		{"missing key", a.Client, missing, []string{"client key", missing, "no such file"}},
		{"key of another export", a.Client, b.ClientKey, []string{b.ClientKey, a.Client, "does not match"}},
		{"certificate not PEM", notPEM, a.ClientKey, []string{notPEM, "not PEM"}},
		{"key not PEM", a.Client, notPEM, []string{notPEM, "not PEM"}},
		{"swapped", a.ClientKey, a.Client, []string{a.ClientKey, "swapped"}},
		{"no file", "", a.ClientKey, []string{"client certificate", "no file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadClientCert(tt.cert, tt.key)
			if err == nil {
				t.Fatal("LoadClientCert = nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadClientCert(%s, %s) = %q, want it to mention %q", tt.cert, tt.key, err, w)
				}
			}
		})
	}
	cert, err := LoadClientCert(a.Client, a.ClientKey)
	if err != nil || cert.Leaf == nil || cert.Leaf.Subject.CommonName != "QlikClient" {
		t.Errorf("LoadClientCert of a good export = %v, want the QlikClient certificate", err)
	}
}

func TestNewValidates(t *testing.T) {
	a := otherExport(t)
	cert, err := LoadClientCert(a.Client, a.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	good := func() Config {
		return Config{
			ProxyURL:      mustURL(t, "https://qlik.example.com"),
			QPSURL:        mustURL(t, "https://qlik.example.com:4243"),
			SessionCookie: "X-Qlik-Session",
			ClientCert:    cert,
		}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // "" entries: must succeed
	}{
		{"good", func(*Config) {}, nil},
		{"session mode needs no proxy URL", func(c *Config) { c.Mode, c.ProxyURL = ModeSession, nil }, nil},
		{"missing QPS URL", func(c *Config) { c.QPSURL = nil }, []string{"QPSURL: is required"}},
		{"http QPS URL", func(c *Config) { c.QPSURL = mustURL(t, "http://qlik:4243") }, []string{"QPSURL", "https"}},
		{"ticket mode needs proxy URL", func(c *Config) { c.ProxyURL = nil }, []string{"ProxyURL: is required"}},
		{"proxy URL with query", func(c *Config) { c.ProxyURL = mustURL(t, "https://qlik/?a=b") }, []string{"ProxyURL", "query"}},
		{"prefix with slash", func(c *Config) { c.Prefix = "/ticket" }, []string{"Prefix", "no slashes"}},
		{"cookie missing", func(c *Config) { c.SessionCookie = "" }, []string{"SessionCookie: is empty"}},
		{"cookie invalid", func(c *Config) { c.SessionCookie = "a b" }, []string{"SessionCookie", "not a valid cookie name"}},
		{"redeem path relative", func(c *Config) { c.RedeemPath = "hub" }, []string{"RedeemPath"}},
		{"no client cert", func(c *Config) { c.ClientCert = tls.Certificate{} }, []string{"ClientCert: is empty"}},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"Timeout"}},
		{"bad mode", func(c *Config) { c.Mode = 7 }, []string{"Mode"}},
		{"origin with path", func(c *Config) { c.Origin = "https://sense.example.com/hub" }, []string{"Origin", "remove the path"}},
		{"origin without scheme", func(c *Config) { c.Origin = "sense.example.com" }, []string{"Origin", "not an origin"}},
		{"origin ws scheme", func(c *Config) { c.Origin = "wss://sense.example.com" }, []string{"Origin", "http or https"}},
		{"origin with user", func(c *Config) { c.Origin = "https://u:p@sense.example.com" }, []string{"Origin", "user information"}},
		{"all at once", func(c *Config) { c.QPSURL, c.SessionCookie, c.Backoff = nil, "", -1 }, []string{"QPSURL", "SessionCookie", "Backoff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			c, err := New(cfg, nil)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("New = %v, want success", err)
				}
				c.CloseIdleConnections()
				return
			}
			if err == nil {
				t.Fatal("New = nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	a := otherExport(t)
	cert, _ := LoadClientCert(a.Client, a.ClientKey)
	cfg := Config{ProxyURL: mustURL(t, "https://q"), QPSURL: mustURL(t, "https://q:4243"), SessionCookie: "X-Qlik-Session", ClientCert: cert}
	c, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	got := c.cfg
	if got.Timeout != DefaultTimeout || got.Retries != 0 || got.Backoff != DefaultBackoff || got.MaxConcurrent != DefaultMaxConcurrent || got.RedeemPath != DefaultRedeemPath || got.Mode != ModeTicket {
		t.Errorf("defaults = timeout %s, retries %d, backoff %s, max concurrent %d, redeem %q, mode %v; want %s, 0 (none), %s, %d, %q, ticket",
			got.Timeout, got.Retries, got.Backoff, got.MaxConcurrent, got.RedeemPath, got.Mode, DefaultTimeout, DefaultBackoff, DefaultMaxConcurrent, DefaultRedeemPath)
	}
	cfg.Retries = -1
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "Retries: -1 is negative") {
		t.Errorf("New with Retries -1 = %v, want it named", err)
	}
}

func TestOrigin(t *testing.T) {
	a := otherExport(t)
	cert, _ := LoadClientCert(a.Client, a.ClientKey)
	tests := []struct {
		name, proxy, origin, want string
	}{
		{"default from proxy URL", "https://Qlik.Example.com/base/", "", "https://qlik.example.com"},
		{"default keeps a port", "http://qlik:8080", "", "http://qlik:8080"},
		{"default drops the default port", "https://qlik:443", "", "https://qlik"},
		{"default IPv6", "https://[::1]", "", "https://[::1]"},
		{"configured, normalised", "https://qlik", "HTTPS://Sense.Example.COM:443/", "https://sense.example.com"},
		{"configured with port", "https://qlik", "https://sense.example.com:8443", "https://sense.example.com:8443"},
		{"no proxy URL", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{QPSURL: mustURL(t, "https://q:4243"), SessionCookie: "X-Qlik-Session", ClientCert: cert, Origin: tt.origin}
			if tt.proxy != "" {
				cfg.ProxyURL = mustURL(t, tt.proxy)
			} else {
				cfg.Mode = ModeSession
			}
			got, err := cfg.withDefaults()
			if err != nil || got.Origin != tt.want {
				t.Errorf("Origin with ProxyURL %q, Origin %q = %q, %v; want %q", tt.proxy, tt.origin, got.Origin, err, tt.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"ticket": ModeTicket, "Session": ModeSession} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("jwt"); err == nil {
		t.Error(`ParseMode("jwt") = nil error`)
	}
}

func TestPermanent(t *testing.T) {
	for kind, want := range map[error]bool{
		ErrUnreachable: false, ErrTimeout: false, ErrUnavailable: false, ErrBusy: false,
		ErrTicketRefused: false, ErrSessionRefused: false, ErrRejected: true, ErrTooManySessions: true,
	} {
		if got := (&Error{Kind: kind}).Permanent(); got != want {
			t.Errorf("(&Error{Kind: %v}).Permanent() = %t, want %t", kind, got, want)
		}
	}
	if (&Error{Cause: context.Canceled}).Permanent() {
		t.Error("a cancelled call is Permanent, want not")
	}
}

func TestBackoff(t *testing.T) {
	base := 200 * time.Millisecond
	for n, want := range map[int]time.Duration{1: base, 2: 2 * base, 3: 4 * base, 20: maxBackoff} {
		for range 100 {
			if got := backoff(base, n); got < want/2 || got >= want {
				t.Fatalf("backoff(%s, %d) = %s, want in [%s, %s)", base, n, got, want/2, want)
			}
		}
	}
}

func TestXrfkeyAndSessionIDShape(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-zA-Z]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		k := newXrfkey()
		if !re.MatchString(k) || seen[k] {
			t.Fatalf("newXrfkey() = %q: want fresh 16 alphanumeric chars", k)
		}
		seen[k] = true
	}
	if a, b := newSessionID(), newSessionID(); len(a) != 32 || a == b {
		t.Errorf("newSessionID() = %q, %q; want distinct 32-char ids", a, b)
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Op: "ticket", User: `ACME\alice`, Kind: ErrUnavailable, Status: http.StatusServiceUnavailable, Msg: "QPS answered 503", Attempts: 3, Cause: errors.New("x")}
	if got, want := e.Error(), `ticket: ticket for ACME\alice: QPS answered 503 (after 3 attempts): x`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(e, ErrUnavailable) || errors.Is(e, ErrRejected) || errors.Unwrap(e).Error() != "x" {
		t.Error("Is/Unwrap do not follow Kind and Cause")
	}
	if errors.Is(e, qlik.ErrSessionGone) || !errors.Is(&Error{Kind: ErrSessionRefused}, qlik.ErrSessionGone) {
		t.Error("qlik.ErrSessionGone does not follow Kind")
	}
}
