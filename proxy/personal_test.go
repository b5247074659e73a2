package proxy

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/sensegate/sensegate/qliksim"
)

// The Personal API answers a session Qlik forgot with 200
// {"session":"inactive"} (and a loginUri to Qlik's login when asked for
// one), not with a redirect or an error: sensegate must recover it like
// any refused session instead of telling the client its user is signed
// out. Found by TestIsolationUnderLoad.
func TestPersonalAPIRecoversForgottenSession(t *testing.T) {
	tests := []struct {
		name   string
		expire func(*qliksim.Sim)
	}{
		{"restart", func(s *qliksim.Sim) { s.ExpireAll() }},
		{"idle timeout", func(s *qliksim.Sim) { s.ExpireUser(`ACME\alice`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			target := url.QueryEscape(e.front.URL + "/hub/")
			me := func() map[string]string {
				t.Helper()
				resp, body := e.do(t, "GET", "/qps/user?targetUri="+target, "alice")
				var m map[string]string
				if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &m) != nil {
					t.Fatalf("GET /qps/user = %d %q", resp.StatusCode, body)
				}
				return m
			}
			if m := me(); m["userId"] != "alice" {
				t.Fatalf("before expiry: %v", m)
			}
			tt.expire(e.sim)
			if m := me(); m["userId"] != "alice" || m["userDirectory"] != "ACME" || m["session"] != "" || m["loginUri"] != "" {
				t.Errorf("after expiry, GET /qps/user = %v, want alice on a new session", m)
			}
			if c := e.sim.Counts(`ACME\alice`); c.TicketsIssued != 2 || c.LiveSessions != 1 {
				t.Errorf("counts = %+v, want 2 tickets and 1 live session", c)
			}
		})
	}
}
