package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/sensegate/sensegate/tooling/qliksim"
)

// The Personal API answers a session Qlik forgot with 200
// {"session":"inactive"} (and a loginUri to Qlik's login when asked for
// one), not with a redirect or an error: sensegate must recover it like
// any refused session instead of telling the client its user is signed
// out. Found by TestIsolationUnderLoad.
func TestPersonalAPIRecoversForgottenSession(t *testing.T) {
	restart := func(s *qliksim.Sim) { s.ExpireAll() }
	timeout := func(s *qliksim.Sim) { s.ExpireUser(`ACME\alice`) }
	tests := []struct {
		name   string
		prefix string // the virtual proxy's
		path   string // what the client asks for
		expire func(*qliksim.Sim)
	}{
		{"restart", "", "/qps/user", restart},
		{"idle timeout", "", "/qps/user", timeout},
		{"restart, virtual proxy", "ticket", "/qps/user", restart},
		{"idle timeout, virtual proxy in the path", "ticket", "/ticket/qps/user", timeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(_ *qliksim.Config, o *Options) {
				if tt.prefix != "" {
					o.Prefix, o.CookieName = tt.prefix, qliksim.DefaultCookieName+"-"+tt.prefix
				}
			})
			target := url.QueryEscape(e.front.URL + "/hub/")
			me := func() map[string]string {
				t.Helper()
				resp, body := e.do(t, "GET", tt.path+"?targetUri="+target, "alice")
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

func TestIsInactiveSession(t *testing.T) {
	plain := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name string
		hdr  http.Header
		body string
		want bool
	}{
		{"inactive", plain, `{"session":"inactive"}`, true},
		{"inactive with a login URI first", plain, `{"loginUri":"https://qlik/internal_forms_authentication/?targetId=x","session":"inactive"}`, true},
		{"signed in", plain, `{"userDirectory":"ACME","userId":"alice","userName":"Alice","logoutUri":"https://qlik/qps/user"}`, false},
		{"anonymous", plain, `{"userDirectory":"NONE","userId":"anonymous0f0a","logoutUri":"https://qlik/qps/user"}`, false},
		{"a user and a session member", plain, `{"userId":"alice","session":"inactive"}`, false},
		{"compressed", http.Header{"Content-Encoding": {"gzip"}}, `{"session":"inactive"}`, false},
		{"not JSON", plain, `session inactive`, false},
		{"cut short", plain, `{"session":"inac`, false},
	}
	for _, tt := range tests {
		if got := isInactiveSession(tt.hdr, []byte(tt.body)); got != tt.want {
			t.Errorf("%s: isInactiveSession(%q) = %v, want %v", tt.name, tt.body, got, tt.want)
		}
	}
}
