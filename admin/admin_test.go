package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

// get answers one request of the admin handler.
func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

// readyz returns /readyz's status and report.
func readyz(t *testing.T, h http.Handler) (int, Report) {
	t.Helper()
	rec := get(t, h, PathReadyz)
	var rep Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("GET /readyz: %v in %q", err, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET /readyz Content-Type = %q", ct)
	}
	return rec.Code, rep
}

// qpsClient returns a QPS client of the simulator, as serve makes one.
func qpsClient(t *testing.T, sim *qliksim.Sim) *ticket.Client {
	t.Helper()
	pool, err := sim.Certs().RootPool()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ticket.LoadClientCert(sim.Certs().Client, sim.Certs().ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := url.Parse(sim.ProxyURL())
	qpsURL, _ := url.Parse(sim.QPSURL())
	tc, err := ticket.New(ticket.Config{ProxyURL: proxyURL, QPSURL: qpsURL, SessionCookie: qliksim.DefaultCookieName, RootCAs: pool, ClientCert: cert}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.CloseIdleConnections)
	return tc
}

// Readiness follows QPS: a fault in the simulator makes /readyz 503 once
// the cached result is older than the TTL, and clearing it makes it 200
// again; within the TTL the cached result is served without a QPS call.
func TestReadinessFollowsQPS(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	tc := qpsClient(t, sim)
	broker := session.NewBroker(session.NewMemory(time.Minute, nil), tc, session.BrokerOptions{})
	clock := fakeclock.New()
	const ttl = 5 * time.Second
	var pings atomic.Int64
	qps := Check{Name: "qps", Probe: func(ctx context.Context) error { pings.Add(1); return tc.Ping(ctx) }}
	srv := NewServer(Options{Readiness: NewReadiness([]Check{qps, PingCheck("store", broker)}, ReadinessOptions{CacheTTL: ttl, Now: clock.Now})})

	code, rep := readyz(t, srv)
	if code != http.StatusOK || !rep.Ready {
		t.Fatalf("GET /readyz with QPS up = %d %+v, want 200 and ready", code, rep)
	}
	names := []string{}
	for _, c := range rep.Checks {
		names = append(names, c.Name)
		if !c.OK || c.Error != "" {
			t.Errorf("check %s = %+v, want ok", c.Name, c)
		}
	}
	if diff := cmp.Diff([]string{"qps", "store"}, names); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}

	sim.SetQPSFault(qliksim.Fault5xx)
	if code, _ := readyz(t, srv); code != http.StatusOK {
		t.Errorf("GET /readyz within the TTL = %d, want the cached 200", code)
	}
	if n := pings.Load(); n != 1 {
		t.Errorf("two GET /readyz within the TTL pinged QPS %d times, want 1", n)
	}

	clock.Advance(ttl)
	code, rep = readyz(t, srv)
	if code != http.StatusServiceUnavailable || rep.Ready {
		t.Fatalf("GET /readyz with QPS failing = %d %+v, want 503", code, rep)
	}
	if rep.Checks[0].OK || !strings.Contains(rep.Checks[0].Error, "503") || !rep.Checks[1].OK {
		t.Errorf("checks with QPS failing = %+v, want qps failed with its 503, store ok", rep.Checks)
	}

	sim.SetQPSFault(qliksim.FaultNone)
	if code, _ := readyz(t, srv); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz within the TTL after QPS came back = %d, want the cached 503", code)
	}
	clock.Advance(ttl)
	if code, rep := readyz(t, srv); code != http.StatusOK || !rep.Ready {
		t.Errorf("GET /readyz after QPS came back = %d %+v, want 200", code, rep)
	}
}

// A QPS that does not answer fails readiness within the timeout.
func TestReadinessTimeout(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	tc := qpsClient(t, sim)
	sim.SetQPSFault(qliksim.FaultHang)
	r := NewReadiness([]Check{PingCheck("qps", tc)}, ReadinessOptions{Timeout: 200 * time.Millisecond})
	start := time.Now()
	rep := r.Ready(context.Background())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Ready took %s with a 200ms timeout", took)
	}
	if rep.Ready || rep.Checks[0].OK || rep.Checks[0].Error == "" {
		t.Errorf("Ready with QPS hanging = %+v, want not ready with an error", rep)
	}
	sim.SetQPSFault(qliksim.FaultNone)
}

