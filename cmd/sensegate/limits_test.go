package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/config"
	"go.uber.org/zap/zaptest"
)

// serve cuts off a client that stops reading after server.write_timeout,
// whatever it was downloading through sensegate, and the upstream's
// transfer ends with it.
func TestServeWriteTimeout(t *testing.T) {
	sim := startSim(t)
	upstreamDone := make(chan error, 1)
	mashup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("m"), 64<<10)
		for range 1 << 14 { // 1 GiB at most
			if _, err := w.Write(chunk); err != nil {
				upstreamDone <- err
				return
			}
		}
		upstreamDone <- nil
	}))
	t.Cleanup(mashup.Close)
	cfg, err := config.Load(writeSimConfig(t, sim, fmt.Sprintf(`routes:
  - path: /files/
    upstream: %q
`, mashup.URL)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.WriteTimeout = 500 * time.Millisecond
	addr := runGateway(t, cfg, zaptest.NewLogger(t), nil)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /files/big.iso HTTP/1.1\r\nHost: "+addr+"\r\nX-Forwarded-User: alice\r\n\r\n")
	// Never read.
	select {
	case err := <-upstreamDone:
		if err == nil {
			t.Fatal("the whole download went to a client that reads nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a client that reads nothing was not cut off")
	}
	// What the client had buffered ends short of the body.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err == nil && n >= 1<<30 {
		t.Errorf("the client read %d bytes and a clean end, want a cut-off transfer", n)
	}
}

// serve cuts off a client that stops sending its request body after
// server.body_timeout: the route's upstream sees its request end short.
func TestServeBodyTimeout(t *testing.T) {
	sim := startSim(t)
	type upload struct {
		n   int64
		err error
	}
	got := make(chan upload, 1)
	mashup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		got <- upload{n, err}
	}))
	t.Cleanup(mashup.Close)
	cfg, err := config.Load(writeSimConfig(t, sim, fmt.Sprintf(`routes:
  - path: /upload/
    upstream: %q
`, mashup.URL)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.BodyTimeout = 500 * time.Millisecond
	addr := runGateway(t, cfg, zaptest.NewLogger(t), nil)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /upload/file HTTP/1.1\r\nHost: "+addr+"\r\nX-Forwarded-User: alice\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("b", 100))
	// The other 900 bytes never come.
	start := time.Now()
	select {
	case u := <-got:
		if u.err == nil || u.n >= 1000 {
			t.Errorf("the upstream read %d bytes (%v), want a body cut short", u.n, u.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a client that stopped sending its body was not cut off")
	}
	// The client's connection ends too, within the bound and some slack.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the connection stayed open %s", took)
	}
}

// A user over qlik.login_rate gets 429 with Retry-After instead of a new
// Qlik login; other users do not wait.
func TestServeLoginRate(t *testing.T) {
	sim := startSim(t)
	t.Setenv("SENSEGATE_QLIK_LOGIN_RATE_PER_MINUTE", "1")
	t.Setenv("SENSEGATE_QLIK_LOGIN_RATE_BURST", "1")
	cfg, err := config.Load(writeSimConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	addr := runGateway(t, cfg, zaptest.NewLogger(t), nil)
	get := func(user string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/hub/", nil)
		req.Header.Set("X-Forwarded-User", user)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get("alice"); resp.StatusCode != 200 {
		t.Fatalf("first request = %d", resp.StatusCode)
	}
	// Qlik forgets alice's session: she needs a second login within the
	// minute.
	sim.ExpireUser(`ACME\alice`)
	resp := get("alice")
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || ra < 1 || ra > 60 {
		t.Errorf("second login within the minute = %d Retry-After %q, want 429 with up to 60 s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := sim.Counts(`ACME\alice`).TicketsIssued; got != 1 {
		t.Errorf("tickets for alice = %d, want 1", got)
	}
	if resp := get("bob"); resp.StatusCode != 200 {
		t.Errorf("bob = %d, want 200: the limit is per user", resp.StatusCode)
	}
}

// A user over qlik.websocket_per_user gets 429 on the next websocket
// upgrade; other users do not.
func TestServeWebsocketsPerUser(t *testing.T) {
	sim := startSim(t)
	t.Setenv("SENSEGATE_QLIK_WEBSOCKET_PER_USER", "1")
	cfg, err := config.Load(writeSimConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	addr := runGateway(t, cfg, zaptest.NewLogger(t), nil)
	dial := func(user string) (*websocket.Conn, int) {
		t.Helper()
		d := websocket.Dialer{HandshakeTimeout: 15 * time.Second}
		c, resp, err := d.Dial("ws://"+addr+"/app/engineData", http.Header{"X-Forwarded-User": {user}})
		if err != nil {
			if resp == nil {
				t.Fatalf("%s: %v", user, err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { c.Close() })
		return c, http.StatusSwitchingProtocols
	}
	if _, status := dial("alice"); status != http.StatusSwitchingProtocols {
		t.Fatalf("alice's first websocket = %d", status)
	}
	if _, status := dial("alice"); status != http.StatusTooManyRequests {
		t.Errorf("alice's second websocket = %d, want 429", status)
	}
	if _, status := dial("bob"); status != http.StatusSwitchingProtocols {
		t.Errorf("bob's websocket = %d, want it relayed: the bound is per user", status)
	}
}

// serve speaks TLS 1.2 and 1.3 only.
func TestServeTLSVersions(t *testing.T) {
	sim := startSim(t)
	certs := sim.Certs()
	t.Setenv("SENSEGATE_SERVER_TLS_CERT", certs.Server)
	t.Setenv("SENSEGATE_SERVER_TLS_KEY", certs.ServerKey)
	cfg, err := config.Load(writeSimConfigWith(t, sim, "https://localhost:8443", headerIdentity))
	if err != nil {
		t.Fatal(err)
	}
	addr := runGateway(t, cfg, zaptest.NewLogger(t), nil)
	pool, err := certs.RootPool()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		version uint16
		ok      bool
	}{{tls.VersionTLS10, false}, {tls.VersionTLS11, false}, {tls.VersionTLS12, true}, {tls.VersionTLS13, true}} {
		t.Run(tls.VersionName(v.version), func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: v.version, MaxVersion: v.version})
			if !v.ok {
				if err == nil {
					c.Close()
					t.Fatalf("a %s client was served, want the handshake refused", tls.VersionName(v.version))
				}
				return
			}
			if err != nil {
				t.Fatalf("a %s client was refused: %v", tls.VersionName(v.version), err)
			}
			defer c.Close()
			if got := c.ConnectionState().Version; got != v.version {
				t.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(v.version))
			}
		})
	}
}

// The Redis client speaks TLS 1.2 or later to the server it names.
func TestRedisTLSConfig(t *testing.T) {
	rc := redisConfig(config.StoreConfig{Redis: config.RedisConfig{Addr: "redis.example.com:6380", TLS: true}})
	if rc.TLS == nil || rc.TLS.MinVersion != tls.VersionTLS12 || rc.TLS.ServerName != "redis.example.com" || rc.TLS.InsecureSkipVerify {
		t.Errorf("Redis TLS config = %+v, want TLS 1.2+ verifying redis.example.com", rc.TLS)
	}
	if rc := redisConfig(config.StoreConfig{Redis: config.RedisConfig{Addr: "redis:6379"}}); rc.TLS != nil {
		t.Errorf("store.redis.tls false gave a TLS config")
	}
}

// The listener's write bound is set when it starts: a reload changing it
// is refused, naming the key; the login rate reloads.
func TestLimitsOnReload(t *testing.T) {
	old, changed := config.Default(), config.Default()
	changed.Server.WriteTimeout = 2 * time.Minute
	changed.Qlik.LoginRate.PerMinute = 6
	changed.Qlik.QPS.MaxConcurrent = 8
	if keys := restartKeys(old, changed); !slices.Equal(keys, []string{"server.write_timeout"}) {
		t.Errorf("restart keys = %q, want only server.write_timeout", keys)
	}
}
