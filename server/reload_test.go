package server

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/gateway"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// startReloadable runs the server of file with its reloader, as `sensegate
// serve` does, and returns the address and the server; the reloader
// watches the file when watch is set (SIGHUP only otherwise).
func startReloadable(t *testing.T, file string, watch bool) (string, *server) {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	s, err := newServer(ctx, Options{Config: cfg, File: file, Logger: zaptest.NewLogger(t), Ready: ready})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// Cleanups run last first: run returns (the Proc's), then the rest of
	// the server stops.
	t.Cleanup(func() { cancel(); s.close() })
	s.reloader.watchFile = watch
	s.watching = make(chan struct{})
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	p := sensegatetest.StartProc(ctx, t, "run", func(ctx context.Context) error { return s.run(ctx, ln) })
	addr := sensegatetest.Await(t, p, ready).String()
	<-s.watching
	return addr, s
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(20 * time.Millisecond) // bounded polling, not synchronisation
	}
}

func TestReloadOnFileChange(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	file := sensegatetest.WriteConfig(t, sim, "")
	addr, s := startReloadable(t, file, true)
	rl := s.reloader
	t.Cleanup(func() {
		// One refused bad file, one refused restart-only key, then the
		// good change (counted once it is applied).
		got := map[string]float64{}
		mfs, _ := s.metrics.registry.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "sensegate_config_reloads_total" {
				for _, m := range mf.GetMetric() {
					got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
		if got["failure"] != 2 || got["success"] < 1 {
			t.Errorf("sensegate_config_reloads_total = %v, want 2 failures and a success", got)
		}
	})
	if got := sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice"); got != 200 {
		t.Fatalf("before reload: %d", got)
	}
	orig, _ := os.ReadFile(file)

	// A bad file is refused and the running configuration stays.
	if err := os.WriteFile(file, append(orig, []byte("bogus_key: 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.reload(); err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Errorf("reload of a bad file = %v, want an error naming bogus_key", err)
	}
	if got := sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice"); got != 200 {
		t.Errorf("after a bad reload: %d, want the old configuration still serving", got)
	}
	// A key that needs a restart is refused too.
	if err := os.WriteFile(file, []byte(strings.Replace(string(orig), `listen: "127.0.0.1:0"`, `listen: "127.0.0.1:1"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.reload(); err == nil || !strings.Contains(err.Error(), "server.listen") {
		t.Errorf("reload changing server.listen = %v, want it refused naming the key", err)
	}

	// A good change is picked up from the file by itself.
	changed := strings.Replace(string(orig), "identity:\n  provider: header\n  header:\n", "identity:\n  provider: header\n  header:\n    name: X-Remote-User\n", 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new header name", func() bool { return sensegatetest.HubAs(t, addr, "X-Remote-User", "alice") == 200 })
	if got := sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice"); got != http.StatusUnauthorized {
		t.Errorf("old header after reload: %d, want 401", got)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	file := sensegatetest.WriteConfig(t, sim, "")
	addr, _ := startReloadable(t, file, false)
	orig, _ := os.ReadFile(file)
	changed := strings.Replace(string(orig), "identity:\n  provider: header\n  header:\n", "identity:\n  provider: header\n  header:\n    name: X-Remote-User\n", 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := sensegatetest.HubAs(t, addr, "X-Remote-User", "alice"); got == 200 {
		t.Fatal("changed without SIGHUP although the file is not watched")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reload on SIGHUP", func() bool { return sensegatetest.HubAs(t, addr, "X-Remote-User", "alice") == 200 })
}

// A reload logs the new configuration's warnings (config.Config.Warnings),
// as serve does at startup, and still applies it.
func TestReloadLogsWarnings(t *testing.T) {
	file := sensegatetest.WriteConfig(t, sensegatetest.StartSim(t), "")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	var built *config.Config
	build := func(c *config.Config) (*gateway.Gateway, error) {
		built = c
		return gateway.New(context.Background(), c, gateway.Deps{})
	}
	g, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	live := gateway.NewLive(g, nil)
	t.Cleanup(func() { live.Close() })
	rl := &reloader{path: file, log: zap.New(core), live: live, cur: cfg, build: build}
	orig, _ := os.ReadFile(file)
	broad := strings.Replace(string(orig), `trusted_proxies: ["127.0.0.1/32", "::1/128"]`, `trusted_proxies: ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]`, 1)
	if broad == string(orig) {
		t.Fatal("the test's config has no trusted_proxies to broaden")
	}
	if err := os.WriteFile(file, []byte(broad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.reload(); err != nil {
		t.Fatalf("reload of a broad trusted_proxies = %v, want it applied", err)
	}
	if built == nil || len(built.Identity.Header.TrustedProxies()) != 3 {
		t.Fatalf("reload built %v, want the new configuration", built)
	}
	want := `identity.header.trusted_proxies[2]: "10.0.0.0/8" is broader than a /24`
	got := logs.FilterMessage("risky configuration").All()
	if len(got) != 1 || !strings.HasPrefix(got[0].ContextMap()["warning"].(string), want) {
		t.Errorf("warnings logged on reload = %v, want one starting %q", got, want)
	}
}
