package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"go.uber.org/zap/zaptest"
)

// qlik.qps.retries bounds the ticket requests of one failed login at
// 1 + retries: the value reaches the QPS client as it is. (What 0 means
// is ticket.Config.Retries', which qlik.qps.retries shares.)
func TestQPSRetriesBoundTicketRequests(t *testing.T) {
	for _, tt := range []struct {
		retries string
		want    int
	}{{"0", 1}, {"1", 2}} {
		t.Run("retries "+tt.retries, func(t *testing.T) {
			sim := startSim(t)
			t.Setenv("SENSEGATE_QLIK_QPS_RETRIES", tt.retries)
			cfg, err := config.Load(writeSimConfig(t, sim, ""))
			if err != nil {
				t.Fatal(err)
			}
			addr := serveGateway(t, cfg, zaptest.NewLogger(t))
			sim.SetQPSFault(qliksim.Fault5xx)
			req, _ := http.NewRequest("GET", "http://"+addr+"/hub/", nil)
			req.Header.Set("X-Forwarded-User", "alice")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("GET /hub/ with QPS failing = %d, want 503", resp.StatusCode)
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
