package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fieldString returns a string field of a logged entry ("" if absent).
func fieldString(e observer.LoggedEntry, key string) string {
	s, _ := e.ContextMap()[key].(string)
	return s
}

// The audit log has one entry per login, app opened and logout, each with
// the user and the request id, and never a cookie or ticket.
func TestAuditEvents(t *testing.T) {
	e := newObservedEnv(t)
	const app = "5a8a1b2c-0003-4c1e-9d3f-000000000003"
	if resp := e.qrs(t, "/qrs/about", "alice", nil); resp.StatusCode != 200 {
		t.Fatalf("GET /qrs/about = %d", resp.StatusCode)
	}
	c, resp, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	wsRequestID := resp.Header.Get(HeaderRequestID)
	// enigma.js's form: the method before positional params.
	if ans, _ := call(t, c, 1, "OpenDoc", -1, "", app); ans.Error != nil {
		t.Fatalf("OpenDoc: %+v", ans.Error)
	}
	// A script that merely mentions OpenDoc is not an OpenDoc.
	call(t, c, 2, "EngineVersion", -1, "OpenDoc")
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.Close()
	if resp, _ := e.do(t, "POST", "/.sensegate/logout", "alice"); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /.sensegate/logout = %d", resp.StatusCode)
	}

	all := e.audit.All()
	var events []string
	for _, ent := range all {
		events = append(events, fieldString(ent, "event"))
		if ent.LoggerName != "audit" || ent.ContextMap()["audit"] != true {
			t.Errorf("entry %q: logger %q, audit %v; want logger audit, audit true", ent.Message, ent.LoggerName, ent.ContextMap()["audit"])
		}
		if fieldString(ent, "user") != `ACME\alice` || fieldString(ent, "request_id") == "" {
			t.Errorf("entry %q: user %q, request_id %q; want ACME\\alice and an id", ent.Message, fieldString(ent, "user"), fieldString(ent, "request_id"))
		}
	}
	if got, want := strings.Join(events, ","), AuditQlikLogin+","+AuditAppOpen+","+AuditLogout; got != want {
		t.Fatalf("audit events = %s, want %s", got, want)
	}
	login, open, logout := all[0], all[1], all[2]
	if _, ok := login.ContextMap()["qlik_session_created"].(time.Time); !ok {
		t.Errorf("login entry without qlik_session_created: %v", login.ContextMap())
	}
	if got := fieldString(open, "app_id"); got != app {
		t.Errorf("app_open app_id = %q, want %q", got, app)
	}
	if got := fieldString(open, "outcome"); got != "opened" {
		t.Errorf("app_open outcome = %q, want opened", got)
	}
	if got := fieldString(open, "request_id"); got != wsRequestID {
		t.Errorf("app_open request_id = %q, want the upgrade's %q", got, wsRequestID)
	}
	if got := logout.ContextMap()["qlik_sessions_ended"]; got != int64(1) {
		t.Errorf("logout qlik_sessions_ended = %v, want 1", got)
	}

	// No secret in any entry: the Qlik session cookies sensegate got (the
	// simulator's session ids) are never written.
	var secrets []string
	e.mu.Lock()
	secrets = append(secrets, e.cookies...)
	e.mu.Unlock()
	for _, ev := range e.sim.Events(0) {
		if ev.SessionID != "" {
			secrets = append(secrets, ev.SessionID)
		}
	}
	if len(secrets) == 0 {
		t.Fatal("no session cookies seen: the secrets check would prove nothing")
	}
	for _, ent := range all {
		text := ent.Message + fmt.Sprint(ent.ContextMap())
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("audit entry %q holds a Qlik session cookie: %s", ent.Message, text)
			}
		}
		if strings.Contains(strings.ToLower(text), "qlikticket") || strings.Contains(text, "X-Qlik-Session") {
			t.Errorf("audit entry %q mentions tickets or cookies: %s", ent.Message, text)
		}
	}
}

// Without an audit log nothing is written and OpenDoc still goes through.
func TestAuditOff(t *testing.T) {
	e := newEnv(t)
	if e.h.audit != nil {
		t.Fatal("Handler without Options.Audit has an audit log")
	}
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ans, _ := call(t, c, 1, "OpenDoc", -1, "", "5a8a1b2c-0003-4c1e-9d3f-000000000003"); ans.Error != nil {
		t.Fatalf("OpenDoc: %+v", ans.Error)
	}
	var nilAudit *Audit
	nilAudit.Login(t.Context(), benchUser, session.Entry{}, nil) // must not panic
	if NewAudit(nil) != nil {
		t.Error("NewAudit(nil) != nil")
	}
}

var parseOpenDocTests = []struct {
	name   string
	msg    string
	wantID string
	wantOK bool
}{
	{"enigma.js", `{"delta":false,"handle":-1,"method":"OpenDoc","params":["app-1","","","",false],"id":2,"jsonrpc":"2.0"}`, "app-1", true},
	{"params first", `{"jsonrpc":"2.0","id":2,"handle":-1,"params":["app-2"],"method":"OpenDoc"}`, "app-2", true},
	{"named params", `{"jsonrpc":"2.0","id":2,"handle":-1,"method":"OpenDoc","params":{"qUserName":"u","qPassword":"hunter2","qDocName":"app-3"}}`, "app-3", true},
	{"cut after the id", `{"jsonrpc":"2.0","id":2,"handle":-1,"method":"OpenDoc","params":["app-4","user","pass`, "app-4", true},
	{"cut in the id", `{"jsonrpc":"2.0","id":2,"method":"OpenDoc","params":["app-`, "", true},
	{"other method naming OpenDoc", `{"jsonrpc":"2.0","id":3,"method":"SetScript","params":["// \"OpenDoc\""]}`, "", false},
	{"method nested only", `{"jsonrpc":"2.0","id":3,"params":{"method":"OpenDoc"},"method":"Other"}`, "", false},
	{"no method", `{"params":["app-5"]}`, "", false},
	{"not an object", `["OpenDoc"]`, "", false},
	{"not JSON", `"OpenDoc" and more`, "", false},
	{"empty", ``, "", false},
	{"long id cut to maxAppID", `{"method":"OpenDoc","params":["` + strings.Repeat("a", 300) + `"]}`, strings.Repeat("a", maxAppID), true},
}

