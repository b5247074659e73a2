package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap/zaptest"
)

// qlik.qps.retries bounds the ticket requests of one failed login at
// 1 + retries: the value reaches the QPS client as it is. (What 0 means
// is ticket.Config.Retries', which qlik.qps.retries shares.)
func TestQPSRetriesBoundTicketRequests(t *testing.T) {
	tests := []struct {
		retries string
		want    int // ticket requests
	}{
		{"0", 1},
		{"1", 2},
	}
	for _, tt := range tests {
		t.Run("retries "+tt.retries, func(t *testing.T) {
			sim := sensegatetest.StartSim(t)
			t.Setenv("SENSEGATE_QLIK_QPS_RETRIES", tt.retries)
			addr := serveGateway(t, loadConfig(t, sensegatetest.WriteConfig(t, sim, "")), zaptest.NewLogger(t))
			sim.SetQPSFault(qliksim.Fault5xx)
			if code := sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice"); code != http.StatusServiceUnavailable {
				t.Errorf("GET /hub/ with QPS failing = %d, want 503", code)
			}
			n := 0
			for _, e := range sim.Events(0) {
				if e.Kind == "qps" && strings.HasSuffix(e.Path, "/ticket") {
					n++
				}
			}
			if n != tt.want {
				t.Errorf("ticket requests with qlik.qps.retries %s = %d, want %d", tt.retries, n, tt.want)
			}
		})
	}
}
