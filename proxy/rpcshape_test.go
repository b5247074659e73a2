package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"go.uber.org/zap"
)

// Issue 14: a Qlik message ends the user's session only when it is a
// top-level JSON-RPC notification (a method, no id) of a fatal topic.
// The same text in user data the Engine echoes back (object properties),
// in a response, or nested, leaves the jar alone, wherever it sits in
// the message.
func TestQlikMessageEndsSessionOnlyAsNotification(t *testing.T) {
	e := newEnv(t)
	pad := strings.Repeat("x", 300) // pushes what follows past the first 256 bytes
	tests := []struct {
		name string
		msg  string
		drop bool
	}{
		{"timed out", `{"jsonrpc":"2.0","method":"OnSessionTimedOut","params":{"severity":"fatal","timestamp":"2025-01-01T00:00:00Z","message":"Session timed out due to inactivity"}}`, true},
		{"logged out, no params", `{"jsonrpc":"2.0","method":"OnSessionLoggedOut"}`, true},
		{"closed, params first, past 256 bytes", `{"jsonrpc":"2.0","params":{"severity":"fatal","message":"` + pad + `"},"method":"OnSessionClosed"}`, true},
		{"closed, params with a long message", `{"jsonrpc":"2.0","method":"OnSessionClosed","params":{"severity":"fatal","message":"` + pad + `"}}`, true},
		{"properties echoed, in the first 256 bytes", `{"jsonrpc":"2.0","id":5,"result":{"qProp":{"method":"OnSessionClosed","text":"` + pad + `"}}}`, false},
		{"properties echoed, past 256 bytes", `{"jsonrpc":"2.0","id":5,"result":{"qProp":{"text":"` + pad + `","method":"OnSessionClosed"}}}`, false},
		{"properties echoed, short", `{"jsonrpc":"2.0","id":5,"result":{"qProp":{"method":"OnSessionClosed"}}}`, false},
		{"method and id", `{"jsonrpc":"2.0","id":6,"method":"OnSessionClosed","params":{}}`, false},
		{"nested method, no id, long", `{"jsonrpc":"2.0","change":[1],"params":{"method":"OnSessionTimedOut","text":"` + pad + `"}}`, false},
		{"too long to be a notification", `{"jsonrpc":"2.0","method":"OnSessionClosed","params":{"message":"` + strings.Repeat("x", maxNotification) + `"}}`, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := fmt.Sprintf("shape%d", i) // a session of its own
			c, _, err := e.dialEngine(t, "/app/engineData", user, nil)
			if err != nil {
				t.Fatal(err)
			}
			call(t, c, 1, "EngineVersion", -1, "")
			u := identity.User{Directory: "ACME", ID: user}
			if _, ok, err := e.broker.Peek(t.Context(), u); !ok || err != nil {
				t.Fatalf("no jar entry before the message (%v)", err)
			}
			if n := e.sim.Push(`ACME\`+user, []byte(tc.msg)); n != 1 {
				t.Fatalf("Push reached %d sockets, want 1", n)
			}
			// sensegate decides before it relays: once the client has the
			// message, the jar is as it will stay.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, m, err := c.ReadMessage(); err != nil || !bytes.Equal(m, []byte(tc.msg)) {
				t.Fatalf("client read %.80q, %v; want the message as Qlik sent it", m, err)
			}
			_, kept, err := e.broker.Peek(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			if dropped := !kept; dropped != tc.drop {
				t.Errorf("jar entry dropped = %v, want %v", dropped, tc.drop)
			}
		})
	}
}

// Issue 14: an OpenDoc request is audited wherever its method sits in the
// message, however it is padded or spelled, as long as the Engine reads it
// as OpenDoc (the simulator opens the app); a method that only mentions
// OpenDoc is not audited.
func TestOpenDocAuditedHoweverPadded(t *testing.T) {
	e := newObservedEnv(t)
	const app = "5a8a1b2c-0003-4c1e-9d3f-000000000003"
	pad := func(n int) string { return `"pad":"` + strings.Repeat("x", n) + `",` }
	tests := []struct {
		name    string
		msg     string
		audited bool
	}{
		{"enigma.js", `{"jsonrpc":"2.0","id":1,"handle":-1,"method":"OpenDoc","params":["` + app + `"]}`, true},
		{"padded past 512 bytes", `{"jsonrpc":"2.0","id":1,` + pad(600) + `"handle":-1,"method":"OpenDoc","params":["` + app + `"]}`, true},
		{"padded past 64 KiB", `{"jsonrpc":"2.0","id":1,` + pad(70<<10) + `"handle":-1,"method":"OpenDoc","params":["` + app + `"]}`, true},
		{"whitespace", "{" + strings.Repeat(" \r\n\t", 300) + `"jsonrpc":"2.0","id":1,"handle":-1,"method":"OpenDoc","params":["` + app + `"]}`, true},
		{"qDocName after a long password", `{"jsonrpc":"2.0","id":1,"handle":-1,"method":"OpenDoc","params":{"qPassword":"` + strings.Repeat("p", 5000) + `","qDocName":"` + app + `"}}`, true},
		{"escaped method", `{"jsonrpc":"2.0","id":1,"handle":-1,"method":"Open\u0044oc","params":["` + app + `"]}`, true},
		{"member name in upper case", `{"jsonrpc":"2.0","id":1,"handle":-1,"METHOD":"OpenDoc","params":["` + app + `"]}`, true},
		{"OpenDoc in a string value", `{"jsonrpc":"2.0","id":1,"handle":-1,"method":"EngineVersion","params":[],"tag":"\"method\":\"OpenDoc\",\"params\":[\"` + app + `\"]"}`, false},
		{"OpenDoc nested, padded", `{"jsonrpc":"2.0","id":1,` + pad(600) + `"handle":-1,"method":"EngineVersion","params":{"method":"OpenDoc","qDocName":"` + app + `"}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
			if err != nil {
				t.Fatal(err)
			}
			before := len(e.audit.FilterField(zap.String("event", AuditAppOpen)).All())
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.WriteMessage(websocket.TextMessage, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			// The entry is written before the message's last frame goes on,
			// so it is there once the Engine's answer is.
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			var ans rpc
			for ans.ID != 1 {
				if err := c.ReadJSON(&ans); err != nil {
					t.Fatal(err)
				}
			}
			opened := bytes.Contains(ans.Result, []byte(`"qType":"Doc"`))
			if opened != tc.audited {
				t.Fatalf("the Engine answered %s %+v: the case does not test what it says", ans.Result, ans.Error)
			}
			entries := e.audit.FilterField(zap.String("event", AuditAppOpen)).All()[before:]
			if got := len(entries) == 1; got != tc.audited || len(entries) > 1 {
				t.Fatalf("app_open entries = %d, want audited %v", len(entries), tc.audited)
			}
			if tc.audited {
				if got := fieldString(entries[0], "app_id"); got != app {
					t.Errorf("app_open app_id = %q, want %q", got, app)
				}
			}
		})
	}
}

// The probe before the client is upgraded reads Qlik's messages by the
// same rule: a fatal method with an id is no notification, and the
// socket opens with the message handed to the client.
func TestProbeReadsOnlyNotifications(t *testing.T) {
	const withID = `{"jsonrpc":"2.0","id":5,"method":"OnSessionClosed","params":{}}`
	up := websocket.Upgrader{}
	qlik := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if bytes.Contains(m, []byte(`"id":1000000007`)) {
				c.WriteMessage(websocket.TextMessage, []byte(withID))
				c.WriteMessage(websocket.TextMessage, []byte(`{"jsonrpc":"2.0","id":1000000007,"result":{"qVersion":{"qComponentVersion":"x"}}}`))
			}
		}
	}))
	defer qlik.Close()
	qu, _ := url.Parse(qlik.URL)
	pub, _ := url.Parse("http://sensegate.example")
	sessions := &countingSessions{}
	h, err := New(Options{Qlik: qu, CookieName: "X-Qlik-Session", Identity: identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"}),
		Sessions: sessions, PublicURL: pub})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	}()
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/app/engineData", nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial: %v (status %d), want the socket opened", err, status)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != withID {
		t.Errorf("client read %q, %v; want Qlik's message", m, err)
	}
	sessions.mu.Lock()
	defer sessions.mu.Unlock()
	if len(sessions.seen) != 0 {
		t.Errorf("jar invalidated %d times, want none", len(sessions.seen))
	}
}
