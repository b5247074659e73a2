package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Issue 16: one failed login was five log lines (each attempt of the
// ticket client, the broker, the proxy's answer, the audit entry). It is
// one line at warn or above, the proxy's answer, which has the request id,
// the user and the cause; the audit entry is apart (logger audit).
func TestFailedLoginIsOneLogLine(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg, err := config.Load(sensegatetest.WriteConfig(t, sim, ""))
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	addr := runServer(t, cfg, zap.New(core), nil)
	if err := sim.SetQPSFault(qliksim.Fault5xx); err != nil {
		t.Fatal(err)
	}
	if code, _ := sensegatetest.Get(t, "http://"+addr+"/qrs/about", config.DefaultHeaderName, `ACME\alice`); code != http.StatusServiceUnavailable {
		t.Fatalf("GET with QPS failing = %d, want 503", code)
	}
	var lines []observer.LoggedEntry
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel && !strings.HasSuffix(e.LoggerName, "audit") {
			lines = append(lines, e)
		}
	}
	if len(lines) != 1 {
		for _, e := range lines {
			t.Logf("%s %s: %s %v", e.Level, e.LoggerName, e.Message, e.ContextMap())
		}
		t.Fatalf("a failed login logged %d lines at warn or above, want 1", len(lines))
	}
	m := lines[0].ContextMap()
	if m["user"] != `ACME\alice` || m["request_id"] == "" || !strings.Contains(m["error"].(string), "503") || !strings.Contains(m["error"].(string), "after 3 attempts") {
		t.Errorf("the line = %s %v, want the user, the request id and the cause (QPS's 503, after 3 attempts)", lines[0].Message, m)
	}
}
