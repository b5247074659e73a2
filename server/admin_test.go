package server

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sensegate/sensegate/admin"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/proxy"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// serve with the admin listener as the serve command wires it: metrics
// count what the proxy does, the audit log gets the login, readiness
// follows QPS, turns not ready as soon as shutdown starts, and everything
// stops when serve returns.
func TestServeWithAdmin(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	before := goleak.IgnoreCurrent()
	cfg, err := config.Load(sensegatetest.WriteConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Listen = "127.0.0.1:0"
	core, logs := observer.New(zapcore.InfoLevel)
	log := zap.New(core)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	s, err := newServer(ctx, Options{Config: cfg, Logger: log, Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	// No readiness cache, so that the fault shows at once.
	s.readiness = admin.ReadinessOptions{CacheTTL: -1}
	// What run does, in steps: the admin listener must be stopped after
	// serve returned, to see it report the shutdown.
	stopAdmin, err := s.start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	adminURL := "http://" + s.adminAddr.String()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	p := sensegatetest.StartProc(ctx, t, "serve", func(ctx context.Context) error {
		return serve(ctx, ln, cfg.Server, s.live, ready, log)
	})
	addr := sensegatetest.Await(t, p, ready).String()
	mon := s.mon

	if code, body := sensegatetest.Get(t, "http://"+addr+"/hub/", "X-Forwarded-User", "bob"); code != 200 {
		t.Fatalf("GET /hub/ = %d %q", code, body)
	}
	// A request is counted when its handler returns, which may be just
	// after the client read the answer: poll a little.
	wants := []string{
		`sensegate_tickets_total{result="issued"} 1`,
		`sensegate_http_requests_total{code="200",route="qlik"} 1`,
		`sensegate_upstream_duration_seconds_count{upstream="qlik"} 1`,
		`process_start_time_seconds`,
	}
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); ; {
		var code int
		code, metrics = sensegatetest.Get(t, adminURL+admin.PathMetrics)
		if code != 200 {
			t.Fatalf("GET /metrics = %d", code)
		}
		missing := slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(metrics, w) })
		if !missing || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // bounded polling
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("GET /metrics without %s", want)
		}
	}
	healthz := func() map[string]admin.CheckStatus {
		code, body := sensegatetest.Get(t, adminURL+admin.PathHealthz)
		var h struct {
			Status string              `json:"status"`
			QPS    []admin.CheckStatus `json:"qps"`
		}
		if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h.Status != "ok" {
			t.Fatalf("GET /healthz = %d %q (%v), want 200 status ok", code, body, err)
		}
		nodes := map[string]admin.CheckStatus{}
		for _, n := range h.QPS {
			nodes[n.Name] = n
		}
		return nodes
	}
	node := s.live.Current().Nodes()[0].ID
	mon.Check(ctx)
	if n := healthz()[node]; !n.Up || n.CheckedAt.IsZero() {
		t.Errorf("GET /healthz qps[%s] = %+v, want up", node, n)
	}
	readyz := func() (int, admin.Report) {
		code, body := sensegatetest.Get(t, adminURL+admin.PathReadyz)
		var rep admin.Report
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("GET /readyz: %v in %q", err, body)
		}
		return code, rep
	}
	if code, rep := readyz(); code != 200 || len(rep.Checks) != 1 || rep.Checks[0].Name != "store" {
		t.Errorf("GET /readyz = %d %+v, want 200 with the store check alone", code, rep)
	}
	qpsUp := func() string {
		_, m := sensegatetest.Get(t, adminURL+admin.PathMetrics)
		for line := range strings.Lines(m) {
			if strings.HasPrefix(line, `sensegate_qps_up{node="`+node+`"} `) {
				return strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:])
			}
		}
		return "absent"
	}
	if v := qpsUp(); v != "1" {
		t.Errorf("sensegate_qps_up{node=%q} = %s, want 1", node, v)
	}
	// QPS down leaves the replica ready: users with a session go on. It
	// shows in /healthz and sensegate_qps_up.
	for _, f := range []qliksim.QPSFault{qliksim.Fault5xx, qliksim.FaultDown} {
		if err := sim.SetQPSFault(f); err != nil {
			t.Fatal(err)
		}
		mon.Check(ctx)
		if code, rep := readyz(); code != 200 {
			t.Errorf("GET /readyz with QPS fault %v = %d %+v, want 200", f, code, rep)
		}
		if n := healthz()[node]; n.Up || n.Error == "" || strings.Contains(n.Error, "Xrfkey") || strings.Contains(n.Error, "xrfkey=") {
			t.Errorf("GET /healthz qps[%s] with QPS fault %v = %+v, want down with an error without the query", node, f, n)
		}
		if v := qpsUp(); v != "0" {
			t.Errorf("sensegate_qps_up{node=%q} with QPS fault %v = %s, want 0", node, f, v)
		}
	}
	sim.SetQPSFault(qliksim.FaultNone)
	mon.Check(ctx)
	if code, _ := readyz(); code != 200 || !healthz()[node].Up || qpsUp() != "1" {
		t.Errorf("GET /readyz with QPS back = %d, or not up in /healthz and sensegate_qps_up", code)
	}
	for _, want := range []string{`sensegate_build_info{commit="`, `sensegate_config_last_reload_success_timestamp_seconds `} {
		if _, m := sensegatetest.Get(t, adminURL+admin.PathMetrics); !strings.Contains(m, want) {
			t.Errorf("GET /metrics without %s", want)
		}
	}
	logins := logs.FilterLoggerName("audit").FilterField(zap.String("event", proxy.AuditQlikLogin)).All()
	if len(logins) != 1 || logins[0].ContextMap()["user"] != `ACME\bob` {
		t.Errorf("audit logins = %+v, want one for bob", logins)
	}

	cancel() // what start started too
	p.Stop(t)
	// The admin listener outlives the proxy's shutdown, reporting it.
	if code, rep := readyz(); code != 503 || rep.Checks[0].Name != "shutdown" {
		t.Errorf("GET /readyz after shutdown began = %d %+v, want 503 shutdown", code, rep)
	}
	if err := stopAdmin(); err != nil {
		t.Errorf("stopping the admin listener: %v", err)
	}
	if err := s.close(); err != nil {
		t.Errorf("closing: %v", err)
	}
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after shutdown: %v", err)
	}
}

