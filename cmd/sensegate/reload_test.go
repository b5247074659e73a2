package main

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
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// startReloadable runs serve with a reloader the way `sensegate serve`
// does and returns the address and the reloader.
func startReloadable(t *testing.T, file string, watch bool) (string, *reloader) {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	jar := session.NewMemory(cfg.Qlik.SessionTimeout, nil)
	build := func(c *config.Config) (*gateway, error) {
		p, err := newProvider(context.Background(), c, log)
		if err != nil {
			return nil, err
		}
		return newGatewayWith(c, p, log, nil, jar)
	}
	gw, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lv := newLive(gw)
	obs, err := newObservability(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	rl := &reloader{path: file, log: log, build: build, live: lv, cur: cfg, watchFile: watch, obs: obs}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	rlDone := make(chan error, 1)
	go func() { rlDone <- rl.run(ctx, ready) }()
	<-ready
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg.Server, lv, addrs, log) }()
	addr := (<-addrs).String()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		<-rlDone
		lv.close()
	})
	return addr, rl
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
	sim := startSim(t)
	file := writeSimConfig(t, sim, "")
	addr, rl := startReloadable(t, file, true)
	obs := rl.obs
	t.Cleanup(func() {
		// One refused bad file, one refused restart-only key, then the
		// good change (counted once it is applied).
		got := map[string]float64{}
		mfs, _ := obs.registry.Gather()
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
	if got := hubAs(t, addr, "X-Forwarded-User", "alice"); got != 200 {
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
	if got := hubAs(t, addr, "X-Forwarded-User", "alice"); got != 200 {
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
	eventually(t, "the new header name", func() bool { return hubAs(t, addr, "X-Remote-User", "alice") == 200 })
	if got := hubAs(t, addr, "X-Forwarded-User", "alice"); got != http.StatusUnauthorized {
		t.Errorf("old header after reload: %d, want 401", got)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	sim := startSim(t)
	file := writeSimConfig(t, sim, "")
	addr, _ := startReloadable(t, file, false)
	orig, _ := os.ReadFile(file)
	changed := strings.Replace(string(orig), "identity:\n  provider: header\n  header:\n", "identity:\n  provider: header\n  header:\n    name: X-Remote-User\n", 1)
	if err := os.WriteFile(file, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := hubAs(t, addr, "X-Remote-User", "alice"); got == 200 {
		t.Fatal("changed without SIGHUP although the file is not watched")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reload on SIGHUP", func() bool { return hubAs(t, addr, "X-Remote-User", "alice") == 200 })
}

// A reload logs the new configuration's warnings (config.Config.Warnings),
// as serve does at startup, and still applies it.
func TestReloadLogsWarnings(t *testing.T) {
	file := writeConfig(t)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	var built *config.Config
	rl := &reloader{path: file, log: zap.New(core), live: newLive(&gateway{}), cur: cfg,
		build: func(c *config.Config) (*gateway, error) { built = c; return &gateway{}, nil }}
	orig, _ := os.ReadFile(file)
	broad := strings.Replace(string(orig), "trusted_proxies: [127.0.0.1]", "trusted_proxies: [127.0.0.1, 10.0.0.0/8]", 1)
	if err := os.WriteFile(file, []byte(broad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.reload(); err != nil {
		t.Fatalf("reload of a broad trusted_proxies = %v, want it applied", err)
	}
	if built == nil || len(built.Identity.Header.TrustedProxies()) != 2 {
		t.Fatalf("reload built %v, want the new configuration", built)
	}
	want := `identity.header.trusted_proxies[1]: "10.0.0.0/8" is broader than a /24`
	got := logs.FilterMessage("risky configuration").All()
	if len(got) != 1 || !strings.HasPrefix(got[0].ContextMap()["warning"].(string), want) {
		t.Errorf("warnings logged on reload = %v, want one starting %q", got, want)
	}
}