// Concurrent probes share one round of checks.
func TestReadinessOneRoundAtATime(t *testing.T) {
	var (
		mu      sync.Mutex
		rounds  int
		release = make(chan struct{})
	)
	slow := Check{Name: "slow", Probe: func(ctx context.Context) error {
		mu.Lock()
		rounds++
		mu.Unlock()
		<-release
		return nil
	}}
	r := NewReadiness([]Check{slow}, ReadinessOptions{})
	var wg sync.WaitGroup
	started := make(chan struct{}, 10)
	for range 10 {
		wg.Go(func() {
			started <- struct{}{}
			if rep := r.Ready(context.Background()); !rep.Ready {
				t.Errorf("Ready = %+v, want ready", rep)
			}
		})
	}
	for range 10 {
		<-started
	}
	close(release)
	wg.Wait()
	if rounds != 1 {
		t.Errorf("10 concurrent checks ran %d rounds, want 1", rounds)
	}
}

// A store that cannot be reached fails readiness, and the failure is
// counted as a store error.
func TestReadinessStore(t *testing.T) {
	reg := prometheus.NewRegistry()
	sm, err := session.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	store := &pingStore{Store: session.NewMemory(0, nil), err: errors.New("dial tcp 127.0.0.1:6379: connection refused")}
	broker := session.NewBroker(store, nil, session.BrokerOptions{Metrics: sm})
	srv := NewServer(Options{Gatherer: reg, Readiness: NewReadiness([]Check{PingCheck("store", broker)}, ReadinessOptions{CacheTTL: -1})})
	code, rep := readyz(t, srv)
	if code != http.StatusServiceUnavailable || rep.Checks[0].Error != store.err.Error() {
		t.Errorf("GET /readyz with the store down = %d %+v, want 503 naming the error", code, rep)
	}
	if body := get(t, srv, PathMetrics).Body.String(); !strings.Contains(body, `sensegate_store_errors_total{op="ping"} 1`) {
		t.Errorf("metrics lack the failed ping:\n%s", body)
	}
	store.err = nil
	if code, _ := readyz(t, srv); code != http.StatusOK {
		t.Errorf("GET /readyz with the store back = %d, want 200", code)
	}
}

type pingStore struct {
	session.Store
	err error
}

func (s *pingStore) Ping(context.Context) error { return s.err }

// /healthz is 200 "ok"; a draining process is not ready whatever its
// checks say; /metrics serves the registry with the process and Go
// collectors.
func TestServer(t *testing.T) {
	srv := NewServer(Options{Gatherer: NewRegistry()})
	rec := get(t, srv, PathHealthz)
	if rec.Code != http.StatusOK || rec.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", rec.Code, rec.Body)
	}
	if code, rep := readyz(t, srv); code != http.StatusOK || !rep.Ready || len(rep.Checks) != 0 {
		t.Errorf("GET /readyz without checks = %d %+v, want 200", code, rep)
	}
	srv.Readiness().Drain()
	if code, rep := readyz(t, srv); code != http.StatusServiceUnavailable || rep.Checks[0].Name != "shutdown" {
		t.Errorf("GET /readyz while draining = %d %+v, want 503 naming the shutdown", code, rep)
	}
	body := get(t, srv, PathMetrics).Body.String()
	for _, want := range []string{"process_start_time_seconds", "go_goroutines", "go_gc_duration_seconds"} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %s", want)
		}
	}
	if rec := get(t, NewServer(Options{}), PathMetrics); rec.Code != http.StatusNotFound {
		t.Errorf("GET /metrics without a Gatherer = %d, want 404", rec.Code)
	}
	if rec := get(t, srv, "/debug/pprof/"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ = %d, want 404", rec.Code)
	}
}

// With Profiling, the runtime profiles are served under /debug/pprof/.
func TestServerProfiling(t *testing.T) {
	srv := NewServer(Options{Profiling: true})
	if rec := get(t, srv, PathPprof); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("GET %s = %d, want 200 with the profile index", PathPprof, rec.Code)
	}
	rec := get(t, srv, PathPprof+"heap")
	if rec.Code != http.StatusOK || rec.Body.Len() == 0 || rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("GET %sheap = %d (%d bytes, %q), want 200 with a profile", PathPprof, rec.Code, rec.Body.Len(), rec.Header().Get("Content-Type"))
	}
}

// Run serves until its context ends and leaves nothing running.
func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Options{Gatherer: NewRegistry()})
	p := sensegatetest.StartProc(context.Background(), t, "Run", func(ctx context.Context) error { return srv.Run(ctx, ln) })
	if code, _ := sensegatetest.Get(t, "http://"+ln.Addr().String()+PathHealthz); code != http.StatusOK {
		t.Errorf("GET /healthz = %d", code)
	}
	p.Stop(t)
}

// What readiness pings in serve.
var (
	_ Pinger = (*ticket.Client)(nil)
	_ Pinger = (*session.Broker)(nil)
)
