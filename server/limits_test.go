package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// upgradeHeaders are the Upgrade headers a request may carry without
// being a websocket (issue 14): none of them may lift a stall bound.
var upgradeHeaders = []struct{ name, header string }{
	{"plain", ""},
	{"upgrade header", "Upgrade: x\r\n"},
	{"upgrade connection", "Connection: Upgrade\r\nUpgrade: x\r\n"},
}

// serveRoute runs sensegate, its configuration changed by set, with a
// route of the path prefix to a mashup server of h, and returns its
// address.
func serveRoute(t *testing.T, prefix string, h http.HandlerFunc, set func(*config.Config)) string {
	t.Helper()
	sim := sensegatetest.StartSim(t)
	mashup := httptest.NewServer(h)
	t.Cleanup(mashup.Close)
	cfg, err := config.Load(sensegatetest.WriteConfig(t, sim, fmt.Sprintf("routes:\n  - path: %s\n    upstream: %q\n", prefix, mashup.URL)))
	if err != nil {
		t.Fatal(err)
	}
	set(cfg)
	return runServer(t, cfg, zaptest.NewLogger(t), nil)
}

// dial opens a connection to addr, closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve cuts off a client that stops reading after server.write_timeout,
// whatever it was downloading through sensegate, and the upstream's
// transfer ends with it. An Upgrade header that is no websocket changes
// nothing.
func TestServeWriteTimeout(t *testing.T) {
	// The upstream's end of each download, by file name (a case's index).
	upstreamDone := make([]chan error, len(upgradeHeaders))
	for i := range upstreamDone {
		upstreamDone[i] = make(chan error, 1)
	}
	addr := serveRoute(t, "/files/", func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(path.Base(r.URL.Path))
		chunk := bytes.Repeat([]byte("m"), 64<<10)
		for range 1 << 14 { // 1 GiB at most
			if _, err := w.Write(chunk); err != nil {
				upstreamDone[i] <- err
				return
			}
		}
		upstreamDone[i] <- nil
	}, func(cfg *config.Config) { cfg.Server.WriteTimeout = 500 * time.Millisecond })

	for i, tt := range upgradeHeaders {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			io.WriteString(c, "GET /files/"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: "+addr+"\r\nX-Forwarded-User: alice\r\n"+tt.header+"\r\n")
			// Never read.
			select {
			case err := <-upstreamDone[i]:
				if err == nil {
					t.Fatal("the whole download went to a client that reads nothing")
				}
			case <-time.After(15 * time.Second):
				t.Fatal("a client that reads nothing was not cut off")
			}
			// What the client had buffered ends short of the body.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, c)
			if err == nil && n >= 1<<30 {
				t.Errorf("the client read %d bytes and a clean end, want a cut-off transfer", n)
			}
		})
	}
}

// serve cuts off a client that stops sending its request body after
// server.body_timeout: the route's upstream sees its request end short.
// An Upgrade header that is no websocket changes nothing.
func TestServeBodyTimeout(t *testing.T) {
	type upload struct {
		n   int64
		err error
	}
	// What the upstream got of each upload, by file name (a case's index).
	got := make([]chan upload, len(upgradeHeaders))
	for i := range got {
		got[i] = make(chan upload, 1)
	}
	addr := serveRoute(t, "/upload/", func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(path.Base(r.URL.Path))
		n, err := io.Copy(io.Discard, r.Body)
		got[i] <- upload{n, err}
	}, func(cfg *config.Config) { cfg.Server.BodyTimeout = 500 * time.Millisecond })

	for i, tt := range upgradeHeaders {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			io.WriteString(c, "POST /upload/"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: "+addr+"\r\nX-Forwarded-User: alice\r\nContent-Length: 1000\r\n"+tt.header+"\r\n"+strings.Repeat("b", 100))
			// The other 900 bytes never come.
			start := time.Now()
			select {
			case u := <-got[i]:
				if u.err == nil || u.n >= 1000 {
					t.Errorf("the upstream read %d bytes (%v), want a body cut short", u.n, u.err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("a client that stopped sending its body was not cut off")
			}
			// The client's connection ends too, within the bound and some slack.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Errorf("the connection stayed open %s: %v", time.Since(start), err)
			}
		})
	}
}

