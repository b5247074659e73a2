package qliksim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// qpsEventsSince returns the QPS API events logged after seq.
func qpsEventsSince(sim *Sim, seq int64) []Event { return eventsWhere(sim, seq, ofKind("qps")) }

// lastSeq is the sequence number of the newest logged event.
func lastSeq(sim *Sim) int64 {
	ev := sim.Events(0)
	if len(ev) == 0 {
		return 0
	}
	return ev[len(ev)-1].Seq
}

// waitQPSEvents polls (bounded) until n QPS events follow seq: a call the
// simulator aborted is logged when its handler returns, which may be just
// after the client saw the connection end.
func waitQPSEvents(t *testing.T, sim *Sim, seq int64, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev := qpsEventsSince(sim, seq)
		if len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Every fault that lets a call reach the handler logs it once, with the
// status it answered (0 for none).
func TestControlFaultLogsEachCallOnce(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := qpsClient(t, sim)
	tests := []struct {
		name   string
		set    func() error
		status int
	}{
		{"5xx", func() error { return sim.SetQPSFault(Fault5xx) }, http.StatusServiceUnavailable},
		{"close", func() error { return sim.SetQPSFault(FaultClose) }, 0},
		{"badjson", func() error { return sim.SetQPSFault(FaultBadJSON) }, http.StatusCreated},
		{"hang", func() error { return sim.SetQPSFault(FaultHang) }, 0},
		{"slow past the client's deadline", func() error { return sim.SetQPSSlow(time.Hour) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.set(); err != nil {
				t.Fatal(err)
			}
			defer sim.SetQPSFault(FaultNone)
			seq := lastSeq(sim)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			ctlTicketRequest(ctx, t, c, sim, `ACME\alice`)
			ev := waitQPSEvents(t, sim, seq, 1)
			if len(ev) != 1 || ev[0].Status != tt.status || ev[0].Path != "/qps/ticket" {
				t.Errorf("QPS events after one ticket request = %+v, want one of /qps/ticket with status %d", ev, tt.status)
			}
		})
	}
	if n := sim.TicketsIssued(); n != 0 {
		t.Errorf("TicketsIssued() after faulted calls only = %d, want 0", n)
	}
}

func TestControlFaultBadJSON(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	sim.SetQPSFault(FaultBadJSON)
	c := qpsClient(t, sim)
	for _, tt := range []struct {
		method, url string
		body        any
		want        int
	}{
		{"POST", qpsPath(sim, "", "ticket"), map[string]any{"UserDirectory": "ACME", "UserId": "alice"}, http.StatusCreated},
		{"POST", qpsPath(sim, "", "session"), map[string]any{"UserDirectory": "ACME", "UserId": "alice", "SessionId": "s1"}, http.StatusCreated},
		{"GET", qpsPath(sim, "", "user") + "/ACME/alice", nil, http.StatusOK},
	} {
		st, body := qpsDo(t, c, tt.method, tt.url, tt.body)
		var v any
		if st != tt.want || json.Unmarshal(body, &v) == nil {
			t.Errorf("%s %s with FaultBadJSON = %d %q, want %d with a body that is not JSON", tt.method, tt.url, st, body, tt.want)
		}
	}
	if n := sim.TicketsIssued(); n != 0 || len(sim.Sessions()) != 0 {
		t.Errorf("after FaultBadJSON calls: %d tickets, sessions %+v, want none: the fault changes nothing", n, sim.Sessions())
	}
	sim.SetQPSFault(FaultNone)
	login(t, sim, "", `ACME\alice`)
}

// A slow QPS answers normally once the delay has passed.
func TestControlFaultSlowAnswers(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	const delay = 150 * time.Millisecond
	if err := sim.SetQPSSlow(delay); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tk := ticket(t, sim, "", `ACME\alice`)
	if took := time.Since(start); took < delay {
		t.Errorf("ticket with SetQPSSlow(%s) took %s, want at least the delay", delay, took)
	}
	if tk == "" {
		t.Error("ticket with FaultSlow is empty, want a ticket")
	}
}

// A slow answer pending when the simulator stops ends at once: Shutdown
// does not wait out the delay, and no handler is left sleeping (TestMain
// checks for goroutines).
func TestControlFaultSlowEndsOnShutdown(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	sim := startTestSim(t, nil, Options{SweepInterval: -1, Logger: zap.New(core)})
	sim.SetQPSSlow(time.Hour)
	c := qpsClient(t, sim)
	done := make(chan error, 1)
	go func() {
		_, err := ctlTicketRequest(context.Background(), t, c, sim, `ACME\alice`)
		done <- err
	}()
	// Wait (bounded) until the call is in the handler, waiting.
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("qps fault: answering late").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow call did not reach the QPS handler")
		}
		time.Sleep(5 * time.Millisecond)
	}
	seq := lastSeq(sim)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := sim.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a slow QPS call pending: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Shutdown took %s with a slow call pending, want it to end the wait", took)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the pending call got an answer after Shutdown, want none")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pending call did not end after Shutdown")
	}
	if ev := qpsEventsSince(sim, seq); len(ev) != 1 || ev[0].Status != 0 {
		t.Errorf("QPS events = %+v, want the unanswered call logged once with status 0", ev)
	}
}

