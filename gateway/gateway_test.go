package gateway

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sensegate/sensegate/config"
	"go.uber.org/zap"
)

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