// admin.listen "" runs no admin listener, and a bad one is an error
// naming it; a log level above info still gets the audit log, on a
// logger of its own (gateway's TestObservabilityConfig: audit.enabled).
func TestObservabilityConfig(t *testing.T) {
	m, err := newProcessMetrics("v", "c")
	if err != nil {
		t.Fatal(err)
	}
	stop, addr, err := startAdmin(context.Background(), config.AdminConfig{Listen: ""}, m, nil, nil, admin.ReadinessOptions{}, zap.NewNop())
	if err != nil || addr != nil || stop() != nil {
		t.Errorf("startAdmin with admin.listen \"\" = %v, %v", addr, err)
	}
	if _, _, err := startAdmin(context.Background(), config.AdminConfig{Listen: "127.0.0.1:-1"}, m, nil, nil, admin.ReadinessOptions{}, zap.NewNop()); err == nil || !strings.HasPrefix(err.Error(), "admin.listen: ") {
		t.Errorf("startAdmin on a bad address = %v, want an error naming admin.listen", err)
	}
	cfg := config.Default()
	core, logs := observer.New(zapcore.WarnLevel)
	ilog, err := infoLogger(zap.New(core), cfg.Log)
	if err != nil {
		t.Fatal(err)
	}
	if !ilog.Core().Enabled(zapcore.InfoLevel) {
		t.Errorf("the audit and access logger of a warn-level log is not enabled at info")
	}
	ilog.Info("qlik login", zap.Bool("audit", true))
	if logs.Len() != 0 {
		t.Errorf("audit entries went to the warn-level log: %v", logs.All())
	}
}
