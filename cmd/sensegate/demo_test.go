package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/config"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Issue 16: `make demo` ran without the admin listener and the audit log,
// so a newcomer could not see /metrics. The demo serves them as serve
// does, on admin.listen's default unless told otherwise.
func TestDemoAdminAndAudit(t *testing.T) {
	if got := newDemoCmd().Flags().Lookup("admin-listen").DefValue; got != config.DefaultAdminListen {
		t.Errorf("demo --admin-listen default = %q, want %q", got, config.DefaultAdminListen)
	}
	// A free loopback port for the admin listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()

	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, out, demoOptions{listen: "127.0.0.1:0", dataDir: t.TempDir(), adminListen: adminAddr}, zap.New(core), ready)
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("demo exited: %v\n%s", err, out.String())
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo returned %v", err)
		}
	}()
	if !strings.Contains(out.String(), "Metrics: http://"+adminAddr+"/metrics") {
		t.Errorf("demo output does not name the metrics:\n%s", out.String())
	}

	// Sign in as alice and reach Qlik: a Qlik login, audited.
	base := "http://" + addr.String()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/.sensegate/login", url.Values{"user": {`ACME\alice`}, "rd": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/qps/user", nil)
	for _, k := range resp.Cookies() {
		req.AddCookie(k)
	}
	if resp, err = c.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /qps/user = %v, %v", resp, err)
	}
	resp.Body.Close()
	if n := logs.FilterMessage("qlik login").FilterField(zap.Bool("audit", true)).Len() + logs.FilterLoggerName("sensegate.audit").Len(); n == 0 {
		t.Errorf("no audit entry for alice's Qlik login; logs: %v", logs.All())
	}

	resp, err = http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics on the demo's admin listener: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "sensegate_") {
		t.Errorf("GET /metrics = %d:\n%.500s", resp.StatusCode, body)
	}
}
