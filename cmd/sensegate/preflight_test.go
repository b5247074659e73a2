package main

import (
	"strings"
	"testing"

	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
)

// check --connect --as against the simulator: a login that works prints
// each step; a wrong cookie name, an Origin whose host is not on the host
// allow list and a wrong prefix each fail at their step with their fix;
// whatever happened, the simulator holds no session afterwards.
func TestCheckConnectAs(t *testing.T) {
	tests := []struct {
		name    string
		csrf    bool   // the simulator's virtual proxies protect websockets
		extra   string // appended to the qlik: section
		wantOut []string
		wantErr []string
	}{
		{
			name: "ok",
			wantOut: []string{
				`ok  qps https://`,
				`ok  ticket: QPS issued a ticket for ACME\alice`,
				`ok  redeem: https://localhost:`,
				`set the session cookie "X-Qlik-Session"`,
				`ok  csrftoken: Qlik has no websocket CSRF protection (404): none needed`,
				`ok  websocket wss://localhost:`,
				`/app/engineData: Qlik accepted the upgrade with Origin https://localhost:`,
				`ok  engine: OnAuthenticationInformation as ACME\alice`,
				`ok  engine: OnConnected (SESSION_CREATED)`,
				`ok  engine: EngineVersion answered`,
				`ok  end session: the preflight's Qlik session was ended at QPS`,
				`login OK: ACME\alice can use Qlik through sensegate`,
			},
		},
		{
			name: "ok with websocket CSRF",
			csrf: true,
			wantOut: []string{
				`ok  csrftoken: Qlik protects websockets with a CSRF token`,
				`ok  engine: OnAuthenticationInformation as ACME\alice`,
				`ok  end session`,
			},
		},
		{
			name:    "wrong session cookie name",
			extra:   "  session_cookie: X-Other-Session\n",
			wantOut: []string{`ok  ticket: QPS issued a ticket`},
			wantErr: []string{`redeem: `, `expected session cookie "X-Other-Session" but the Qlik proxy set "X-Qlik-Session"`, `configure "X-Qlik-Session"`},
		},
		{
			name:    "host allow list without qlik.origin's host",
			extra:   "  origin: https://portal.example.com\n",
			wantOut: []string{`ok  redeem: `, `ok  end session`},
			wantErr: []string{`Qlik refused the upgrade with 403 for Origin https://portal.example.com`, `add "portal.example.com" to the host allow list`},
		},
		{
			name:    "host allow list without qlik.origin's host, websocket CSRF",
			csrf:    true,
			extra:   "  origin: https://portal.example.com\n",
			wantOut: []string{`ok  redeem: `, `ok  end session`},
			wantErr: []string{`csrftoken: `, `"portal.example.com" is probably not on the host allow list`},
		},
		{
			name:    "wrong prefix",
			extra:   "  prefix: nosuch\n",
			wantErr: []string{`qps: `, `"nosuch"`, `set qlik.prefix to the prefix of a virtual proxy`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearSensegateEnv(t)
			sim := qliksimtest.Start(t, func(c *qliksim.Config) {
				for i := range c.VirtualProxies {
					c.VirtualProxies[i].WebsocketCSRF = tc.csrf
				}
			}, qliksim.Options{})
			f := sensegatetest.WriteConfigWith(t, sim, "http://localhost:8080", tc.extra+sensegatetest.HeaderIdentity)
			out, _, err := runCheck(t, "check", "--config", f, "--connect", "--as", `ACME\alice`)
			for _, w := range tc.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Errorf("check --connect --as = %v, want nil", err)
			}
			for _, w := range tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("check --connect --as = %v, want an error containing %q", err, w)
				}
			}
			if len(tc.wantErr) == 0 && !strings.Contains(out, "login OK") {
				t.Errorf("stdout lacks login OK:\n%s", out)
			}
			if s := sim.Sessions(); len(s) != 0 {
				t.Errorf("simulator sessions after the check = %+v, want none", s)
			}
			if c := sim.Counts(`ACME\alice`); len(tc.wantErr) == 0 && c.SessionsCreated != 1 {
				t.Errorf("sessions created = %d, want 1", c.SessionsCreated)
			}
		})
	}
}
