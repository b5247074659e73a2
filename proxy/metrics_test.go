package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/admin"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// observedEnv is env with metrics on a registry of its own, served by the
// admin handler, and the audit log captured.
type observedEnv struct {
	*env
	admin http.Handler
	audit *observer.ObservedLogs

	mu      sync.Mutex
	cookies []string // every Qlik session cookie the broker got
}

func newObservedEnv(t *testing.T, opts ...envOption) *observedEnv {
	t.Helper()
	reg := admin.NewRegistry()
	pm, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := session.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	audit := NewAudit(zap.New(core).Named("audit"))
	opts = append(opts, func(_ *qliksim.Config, o *Options) { o.Metrics, o.Audit = pm, audit })
	oe := &observedEnv{audit: logs, admin: admin.NewServer(admin.Options{Gatherer: reg})}
	oe.env = newEnvWith(t, envConfig{broker: session.BrokerOptions{
		Metrics: sm,
		OnLogin: func(ctx context.Context, u identity.User, e session.Entry, err error) {
			oe.mu.Lock()
			oe.cookies = append(oe.cookies, e.Cookie)
			oe.mu.Unlock()
			audit.Login(ctx, u, e, err)
		},
	}}, opts...)
	return oe
}

// scrape reads /metrics from the admin handler: series (name and labels,
// as exposed) to value.
func (oe *observedEnv) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	oe.admin.ServeHTTP(rec, httptest.NewRequest("GET", admin.PathMetrics, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", rec.Code, rec.Body)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// metric returns one series of a scrape; absent series are 0.
func (oe *observedEnv) metric(t *testing.T, series string) float64 {
	t.Helper()
	return oe.scrape(t)[series]
}

// want checks series values in scrapes until they all hold or time runs
// out: a request is counted when its handler returns, which may be just
// after the client read the answer.
func (oe *observedEnv) want(t *testing.T, want map[string]float64) map[string]float64 {
	t.Helper()
	var m map[string]float64
	holds := func() bool {
		m = oe.scrape(t)
		for series, v := range want {
			if m[series] != v {
				return false
			}
		}
		return true
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
poll:
	for !holds() {
		select {
		case <-tick.C:
		case <-deadline:
			break poll
		}
	}
	for series, v := range want {
		if m[series] != v {
			t.Errorf("%s = %v, want %v", series, m[series], v)
		}
	}
	return m
}

const (
	seriesIssued      = `sensegate_tickets_total{result="issued"}`
	seriesFailed      = `sensegate_tickets_total{result="failed"}`
	seriesHit         = `sensegate_jar_lookups_total{result="hit"}`
	seriesMiss        = `sensegate_jar_lookups_total{result="miss"}`
	seriesWSOpen      = `sensegate_websockets_open`
	seriesToQlik      = `sensegate_websocket_bytes_total{direction="client_to_qlik"}`
	seriesToClient    = `sensegate_websocket_bytes_total{direction="qlik_to_client"}`
	seriesReauthHTTP  = `sensegate_reauth_total{kind="http"}`
	seriesReauthWS    = `sensegate_reauth_total{kind="websocket"}`
	seriesQlikLatency = `sensegate_upstream_duration_seconds_count{upstream="qlik"}`
)

func seriesRequests(route string, code int) string {
	return fmt.Sprintf(`sensegate_http_requests_total{code="%d",route="%s"}`, code, route)
}

// The metrics follow what sensegate does in front of the simulator: one
// ticket per user, jar hits for the requests after, requests by route and
// code, upstream latency, websockets opened and closed with their bytes,
// and re-authentications after Qlik forgot every session.
func TestMetricsFollowTheSystem(t *testing.T) {
	e := newObservedEnv(t)
	users := []string{"alice", "bob", "carol"}
	for range 2 {
		for _, u := range users {
			if resp := e.qrs(t, "/qrs/about", u, nil); resp.StatusCode != 200 {
				t.Fatalf("GET /qrs/about as %s = %d", u, resp.StatusCode)
			}
		}
	}
	m := e.want(t, map[string]float64{
		seriesIssued:                float64(len(users)),
		seriesFailed:                0,
		seriesMiss:                  float64(len(users)),
		seriesHit:                   float64(len(users)),
		seriesRequests("qlik", 200): 6,
		seriesQlikLatency:           6,
		seriesWSOpen:                0,
		seriesReauthHTTP:            0,
	})
	if m[`process_start_time_seconds`] == 0 || m[`go_goroutines`] == 0 {
		t.Errorf("process and Go collectors missing: process_start_time_seconds %v, go_goroutines %v", m[`process_start_time_seconds`], m[`go_goroutines`])
	}

	// Other routes: sensegate's own endpoints, nothing, no login.
	if resp, _ := e.do(t, "GET", "/.sensegate/me", "alice"); resp.StatusCode != 200 {
		t.Fatalf("GET /.sensegate/me = %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/nowhere", "alice"); resp.StatusCode != 404 {
		t.Fatalf("GET /nowhere = %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/qrs/about", ""); resp.StatusCode != 401 {
		t.Fatalf("GET /qrs/about without a user = %d", resp.StatusCode)
	}
	e.want(t, map[string]float64{
		seriesRequests("sensegate", 200): 1,
		seriesRequests("none", 404):      1,
		seriesRequests("qlik", 401):      1,
		seriesRequests("qlik", 200):      6,
	})

	// A websocket: open while relayed, bytes both ways, closed after.
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The relay registers the pair after the upgrade, before it sends
	// the first message: once an answer came, the socket is counted.
	if ans, _ := call(t, c, 1, "GetAuthenticatedUser", -1, ""); ans.Error != nil {
		t.Fatalf("GetAuthenticatedUser: %+v", ans.Error)
	}
	if got := e.metric(t, seriesWSOpen); got != 1 {
		t.Errorf("%s with a socket open = %v, want 1", seriesWSOpen, got)
	}
	m = e.scrape(t)
	if m[seriesToQlik] <= 0 || m[seriesToClient] <= 0 {
		t.Errorf("bytes relayed: to Qlik %v, to client %v; want both > 0", m[seriesToQlik], m[seriesToClient])
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.Close()
	e.want(t, map[string]float64{seriesWSOpen: 0, seriesRequests("qlik", 101): 1})

	// Qlik restarts: the next request logs in again and is replayed.
	e.sim.ExpireAll()
	if resp := e.qrs(t, "/qrs/about", "alice", nil); resp.StatusCode != 200 {
		t.Fatalf("GET /qrs/about after ExpireAll = %d", resp.StatusCode)
	}
	e.want(t, map[string]float64{seriesReauthHTTP: 1, seriesIssued: float64(len(users)) + 1})
	// A websocket on a forgotten session is re-dialled.
	c, _, err = e.dialEngine(t, "/app/engineData", "bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	e.want(t, map[string]float64{seriesReauthWS: 1, seriesReauthHTTP: 1})
}

// A failed login counts as failed, and the request that needed it as a
// 5xx of the qlik route.
func TestMetricsTicketFailure(t *testing.T) {
	e := newObservedEnv(t)
	e.sim.SetQPSFault(qliksim.Fault5xx)
	resp := e.qrs(t, "/qrs/about", "alice", nil)
	if resp.StatusCode < 500 {
		t.Fatalf("GET /qrs/about with QPS down = %d, want 5xx", resp.StatusCode)
	}
	e.want(t, map[string]float64{seriesFailed: 1, seriesIssued: 0, seriesRequests("qlik", resp.StatusCode): 1})
	failed := e.audit.FilterField(zap.String("event", AuditQlikLoginFailed)).All()
	if len(failed) != 1 || fieldString(failed[0], "user") != `ACME\alice` {
		t.Errorf("audit %s entries = %+v, want one for alice", AuditQlikLoginFailed, failed)
	}
}

// A route's requests and upstream latency carry its path; its
// transport still closes idle connections through the timing wrapper.
func TestMetricsRoute(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/mashup/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("mashup"))
	}))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	e := newObservedEnv(t, func(_ *qliksim.Config, o *Options) {
		o.Routes = []Route{{Path: "/mashup/", Upstream: upURL}}
	})
	for _, p := range []string{"/mashup/index.html", "/mashup/app.js", "/mashup/missing"} {
		e.do(t, "GET", p, "alice")
	}
	e.want(t, map[string]float64{
		seriesRequests("/mashup/", 200):                                  2,
		seriesRequests("/mashup/", 404):                                  1,
		`sensegate_upstream_duration_seconds_count{upstream="/mashup/"}`: 3,
		seriesRequests("qlik", 200):                                      0,
	})
	if _, ok := e.h.routes[0].rp.Transport.(interface{ CloseIdleConnections() }); !ok {
		t.Error("the timed route transport hides CloseIdleConnections")
	}
	e.h.CloseIdleConnections()
}

// A handler without metrics answers as before: the recorder is not in the
// way (no Metrics, no wrapping).
func TestNoMetrics(t *testing.T) {
	e := newEnv(t)
	if resp := e.qrs(t, "/qrs/about", "alice", nil); resp.StatusCode != 200 {
		t.Fatalf("GET /qrs/about = %d", resp.StatusCode)
	}
	if e.h.metrics != nil || e.h.mQlik.requests != nil {
		t.Errorf("Handler without Options.Metrics keeps metrics")
	}
}

// Metrics made once serve the handlers of successive configurations (a
// reload) without registering twice.
func TestMetricsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Errorf("NewMetrics twice on one registry = nil error, want a duplicate registration error")
	}
	for i := range 2 {
		e := newEnv(t, func(_ *qliksim.Config, o *Options) { o.Metrics = m })
		if resp := e.qrs(t, "/qrs/about", "alice", nil); resp.StatusCode != 200 {
			t.Fatalf("handler %d: GET /qrs/about = %d", i, resp.StatusCode)
		}
	}
	srv := admin.NewServer(admin.Options{Gatherer: reg})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", admin.PathMetrics, nil))
	if want := seriesRequests("qlik", 200) + " 2"; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics of two handlers lack %q:\n%s", want, rec.Body)
	}
}

