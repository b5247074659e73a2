package main

import (
	"context"
	"fmt"
	"net"

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
	if cfg.Audit.Enabled {
		alog := log
		if !log.Core().Enabled(zapcore.InfoLevel) {
			if alog, _, err = newServerLogger(config.LogConfig{Level: "info", Format: cfg.Log.Format}); err != nil {
				return nil, fmt.Errorf("audit: %w", err)
			}
		}
		o.audit = proxy.NewAudit(alog.Named("audit"))
	}
	return o, nil
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
// current one, when a reload may replace it): QPS reachable with the
// client certificate, and the session store reachable.
func readinessChecks(cur func() *gateway) []admin.Check {
	return []admin.Check{
		{Name: "qps", Probe: func(ctx context.Context) error { return cur().tickets.Ping(ctx) }},
		{Name: "store", Probe: func(ctx context.Context) error { return cur().broker.Ping(ctx) }},
	}
}

// startAdmin starts the admin listener on ac.Listen (nothing when it is
// ""), serving o's metrics and the readiness of checks. When ctx ends,
// /readyz turns not ready at once (so load balancers stop sending users
// while the proxy drains) but the listener goes on; stop ends it and
// waits, and returns its error.
func startAdmin(ctx context.Context, ac config.AdminConfig, o *observability, checks []admin.Check, log *zap.Logger) (stop func() error, err error) {
	if ac.Listen == "" {
		return func() error { return nil }, nil
	}
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	return runAdmin(ctx, ln, o, checks, admin.ReadinessOptions{}, ac.Pprof, log), nil
}

// runAdmin is startAdmin on a listener the caller opened, with readiness
// options (tests shorten the cache), serving the runtime profiles when
// profiling.
func runAdmin(ctx context.Context, ln net.Listener, o *observability, checks []admin.Check, ro admin.ReadinessOptions, profiling bool, log *zap.Logger) (stop func() error) {
	ready := admin.NewReadiness(checks, ro)
	srv := admin.NewServer(admin.Options{Gatherer: o.registry, Readiness: ready, Logger: log.Named("admin"), Profiling: profiling})
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
