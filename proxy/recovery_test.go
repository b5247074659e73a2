package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// Issue 15: sensegate's promise is that a user never sees Qlik forget a
// session, whichever way Qlik says it (qseow-protocol.md §4b). The table
// runs every way the simulator can say it × every way a session ends ×
// HTTP and websockets (no HTTP request in between) × websocket CSRF off
// and on, and asserts at the simulator that each request after the end
// ran as its user, on one new login.
func TestRecoveryTable(t *testing.T) {
	variants := []struct {
		name string
		vp   func(*qliksim.VirtualProxy)
	}{
		{"default", func(*qliksim.VirtualProxy) {}},
		{"unknown cookie 500 html", func(v *qliksim.VirtualProxy) { v.UnknownCookie = qliksim.UnknownCookie500HTML }},
		{"unknown cookie 302", func(v *qliksim.VirtualProxy) { v.UnknownCookie = qliksim.UnknownCookie302 }},
		{"dead socket closed before greeting", func(v *qliksim.VirtualProxy) { v.DeadSocket = qliksim.DeadSocketClose }},
		{"dead socket 500", func(v *qliksim.VirtualProxy) { v.DeadSocket = qliksim.DeadSocket500 }},
		{"dead socket 302", func(v *qliksim.VirtualProxy) { v.DeadSocket = qliksim.DeadSocket302 }},
		{"dead socket 401", func(v *qliksim.VirtualProxy) { v.DeadSocket = qliksim.DeadSocket401 }},
	}
	type ender func(e *env, user string)
	ends := []struct {
		name string
		end  ender
	}{
		{"qlik restart", func(e *env, _ string) { e.sim.ExpireAll() }},
		{"idle timeout", func(e *env, user string) { e.sim.ExpireUser(`ACME\` + user) }},
		{"logout elsewhere", func(e *env, user string) {
			// At QPS directly, as the hub's logout or another proxy would.
			if _, err := e.tickets.Logout(context.Background(), identity.User{Directory: "ACME", ID: user}); err != nil {
				panic(err)
			}
		}},
	}
	for _, csrf := range []bool{false, true} {
		for _, v := range variants {
			t.Run(fmt.Sprintf("%s/csrf=%v", v.name, csrf), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(c *qliksim.Config, o *Options) {
					for i := range c.VirtualProxies {
						v.vp(&c.VirtualProxies[i])
					}
					if csrf {
						c.WebsocketCSRF = true
						o.WebsocketCSRF = CSRFAuto
					}
				})
				for _, end := range ends {
					user := strings.ReplaceAll(end.name, " ", "-") + "-http"
					t.Run(end.name+"/http", func(t *testing.T) { recoverHTTP(t, e, user, end.end) })
					user = strings.ReplaceAll(end.name, " ", "-") + "-ws"
					t.Run(end.name+"/websocket", func(t *testing.T) { recoverWebsocket(t, e, user, end.end) })
				}
			})
		}
	}
}

// recoverHTTP: a request, the session ends, a request again. Both answer
// 200 and run at Qlik as user; the second made exactly one login.
func recoverHTTP(t *testing.T, e *env, user string, end func(*env, string)) {
	get := func(tag string) {
		t.Helper()
		resp, body := e.do(t, "GET", "/qrs/app?xrfkey="+xrf, user, "X-Qlik-Xrfkey", xrf, "X-Sim-Tag", tag)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /qrs/app (%s) = %d %.200q", tag, resp.StatusCode, body)
		}
		if got := ranAs(e, tag); got != `ACME\`+user {
			t.Fatalf("GET /qrs/app (%s) ran at Qlik as %q, want ACME\\%s", tag, got, user)
		}
	}
	get(user + "-before")
	end(e, user)
	get(user + "-after")
	if n := e.sim.Counts(`ACME\` + user).TicketsIssued; n != 2 {
		t.Errorf("tickets for %s = %d, want 2: one login, and one after the session ended", user, n)
	}
}

// recoverWebsocket: an Engine socket, the session ends (Qlik closes the
// socket, or drops it in a restart), the client opens a new socket as
// enigma.js reconnects, with no HTTP request in between. The new socket
// opens and runs as user on one new login.
func recoverWebsocket(t *testing.T, e *env, user string, end func(*env, string)) {
	c, _, err := e.dialEngine(t, "/app/engineData", user, http.Header{"Origin": {e.front.URL}})
	if err != nil {
		t.Fatalf("first socket: %v", err)
	}
	call(t, c, 1, "EngineVersion", -1, "")
	end(e, user)
	// Qlik ends the old socket: with a close frame after a notification,
	// or by dropping the connection.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatalf("the old socket stayed open after the session ended")
			}
			break
		}
	}
	c2, resp, err := e.dialEngine(t, "/app/engineData", user, http.Header{"Origin": {e.front.URL}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("socket after the session ended: %v (status %d)", err, status)
	}
	tag := user + "-after"
	call(t, c2, 1, "GetAuthenticatedUser", -1, tag)
	if got := ranAs(e, tag); got != `ACME\`+user {
		t.Errorf("the new socket ran at Qlik as %q, want ACME\\%s", got, user)
	}
	if n := e.sim.Counts(`ACME\` + user).TicketsIssued; n != 2 {
		t.Errorf("tickets for %s = %d, want 2: one login, and one after the session ended", user, n)
	}
}

// ranAs returns the user the simulator ran the request or Engine call
// tagged tag as: its last attempt's (the first may have met the dead
// session).
func ranAs(e *env, tag string) string {
	user := ""
	for _, ev := range e.sim.Events(0) {
		if ev.Tag == tag && (ev.Kind == "http" || ev.Kind == "ws") {
			user = ev.User
		}
	}
	return user
}

// Issue 15: live, Qlik creates a 6th session and refuses its Engine socket
// with OnMaxParallelSessionsExceeded [M1]. sensegate answers 503 with the
// reason, ends that session at QPS (it counts toward the five until it
// times out), and the user's next attempt works once a slot is free.
func TestParallelSessionCapOnTheSocket(t *testing.T) {
	e := newEnv(t, func(c *qliksim.Config, _ *Options) {
		for i := range c.VirtualProxies {
			c.VirtualProxies[i].SessionCap = qliksim.SessionCapSocket
		}
	})
	alice := identity.User{Directory: "ACME", ID: "alice"}
	var elsewhere []string // five sessions of alice's in other browsers
	for range 5 {
		c, err := e.tickets.Login(context.Background(), alice)
		if err != nil {
			t.Fatal(err)
		}
		elsewhere = append(elsewhere, c.Value)
	}
	_, resp, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("socket over the cap: err %v, resp %v; want 503", err, resp)
	}
	if n := e.sim.Counts(`ACME\alice`).SocketsRefused; n != 1 {
		t.Errorf("sockets refused by the cap = %d, want 1", n)
	}
	// sensegate's own (6th) session is ended at QPS, off the request path.
	deadline := time.Now().Add(10 * time.Second)
	for e.sim.Counts(`ACME\alice`).LiveSessions != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("alice's live sessions = %d, want 5: sensegate's refused session was not ended", e.sim.Counts(`ACME\alice`).LiveSessions)
		}
		time.Sleep(10 * time.Millisecond) // polling with a bound
	}
	if _, err := e.tickets.EndSession(context.Background(), elsewhere[0]); err != nil {
		t.Fatal(err)
	}
	c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		t.Fatalf("socket once a slot is free: %v", err)
	}
	if ans, _ := call(t, c, 1, "GetAuthenticatedUser", -1, ""); !strings.Contains(string(ans.Result), "alice") {
		t.Errorf("GetAuthenticatedUser = %s", ans.Result)
	}
}

// Issue 15: only the Engine's sockets (/app/…) are probed and watched.
// Another websocket on a Qlik path is relayed with the user's cookie, and
// the first message Qlik gets is the client's.
func TestNonEngineWebsocketIsNotProbed(t *testing.T) {
	upgrader := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	first := make(chan string, 1)
	e := newSpoofEnv(t, func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for n := 0; ; n++ {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if n == 0 {
				first <- string(m)
			}
			if c.WriteMessage(mt, m) != nil {
				return
			}
		}
	})
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(e.front.URL, "http")+"/vp/api/v1/stream", http.Header{"Authorization": {"Bearer alice"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Not JSON-RPC at all, and with a session-ending topic's name in it.
	msg := `plain text "method":"OnSessionClosed"`
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, m, err := c.ReadMessage(); err != nil || string(m) != msg {
		t.Fatalf("echo = %q, %v", m, err)
	}
	if got := <-first; got != msg {
		t.Errorf("Qlik's first message = %q, want the client's (no probe)", got)
	}
	got := e.qlik.take()
	if len(got) != 1 || got[0].Header.Get("Cookie") != spoofCookie+"=alice-session" {
		t.Errorf("Qlik got %d upgrades, the first with Cookie %q; want one with the user's session", len(got), got[0].Header.Get("Cookie"))
	}
}
