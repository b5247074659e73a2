package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/qliksim"
	"github.com/sensegate/sensegate/qliksim/qliksimtest"
	"go.uber.org/zap/zaptest"
)

// Every example configuration passes `sensegate check` once its
// certificate paths point at real files (given through the environment,
// which also proves the overrides work).
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
			var out strings.Builder
			if err := run(context.Background(), t, &out, "check", "--config", f); err != nil || !strings.Contains(out.String(), "config OK") {
				t.Errorf("check %s = %v, output %q", f, err, out.String())
			}
		})
	}
}

// writeSimConfig writes a sensegate config for a running simulator.
func writeSimConfig(t *testing.T, sim *qliksim.Sim, extra string) string {
	t.Helper()
	c := sim.Certs()
	body := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  public_url: "http://localhost:8080"
  shutdown_grace: 5s
qlik:
  url: %q
  user_directory: ACME
  ca: %q
  qps:
    url: %q
    client_cert: %q
    client_key: %q
identity:
  provider: header
  header:
    trusted_proxies: ["127.0.0.1/32", "::1/128"]
%s`, sim.ProxyURL(), c.Root, sim.QPSURL(), c.Client, c.ClientKey, extra)
	f := filepath.Join(t.TempDir(), "sensegate.yaml")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func startSim(t *testing.T) *qliksim.Sim {
	t.Helper()
	return qliksimtest.Start(t, nil, qliksim.Options{})
}

// The wiring of `serve` from a config file: a request through it reaches
// the simulator as the header's user, and shutdown closes websockets with
// 1001 and returns.
func TestServeFromConfig(t *testing.T) {
	sim := startSim(t)
	cfg, err := config.Load(writeSimConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	provider, err := newProvider(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := newGateway(cfg, provider, log)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg.Server, gw.handler, ready, log) }()
	addr := (<-ready).String()

	req, _ := http.NewRequest("GET", "http://"+addr+"/hub/", nil)
	req.Header.Set("X-Forwarded-User", "bob")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `ACME\bob`) {
		t.Fatalf("GET /hub/ through serve = %d %q", resp.StatusCode, body)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/engineData", http.Header{"X-Forwarded-User": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "EngineVersion", "handle": -1, "params": []any{}})
	for i := 0; i < 3; i++ { // OnAuthenticationInformation, OnConnected, the answer
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Errorf("websocket on shutdown: %v, want close 1001", err)
	}
	ws.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}

func TestCheckConnect(t *testing.T) {
	sim := startSim(t)
	f := writeSimConfig(t, sim, "")
	var out strings.Builder
	if err := run(context.Background(), t, &out, "check", "--connect", "--config", f); err != nil || !strings.Contains(out.String(), "QPS OK") {
		t.Fatalf("check --connect = %v, %q", err, out.String())
	}
	sim.SetQPSFault(qliksim.Fault5xx)
	err := run(context.Background(), t, io.Discard, "check", "--connect", "--config", f)
	if err == nil || !strings.Contains(err.Error(), "qlik.qps.url") {
		t.Errorf("check --connect with QPS failing = %v, want an error naming qlik.qps.url", err)
	}
	// A client certificate the QPS does not trust.
	other, _ := qliksim.WriteCerts(t.TempDir(), nil)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_CERT", other.Client)
	t.Setenv("SENSEGATE_QLIK_QPS_CLIENT_KEY", other.ClientKey)
	sim.SetQPSFault(qliksim.FaultNone)
	err = run(context.Background(), t, io.Discard, "check", "--connect", "--config", f)
	if err == nil || !strings.Contains(err.Error(), "client_cert") {
		t.Errorf("check --connect with a foreign client certificate = %v, want it to name client_cert", err)
	}
}
