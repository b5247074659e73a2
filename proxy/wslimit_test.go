package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

const seriesWSRefusedUser = `sensegate_websockets_refused_total{reason="user_limit"}`

// Issue 14 item 6: a user may have Options.WebsocketsPerUser websockets
// relayed at once. The next upgrade gets a clear 429 before Qlik is
// dialled, and is counted; other users are not affected; a socket closed
// makes room again.
func TestWebsocketsPerUserBound(t *testing.T) {
	const limit = 3
	e := newObservedEnv(t, func(_ *qliksim.Config, o *Options) { o.WebsocketsPerUser = limit })
	open := func(user string) *websocket.Conn {
		t.Helper()
		c, _, err := e.dialEngine(t, "/app/engineData", user, nil)
		if err != nil {
			t.Fatalf("%s: dial: %v", user, err)
		}
		call(t, c, 1, "EngineVersion", -1, "")
		return c
	}
	// dials counts the upgrades that reached the simulator.
	dials := func() int {
		n := 0
		for _, ev := range e.sim.Events(0) {
			if ev.Kind == "ws-open" {
				n++
			}
		}
		return n
	}

	var alice []*websocket.Conn
	for range limit {
		alice = append(alice, open("alice"))
	}
	before := dials()
	c, resp, err := e.dialEngine(t, "/app/engineData", "alice", http.Header{"Accept": {"application/json"}})
	if err == nil {
		c.Close()
		t.Fatalf("socket %d of alice was relayed, want 429", limit+1)
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("socket %d of alice: %v (response %v), want 429", limit+1, err, resp)
	}
	var body struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil || body.Status != http.StatusTooManyRequests || body.Error == "" ||
		resp.Header.Get(headerSensegate) != "1" {
		t.Errorf("429 answer %q (%v), %s: %q; want sensegate's JSON error", b, err, headerSensegate, resp.Header.Get(headerSensegate))
	}
	if got := dials(); got != before {
		t.Errorf("the refused upgrade made %d dials to Qlik, want none", got-before)
	}
	e.want(t, map[string]float64{seriesWSRefusedUser: 1, seriesWSOpen: limit})

	// Another user is not affected, and alice's sockets still work.
	for range limit {
		open("bob")
	}
	if ans, _ := call(t, alice[0], 2, "EngineVersion", -1, ""); ans.Error != nil {
		t.Fatalf("alice's socket after the refusal: %+v", ans.Error)
	}

	// One of alice's sockets closes: once the relay has let go of it,
	// alice may open another, and only one.
	alice[0].WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	alice[0].Close()
	e.want(t, map[string]float64{seriesWSOpen: 2*limit - 1})
	open("alice")
	if _, resp, err := e.dialEngine(t, "/app/engineData", "alice", nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("alice over the bound again: %v, want 429", err)
	}
	e.want(t, map[string]float64{seriesWSRefusedUser: 2, seriesWSOpen: 2 * limit})
}

// An upgrade that fails before it is relayed (here the Qlik login) gives
// its place back.
func TestWebsocketsPerUserFailedUpgrade(t *testing.T) {
	e := newEnv(t, func(_ *qliksim.Config, o *Options) { o.WebsocketsPerUser = 1 })
	e.sim.SetQPSFault(qliksim.Fault5xx)
	if _, resp, err := e.dialEngine(t, "/app/engineData", "alice", nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade while QPS fails: %v, want 503", err)
	}
	e.sim.SetQPSFault(qliksim.FaultNone)
	c, resp, err := e.dialEngine(t, "/app/engineData", "alice", nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("upgrade after the failed one: %v (%d), want it relayed", err, status)
	}
	call(t, c, 1, "EngineVersion", -1, "")
}

// Without a bound (the zero Options), one user may hold many sockets.
func TestWebsocketsPerUserUnbounded(t *testing.T) {
	e := newEnv(t)
	for i := range 8 {
		c, _, err := e.dialEngine(t, "/app/engineData", "alice", nil)
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		call(t, c, 1, "EngineVersion", -1, "")
	}
	if n := e.h.ws.count(); n != 8 {
		t.Errorf("relayed sockets = %d, want 8", n)
	}
}
