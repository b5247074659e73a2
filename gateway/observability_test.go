package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// audit.enabled false gives no audit log; true writes the audit entries to
// the logger given. log.access picks the access logger per gateway. The
// metrics are registered once: a second Observability on one registry
// is refused.
func TestObservabilityConfig(t *testing.T) {
	cfg := config.Default()
	cfg.Audit.Enabled = false
	o, err := NewObservability(prometheus.NewRegistry(), cfg, zap.NewNop())
	if err != nil || o.audit != nil {
		t.Errorf("NewObservability with audit.enabled false: audit %v, %v", o.audit, err)
	}
	cfg.Audit.Enabled = true
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	o, err = NewObservability(reg, cfg, zap.New(core))
	if err != nil || o.audit == nil {
		t.Fatalf("NewObservability with audit.enabled: audit %v, %v", o.audit, err)
	}
	o.audit.Login(context.Background(), identity.User{Directory: "ACME", ID: "alice"}, session.Entry{Created: time.Now()}, nil)
	if n := logs.FilterLoggerName("audit").Len(); n != 1 {
		t.Errorf("audit entries on logger audit = %d, want 1: %v", n, logs.All())
	}
	if o.accessLog(config.LogConfig{Access: false}) != nil || o.accessLog(config.LogConfig{Access: true}) == nil {
		t.Error("the access logger does not follow log.access")
	}
	if (*Observability)(nil).accessLog(config.LogConfig{Access: true}) != nil {
		t.Error("a nil Observability has an access logger")
	}
	if _, err := NewObservability(reg, cfg, zap.NewNop()); err == nil {
		t.Error("a second Observability on one registry was made, want the duplicate metrics refused")
	}
}
