package main

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/admin"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/proxy"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// observability is what a serving process keeps for its whole life,
// across the gateways it builds: the metrics registry with the metrics
// registered on it once, and the audit logger.
type observability struct {
	registry *prometheus.Registry
	proxy    *proxy.Metrics
	session  *session.Metrics
	audit    *proxy.Audit // nil when audit.enabled is false
	// access is the access logger, at info level whatever log.level
	// says; a gateway uses it when its log.access is true.
	access *zap.Logger
	// qpsUp is sensegate_qps_up{node}; reloads and reloadTime count
	// configuration reloads.
	qpsUp                  *prometheus.GaugeVec
	reloadOK, reloadFailed prometheus.Counter
	reloadTime             prometheus.Gauge
}

// newObservability builds the registry and metrics, and the audit logger
// when cfg.Audit.Enabled. Audit entries are written at Info level whatever
// log.level says: with a higher level they go to a logger of their own
// (same format, standard error).
func newObservability(cfg *config.Config, log *zap.Logger) (*observability, error) {
	o := &observability{registry: admin.NewRegistry()}
	var err error
	if o.proxy, err = proxy.NewMetrics(o.registry); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if o.session, err = session.NewMetrics(o.registry); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := o.registerOwn(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	// Audit and access entries are written at info level whatever
	// log.level says.
	ilog := log
	if !log.Core().Enabled(zapcore.InfoLevel) {
		if ilog, _, err = newServerLogger(config.LogConfig{Level: "info", Format: cfg.Log.Format}); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	if cfg.Audit.Enabled {
		o.audit = proxy.NewAudit(ilog.Named("audit"))
	}
	o.access = ilog.Named("access")
	return o, nil
}

// registerOwn registers the metrics of the process itself: build info,
// QPS reachability and configuration reloads.
func (o *observability) registerOwn() error {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sensegate_build_info",
		Help: "Always 1: the version, commit and Go version sensegate was built from.",
	}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(version, commit, runtime.Version()).Set(1)
	o.qpsUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sensegate_qps_up",
		Help: "Whether QPS answered the last background check with the client certificate (1) or not (0), by node (the Qlik proxy host). It does not affect readiness.",
	}, []string{"node"})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_config_reloads_total",
		Help: "Configuration reloads (SIGHUP or a changed file) by result: success, or failure (the running configuration stayed in force).",
	}, []string{"result"})
	o.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "sensegate_config_last_reload_success_timestamp_seconds",
		Help: "When the configuration was last loaded successfully (at start, or by a reload), in Unix seconds.",
	})
	for _, c := range []prometheus.Collector{build, o.qpsUp, reloads, o.reloadTime} {
		if err := o.registry.Register(c); err != nil {
			return err
		}
	}
	o.reloadOK = reloads.WithLabelValues("success")
	o.reloadFailed = reloads.WithLabelValues("failure")
	o.reloadTime.SetToCurrentTime()
	return nil
}

// reloaded counts a configuration reload that ended with err (nil o:
// nothing).
func (o *observability) reloaded(err error) {
	switch {
	case o == nil:
	case err != nil:
		o.reloadFailed.Inc()
	default:
		o.reloadOK.Inc()
		o.reloadTime.SetToCurrentTime()
	}
}

// qpsRound sets sensegate_qps_up from a round of QPS checks, dropping the
// nodes a reload removed.
func (o *observability) qpsRound(res []admin.CheckStatus) {
	if o == nil {
		return
	}
	o.qpsUp.Reset()
	for _, r := range res {
		v := 0.0
		if r.Up {
			v = 1
		}
		o.qpsUp.WithLabelValues(r.Name).Set(v)
	}
}

// accessLog returns the access logger of a gateway with lc (nil: none).
func (o *observability) accessLog(lc config.LogConfig) *zap.Logger {
	if o == nil || !lc.Access {
		return nil
	}
	return o.access
}

// brokerOptions adds o's metrics and audit hook to opts (nil o: none).
func (o *observability) brokerOptions(opts session.BrokerOptions) session.BrokerOptions {
	if o == nil {
		return opts
	}
	opts.Metrics = o.session
	if o.audit != nil {
		opts.OnLogin = o.audit.Login
	}
	return opts
}

// proxyOptions adds o's metrics and audit log to opts (nil o: none).
func (o *observability) proxyOptions(opts proxy.Options) proxy.Options {
	if o == nil {
		return opts
	}
	opts.Metrics, opts.Audit = o.proxy, o.audit
	return opts
}

// readinessChecks are /readyz's checks of the gateway cur returns (the
// current one, when a reload may replace it): the session store
// reachable. QPS is not one: when it is down users with a session keep
// working, and every replica turning unready at once would stop them too
// (see qpsChecks).
func readinessChecks(cur func() *gateway) []admin.Check {
	return []admin.Check{
		{Name: "store", Probe: func(ctx context.Context) error { return cur().broker.Ping(ctx) }},
	}
}

// qpsChecks returns the checks of QPS on each node of the gateway cur
// returns, named by node, for the QPS monitor (/healthz and
// sensegate_qps_up).
func qpsChecks(cur func() *gateway) func() []admin.Check {
	return func() []admin.Check {
		g := cur()
		checks := make([]admin.Check, 0, len(g.nodes))
		for _, n := range g.nodes {
			checks = append(checks, admin.PingCheck(n.ID, n.Client))
		}
		return checks
	}
}

// newQPSMonitor returns the background monitor of QPS on each node of
// the gateway cur returns, which sets sensegate_qps_up in o.
func newQPSMonitor(cur func() *gateway, o *observability, mo admin.MonitorOptions) *admin.Monitor {
	mo.OnRound = o.qpsRound
	return admin.NewMonitor("qps", qpsChecks(cur), mo)
}

// startAdmin starts the admin listener on ac.Listen (nothing when it is
// ""), serving o's metrics and the readiness of checks. When ctx ends,
// /readyz turns not ready at once (so load balancers stop sending users
// while the proxy drains) but the listener goes on; stop ends it and
// waits, and returns its error.
func startAdmin(ctx context.Context, ac config.AdminConfig, o *observability, checks []admin.Check, health *admin.Monitor, log *zap.Logger) (stop func() error, err error) {
	if ac.Listen == "" {
		return func() error { return nil }, nil
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	return runAdmin(ctx, ln, o, checks, health, admin.ReadinessOptions{}, ac.Pprof, log), nil
}

// runAdmin is startAdmin on a listener the caller opened, with readiness
// options (tests shorten the cache), serving the runtime profiles when
// profiling.
func runAdmin(ctx context.Context, ln net.Listener, o *observability, checks []admin.Check, health *admin.Monitor, ro admin.ReadinessOptions, profiling bool, log *zap.Logger) (stop func() error) {
	ready := admin.NewReadiness(checks, ro)
	srv := admin.NewServer(admin.Options{Gatherer: o.registry, Readiness: ready, Health: health, Logger: log.Named("admin"), Profiling: profiling})
	paths := []string{admin.PathMetrics, admin.PathHealthz, admin.PathReadyz}
	if profiling {
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
	}
}
