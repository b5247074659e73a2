package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap"
)

func startSim(t *testing.T) *qliksim.Sim {
	t.Helper()
	return qliksimtest.Start(t, nil, qliksim.Options{})
}

// writeSimConfig writes a sensegate config for a running simulator, with
// the header identity and extra.
func writeSimConfig(t *testing.T, sim *qliksim.Sim, extra string) string {
	t.Helper()
	return sensegatetest.WriteConfig(t, sim, extra)
}

// loadConfig loads file.
func loadConfig(t *testing.T, file string) *config.Config {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newTestGateway builds the gateway of cfg, closed when the test ends.
func newTestGateway(t *testing.T, cfg *config.Config, log *zap.Logger) *Gateway {
	t.Helper()
	g, err := New(context.Background(), cfg, Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// serveGateway builds the gateway of cfg and serves it on a loopback
// test server until the test ends, when its websockets are shut down. It
// returns the address.
func serveGateway(t *testing.T, cfg *config.Config, log *zap.Logger) string {
	t.Helper()
	g := newTestGateway(t, cfg, log)
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return srv.Listener.Addr().String()
}

// hubAs asks for the hub with header name set to user and returns the status.
func hubAs(t *testing.T, addr, header, user string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/hub/", nil)
	req.Header.Set(header, user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
