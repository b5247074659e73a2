package proxy

import (
	"net/http"
	"strings"
	"testing"
)

// Issue 14: requests that may change state were accepted from any site,
// and their foreign Origin was rewritten into the one Qlik allows. Each
// case says what the client got and what reached Qlik or the route.
func TestCrossSiteRequests(t *testing.T) {
	e := newSpoofEnv(t, nil)
	const evil = "https://evil.example"
	tests := []struct {
		name, method, path string
		hdr                http.Header
		want               int
		// reached is the upstream that must have got the request ("qlik",
		// "route" or "" for none); origin the Origin it must have got.
		reached, origin string
	}{
		{"QRS task start from a foreign page", "POST", "/qrs/task/1/start", http.Header{"Origin": {evil}}, 403, "", ""},
		{"QRS delete from a foreign page", "DELETE", "/qrs/app/1", http.Header{"Origin": {evil}}, 403, "", ""},
		{"QRS put from a foreign page", "PUT", "/qrs/app/1", http.Header{"Origin": {evil}}, 403, "", ""},
		{"patch from a foreign page", "PATCH", "/api/v1/x", http.Header{"Origin": {evil}}, 403, "", ""},
		{"opaque origin (sandboxed frame)", "POST", "/qrs/task/1/start", http.Header{"Origin": {"null"}}, 403, "", ""},
		{"two Origin headers", "POST", "/qrs/task/1/start", http.Header{"Origin": {"https://sense.example.com", evil}}, 403, "", ""},
		{"no Origin, marked cross-site", "POST", "/qrs/task/1/start", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403, "", ""},
		{"logout from a foreign page", "POST", "/.sensegate/logout", http.Header{"Origin": {evil}}, 403, "", ""},
		{"logout, no Origin, marked cross-site", "POST", "/.sensegate/logout", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403, "", ""},
		{"route POST from a foreign page", "POST", "/mashup/save", http.Header{"Origin": {evil}}, 403, "", ""},
		{"scheme differs from the public URL", "POST", "/qrs/task/1/start", http.Header{"Origin": {"http://sense.example.com"}}, 403, "", ""},
		{"sibling subdomain", "POST", "/qrs/task/1/start", http.Header{"Origin": {"https://evil.sense.example.com"}}, 403, "", ""},

		{"own origin", "POST", "/qrs/task/1/start", http.Header{"Origin": {"https://sense.example.com"}}, 200, "qlik", "qlik"},
		{"own origin with the default port", "POST", "/qrs/task/1/start", http.Header{"Origin": {"https://SENSE.example.com:443"}}, 200, "qlik", "qlik"},
		{"allowed origin", "POST", "/qrs/task/1/start", http.Header{"Origin": {"http://portal.example.com"}}, 200, "qlik", "qlik"},
		{"not a browser: no Origin", "POST", "/qrs/task/1/start", nil, 200, "qlik", ""},
		{"no Origin, same site", "POST", "/qrs/task/1/start", http.Header{"Sec-Fetch-Site": {"same-origin"}}, 200, "qlik", ""},
		{"own logout", "POST", "/.sensegate/logout", http.Header{"Origin": {"https://sense.example.com"}}, 200, "", ""},
		{"route POST from the own origin", "POST", "/mashup/save", http.Header{"Origin": {"https://sense.example.com"}}, 200, "route", "https://sense.example.com"},
		// Safe methods change nothing and pass; a foreign Origin goes on
		// as it is, for Qlik's allow list to judge.
		{"GET from a foreign page", "GET", "/qrs/app", http.Header{"Origin": {evil}}, 200, "qlik", evil},
		{"GET marked cross-site", "GET", "/qrs/app", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 200, "qlik", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, e.front.URL+tt.path, strings.NewReader("x=1"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer alice")
			for k, v := range tt.hdr {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
			}
			q, rt := e.qlik.take(), e.route.take()
			got := map[string][]*http.Request{"qlik": q, "route": rt}
			for name, reqs := range got {
				if name != tt.reached && len(reqs) > 0 {
					t.Errorf("%s got %d requests, want none", name, len(reqs))
				}
			}
			if tt.reached == "" {
				return
			}
			reqs := got[tt.reached]
			if len(reqs) != 1 {
				t.Fatalf("%s got %d requests, want 1", tt.reached, len(reqs))
			}
			want := tt.origin
			if want == "qlik" {
				want = e.qlik.srv.URL
			}
			if o := reqs[0].Header.Values("Origin"); strings.Join(o, ",") != want {
				t.Errorf("%s got Origin %q, want %q", tt.reached, o, want)
			}
		})
	}
}

// Issue 14: a form on another site ended the user's Qlik sessions.
func TestCrossSiteLogoutKeepsTheSession(t *testing.T) {
	e := newEnv(t)
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /hub/ = %d", resp.StatusCode)
	}
	tickets := e.sim.TicketsIssued()
	resp, body := e.do(t, "POST", "/.sensegate/logout", "alice", "Origin", "https://evil.example", "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "cross-site request refused") {
		t.Errorf("logout from a foreign Origin = %d %q, want 403 cross-site request refused", resp.StatusCode, body)
	}
	if n := e.sim.Counts(`ACME\alice`).LiveSessions; n != 1 {
		t.Errorf("alice's live Qlik sessions after a cross-site logout = %d, want 1", n)
	}
	if resp, _ := e.do(t, "GET", "/hub/", "alice"); resp.StatusCode != http.StatusOK || e.sim.TicketsIssued() != tickets {
		t.Errorf("after a cross-site logout: GET = %d with %d new tickets, want 200 and none", resp.StatusCode, e.sim.TicketsIssued()-tickets)
	}
	resp, _ = e.do(t, "POST", "/.sensegate/logout", "alice", "Origin", e.front.URL)
	if resp.StatusCode != http.StatusOK || e.sim.Counts(`ACME\alice`).LiveSessions != 0 {
		t.Errorf("logout from sensegate's own origin = %d, %d live sessions; want 200 and none", resp.StatusCode, e.sim.Counts(`ACME\alice`).LiveSessions)
	}
}
