package qliksim

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var ticketRE = regexp.MustCompile(`^[0-9a-zA-Z]{16}$`)

func TestQPSTicketEchoesRequest(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	st, b := qpsDo(t, qpsClient(t, sim), "POST", qpsPath(sim, "", "ticket"), map[string]any{
		"UserDirectory": " acme ", "UserId": "alice",
		"Attributes": []map[string]string{{"Group": "Sales"}, {"Group": "EMEA"}, {"Empty": ""}},
	})
	if st != http.StatusCreated {
		t.Fatalf("POST /qps/ticket = %d %s, want 201", st, b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	tk, _ := got["Ticket"].(string)
	if !ticketRE.MatchString(tk) {
		t.Errorf("Ticket = %q, want 16 characters of [0-9a-zA-Z]", tk)
	}
	delete(got, "Ticket")
	want := map[string]any{
		"UserDirectory": "ACME", "UserId": "alice", "TargetUri": nil,
		"Attributes": []any{map[string]any{"Group": "Sales"}, map[string]any{"Group": "EMEA"}, map[string]any{"Empty": ""}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ticket response mismatch (-want +got):\n%s", diff)
	}
	if c := sim.Counts(`ACME\alice`); c.TicketsIssued != 1 {
		t.Errorf("TicketsIssued = %d, want 1", c.TicketsIssued)
	}
}

func TestQPSXrfkeyRules(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := qpsClient(t, sim)
	body := `{"UserDirectory":"ACME","UserId":"alice"}`
	tests := []struct {
		name   string
		query  string
		header []string
		want   int
	}{
		{"pair", "xrfkey=abcdefghijklmnop", []string{"abcdefghijklmnop"}, http.StatusCreated},
		{"query name case", "XrfKey=abcdefghijklmnop", []string{"abcdefghijklmnop"}, http.StatusCreated},
		{"no query", "", []string{"abcdefghijklmnop"}, http.StatusForbidden},
		{"no header", "xrfkey=abcdefghijklmnop", nil, http.StatusForbidden},
		{"mismatch", "xrfkey=abcdefghijklmnop", []string{"abcdefghijklmnoq"}, http.StatusForbidden},
		{"value case differs", "xrfkey=abcdefghijklmnop", []string{"ABCDEFGHIJKLMNOP"}, http.StatusForbidden},
		{"15 chars", "xrfkey=abcdefghijklmno", []string{"abcdefghijklmno"}, http.StatusForbidden},
		{"17 chars", "xrfkey=abcdefghijklmnopq", []string{"abcdefghijklmnopq"}, http.StatusForbidden},
		{"not alphanumeric", "xrfkey=abcdefgh-jklmnop", []string{"abcdefgh-jklmnop"}, http.StatusForbidden},
		{"two query keys", "xrfkey=abcdefghijklmnop&Xrfkey=abcdefghijklmnop", []string{"abcdefghijklmnop"}, http.StatusForbidden},
		{"two headers", "xrfkey=abcdefghijklmnop", []string{"abcdefghijklmnop", "abcdefghijklmnop"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := qpsPath(sim, "", "ticket")
			if tt.query != "" {
				u += "?" + tt.query
			}
			req, _ := http.NewRequest("POST", u, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			for _, h := range tt.header {
				req.Header.Add("x-qlik-xrfkey", h)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusForbidden {
				b := make([]byte, 200)
				n, _ := resp.Body.Read(b)
				if !strings.Contains(string(b[:n]), msgXSRF) {
					t.Errorf("body = %q, want %q", b[:n], msgXSRF)
				}
			}
		})
	}
}

func TestQPSTicketBodyValidation(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := qpsClient(t, sim)
	tests := []struct {
		name, ctype, body string
		want              int
		wantText          string
	}{
		{"empty directory", "application/json", `{"UserDirectory":"","UserId":"alice"}`, 400, "UserDirectory"},
		{"blank user", "application/json", `{"UserDirectory":"ACME","UserId":"   "}`, 400, "UserId"},
		{"backslash in user", "application/json", `{"UserDirectory":"ACME","UserId":"ACME\\alice"}`, 400, "backslash"},
		{"backslash in directory", "application/json", `{"UserDirectory":"AC\\ME","UserId":"alice"}`, 400, "backslash"},
		{"missing fields", "application/json", `{}`, 400, "UserDirectory"},
		{"malformed JSON", "application/json", `{"UserDirectory":`, 400, "invalid JSON"},
		{"unknown member", "application/json", `{"UserDirectory":"ACME","UserId":"a","Usr":"x"}`, 400, "Usr"},
		{"two objects", "application/json", `{"UserDirectory":"ACME","UserId":"a"}{}`, 400, "after the object"},
		{"attribute with two members", "application/json", `{"UserDirectory":"ACME","UserId":"a","Attributes":[{"a":"1","b":"2"}]}`, 400, "exactly one member"},
		{"attribute not a string", "application/json", `{"UserDirectory":"ACME","UserId":"a","Attributes":[{"a":1}]}`, 400, "must be a string"},
		{"session id on ticket", "application/json", `{"UserDirectory":"ACME","UserId":"a","SessionId":"x"}`, 400, "SessionId"},
		{"unknown target", "application/json", `{"UserDirectory":"ACME","UserId":"a","TargetId":"00000000-0000-0000-0000-000000000000"}`, 400, "TargetId"},
		{"text content type", "text/plain", `{"UserDirectory":"ACME","UserId":"a"}`, 415, "application/json"},
		{"field names are case-insensitive", "application/json; charset=utf-8", `{"userDirectory":"ACME","userid":"a"}`, 201, "Ticket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", qpsPath(sim, "", "ticket")+"?xrfkey="+testXrfkey, strings.NewReader(tt.body))
			req.Header.Set("X-Qlik-Xrfkey", testXrfkey)
			req.Header.Set("Content-Type", tt.ctype)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b := make([]byte, 4096)
			n, _ := resp.Body.Read(b)
			if resp.StatusCode != tt.want || !strings.Contains(string(b[:n]), tt.wantText) {
				t.Errorf("POST %s = %d %q, want %d containing %q", tt.body, resp.StatusCode, b[:n], tt.want, tt.wantText)
			}
		})
	}
	if n := sim.TicketsIssued(); n != 1 {
		t.Errorf("TicketsIssued = %d, want 1 (only the valid request)", n)
	}
}

func TestQPSRequiresClientCertificate(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	other, err := WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := sim.Certs().RootPool()
	foreign, err := tls.LoadX509KeyPair(other.Client, other.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"no certificate":        {RootCAs: pool},
		"foreign root's client": {RootCAs: pool, Certificates: []tls.Certificate{foreign}},
	} {
		t.Run(name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest("POST", qpsPath(sim, "", "ticket")+"?xrfkey="+testXrfkey, strings.NewReader(`{"UserDirectory":"ACME","UserId":"alice"}`))
			req.Header.Set("X-Qlik-Xrfkey", testXrfkey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("POST /qps/ticket without a valid client certificate = %d, want a TLS error", resp.StatusCode)
			}
		})
	}
	if n := sim.TicketsIssued(); n != 0 {
		t.Errorf("TicketsIssued = %d, want 0", n)
	}
}

func TestQPSVirtualProxyPaths(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := qpsClient(t, sim)
	body := map[string]any{"UserDirectory": "ACME", "UserId": "bob"}
	tests := []struct {
		path string
		want int
	}{
		{"/qps/ticket", 201},
		{"/qps/ticket/", 201},
		{"/qps/ticket/ticket", 201}, // VP "ticket"
		{"/qps/nosuchvp/ticket", 404},
		{"/qps/ticket/nosuch", 404},
		{"/qps/", 404},
		{"/other", 404},
	}
	for _, tt := range tests {
		if st, b := qpsDo(t, c, "POST", sim.QPSURL()+tt.path, body); st != tt.want {
			t.Errorf("POST %s = %d %s, want %d", tt.path, st, b, tt.want)
		}
	}
	if st, _ := qpsDo(t, c, "GET", sim.QPSURL()+"/qps/ticket", nil); st != http.StatusMethodNotAllowed {
		t.Errorf("GET /qps/ticket = %d, want 405", st)
	}
}

func TestTicketRedemption(t *testing.T) {
	sim, clock := newTestSim(t, nil)
	css := "/resources/autogenerated/qlik-styles.css"

	t.Run("single use", func(t *testing.T) {
		tk := ticket(t, sim, "", `ACME\alice`)
		resp, _ := proxyGet(t, sim, vpURL(sim, "", css+"?qlikTicket="+tk), nil)
		if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
			t.Fatalf("first redemption = %d with cookies %v, want 200 and one cookie", resp.StatusCode, resp.Cookies())
		}
		resp, _ = proxyGet(t, sim, vpURL(sim, "", css+"?qlikTicket="+tk), nil)
		if resp.StatusCode != http.StatusFound || len(resp.Cookies()) != 0 {
			t.Errorf("second redemption = %d with cookies %v, want 302 and none", resp.StatusCode, resp.Cookies())
		}
	})
	t.Run("QlikTicket spelling on any path", func(t *testing.T) {
		tk := ticket(t, sim, "", `ACME\bob`)
		resp, body := proxyGet(t, sim, vpURL(sim, "", "/hub/?QlikTicket="+tk), nil)
		if resp.StatusCode != 200 || !strings.Contains(body, `ACME\bob`) {
			t.Errorf("GET /hub/?QlikTicket= = %d %q, want 200 signed in as bob", resp.StatusCode, body)
		}
	})
	t.Run("expires after a minute", func(t *testing.T) {
		tk := ticket(t, sim, "", `ACME\carol`)
		clock.Advance(TicketLifetime + time.Second)
		resp, _ := proxyGet(t, sim, vpURL(sim, "", css+"?qlikTicket="+tk), nil)
		if resp.StatusCode != http.StatusFound {
			t.Errorf("expired ticket = %d, want 302", resp.StatusCode)
		}
	})
	t.Run("bound to its virtual proxy", func(t *testing.T) {
		tk := ticket(t, sim, "ticket", `ACME\dev`)
		resp, _ := proxyGet(t, sim, vpURL(sim, "", css+"?qlikTicket="+tk), nil)
		if resp.StatusCode != http.StatusFound {
			t.Errorf("ticket of VP ticket on the default VP = %d, want 302", resp.StatusCode)
		}
	})
	t.Run("only on GET", func(t *testing.T) {
		tk := ticket(t, sim, "", `ACME\dev`)
		resp, _ := proxyDo(t, sim, "POST", vpURL(sim, "", css+"?qlikTicket="+tk), nil)
		if resp.StatusCode != http.StatusFound || len(resp.Cookies()) != 0 {
			t.Errorf("POST with ticket = %d cookies %v, want 302 without cookie", resp.StatusCode, resp.Cookies())
		}
		resp, _ = proxyGet(t, sim, vpURL(sim, "", css+"?qlikTicket="+tk), nil)
		if resp.StatusCode != 200 {
			t.Errorf("GET with the same ticket after the POST = %d, want 200 (the POST did not consume it)", resp.StatusCode)
		}
	})
	c := sim.Counts(`ACME\alice`)
	if c.TicketsIssued != 1 || c.TicketsRedeemed != 1 || c.SessionsCreated != 1 {
		t.Errorf("alice counts = %+v, want 1 issued, 1 redeemed, 1 session", c)
	}
}

func TestQPSTargetID(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	resp, _ := proxyGet(t, sim, vpURL(sim, "ticket", "/hub/?x=1"), nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("unauthenticated GET = %d, want 302", resp.StatusCode)
	}
	loc, _ := resp.Location()
	targetID := loc.Query().Get("targetId")
	if !guidRE.MatchString(targetID) {
		t.Fatalf("targetId = %q, want a GUID (Location %s)", targetID, loc)
	}
	st, b := qpsDo(t, qpsClient(t, sim), "POST", qpsPath(sim, "ticket", "ticket"), map[string]any{"UserDirectory": "ACME", "UserId": "alice", "TargetId": targetID})
	if st != http.StatusCreated {
		t.Fatalf("ticket with TargetId = %d %s", st, b)
	}
	var got struct{ TargetUri string }
	json.Unmarshal(b, &got)
	if want := vpURL(sim, "ticket", "/hub/?x=1"); got.TargetUri != want {
		t.Errorf("TargetUri = %q, want %q", got.TargetUri, want)
	}
	// A targetId of one virtual proxy is unknown to another.
	st, _ = qpsDo(t, qpsClient(t, sim), "POST", qpsPath(sim, "", "ticket"), map[string]any{"UserDirectory": "ACME", "UserId": "alice", "TargetId": targetID})
	if st != http.StatusBadRequest {
		t.Errorf("TargetId on another VP = %d, want 400", st)
	}
}

func TestQPSSessionAPI(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := qpsClient(t, sim)
	const id = "b1946ac92492d2347c6235b4d2611184"
	st, b := qpsDo(t, c, "POST", qpsPath(sim, "ticket", "session"), map[string]any{
		"UserDirectory": "ACME", "UserId": "alice", "Attributes": []map[string]string{{"Group": "Sales"}}, "SessionId": id,
	})
	want := `{"UserDirectory":"ACME","UserId":"alice","Attributes":[{"Group":"Sales"}],"SessionId":"` + id + `"}`
	if st != http.StatusCreated || strings.TrimSpace(string(b)) != want {
		t.Fatalf("POST session = %d %s, want 201 %s", st, b, want)
	}
	if st, _ := qpsDo(t, c, "POST", qpsPath(sim, "ticket", "session"), map[string]any{"UserDirectory": "ACME", "UserId": "bob", "SessionId": id}); st != http.StatusConflict {
		t.Errorf("POST session with a used id = %d, want 409", st)
	}
	if st, _ := qpsDo(t, c, "POST", qpsPath(sim, "ticket", "session"), map[string]any{"UserDirectory": "ACME", "UserId": "bob"}); st != http.StatusBadRequest {
		t.Errorf("POST session without SessionId = %d, want 400", st)
	}

	// The caller sets the cookie itself, with the VP's cookie name.
	cookie := &http.Cookie{Name: DefaultCookieName + "-ticket", Value: id}
	if resp, body := proxyGet(t, sim, vpURL(sim, "ticket", "/hub/"), cookie); resp.StatusCode != 200 || !strings.Contains(body, `ACME\alice`) {
		t.Errorf("GET /ticket/hub/ with session API cookie = %d %q", resp.StatusCode, body)
	}
	if st, b := qpsDo(t, c, "GET", qpsPath(sim, "ticket", "session/"+id), nil); st != 200 || strings.TrimSpace(string(b)) != want {
		t.Errorf("GET session/{id} = %d %s, want 200 %s", st, b, want)
	}
	if st, b := qpsDo(t, c, "GET", qpsPath(sim, "", "session/"+id), nil); st != http.StatusNotFound || !strings.Contains(string(b), "No session with id") {
		t.Errorf("GET session/{id} on another VP = %d %s, want 404 No session with id", st, b)
	}
	if st, b := qpsDo(t, c, "GET", qpsPath(sim, "ticket", "session"), nil); st != 200 || !strings.Contains(string(b), id) {
		t.Errorf("GET session list = %d %s, want it to list %s", st, b, id)
	}
	if st, b := qpsDo(t, c, "DELETE", qpsPath(sim, "ticket", "session/"+id), nil); st != 200 || strings.TrimSpace(string(b)) != `{"Session":`+want+`}` {
		t.Errorf("DELETE session/{id} = %d %s, want 200 wrapped in Session", st, b)
	}
	if st, _ := qpsDo(t, c, "DELETE", qpsPath(sim, "ticket", "session/"+id), nil); st != http.StatusNotFound {
		t.Errorf("second DELETE = %d, want 404", st)
	}
	if resp, _ := proxyGet(t, sim, vpURL(sim, "ticket", "/hub/"), cookie); resp.StatusCode != http.StatusFound {
		t.Errorf("GET with the deleted session's cookie = %d, want 302 to login", resp.StatusCode)
	}
}

func TestQPSUserAPI(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := qpsClient(t, sim)
	a1 := login(t, sim, "", `ACME\alice`)
	login(t, sim, "", `ACME\alice`)
	login(t, sim, "ticket", `ACME\alice`) // another VP: untouched
	bob := login(t, sim, "", `ACME\bob`)

	var got []userSessionJSON
	st, b := qpsDo(t, c, "GET", qpsPath(sim, "", "user/ACME/alice"), nil)
	json.Unmarshal(b, &got)
	if st != 200 || len(got) != 2 || got[0].UserID != "alice" || got[0].UserName != "Alice Andersson" {
		t.Fatalf("GET user/ACME/alice = %d %s, want her 2 sessions on the default VP", st, b)
	}
	st, b = qpsDo(t, c, "DELETE", qpsPath(sim, "", "user/acme/ALICE"), nil)
	json.Unmarshal(b, &got)
	if st != 200 || len(got) != 2 {
		t.Fatalf("DELETE user = %d %s, want the 2 deleted sessions", st, b)
	}
	if resp, _ := proxyGet(t, sim, vpURL(sim, "", "/hub/"), a1); resp.StatusCode != http.StatusFound {
		t.Errorf("alice's old cookie after DELETE user = %d, want 302", resp.StatusCode)
	}
	if resp, _ := proxyGet(t, sim, vpURL(sim, "", "/hub/"), bob); resp.StatusCode != 200 {
		t.Errorf("bob's cookie after alice's logout = %d, want 200", resp.StatusCode)
	}
	if st, b := qpsDo(t, c, "GET", qpsPath(sim, "", "user/ACME/alice"), nil); st != 200 || strings.TrimSpace(string(b)) != "[]" {
		t.Errorf("GET user after DELETE = %d %s, want []", st, b)
	}
	if n := sim.Counts(`ACME\alice`).LiveSessions; n != 1 {
		t.Errorf("alice live sessions = %d, want 1 (the ticket VP's)", n)
	}
}

func TestParallelSessionCap(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	for i := 0; i < MaxParallelSessions; i++ {
		login(t, sim, "", `ACME\alice`)
	}
	tk := ticket(t, sim, "", `ACME\alice`)
	resp, body := proxyGet(t, sim, vpURL(sim, "", "/hub/?qlikTicket="+tk), nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "too many sessions active in parallel") || len(resp.Cookies()) != 0 {
		t.Errorf("6th login = %d %q cookies %v, want 403 too many sessions, no cookie", resp.StatusCode, body, resp.Cookies())
	}
	st, b := qpsDo(t, qpsClient(t, sim), "POST", qpsPath(sim, "", "session"), map[string]any{"UserDirectory": "ACME", "UserId": "alice", "SessionId": "s6"})
	if st != http.StatusForbidden || !strings.Contains(string(b), "too many sessions") {
		t.Errorf("6th session via session API = %d %s, want 403", st, b)
	}
	c := sim.Counts(`ACME\alice`)
	if c.LiveSessions != MaxParallelSessions || c.SessionsRefused != 2 {
		t.Errorf("counts = %+v, want %d live and 2 refused", c, MaxParallelSessions)
	}
	login(t, sim, "", `ACME\bob`) // other users are not affected
}

// How QSEoW folds user names beyond ASCII is not documented: under
// user_case unicode "alİce" (U+0130) is alice's user, under ascii it is a
// user of its own; ASCII case is folded either way.
func TestUserCase(t *testing.T) {
	for _, tt := range []struct {
		rule string
		same bool // alİce is alice
	}{{"", true}, {UserCaseUnicode, true}, {UserCaseASCII, false}} {
		t.Run("user_case="+tt.rule, func(t *testing.T) {
			sim, _ := newTestSim(t, func(c *Config) { c.UserCase = tt.rule })
			alice := login(t, sim, "", `ACME\alice`)
			login(t, sim, "", "ACME\\al\u0130ce")
			st, b := qpsDo(t, qpsClient(t, sim), "DELETE", qpsPath(sim, "", "user/acme/"+url.PathEscape("al\u0130ce")), nil)
			if st != http.StatusOK {
				t.Fatalf("DELETE user = %d %s", st, b)
			}
			resp, _ := proxyGet(t, sim, vpURL(sim, "", "/hub/"), alice)
			if ended := resp.StatusCode != http.StatusOK; ended != tt.same {
				t.Errorf("alice's session after alİce's logout: %d, want it ended = %v", resp.StatusCode, tt.same)
			}
			bob := login(t, sim, "", `acme\BOB`)
			if st, _ := qpsDo(t, qpsClient(t, sim), "DELETE", qpsPath(sim, "", "user/ACME/bob"), nil); st != http.StatusOK {
				t.Fatalf("DELETE user bob = %d", st)
			}
			if resp, _ := proxyGet(t, sim, vpURL(sim, "", "/hub/"), bob); resp.StatusCode == http.StatusOK {
				t.Error("ASCII case made another user")
			}
		})
	}
	if _, err := New(Config{UserCase: "turkish"}, Options{}); err == nil || !strings.Contains(err.Error(), "user_case") {
		t.Errorf("user_case turkish = %v, want an error naming user_case", err)
	}
}