// A real websocket lifts both stall bounds: idle for longer than either,
// it stays open, then still relays (issue 14: only an accepted upgrade
// may lift them, and then nothing they set may remain).
func TestServeWebsocketOutlivesStallBounds(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg, err := config.Load(sensegatetest.WriteConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	const bound = 200 * time.Millisecond
	cfg.Server.WriteTimeout, cfg.Server.BodyTimeout = bound, bound
	addr := runServer(t, cfg, zaptest.NewLogger(t), nil)

	ws := sensegatetest.DialEngine(t, addr, "alice")
	// Idle for several bounds: nothing comes, and the socket stays open
	// (a close would end the read early, without a timeout).
	raw := ws.UnderlyingConn()
	raw.SetReadDeadline(time.Now().Add(5 * bound))
	if n, err := raw.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle websocket: read %d bytes, %v; want nothing until the deadline", n, err)
	}
	sensegatetest.EngineVersion(t, ws, 2, 1)
}

// serve speaks TLS 1.2 and 1.3 only.
func TestServeTLSVersions(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	certs := sim.Certs()
	t.Setenv("SENSEGATE_SERVER_TLS_CERT", certs.Server)
	t.Setenv("SENSEGATE_SERVER_TLS_KEY", certs.ServerKey)
	cfg, err := config.Load(sensegatetest.WriteConfigWith(t, sim, "https://localhost:8443", sensegatetest.HeaderIdentity))
	if err != nil {
		t.Fatal(err)
	}
	addr := runServer(t, cfg, zaptest.NewLogger(t), nil)
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

// Issue 14: clients that announce a body and never send it, to requests
// sensegate answers without reading it (not signed in, its own endpoints,
// a path it does not know), are cut off within server.body_timeout:
// net/http's discarding of an unread body, before it can reuse the
// connection, does not wait on them for good. Once cut off, they hold
// no goroutine.
func TestServeCutsStalledUnreadBodies(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg, err := config.Load(sensegatetest.WriteConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.BodyTimeout = 300 * time.Millisecond
	addr := runServer(t, cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), nil)
	// One request served: the server's goroutines are all up.
	resp, err := http.Get("http://" + addr + "/hub/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	before := goleak.IgnoreCurrent()

	tests := []struct{ path, header string }{
		{"/hub/x", "Content-Length: 100"},                                         // 401: not signed in
		{"/hub/x", "Transfer-Encoding: chunked"},                                  // 401, a body of unknown length
		{"/hub/x", "Content-Length: 100\r\nExpect: 100-continue"},                 // 401, the body not asked for
		{"/.sensegate/logout", "Content-Length: 100"},                             // 401
		{"/.sensegate/nowhere", "Content-Length: 100\r\nX-Forwarded-User: alice"}, // 404: sensegate's, unknown
	}
	const perPath = 40
	start := time.Now()
	// The bound, and slack for 200 connections on a busy machine; without
	// the bound, the connections stay open as long as the client likes.
	deadline := start.Add(cfg.Server.BodyTimeout + 5*time.Second)
	conns := make([]net.Conn, 0, perPath*len(tests))
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range cap(conns) {
		tt := tests[i%len(tests)]
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// A body announced, none of it sent.
		if _, err := io.WriteString(c, "POST "+tt.path+" HTTP/1.1\r\nHost: "+addr+"\r\n"+tt.header+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	open := map[string]int{}
	statuses := map[string]map[int]int{}
	for i, c := range conns {
		tt := tests[i%len(tests)]
		path := tt.path + " " + strings.ReplaceAll(tt.header, "\r\n", ", ")
		c.SetReadDeadline(deadline)
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err == nil {
			if statuses[path] == nil {
				statuses[path] = map[int]int{}
			}
			statuses[path][resp.StatusCode]++
		}
		if _, err := io.Copy(io.Discard, br); err != nil {
			open[path]++
		}
	}
	if len(open) > 0 {
		t.Fatalf("connections still open %s after their request, per path: %v (answers: %v); want all closed after body_timeout %s",
			time.Since(start).Round(time.Millisecond), open, statuses, cfg.Server.BodyTimeout)
	}
	t.Logf("all %d connections closed after %s; answers: %v", len(conns), time.Since(start).Round(time.Millisecond), statuses)
	for _, c := range conns {
		c.Close()
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after the stalled clients were cut off: %v", err)
	}
}
