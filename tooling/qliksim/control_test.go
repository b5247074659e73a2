package qliksim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ctlAdmin calls the admin listener and returns the status and body.
func ctlAdmin(t *testing.T, sim *Sim, method, path string) (int, string) {
	t.Helper()
	base := sim.AdminURL()
	if base == "" {
		t.Fatal("AdminURL() is empty, want the admin listener (newTestSim sets admin_listen)")
	}
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("admin %s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// ctlAdminJSON calls the admin listener, requires status want and decodes
// the JSON body into a T.
func ctlAdminJSON[T any](t *testing.T, sim *Sim, method, path string, want int) T {
	t.Helper()
	st, body := ctlAdmin(t, sim, method, path)
	if st != want {
		t.Fatalf("admin %s %s: status %d, want %d; body %q", method, path, st, want, body)
	}
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("admin %s %s: decoding %q: %v", method, path, body, err)
	}
	return v
}

// ctlHub requests the hub with cookie c and returns the status and body.
func ctlHub(t *testing.T, sim *Sim, c *http.Cookie) (int, string) {
	t.Helper()
	resp, body := proxyGet(t, sim, vpURL(sim, "", "/hub"), c)
	return resp.StatusCode, body
}

// ctlTicketRequest posts a ticket request for user without failing the
// test on a transport error, for the fault modes.
func ctlTicketRequest(ctx context.Context, t *testing.T, c *http.Client, sim *Sim, user string) (*http.Response, error) {
	t.Helper()
	d, id, _ := strings.Cut(user, `\`)
	b, err := json.Marshal(map[string]any{"UserDirectory": d, "UserId": id})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", qpsPath(sim, "", "ticket")+"?xrfkey="+testXrfkey, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Qlik-Xrfkey", testXrfkey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestAdminListener(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	if u := sim.AdminURL(); !strings.HasPrefix(u, "http://localhost:") {
		t.Errorf("AdminURL() = %q, want http://localhost:<port> (plain HTTP on loopback)", u)
	}
	st, body := ctlAdmin(t, sim, "GET", "/nope")
	if st != http.StatusNotFound {
		t.Errorf("admin GET /nope: status %d, want 404; body %q", st, body)
	}

	noAdmin, _ := newTestSim(t, func(c *Config) { c.AdminListen = "" })
	if u := noAdmin.AdminURL(); u != "" {
		t.Errorf("AdminURL() with admin_listen empty = %q, want \"\"", u)
	}
}

func TestAdminUsers(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	login(t, sim, "", `ACME\alice`)
	ticket(t, sim, "", `acme\bob`) // issued, never redeemed
	want := map[string]UserCounts{
		`ACME\alice`: {TicketsIssued: 1, TicketsRedeemed: 1, SessionsCreated: 1, LiveSessions: 1},
		`ACME\bob`:   {TicketsIssued: 1},
	}
	got := ctlAdminJSON[map[string]UserCounts](t, sim, "GET", "/users", http.StatusOK)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("admin GET /users after alice's login (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, sim.Users()); diff != "" {
		t.Errorf("Users() after alice's login (-want +got):\n%s", diff)
	}
}

func TestAdminSessions(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := login(t, sim, "ticket", `ACME\alice`, Attribute{Key: "Group", Value: "Ops"})
	got := ctlAdminJSON[[]SessionInfo](t, sim, "GET", "/sessions", http.StatusOK)
	if len(got) != 1 {
		t.Fatalf("admin GET /sessions: %d sessions, want 1: %+v", len(got), got)
	}
	want := SessionInfo{ID: c.Value, Prefix: "ticket", User: Identity{Directory: "ACME", ID: "alice"}, Attributes: []Attribute{{"Group", "Ops"}}}
	g := got[0]
	g.Created, g.LastActive = time.Time{}, time.Time{}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Errorf("admin GET /sessions (-want +got):\n%s", diff)
	}
}

func TestAdminExpireUser(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice1 := login(t, sim, "", `ACME\alice`)
	alice2 := login(t, sim, "ticket", `ACME\alice`)
	bob := login(t, sim, "", `ACME\bob`)

	got := ctlAdminJSON[map[string]int](t, sim, "POST", "/expire-user?user=ACME%5Calice", http.StatusOK)
	if got["ended"] != 2 {
		t.Errorf("admin POST /expire-user?user=ACME%%5Calice: ended = %d, want 2 (one per virtual proxy)", got["ended"])
	}
	for _, tt := range []struct {
		name, prefix, path string
		c                  *http.Cookie
		want               int
	}{
		{"alice default VP hub", "", "/hub", alice1, http.StatusFound},
		{"alice default VP QRS", "", "/qrs/about", alice1, http.StatusFound},
		{"alice ticket VP hub", "ticket", "/hub", alice2, http.StatusFound},
		{"bob untouched", "", "/hub", bob, http.StatusOK},
	} {
		resp, body := qrsDo(t, sim, "GET", tt.prefix, tt.path, tt.c)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: GET %s after expire-user: status %d, want %d; body %q", tt.name, qrsPathOn(tt.prefix, tt.path), resp.StatusCode, tt.want, body)
		}
	}
	if n := sim.Counts(`ACME\alice`).LiveSessions; n != 0 {
		t.Errorf("Counts(alice).LiveSessions after expire-user = %d, want 0", n)
	}

	again := ctlAdminJSON[map[string]int](t, sim, "POST", "/expire-user?user=acme%5CALICE", http.StatusOK)
	if again["ended"] != 0 {
		t.Errorf("admin POST /expire-user again: ended = %d, want 0", again["ended"])
	}

	for _, q := range []string{"", "?user=", "?user=alice", "?user=ACME%5C", "?user=%5Calice", "?user=A%5Cb%5Cc"} {
		if st, body := ctlAdmin(t, sim, "POST", "/expire-user"+q); st != http.StatusBadRequest {
			t.Errorf("admin POST /expire-user%s: status %d, want 400; body %q", q, st, body)
		}
	}
}

func TestAdminExpireAll(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	carol := login(t, sim, "ticket", `ACME\carol`)
	pending := ticket(t, sim, "", `ACME\bob`)
	// dev's session timed out before the restart: QPS then knew the cookie
	// (302), afterwards it does not (500).
	dev := login(t, sim, "", `ACME\dev`)
	sim.ExpireUser(`ACME\dev`)
	if st, body := ctlHub(t, sim, dev); st != http.StatusFound {
		t.Fatalf("GET /hub as dev after ExpireUser: status %d, want 302; body %q", st, body)
	}

	if st, body := ctlAdmin(t, sim, "POST", "/expire-all"); st != http.StatusOK {
		t.Fatalf("admin POST /expire-all: status %d, want 200; body %q", st, body)
	}
	for _, tt := range []struct {
		name, prefix, path string
		c                  *http.Cookie
	}{
		{"alice hub", "", "/hub", alice},
		{"alice QRS", "", "/qrs/app", alice},
		{"carol ticket VP", "ticket", "/hub", carol},
		{"dev timed out before", "", "/hub", dev},
	} {
		resp, body := qrsDo(t, sim, "GET", tt.prefix, tt.path, tt.c)
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(body, msgAuthError) {
			t.Errorf("%s: GET %s with a cookie from before expire-all: status %d body %q, want 500 %q", tt.name, qrsPathOn(tt.prefix, tt.path), resp.StatusCode, body, msgAuthError)
		}
	}
	if len(sim.Sessions()) != 0 {
		t.Errorf("Sessions() after expire-all = %+v, want none", sim.Sessions())
	}
	// Tickets are forgotten too.
	resp, _ := proxyGet(t, sim, vpURL(sim, "", "/hub?qlikTicket="+pending), nil)
	if resp.StatusCode != http.StatusFound {
		t.Errorf("redeeming a ticket issued before expire-all: status %d, want 302 (ticket forgotten)", resp.StatusCode)
	}
	// A new login works.
	if st, body := ctlHub(t, sim, login(t, sim, "", `ACME\alice`)); st != http.StatusOK {
		t.Errorf("GET /hub with a new session after expire-all: status %d, want 200; body %q", st, body)
	}
}

func TestAdminFault(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	qps := qpsClient(t, sim)
	steps := []struct {
		name       string
		query      string
		wantAdmin  int
		wantTicket int
	}{
		{"5xx", "?qps=5xx", http.StatusOK, http.StatusServiceUnavailable},
		{"bogus keeps 5xx", "?qps=bogus", http.StatusBadRequest, http.StatusServiceUnavailable},
		{"missing keeps 5xx", "", http.StatusBadRequest, http.StatusServiceUnavailable},
		{"upper case is not a mode", "?qps=NONE", http.StatusBadRequest, http.StatusServiceUnavailable},
		{"none restores", "?qps=none", http.StatusOK, http.StatusCreated},
	}
	for _, tt := range steps {
		st, body := ctlAdmin(t, sim, "POST", "/fault"+tt.query)
		if st != tt.wantAdmin {
			t.Fatalf("%s: admin POST /fault%s: status %d, want %d; body %q", tt.name, tt.query, st, tt.wantAdmin, body)
		}
		if st == http.StatusOK {
			var got map[string]string
			if err := json.Unmarshal([]byte(body), &got); err != nil || got["qps"] != strings.TrimPrefix(tt.query, "?qps=") {
				t.Errorf("%s: admin POST /fault%s: body %q, want {\"qps\":%q}", tt.name, tt.query, body, strings.TrimPrefix(tt.query, "?qps="))
			}
		}
		gotSt, gotBody := qpsDo(t, qps, "POST", qpsPath(sim, "", "ticket"), map[string]any{"UserDirectory": "ACME", "UserId": "bob"})
		if gotSt != tt.wantTicket {
			t.Errorf("%s: POST /qps/ticket: status %d, want %d; body %q", tt.name, gotSt, tt.wantTicket, gotBody)
		}
		// The fault is the QPS API's only: the proxy side serves sessions.
		if st, body := ctlHub(t, sim, alice); st != http.StatusOK {
			t.Errorf("%s: GET /hub as alice: status %d, want 200; body %q", tt.name, st, body)
		}
	}
}

func TestAdminSweep(t *testing.T) {
	sim, clock := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	bob := login(t, sim, "", `ACME\bob`)

	clock.Advance(20 * time.Minute)
	if st, body := ctlHub(t, sim, bob); st != http.StatusOK { // resets bob's idle timer
		t.Fatalf("GET /hub as bob after 20m: status %d, want 200; body %q", st, body)
	}
	clock.Advance(11 * time.Minute) // alice idle 31m, bob 11m

	got := ctlAdminJSON[map[string]int](t, sim, "POST", "/sweep", http.StatusOK)
	if got["ended"] != 1 {
		t.Errorf("admin POST /sweep after alice idled 31m: ended = %d, want 1", got["ended"])
	}
	if st, body := ctlHub(t, sim, alice); st != http.StatusFound {
		t.Errorf("GET /hub as alice after sweep: status %d, want 302; body %q", st, body)
	}
	if st, body := ctlHub(t, sim, bob); st != http.StatusOK {
		t.Errorf("GET /hub as bob after sweep: status %d, want 200; body %q", st, body)
	}
	again := ctlAdminJSON[map[string]int](t, sim, "POST", "/sweep", http.StatusOK)
	if again["ended"] != 0 {
		t.Errorf("admin POST /sweep again: ended = %d, want 0", again["ended"])
	}
}

func TestAdminEvents(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	before := sim.Events(0)
	if len(before) == 0 {
		t.Fatal("Events(0) after a login is empty, want the ticket and redemption")
	}
	since := before[len(before)-1].Seq

	for _, tag := range []string{"e1", "e2"} {
		proxyGet(t, sim, vpURL(sim, "", "/hub"), alice, "X-Sim-Tag", tag)
	}
	got := ctlAdminJSON[[]Event](t, sim, "GET", "/events?since="+strconv.FormatInt(since, 10), http.StatusOK)
	var tags []string
	for _, e := range got {
		if e.Seq <= since {
			t.Errorf("admin GET /events?since=%d: event seq %d, want > %d", since, e.Seq, since)
		}
		tags = append(tags, e.Tag)
	}
	if diff := cmp.Diff([]string{"e1", "e2"}, tags); diff != "" {
		t.Errorf("admin GET /events?since=%d: tags (-want +got):\n%s", since, diff)
	}
	for _, e := range got {
		if e.Kind != "http" || e.User != `ACME\alice` || e.Path != "/hub" || e.Status != http.StatusOK {
			t.Errorf("admin GET /events?since=%d: %+v, want an http event of ACME\\alice GET /hub 200", since, e)
		}
	}

	all := ctlAdminJSON[[]Event](t, sim, "GET", "/events", http.StatusOK)
	if len(all) != len(before)+2 {
		t.Errorf("admin GET /events: %d events, want %d", len(all), len(before)+2)
	}
	last := all[len(all)-1].Seq
	if rest := ctlAdminJSON[[]Event](t, sim, "GET", "/events?since="+strconv.FormatInt(last, 10), http.StatusOK); len(rest) != 0 {
		t.Errorf("admin GET /events?since=%d (the last): %+v, want none", last, rest)
	}
}

// TestAdminMethods: the controls that change state need POST, so a stray
// GET (a link, a prefetch) changes nothing.
func TestAdminMethods(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	alice := login(t, sim, "", `ACME\alice`)
	for _, path := range []string{"/expire-all", "/expire-user?user=ACME%5Calice", "/sweep", "/fault?qps=5xx"} {
		if st, body := ctlAdmin(t, sim, "GET", path); st != http.StatusMethodNotAllowed {
			t.Errorf("admin GET %s: status %d, want 405; body %q", path, st, body)
		}
	}
	if st, body := ctlHub(t, sim, alice); st != http.StatusOK {
		t.Errorf("GET /hub as alice after GETs on the admin controls: status %d, want 200; body %q", st, body)
	}
	if st, b := qpsDo(t, qpsClient(t, sim), "POST", qpsPath(sim, "", "ticket"), map[string]any{"UserDirectory": "ACME", "UserId": "bob"}); st != http.StatusCreated {
		t.Errorf("POST /qps/ticket after admin GET /fault?qps=5xx: status %d, want 201; body %q", st, b)
	}
}

func TestControlCounts(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	login(t, sim, "", `ACME\alice`)
	tk := ticket(t, sim, "ticket", `ACME\alice`)
	for i, want := range []int{http.StatusOK, http.StatusFound} { // a ticket is valid once
		resp, _ := proxyGet(t, sim, vpURL(sim, "ticket", "/hub?qlikTicket="+tk), nil)
		if resp.StatusCode != want {
			t.Fatalf("redemption %d of one ticket: status %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	ticket(t, sim, "", `ACME\alice`) // not redeemed

	want := UserCounts{TicketsIssued: 3, TicketsRedeemed: 2, SessionsCreated: 2, LiveSessions: 2}
	for _, name := range []string{`ACME\alice`, `acme\ALICE`, ` ACME \ alice `} {
		if diff := cmp.Diff(want, sim.Counts(name)); diff != "" {
			t.Errorf("Counts(%q) (-want +got):\n%s", name, diff)
		}
	}
	for _, name := range []string{`ACME\nobody`, "alice", ""} {
		if got := sim.Counts(name); got != (UserCounts{}) {
			t.Errorf("Counts(%q) = %+v, want zero", name, got)
		}
	}
	if n := sim.TicketsIssued(); n != 3 {
		t.Errorf("TicketsIssued() = %d, want 3", n)
	}

	if n := sim.ExpireUser(`ACME\alice`); n != 2 {
		t.Errorf("ExpireUser(alice) = %d, want 2", n)
	}
	want.LiveSessions = 0
	if diff := cmp.Diff(want, sim.Counts(`ACME\alice`)); diff != "" {
		t.Errorf("Counts(alice) after ExpireUser (-want +got):\n%s", diff)
	}
	if n := sim.ExpireUser("alice"); n != 0 {
		t.Errorf("ExpireUser(%q) = %d, want 0", "alice", n)
	}
}

func TestControlFaultString(t *testing.T) {
	for f, want := range map[QPSFault]string{FaultNone: "none", Fault5xx: "5xx", FaultHang: "hang", FaultClose: "close", FaultSlow: "slow", FaultBadJSON: "badjson", FaultCertRejected: "cert", FaultDown: "down", QPSFault(42): "42"} {
		if got := f.String(); got != want {
			t.Errorf("QPSFault(%d).String() = %q, want %q", int(f), got, want)
		}
	}
}

func TestControlFault5xx(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	sim.SetQPSFault(Fault5xx)
	resp, err := ctlTicketRequest(context.Background(), t, qpsClient(t, sim), sim, `ACME\alice`)
	if err != nil {
		t.Fatalf("POST /qps/ticket with Fault5xx: %v, want a 503 response", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("POST /qps/ticket with Fault5xx: status %d, want 503", resp.StatusCode)
	}
	sim.SetQPSFault(FaultNone)
	ticket(t, sim, "", `ACME\alice`)
}

func TestControlFaultClose(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	sim.SetQPSFault(FaultClose)
	resp, err := ctlTicketRequest(context.Background(), t, qpsClient(t, sim), sim, `ACME\alice`)
	if err == nil {
		t.Fatalf("POST /qps/ticket with FaultClose: status %d, want a transport error and no response", resp.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("POST /qps/ticket with FaultClose: %v, want a closed connection, not a timeout", err)
	}
	sim.SetQPSFault(FaultNone)
	ticket(t, sim, "", `ACME\alice`)
}

func TestControlFaultHang(t *testing.T) {
	sim, _ := newTestSim(t, nil)
	c := qpsClient(t, sim)
	sim.SetQPSFault(FaultHang)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	resp, err := ctlTicketRequest(ctx, t, c, sim, `ACME\alice`)
	if err == nil {
		t.Fatalf("POST /qps/ticket with FaultHang: status %d, want a deadline error", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("POST /qps/ticket with FaultHang: %v, want context.DeadlineExceeded", err)
	}
	sim.SetQPSFault(FaultNone)
	resp, err = ctlTicketRequest(context.Background(), t, c, sim, `ACME\alice`)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /qps/ticket after SetQPSFault(FaultNone): %v %v, want 201", resp, err)
	}
	login(t, sim, "", `ACME\alice`)
}

// TestControlEventLogBounded: the request log never holds more than
// MaxEvents and always keeps the newest events.
func TestControlEventLogBounded(t *testing.T) {
	for _, max := range []int{1, 2, 3, 10} {
		t.Run(strconv.Itoa(max), func(t *testing.T) {
			l := newEventLog(max)
			for i := 1; i <= 25; i++ {
				l.add(Event{Tag: strconv.Itoa(i)})
				got := l.since(0)
				if len(got) > max {
					t.Fatalf("BUG (control.go eventLog.add): after %d adds with max %d: %d events kept, want at most %d (with max 1 nothing is dropped: len/2 is 0)", i, max, len(got), max)
				}
				if len(got) == 0 || got[len(got)-1].Seq != int64(i) || got[len(got)-1].Tag != strconv.Itoa(i) {
					t.Fatalf("after %d adds with max %d: events %+v, want the newest last", i, max, got)
				}
				for j := 1; j < len(got); j++ {
					if got[j].Seq != got[j-1].Seq+1 {
						t.Fatalf("after %d adds with max %d: seqs %d then %d, want consecutive", i, max, got[j-1].Seq, got[j].Seq)
					}
				}
			}
		})
	}
}
