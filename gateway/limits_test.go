package gateway

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/zap/zaptest"
)

// A user over qlik.login_rate gets 429 with Retry-After instead of a new
// Qlik login; other users do not wait.
func TestServeLoginRate(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	t.Setenv("SENSEGATE_QLIK_LOGIN_RATE_PER_MINUTE", "1")
	t.Setenv("SENSEGATE_QLIK_LOGIN_RATE_BURST", "1")
	cfg := loadConfig(t, sensegatetest.WriteConfig(t, sim, ""))
	addr := serveGateway(t, cfg, zaptest.NewLogger(t))
	get := func(user string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/hub/", nil)
		req.Header.Set("X-Forwarded-User", user)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get("alice"); resp.StatusCode != 200 {
		t.Fatalf("first request = %d", resp.StatusCode)
	}
	// Qlik forgets alice's session: she needs a second login within the
	// minute.
	sim.ExpireUser(`ACME\alice`)
	resp := get("alice")
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || ra < 1 || ra > 60 {
		t.Errorf("second login within the minute = %d Retry-After %q, want 429 with up to 60 s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if got := sim.Counts(`ACME\alice`).TicketsIssued; got != 1 {
		t.Errorf("tickets for alice = %d, want 1", got)
	}
	if resp := get("bob"); resp.StatusCode != 200 {
		t.Errorf("bob = %d, want 200: the limit is per user", resp.StatusCode)
	}
}

// A user over qlik.websocket_per_user gets 429 on the next websocket
// upgrade; other users do not.
func TestServeWebsocketsPerUser(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	t.Setenv("SENSEGATE_QLIK_WEBSOCKET_PER_USER", "1")
	cfg := loadConfig(t, sensegatetest.WriteConfig(t, sim, ""))
	addr := serveGateway(t, cfg, zaptest.NewLogger(t))
	dial := func(user string) (*websocket.Conn, int) {
		t.Helper()
		d := websocket.Dialer{HandshakeTimeout: 15 * time.Second}
		c, resp, err := d.Dial("ws://"+addr+"/app/engineData", http.Header{"X-Forwarded-User": {user}})
		if err != nil {
			if resp == nil {
				t.Fatalf("%s: %v", user, err)
			}
			return nil, resp.StatusCode
		}
		t.Cleanup(func() { c.Close() })
		return c, http.StatusSwitchingProtocols
	}
	if _, status := dial("alice"); status != http.StatusSwitchingProtocols {
		t.Fatalf("alice's first websocket = %d", status)
	}
	if _, status := dial("alice"); status != http.StatusTooManyRequests {
		t.Errorf("alice's second websocket = %d, want 429", status)
	}
	if _, status := dial("bob"); status != http.StatusSwitchingProtocols {
		t.Errorf("bob's websocket = %d, want it relayed: the bound is per user", status)
	}
}

// Issue 14: one user drove 30 tickets in a loop. With the default
// qlik.login_rate a user gets config.DefaultLoginRateBurst logins at once,
// then 429s, and Qlik issues no more tickets than that.
func TestServeLoginRateOnByDefault(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg := loadConfig(t, sensegatetest.WriteConfig(t, sim, ""))
	addr := serveGateway(t, cfg, zaptest.NewLogger(t))
	limited, start := 0, time.Now()
	for range 30 {
		sim.ExpireUser(`ACME\alice`)
		if sensegatetest.HubAs(t, addr, "X-Forwarded-User", "alice") == http.StatusTooManyRequests {
			limited++
		}
	}
	// The bucket refills one login every 60/DefaultLoginRatePerMinute s:
	// a slow machine may have earned a few during the loop.
	refilled := int(time.Since(start) / (time.Minute / config.DefaultLoginRatePerMinute))
	got := sim.Counts(`ACME\alice`).TicketsIssued
	if got < config.DefaultLoginRateBurst || got > config.DefaultLoginRateBurst+refilled {
		t.Errorf("tickets for alice in a loop of 30 logins = %d, want %d (the default burst, +%d refilled)", got, config.DefaultLoginRateBurst, refilled)
	}
	if limited != 30-got {
		t.Errorf("429s = %d, want %d", limited, 30-got)
	}
}
