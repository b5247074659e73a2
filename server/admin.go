package server

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/admin"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/gateway"
	"go.uber.org/zap"
)

// processMetrics are the metrics registry of the process and the metrics
// of the process itself: build information, QPS reachability and
// configuration reloads. The gateways' are gateway.Observability's, on
// the same registry.
type processMetrics struct {
	registry *prometheus.Registry
	// qpsUp is sensegate_qps_up{node}; reloadOK, reloadFailed and
	// reloadTime count configuration reloads.
	qpsUp                  *prometheus.GaugeVec
	reloadOK, reloadFailed prometheus.Counter
	reloadTime             prometheus.Gauge
}

// newProcessMetrics makes the registry and registers the process's
// metrics on it, sensegate_build_info labelled with version and commit.
func newProcessMetrics(version, commit string) (*processMetrics, error) {
	m := &processMetrics{registry: admin.NewRegistry()}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sensegate_build_info",
		Help: "Always 1: the version, commit and Go version sensegate was built from.",
	}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(version, commit, runtime.Version()).Set(1)
	m.qpsUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sensegate_qps_up",
		Help: "Whether QPS answered the last background check with the client certificate (1) or not (0), by node (the Qlik proxy host). It does not affect readiness.",
	}, []string{"node"})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_config_reloads_total",
		Help: "Configuration reloads (SIGHUP or a changed file) by result: success, or failure (the running configuration stayed in force).",
	}, []string{"result"})
	m.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sensegate_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration was last loaded successfully (at start, or by a reload), in Unix seconds.",
	})
	for _, c := range []prometheus.Collector{build, m.qpsUp, reloads, m.reloadTime} {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	m.reloadOK = reloads.WithLabelValues("success")
	m.reloadFailed = reloads.WithLabelValues("failure")
	m.reloadTime.SetToCurrentTime()
	return m, nil
}

// reloaded counts a configuration reload that ended with err (nil m:
// nothing).
func (m *processMetrics) reloaded(err error) {
	switch {
	case m == nil:
	case err != nil:
		m.reloadFailed.Inc()
	default:
		m.reloadOK.Inc()
		m.reloadTime.SetToCurrentTime()
	}
}

// qpsRound sets sensegate_qps_up from a round of QPS checks, dropping the
// nodes a reload removed.
func (m *processMetrics) qpsRound(res []admin.CheckStatus) {
	if m == nil {
		return
	}
	m.qpsUp.Reset()
	for _, r := range res {
		v := 0.0
		if r.Up {
			v = 1
		}
		m.qpsUp.WithLabelValues(r.Name).Set(v)
	}
}

// readinessChecks are /readyz's checks of the gateway cur returns (the
// current one, when a reload may replace it): the session store
// reachable. QPS is not one: when it is down users with a session keep
// working, and every replica turning unready at once would stop them too
// (see qpsChecks).
func readinessChecks(cur func() *gateway.Gateway) []admin.Check {
	return []admin.Check{
		{Name: "store", Probe: func(ctx context.Context) error { return cur().PingStore(ctx) }},
	}
}

// qpsChecks returns the checks of QPS on each node of the gateway cur
// returns, named by node, for the QPS monitor (/healthz and
// sensegate_qps_up).
func qpsChecks(cur func() *gateway.Gateway) func() []admin.Check {
	return func() []admin.Check {
		nodes := cur().Nodes()
		checks := make([]admin.Check, 0, len(nodes))
		for _, n := range nodes {
			checks = append(checks, admin.PingCheck(n.ID, n.Client))
		}
		return checks
	}
}

// newQPSMonitor returns the background monitor of QPS on each node of
// the gateway cur returns, which sets sensegate_qps_up in m.
func newQPSMonitor(cur func() *gateway.Gateway, m *processMetrics, mo admin.MonitorOptions) *admin.Monitor {
	mo.OnRound = m.qpsRound
	return admin.NewMonitor("qps", qpsChecks(cur), mo)
}

// startAdmin starts the admin listener on ac.Listen (nothing when it is
// ""), serving m's metrics, health (the QPS monitor) and the readiness of
// checks, and the runtime profiles with ac.Pprof. When ctx ends, /readyz
// turns not ready at once but the listener goes on; stop ends it and
// waits, and returns its error. addr is the listener's address (nil
// without one).
func startAdmin(ctx context.Context, ac config.AdminConfig, m *processMetrics, checks []admin.Check, health *admin.Monitor, ro admin.ReadinessOptions, log *zap.Logger) (stop func() error, addr net.Addr, err error) {
	if ac.Listen == "" {
		return func() error { return nil }, nil, nil
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("admin.listen: %w", err)
	}
	ready := admin.NewReadiness(checks, ro)
	srv := admin.NewServer(admin.Options{Gatherer: m.registry, Readiness: ready, Health: health, Logger: log.Named("admin"), Profiling: ac.Pprof})
	paths := []string{admin.PathMetrics, admin.PathHealthz, admin.PathReadyz}
	if ac.Pprof {
		paths = append(paths, admin.PathPprof)
	}
	log.Info("admin listening", zap.String("addr", ln.Addr().String()), zap.Strings("paths", paths))
	stopDrain := context.AfterFunc(ctx, ready.Drain)
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Run(actx, ln) }()
	return func() error {
		stopDrain()
		cancel()
		return <-done
	}, ln.Addr(), nil
}
