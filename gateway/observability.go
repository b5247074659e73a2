package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/proxy"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// Observability is what the gateways of one process record into, across
// reloads: the proxy's and the broker's metrics, registered once, the
// audit log and the access logger. The process's own metrics (build
// information, QPS reachability, reloads) are its server's.
type Observability struct {
	proxy   *proxy.Metrics
	session *session.Metrics
	audit   *proxy.Audit // nil when audit.enabled is false
	// access is the access logger; a gateway uses it when its log.access
	// is true.
	access *zap.Logger
}

// NewObservability registers the gateways' metrics on reg, and makes the
// audit log (when cfg.Audit.Enabled) and the access logger, which write
// to log at info level: give a logger enabled at info whatever log.level
// says (the server does).
func NewObservability(reg prometheus.Registerer, cfg *config.Config, log *zap.Logger) (*Observability, error) {
	o := &Observability{access: log.Named("access")}
	var err error
	if o.proxy, err = proxy.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if o.session, err = session.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if cfg.Audit.Enabled {
		o.audit = proxy.NewAudit(log.Named("audit"))
	}
	return o, nil
}

// accessLog returns the access logger of a gateway with lc (nil: none).
func (o *Observability) accessLog(lc config.LogConfig) *zap.Logger {
	if o == nil || !lc.Access {
		return nil
	}
	return o.access
}

// brokerOptions adds o's metrics and audit hook to opts (nil o: none).
func (o *Observability) brokerOptions(opts session.BrokerOptions) session.BrokerOptions {
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
func (o *Observability) proxyOptions(opts proxy.Options) proxy.Options {
	if o == nil {
		return opts
	}
	opts.Metrics, opts.Audit = o.proxy, o.audit
	return opts
}