func TestControlFaultDown(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	c := qpsClient(t, sim) // keeps its connection alive across calls
	ticketFor := func(user string) error {
		resp, err := ctlTicketRequest(context.Background(), t, c, sim, user)
		if err == nil && resp.StatusCode != http.StatusCreated {
			return errors.New(resp.Status)
		}
		return err
	}
	if err := ticketFor(`ACME\bob`); err != nil {
		t.Fatal(err)
	}
	qpsURL := sim.QPSURL()

	if err := sim.SetQPSFault(FaultDown); err != nil {
		t.Fatal(err)
	}
	// The kept connection was dropped, and no new one is accepted.
	if err := ticketFor(`ACME\bob`); err == nil {
		t.Error("ticket request on the connection from before FaultDown succeeded, want it dropped")
	}
	fresh := qpsClient(t, sim)
	_, err := ctlTicketRequest(context.Background(), t, fresh, sim, `ACME\bob`)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("ticket request with FaultDown: %v, want connection refused", err)
	}
	if st, body := ctlHub(t, sim, alice); st != http.StatusOK {
		t.Errorf("GET /hub as alice with QPS down: %d %q, want 200 (the proxy side serves sessions)", st, body)
	}
	if err := sim.SetQPSFault(FaultDown); err != nil { // again: no change
		t.Fatal(err)
	}

	if err := sim.SetQPSFault(FaultNone); err != nil {
		t.Fatalf("SetQPSFault(FaultNone) after FaultDown: %v", err)
	}
	if sim.QPSURL() != qpsURL {
		t.Errorf("QPSURL() after coming back = %q, want the same %q", sim.QPSURL(), qpsURL)
	}
	if err := ticketFor(`ACME\bob`); err != nil {
		t.Errorf("ticket request after QPS came back: %v", err)
	}
}

func TestControlFaultCertRejected(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	c := qpsClient(t, sim)
	if resp, err := ctlTicketRequest(context.Background(), t, c, sim, `ACME\bob`); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("ticket request before the fault: %v %v", resp, err)
	}
	seq := lastSeq(sim)
	sim.SetQPSFault(FaultCertRejected)
	// The kept connection is gone (a POST on it fails, EOF), and new ones
	// are refused.
	if resp, err := ctlTicketRequest(context.Background(), t, c, sim, `ACME\bob`); err == nil {
		t.Errorf("ticket request on the connection from before FaultCertRejected: %s, want it dropped", resp.Status)
	}
	for _, client := range []*http.Client{c, qpsClient(t, sim)} {
		_, err := ctlTicketRequest(context.Background(), t, client, sim, `ACME\bob`)
		if err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Errorf("ticket request on a new connection with FaultCertRejected: %v, want the handshake refused (bad certificate)", err)
		}
	}
	if ev := qpsEventsSince(sim, seq); len(ev) != 0 {
		t.Errorf("QPS events with FaultCertRejected = %+v, want none: nothing reaches HTTP", ev)
	}
	if st, body := ctlHub(t, sim, alice); st != http.StatusOK {
		t.Errorf("GET /hub as alice with QPS refusing certificates: %d %q, want 200", st, body)
	}
	sim.SetQPSFault(FaultNone)
	if resp, err := ctlTicketRequest(context.Background(), t, c, sim, `ACME\bob`); err != nil || resp.StatusCode != http.StatusCreated {
		t.Errorf("ticket request after FaultNone: %v %v, want 201", resp, err)
	}
}

func TestAdminFaultModes(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	for _, tt := range []struct {
		query string
		want  int
		body  map[string]string
	}{
		{"?qps=slow&delay=250ms", http.StatusOK, map[string]string{"qps": "slow", "delay": "250ms"}},
		{"?qps=slow", http.StatusOK, map[string]string{"qps": "slow", "delay": DefaultQPSDelay.String()}},
		{"?qps=badjson", http.StatusOK, map[string]string{"qps": "badjson"}},
		{"?qps=cert", http.StatusOK, map[string]string{"qps": "cert"}},
		{"?qps=down", http.StatusOK, map[string]string{"qps": "down"}},
		{"?qps=5xx&delay=1s", http.StatusBadRequest, nil},
		{"?qps=slow&delay=soon", http.StatusBadRequest, nil},
		{"?qps=slow&delay=-1s", http.StatusBadRequest, nil},
		{"?qps=slow&delay=0s", http.StatusBadRequest, nil},
		{"?qps=none", http.StatusOK, map[string]string{"qps": "none"}},
	} {
		st, body := ctlAdmin(t, sim, "POST", "/fault"+tt.query)
		if st != tt.want {
			t.Errorf("admin POST /fault%s: status %d, want %d; body %q", tt.query, st, tt.want, body)
			continue
		}
		if tt.body == nil {
			continue
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != len(tt.body) || got["qps"] != tt.body["qps"] || got["delay"] != tt.body["delay"] {
			t.Errorf("admin POST /fault%s: body %q, want %v", tt.query, body, tt.body)
		}
	}
	// A refused change keeps the mode: after the last, QPS answers.
	st, body := qpsDo(t, qpsClient(t, sim), "POST", qpsPath(sim, "", "ticket"), map[string]any{"UserDirectory": "ACME", "UserId": "bob"})
	if st != http.StatusCreated {
		t.Errorf("POST /qps/ticket after qps=none: %d %q, want 201", st, body)
	}
	// qps=down really closes the port, and qps=none reopens it.
	ctlAdmin(t, sim, "POST", "/fault?qps=down")
	if _, err := ctlTicketRequest(context.Background(), t, qpsClient(t, sim), sim, `ACME\bob`); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("ticket request after admin qps=down: %v, want connection refused", err)
	}
	ctlAdmin(t, sim, "POST", "/fault?qps=none")
	resp, err := ctlTicketRequest(context.Background(), t, qpsClient(t, sim), sim, `ACME\bob`)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Errorf("ticket request after admin qps=none: %v %v, want 201", resp, err)
	}
}
