// Package qliksimtest starts a QSEoW simulator for the tests of other
// packages: on loopback ports, with a fresh certificate export, no
// background sweeper, and shut down when the test ends.
package qliksimtest

import (
	"context"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/qliksim"
)

// Start starts a simulator from the default seed changed by mutate (which
// may be nil), with opts (SweepInterval -1 unless set).
func Start(t testing.TB, mutate func(*qliksim.Config), opts qliksim.Options) *qliksim.Sim {
	t.Helper()
	cfg := qliksim.DefaultConfig()
	cfg.ProxyListen, cfg.QPSListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.CertDir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = -1
	}
	sim, err := qliksim.New(cfg, opts)
	if err != nil {
		t.Fatalf("qliksim.New: %v", err)
	}
	if err := sim.Start(); err != nil {
		t.Fatalf("qliksim Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sim.Shutdown(ctx); err != nil {
			t.Errorf("qliksim Shutdown: %v", err)
		}
	})
	return sim
}
