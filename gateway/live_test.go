package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/tooling/sensegatetest"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

// isClosed reports whether g was closed.
func isClosed(g *Gateway) bool {
	select {
	case <-g.closed:
		return true
	default:
		return false
	}
}

// waitClosed waits a bounded time for g to be closed.
func waitClosed(t *testing.T, g *Gateway, what string) {
	t.Helper()
	select {
	case <-g.closed:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: the replaced gateway was not closed within 15 s", what)
	}
}

// closeSocket closes ws with a close handshake and waits for its end.
func closeSocket(t *testing.T, ws *websocket.Conn) {
	t.Helper()
	ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break
		}
	}
	ws.Close()
}

// A reload (Swap) while an HTTP request is in flight on the old gateway
// and a websocket it relays is open: the old gateway serves both to their
// end and is closed only then, and forgotten. Relayed websockets outlive
// their handler (proxy.relay hands them to goroutines of their own), so
// the hijacked connection holds the gateway, not the request.
func TestLiveClosesReplacedGatewayOnceDrained(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "slow")
	}))
	t.Cleanup(slow.Close)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before slow.Close, which waits for the handler
	cfg := loadConfig(t, sensegatetest.WriteConfig(t, sim, fmt.Sprintf("routes:\n  - path: /slow/\n    upstream: %q\n", slow.URL)))
	log := zaptest.NewLogger(t)
	g1, g2 := newTestGateway(t, cfg, log), newTestGateway(t, cfg, log)
	lv := NewLive(g1, log)
	srv := httptest.NewServer(lv)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	// An HTTP request held in flight on g1.
	reqDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/slow/x", nil)
		req.Header.Set("X-Forwarded-User", "alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			reqDone <- err
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != 200 || string(b) != "slow") {
			err = fmt.Errorf("GET /slow/x = %d %q", resp.StatusCode, b)
		}
		reqDone <- err
	}()
	select {
	case <-arrived:
	case err := <-reqDone:
		t.Fatalf("the held request ended early: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the held request did not reach its upstream")
	}
	// And a websocket relayed by g1.
	ws := sensegatetest.DialEngine(t, addr, "bob")

	lv.Swap(g2)
	if isClosed(g1) || lv.retiredCount() != 1 {
		t.Fatalf("after the swap: g1 closed %t, %d replaced gateways kept; want g1 open and kept", isClosed(g1), lv.retiredCount())
	}
	if lv.Current() != g2 {
		t.Fatal("Current is not the new gateway")
	}
	// New requests go to g2 meanwhile.
	if got := sensegatetest.HubAs(t, addr, "X-Forwarded-User", "carol"); got != 200 {
		t.Errorf("GET /hub/ after the swap = %d", got)
	}

	unblock()
	if err := <-reqDone; err != nil {
		t.Fatal(err)
	}
	// The websocket still holds g1, which goes on relaying it.
	sensegatetest.EngineVersion(t, ws, 2, 5)
	if isClosed(g1) || lv.retiredCount() != 1 {
		t.Fatalf("with the websocket open: g1 closed %t, %d replaced gateways kept; want g1 open and kept", isClosed(g1), lv.retiredCount())
	}

	closeSocket(t, ws)
	waitClosed(t, g1, "after its last request and websocket ended")
	if n := lv.retiredCount(); n != 0 {
		t.Errorf("replaced gateways kept after g1 drained = %d, want 0", n)
	}
	if isClosed(g2) {
		t.Error("the current gateway was closed")
	}
}

// A gateway replaced with nothing in flight is closed by Swap itself.
func TestLiveClosesIdleReplacedGatewayAtOnce(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg := loadConfig(t, sensegatetest.WriteConfig(t, sim, ""))
	log := zaptest.NewLogger(t)
	g1, g2 := newTestGateway(t, cfg, log), newTestGateway(t, cfg, log)
	lv := NewLive(g1, log)
	lv.Swap(g2)
	if !isClosed(g1) || lv.retiredCount() != 0 {
		t.Errorf("after a swap with no traffic: g1 closed %t, %d replaced gateways kept; want g1 closed and forgotten", isClosed(g1), lv.retiredCount())
	}
	srv := httptest.NewServer(lv)
	t.Cleanup(srv.Close)
	if got := sensegatetest.HubAs(t, srv.Listener.Addr().String(), "X-Forwarded-User", "alice"); got != 200 || isClosed(g2) {
		t.Errorf("GET /hub/ on the new gateway = %d (closed %t), want 200 and open", got, isClosed(g2))
	}
}