func TestParseOpenDoc(t *testing.T) {
	for _, tc := range parseOpenDocTests {
		t.Run(tc.name, func(t *testing.T) {
			id, ok := parseOpenDoc([]byte(tc.msg))
			if id != tc.wantID || ok != tc.wantOK {
				t.Errorf("parseOpenDoc(%q) = %q, %v; want %q, %v", tc.msg, id, ok, tc.wantID, tc.wantOK)
			}
		})
	}
}

// parseOpenDoc reads client messages: it must not panic on any, never
// returns more than maxAppID bytes, and never returns a password.
func FuzzParseOpenDoc(f *testing.F) {
	for _, tc := range parseOpenDocTests {
		f.Add([]byte(tc.msg))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		id, ok := parseOpenDoc(msg)
		if len(id) > maxAppID {
			t.Errorf("parseOpenDoc returned %d bytes", len(id))
		}
		if !ok && id != "" {
			t.Errorf("parseOpenDoc = %q, false", id)
		}
	})
}

// Issue 16: an OpenDoc that Qlik refused was audited as "app opened". The
// entry is written when the answer with the request's id comes, with its
// outcome; the refusal's code and message go with it.
func TestAuditAppOpenOutcome(t *testing.T) {
	e := newObservedEnv(t)
	c, _, err := e.dialEngine(t, "/app/engineData", "bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// bob may not see Alice Sandbox: Qlik refuses. Then an app that
	// does not exist, then one he may open.
	const (
		sandbox  = "5a8a1b2c-0004-4c1e-9d3f-000000000004"
		handbook = "5a8a1b2c-0003-4c1e-9d3f-000000000003"
	)
	if ans, _ := call(t, c, 7, "OpenDoc", -1, "", sandbox); ans.Error == nil {
		t.Fatal("OpenDoc of another user's app answered without an error")
	}
	if ans, _ := call(t, c, 8, "OpenDoc", -1, "", "no-such-app"); ans.Error == nil {
		t.Fatal("OpenDoc of no app answered without an error")
	}
	if ans, _ := call(t, c, 9, "OpenDoc", -1, "", handbook); ans.Error != nil {
		t.Fatalf("OpenDoc: %+v", ans.Error)
	}
	type entry struct{ Msg, App, Outcome, QlikError string }
	var got []entry
	for _, ent := range e.audit.FilterField(zap.String("event", AuditAppOpen)).All() {
		got = append(got, entry{ent.Message, fieldString(ent, "app_id"), fieldString(ent, "outcome"), fieldString(ent, "qlik_error")})
	}
	want := []entry{
		{"app open refused", sandbox, "refused", "Access denied"},
		{"app open refused", "no-such-app", "refused", "App not found"},
		{"app opened", handbook, "opened", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("app_open entries (-want +got):\n%s", diff)
	}
}

func TestRPCAnswer(t *testing.T) {
	tests := []struct {
		name, head, id, outcome string
		code                    int
	}{
		{"result", `{"jsonrpc":"2.0","id":9,"result":{"qReturn":{"qHandle":1}}}`, "9", "opened", 0},
		{"delta result", `{"jsonrpc":"2.0","id":9,"delta":true,"result":[{"op":"add"}]}`, "9", "opened", 0},
		{"error", `{"jsonrpc":"2.0","id":7,"error":{"code":5,"parameter":"x","message":"Access denied"}}`, "7", "refused", 5},
		{"error before id", `{"jsonrpc":"2.0","error":{"code":1002,"message":"App not found"},"id":8}`, "8", "refused", 1002},
		{"cut before the outcome", `{"jsonrpc":"2.0","id":9,"change":[1,2,`, "9", "unknown", 0},
		{"notification", `{"jsonrpc":"2.0","method":"OnConnected","params":{}}`, "", "", 0},
		{"string id", `{"jsonrpc":"2.0","id":"9","result":{}}`, "", "", 0},
		{"not an object", `[1]`, "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, outcome, e := rpcAnswer([]byte(tc.head))
			code := 0
			if e != nil {
				code = e.Code
			}
			if id != tc.id || id != "" && (outcome != tc.outcome || code != tc.code) {
				t.Errorf("rpcAnswer(%s) = %q, %q, %+v; want %q, %q, code %d", tc.head, id, outcome, e, tc.id, tc.outcome, tc.code)
			}
		})
	}
}

// The OpenDoc requests waiting for an answer are bounded per socket.
func TestPendingOpensBounded(t *testing.T) {
	var o pendingOpens
	for i := range maxPendingOpens {
		if !o.add(fmt.Sprint(i), "app") {
			t.Fatalf("add %d refused", i)
		}
	}
	if o.add("x", "app") {
		t.Errorf("add beyond %d accepted", maxPendingOpens)
	}
	if app, ok := o.take("3"); !ok || app != "app" || !o.waiting() {
		t.Errorf("take(3) = %q, %v", app, ok)
	}
	if n := len(o.drain()); n != maxPendingOpens-1 || o.waiting() {
		t.Errorf("drain = %d, waiting %v; want %d, false", n, o.waiting(), maxPendingOpens-1)
	}
}