// statusRecorder records the final status, and 101 when hijacked.
func TestStatusRecorder(t *testing.T) {
	tests := []struct {
		name string
		do   func(w http.ResponseWriter)
		want int
	}{
		{"nothing written", func(http.ResponseWriter) {}, 200},
		{"body only", func(w http.ResponseWriter) { w.Write([]byte("x")) }, 200},
		{"status", func(w http.ResponseWriter) { w.WriteHeader(404) }, 404},
		{"interim then final", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(502) }, 502},
		{"flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 200},
		{"second status ignored", func(w http.ResponseWriter) { w.WriteHeader(201); w.WriteHeader(500) }, 201},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &statusRecorder{ResponseWriter: httptest.NewRecorder()}
			tc.do(rec)
			if got := rec.code(); got != tc.want {
				t.Errorf("code() = %d, want %d", got, tc.want)
			}
		})
	}
}

// The per-request cost of the metrics: counting a request by code (no
// allocation), and a round trip timed against the same one untimed.
func BenchmarkRequestMetrics(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	rm := m.forRoute(routeQlik, true)
	b.Run("count", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rm.request(http.StatusOK)
		}
	})
	stub := &stubTransport{contentLength: "0"}
	req := httptest.NewRequest("GET", "http://qlik.example/qrs/about", nil)
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"untimed", stub}, {"timed", rm.transport(stub)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tc.rt.RoundTrip(req)
			}
		})
	}
}