// Shutdown closes the websockets of the current gateway and of a replaced
// one still relaying, which then drains and is closed; Close closes the
// current one. Nothing is left running.
func TestLiveShutdown(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg := loadConfig(t, sensegatetest.WriteConfig(t, sim, ""))
	log := zaptest.NewLogger(t)
	before := goleak.IgnoreCurrent()
	g1, g2 := newTestGateway(t, cfg, log), newTestGateway(t, cfg, log)
	lv := NewLive(g1, log)
	srv := httptest.NewServer(lv)
	addr := srv.Listener.Addr().String()
	old := sensegatetest.DialEngine(t, addr, "alice")
	lv.Swap(g2)
	cur := sensegatetest.DialEngine(t, addr, "bob")
	if isClosed(g1) {
		t.Fatal("g1 closed with a websocket open")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The clients read meanwhile, answering the close as browsers do.
	shut := make(chan error, 1)
	go func() { shut <- lv.Shutdown(ctx) }()
	for name, ws := range map[string]*websocket.Conn{"replaced": old, "current": cur} {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var err error
		for err == nil {
			_, _, err = ws.ReadMessage()
		}
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
			t.Errorf("the %s gateway's websocket on Shutdown: %v, want close 1001", name, err)
		}
		ws.Close()
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	waitClosed(t, g1, "after Shutdown closed its websocket")
	srv.Close()
	if err := lv.Close(); err != nil || !isClosed(g2) {
		t.Errorf("Close = %v, current gateway closed %t; want it closed", err, isClosed(g2))
	}
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left: %v", err)
	}
}

// Requests racing with swaps each run on one gateway to their end, and
// every replaced gateway is closed once, after its last request.
func TestLiveSwapUnderLoad(t *testing.T) {
	sim := sensegatetest.StartSim(t)
	cfg := loadConfig(t, sensegatetest.WriteConfig(t, sim, ""))
	log := zaptest.NewLogger(t)
	// One jar for all, as a reloading server has: users keep their Qlik
	// sessions across swaps.
	jar := session.NewMemory(cfg.Qlik.SessionTimeout, nil)
	build := func() *Gateway {
		g, err := New(context.Background(), cfg, Deps{Logger: log, Jar: jar})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g
	}
	lv := NewLive(build(), log)
	srv := httptest.NewServer(lv)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	users := []string{"alice", "bob", "carol", "dev"}
	const swaps, perClient = 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, len(users)*perClient)
	for _, u := range users {
		wg.Go(func() {
			for range perClient {
				req, _ := http.NewRequest("GET", "http://"+addr+"/hub/", nil)
				req.Header.Set("X-Forwarded-User", u)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("GET /hub/ = %d", resp.StatusCode)
				}
			}
		})
	}
	var replaced []*Gateway
	for range swaps {
		replaced = append(replaced, lv.Current())
		lv.Swap(build())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// The last requests' releases may run just after their answers.
	for i, g := range replaced {
		waitClosed(t, g, fmt.Sprintf("replaced gateway %d", i))
	}
	if n := lv.retiredCount(); n != 0 {
		t.Errorf("replaced gateways kept = %d, want 0", n)
	}
	if isClosed(lv.Current()) {
		t.Error("the current gateway was closed")
	}
}

// A connection hijacked through Live passes its socket on (SyscallConn),
// so that the relay can wait on it without a read buffer; a connection
// without one says so.
func TestHeldConnPassesSyscallConnOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := (&heldConn{Conn: c}).SyscallConn(); err != nil {
		t.Errorf("SyscallConn of a held TCP connection = %v", err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := (&heldConn{Conn: a}).SyscallConn(); !errors.Is(err, errNoSyscallConn) {
		t.Errorf("SyscallConn of a held pipe = %v, want errNoSyscallConn", err)
	}
}
