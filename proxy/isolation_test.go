package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/ticket"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"go.uber.org/goleak"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// loadShape sizes TestIsolationUnderLoad. The run is bounded by
// iterations, not by time.
type loadShape struct {
	users int // concurrent users, each with an HTTP loop and an Engine websocket loop
	// iterations is the number of HTTP requests, and of Engine calls, per
	// user. The loops wait at iterations/3 for Qlik's restart and at
	// 2*iterations/3 for the idle timeouts, so every user works across both.
	iterations int
	every      int // every every-th user is also idle-timed-out
}

// handbookApp is the seeded app every user may see.
const handbookApp = "5a8a1b2c-0003-4c1e-9d3f-000000000003"

// TestIsolationUnderLoad runs 200 users at once, each with an HTTP loop
// (Personal API, QRS reads, replayable POSTs with small bodies, the hub)
// and an Engine websocket (GetAuthenticatedUser, GetDocList,
// GetAppLayout on an app only that user may open), while Qlik restarts
// (ExpireAll) with requests in flight, later a fifth of the users'
// sessions time out (ExpireUser), and Qlik restarts again while those
// users reconnect, so that websocket handshakes and probes are cut before
// their greeting (issue 15). It checks:
//
//   - every answer a client got is its own user's, and the simulator ran
//     every tagged request as the user it was sent for;
//   - no replayable HTTP request is lost: each got its 2xx without a
//     client retry (sensegate replays what Qlik refused) and ran at Qlik
//     exactly once;
//   - websockets: Qlik drops every socket on a restart and ends a timed-out
//     session's sockets with OnSessionTimedOut, and sensegate passes both
//     on (an Engine session cannot be moved), so a client reconnects: each
//     user's socket closes once per expiry that hit an open socket (the
//     second restart hits every socket but those being reopened), every
//     reconnect works at once (a handshake the second restart cuts is
//     sensegate's to retry, never the client's), and no call is lost
//     after one reconnect;
//   - one ticket per user and expiry that the user's session lived
//     through, one live Qlik session per user at the end;
//   - no goroutine is left once everything is closed.
//
// SENSEGATE_SOAK=1 runs ten times the iterations.
func TestIsolationUnderLoad(t *testing.T) {
	shape := loadShape{users: 200, iterations: 12, every: 5}
	if os.Getenv("SENSEGATE_SOAK") != "" {
		shape.iterations *= 10
	}
	before := goleak.IgnoreCurrent()
	start := time.Now()
	var res loadResult
	t.Run("load", func(t *testing.T) { res = runLoad(t, shape) })
	t.Logf("%d users: %d HTTP requests (%d refused by Qlik and replayed), %d Engine calls, %d socket closes (%d after OnSessionTimedOut), "+
		"%d reconnects (%d of them cut by the second restart and retried by sensegate), expiries: 2 restarts + %d idle timeouts, %d tickets, %v",
		shape.users, res.httpRequests, res.replays, res.wsCalls, res.wsCloses, res.timeoutNotices, res.reconnects, res.midHandshake, res.timedOut, res.tickets,
		time.Since(start).Round(time.Millisecond))
	// The subtest's cleanups closed the simulator, sensegate and the
	// clients: nothing they started may remain.
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := goleak.Find(before)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines left after the run: %v", err)
			break
		}
	}
}

// loadResult sums up a run for the log.
type loadResult struct {
	httpRequests, replays, wsCalls, wsCloses, reconnects, timeoutNotices, timedOut, tickets, midHandshake int
}

// loadUser is one user of the run. The HTTP loop and the websocket loop
// each write only their own fields; they are read after both ended.
type loadUser struct {
	i        int
	name     string // what the identity header says
	key      string // the user as the simulator names it
	app      qliksim.App
	task     string // a reload task of app
	timesOut bool   // is idle-timed-out too

	httpTags []string // sent

	engine   *engineClient // the open socket, nil when there is none
	wsCalls  []string      // tags of calls answered
	wsCloses int           // sockets that ended under the client
	wsDials  int
	wsFatal  int // OnSession* notifications seen
	// redialled is set by the first reconnect after the idle timeouts.
	redialled bool
}

// milestone closes reached when add has been called target times.
type milestone struct {
	n       atomic.Int64
	target  int64
	reached chan struct{}
}

func newMilestone(target int) *milestone {
	m := &milestone{target: int64(target), reached: make(chan struct{})}
	if target == 0 {
		close(m.reached)
	}
	return m
}

func (m *milestone) add() {
	if m.n.Add(1) == m.target {
		close(m.reached)
	}
}

// loadRun is the shared state of a run.
type loadRun struct {
	t      *testing.T
	e      *env
	shape  loadShape
	client *http.Client
	wsURL  string

	gateA, gateB int
	// Milestones before the restart: every socket has answered once, and
	// half the HTTP requests before gateA are done (the other half are in
	// flight or to come).
	socketsUp, httpHalfA *milestone
	// Before the idle timeouts: every timed-out user's socket works again
	// after the restart, and half the HTTP requests in [gateA, gateB) are done.
	timeoutReady, httpHalfB *milestone
	// Before the second restart: every HTTP request before gateB is done
	// (the HTTP loops wait at gateB for the second restart: a request
	// replayed after a timeout must not meet a restart as well, which it
	// could not survive), and half the timed-out users have reconnected:
	// the other half are reconnecting, or about to, when it comes.
	httpAllB, redials *milestone
	// timedOut closes after the idle timeouts (the websocket loops'
	// gateB), reconnect when the timed-out users may reconnect (theirs),
	// restartedTwice after the second restart.
	restarted, timedOut, reconnect, restartedTwice chan struct{}

	failures atomic.Int64
}

// fail reports a failure; past the first 20 it only counts them, so that
// a broken build does not print thousands of lines.
func (l *loadRun) fail(format string, args ...any) {
	if n := l.failures.Add(1); n <= 20 {
		l.t.Errorf(format, args...)
	}
}

func runLoad(t *testing.T, shape loadShape) loadResult {
	users := make([]*loadUser, shape.users)
	for i := range users {
		u := &loadUser{i: i, name: fmt.Sprintf("u%03d", i), timesOut: i%shape.every == 0}
		u.key = `ACME\` + u.name
		u.app = qliksim.App{ID: fmt.Sprintf("1d0c0000-0000-4000-8000-%012d", i), Name: "App of " + u.name, Owner: u.key}
		u.task = fmt.Sprintf("2e0d0000-0000-4000-8000-%012d", i)
		users[i] = u
	}
	e := newLoadEnv(t, shape.users, func(c *qliksim.Config) {
		c.MaxEvents = 1 << 20 // the whole run's log, for the checks below
		for _, u := range users {
			c.Apps = append(c.Apps, u.app)
			c.ReloadTasks = append(c.ReloadTasks, qliksim.ReloadTask{ID: u.task, Name: "Reload " + u.app.Name, AppID: u.app.ID, Enabled: true})
		}
	})
	tr := &http.Transport{MaxIdleConns: 2 * shape.users, MaxIdleConnsPerHost: 2 * shape.users, IdleConnTimeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	timeoutUsers := 0
	for _, u := range users {
		if u.timesOut {
			timeoutUsers++
		}
	}
	l := &loadRun{
		t: t, e: e, shape: shape,
		client: &http.Client{
			Transport:     tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Timeout:       60 * time.Second,
		},
		wsURL:          "ws" + strings.TrimPrefix(e.front.URL, "http") + "/app/engineData",
		gateA:          shape.iterations / 3,
		gateB:          2 * shape.iterations / 3,
		socketsUp:      newMilestone(shape.users),
		timeoutReady:   newMilestone(timeoutUsers),
		restarted:      make(chan struct{}),
		reconnect:      make(chan struct{}),
		restartedTwice: make(chan struct{}),
		timedOut:       make(chan struct{}),
	}
	l.httpHalfA = newMilestone(shape.users * l.gateA / 2)
	l.httpAllB = newMilestone(shape.users * l.gateB)
	l.redials = newMilestone(timeoutUsers / 2)
	l.httpHalfB = newMilestone(shape.users * (l.gateB - l.gateA) / 2)

	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(2)
		go func() { defer wg.Done(); l.httpLoop(u) }()
		go func() { defer wg.Done(); l.wsLoop(u) }()
	}
	// The expiries, each once its milestones are reached; the loops are
	// running (or waiting at the gate after it) meanwhile.
	l.await(l.socketsUp, "every socket up")
	l.await(l.httpHalfA, "half the first HTTP requests")
	e.sim.ExpireAll()
	close(l.restarted)
	l.await(l.timeoutReady, "the timed-out users' sockets working again")
	l.await(l.httpHalfB, "half the HTTP requests between the restart and the timeouts")
	for _, u := range users {
		if u.timesOut && e.sim.ExpireUser(u.key) != 1 {
			l.fail("%s: ExpireUser ended no single session", u.key)
		}
	}
	close(l.timedOut)
	l.await(l.httpAllB, "the HTTP requests before the timeouts")
	close(l.reconnect)
	l.await(l.redials, "half the timed-out users reconnected")
	e.sim.ExpireAll()
	close(l.restartedTwice)
	wg.Wait()

	return l.check(users, timeoutUsers)
}

// await waits for m, reporting a failure when it is not reached in a
// minute (a broken build must fail the run, not hang it: the loops go on
// to their end once the expiries are all done).
func (l *loadRun) await(m *milestone, what string) {
	select {
	case <-m.reached:
	case <-time.After(time.Minute):
		l.fail("milestone %q not reached in a minute (%d of %d)", what, m.n.Load(), m.target)
	}
}

// newLoadEnv is newEnv for a load of users: its QPS client takes every
// user's login at once (the cap on QPS calls in flight, and what a burst
// over it gets, are tested on their own), and logs stop at info level.
func newLoadEnv(t *testing.T, users int, mutate func(*qliksim.Config)) *env {
	t.Helper()
	return newEnvWith(t, envConfig{
		tickets: ticket.Config{MaxConcurrent: users, Timeout: 30 * time.Second},
		log:     zaptest.NewLogger(t, zaptest.Level(zapcore.InfoLevel)),
	},
		func(cfg *qliksim.Config, _ *Options) { mutate(cfg) })
}

// gate waits, at the gate iterations, for the expiry before it: the
// first restart at gateA, the idle timeouts at gateB, and the second
// restart at gateB for the HTTP loops (http), at gateB+1 for the
// websocket loops, so that every socket is open at the second restart
// but the timed-out users' ones, which are being reopened: those wait at
// gateB until just before it.
func (l *loadRun) gate(i int, http bool, u *loadUser) {
	switch {
	case i == l.gateA:
		<-l.restarted
	case i == l.gateB && http, i == l.gateB+1 && !http:
		<-l.restartedTwice
	case i == l.gateB && u.timesOut:
		// All at once, just before the second restart.
		<-l.reconnect
	case i == l.gateB:
		<-l.timedOut
	}
}

// httpLoop sends the user's HTTP requests, one at a time. No request is
// retried: sensegate must replay the ones Qlik refuses.
func (l *loadRun) httpLoop(u *loadUser) {
	for i := range l.shape.iterations {
		l.gate(i, true, u)
		tag := fmt.Sprintf("%s|h%d", u.key, i)
		u.httpTags = append(u.httpTags, tag)
		if err := l.httpOnce(u, i, tag); err != nil {
			l.fail("%s: %v", tag, err)
		}
		switch {
		case i < l.gateA:
			l.httpHalfA.add()
		case i < l.gateB:
			l.httpHalfB.add()
		}
		if i < l.gateB {
			l.httpAllB.add()
		}
	}
}

// httpOnce sends request i of u, each kind proving in its answer whom
// Qlik ran it as. The kinds rotate by user, so that each kind is some
// users' first request after an expiry.
func (l *loadRun) httpOnce(u *loadUser, i int, tag string) error {
	kind := (i + u.i) % 5
	var (
		method, path string
		body         []byte
		want         int
	)
	qrs := "?xrfkey=" + xrf
	switch kind {
	case 0:
		method, path, want = "GET", "/qps/user", http.StatusOK
	case 1:
		method, path, want = "GET", "/qrs/app"+qrs, http.StatusOK
	case 2:
		// Only u sees its task: as anyone else Qlik answers 404.
		method, path, want = "POST", "/qrs/task/"+u.task+"/start"+qrs, http.StatusNoContent
		body = []byte(`{"tag":"` + strings.ReplaceAll(tag, `\`, `\\`) + `"}`)
	case 3:
		method, path, want = "GET", "/hub/", http.StatusOK
	default:
		method, path, want = "POST", "/qrs/task/"+u.task+"/start/synchronous"+qrs, http.StatusCreated
		body = []byte(`{"pad":"` + strings.Repeat("x", 512) + `"}`)
	}
	req, err := http.NewRequest(method, l.e.front.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Forwarded-User", u.name)
	req.Header.Set("X-Sim-Tag", tag)
	req.Header.Set("X-Qlik-Xrfkey", xrf)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s = %d %.200q, want %d (a lost request)", method, path, resp.StatusCode, b, want)
	}
	switch kind {
	case 0:
		var me struct{ UserDirectory, UserID, Session string }
		if json.Unmarshal(b, &me) != nil || me.UserDirectory+`\`+me.UserID != u.key {
			return fmt.Errorf("GET /qps/user answered %.200q, want user %s", b, u.key)
		}
	case 1:
		var apps []struct{ ID string }
		if err := json.Unmarshal(b, &apps); err != nil {
			return fmt.Errorf("GET /qrs/app: %v in %.200q", err, b)
		}
		var ids []string
		for _, a := range apps {
			ids = append(ids, a.ID)
		}
		if want := []string{handbookApp, u.app.ID}; !sameSet(ids, want) {
			return fmt.Errorf("GET /qrs/app listed %v, want %s's %v", ids, u.key, want)
		}
	case 3:
		if !strings.Contains(string(b), "Signed in as "+u.key+"<") {
			return fmt.Errorf("GET /hub/ answered %.200q, want a page for %s", b, u.key)
		}
	case 4:
		var v struct{ Value string }
		if json.Unmarshal(b, &v) != nil || v.Value == "" {
			return fmt.Errorf("synchronous start answered %.200q", b)
		}
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// errSocketEnded is a websocket that ended under the client.
var errSocketEnded = errors.New("socket ended")

// engineClient is a test client's Engine socket with u's app open.
type engineClient struct {
	c    *websocket.Conn
	next int // the next JSON-RPC id
	u    *loadUser
	l    *loadRun
}

// wsLoop makes the user's Engine calls, one at a time, on one socket
// that it reopens when Qlik ends it. A call is lost when it fails on a
// socket opened for it.
func (l *loadRun) wsLoop(u *loadUser) {
	defer func() {
		if u.engine != nil {
			u.engine.c.Close()
		}
	}()
	for i := range l.shape.iterations {
		l.gate(i, false, u)
		if !l.wsCall(u, i) {
			l.fail("%s: Engine call %d lost", u.key, i)
		}
		if i == 0 {
			l.socketsUp.add()
		}
		if u.timesOut && i == l.gateB-2 {
			l.timeoutReady.add()
		}
	}
}

// wsCall makes Engine call i of u, on u's socket or, when there is none,
// a new one; when the socket ends under the call it makes it once more on
// a new socket. It reports whether the call got its answer.
func (l *loadRun) wsCall(u *loadUser, i int) bool {
	for try := range 3 {
		if u.engine == nil {
			ec, err := l.openEngine(u, fmt.Sprintf("%s|w%d.%d.open", u.key, i, try))
			if errors.Is(err, errSocketEnded) {
				// Opened, then dropped by a restart before OpenDoc's
				// answer: a socket open at the restart, closed by Qlik.
				u.wsCloses++
				continue
			}
			if err != nil {
				l.fail("%s: opening a socket: %v", u.key, err)
				return false
			}
			u.engine = ec
		}
		tag := fmt.Sprintf("%s|w%d.%d", u.key, i, try)
		err := u.engine.check(i, tag)
		if errors.Is(err, errSocketEnded) {
			u.wsCloses++
			u.engine.c.Close()
			u.engine = nil
			continue
		}
		if err != nil {
			l.fail("%s: %v", tag, err)
			return false
		}
		u.wsCalls = append(u.wsCalls, tag)
		return true
	}
	return false
}

// openEngine opens u's socket through sensegate and opens u's app on it.
func (l *loadRun) openEngine(u *loadUser, tag string) (*engineClient, error) {
	u.wsDials++
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	c, resp, err := d.Dial(l.wsURL, http.Header{"X-Forwarded-User": {u.name}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, fmt.Errorf("dial: %v (status %d)", err, status)
	}
	ec := &engineClient{c: c, next: 1, u: u, l: l}
	var open struct {
		QReturn struct{ QGenericID string } `json:"qReturn"`
	}
	if err := ec.call("OpenDoc", []any{u.app.ID}, tag, &open); err != nil {
		c.Close()
		return nil, fmt.Errorf("OpenDoc: %w", err)
	}
	if open.QReturn.QGenericID != u.app.ID {
		c.Close()
		return nil, fmt.Errorf("OpenDoc opened %q, want %s", open.QReturn.QGenericID, u.app.ID)
	}
	u.wsCalls = append(u.wsCalls, tag)
	select {
	case <-l.timedOut:
		if u.timesOut && !u.redialled {
			u.redialled = true
			l.redials.add() // reconnected after the idle timeout
		}
	default:
	}
	return ec, nil
}

// check makes Engine call i and checks the answer is u's.
func (ec *engineClient) check(i int, tag string) error {
	u := ec.u
	switch (i + u.i) % 3 {
	case 0:
		var r struct{ QReturn string }
		if err := ec.call("GetAuthenticatedUser", nil, tag, &r); err != nil {
			return err
		}
		if want := "UserDirectory=ACME; UserId=" + u.name; r.QReturn != want {
			return fmt.Errorf("GetAuthenticatedUser = %q, want %q", r.QReturn, want)
		}
	case 1:
		var r struct {
			QDocList []struct{ QDocID string }
		}
		if err := ec.call("GetDocList", nil, tag, &r); err != nil {
			return err
		}
		var ids []string
		for _, d := range r.QDocList {
			ids = append(ids, d.QDocID)
		}
		if want := []string{handbookApp, u.app.ID}; !sameSet(ids, want) {
			return fmt.Errorf("GetDocList = %v, want %s's %v", ids, u.key, want)
		}
	default:
		var r struct {
			QLayout struct {
				QTitle string
				QMeta  struct{ Privileges []string }
			}
		}
		if err := ec.callHandle(1, "GetAppLayout", nil, tag, &r); err != nil {
			return err
		}
		// Only the owner has "update".
		if r.QLayout.QTitle != u.app.Name || !slices.Contains(r.QLayout.QMeta.Privileges, "update") {
			return fmt.Errorf("GetAppLayout = %q with privileges %v, want the owner's view of %q", r.QLayout.QTitle, r.QLayout.QMeta.Privileges, u.app.Name)
		}
	}
	return nil
}

func (ec *engineClient) call(method string, params []any, tag string, result any) error {
	return ec.callHandle(-1, method, params, tag, result)
}

// callHandle sends a request and decodes its answer's result. A socket
// that ends is errSocketEnded; notifications are checked on the way.
func (ec *engineClient) callHandle(handle int, method string, params []any, tag string, result any) error {
	if params == nil {
		params = []any{}
	}
	id := ec.next
	ec.next++
	ec.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := ec.c.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "handle": handle, "params": params, "tag": tag}); err != nil {
		return fmt.Errorf("%w: %s: write: %v", errSocketEnded, method, err)
	}
	for {
		ec.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, b, err := ec.c.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection reset") {
				return fmt.Errorf("%w: %s: %v", errSocketEnded, method, err)
			}
			return fmt.Errorf("%s: read: %v", method, err)
		}
		var m rpc
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %v in %.200q", method, err, b)
		}
		if m.Method != "" && m.ID == 0 {
			if err := ec.notification(m); err != nil {
				return err
			}
			continue
		}
		if m.ID != id {
			return fmt.Errorf("%s: answer id %d, want %d", method, m.ID, id)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: error %d %s", method, m.Error.Code, m.Error.Message)
		}
		if err := json.Unmarshal(m.Result, result); err != nil {
			return fmt.Errorf("%s: %v in %.200q", method, err, m.Result)
		}
		return nil
	}
}

// notification checks a notification: the greeting must name u and an
// authenticated session (sensegate re-dials refused ones itself).
func (ec *engineClient) notification(m rpc) error {
	switch {
	case m.Method == "OnAuthenticationInformation":
		var p struct {
			UserID, UserDirectory string
			MustAuthenticate      bool
		}
		json.Unmarshal(m.Params, &p)
		if p.MustAuthenticate || p.UserDirectory+`\`+p.UserID != ec.u.key {
			return fmt.Errorf("socket of %s greeted with %s", ec.u.key, m.Params)
		}
	case qlik.IsSessionEndingTopic(m.Method):
		ec.u.wsFatal++
	}
	return nil
}

// check compares what the clients saw with the simulator's log and
// counters.
func (l *loadRun) check(users []*loadUser, timeoutUsers int) loadResult {
	t, sim := l.t, l.e.sim
	res := loadResult{timedOut: timeoutUsers}
	events := sim.Events(0)
	if len(events) == 0 || events[0].Seq != 1 {
		t.Fatalf("the simulator's log dropped events; raise MaxEvents")
	}
	byTag := map[string][]qliksim.Event{}
	for _, ev := range events {
		who, _, ok := strings.Cut(ev.Tag, "|")
		if !ok {
			continue
		}
		byTag[ev.Tag] = append(byTag[ev.Tag], ev)
		switch {
		case ev.User == who:
		case ev.User == "" && ev.Kind == "http":
			// Qlik had forgotten the session: sensegate must replay the
			// request (checked per tag below), whatever Qlik answered.
			res.replays++
		case ev.User == "":
			l.fail("simulator: %s %s %s (tag %s) ran without a session", ev.Kind, ev.Method, ev.Path, ev.Tag)
		default:
			l.fail("simulator: %s %s %s sent for %s ran as %s", ev.Kind, ev.Method, ev.Path, who, ev.User)
		}
	}
	for _, u := range users {
		res.httpRequests += len(u.httpTags)
		res.wsCalls += len(u.wsCalls)
		res.wsCloses += u.wsCloses
		res.reconnects += u.wsDials - 1
		// Each HTTP request ran at Qlik once as u, answering 2xx, after
		// at most one refusal (sensegate replays once).
		for _, tag := range u.httpTags {
			ran := 0
			for _, ev := range byTag[tag] {
				if ev.User == u.key && ev.Status >= 200 && ev.Status <= 299 {
					ran++
				}
			}
			if evs := byTag[tag]; ran != 1 || len(evs) > 2 {
				l.fail("simulator: %s ran %d times as %s in %d tries, want once (%+v)", tag, ran, u.key, len(evs), evs)
			}
		}
		// Each answered Engine call is in the log, as u.
		for _, tag := range u.wsCalls {
			if evs := byTag[tag]; len(evs) != 1 || evs[0].Kind != "ws" || evs[0].User != u.key {
				l.fail("simulator: Engine call %s logged as %+v, want once as %s", tag, evs, u.key)
			}
		}
		// The first restart and a timeout close u's open socket; the
		// second restart only if u had reconnected before it.
		timeouts := 0
		if u.timesOut {
			timeouts = 1
		}
		// Both restarts close every other user's socket.
		restartCloses := u.wsCloses - timeouts
		expiries := restartCloses + timeouts
		if restartCloses != 2 && !(u.timesOut && restartCloses == 1) || u.wsDials != 1+u.wsCloses {
			l.fail("%s: %d socket closes and %d dials, want %d closes (one per restart and timeout that hit an open socket) and a dial for each", u.key, u.wsCloses, u.wsDials, 2+timeouts)
		}
		// A restart drops sockets without a word; only a timed-out
		// session's socket may get OnSessionTimedOut (unless the client
		// wrote to it after the close and saw that fail first).
		res.timeoutNotices += u.wsFatal
		if u.wsFatal > expiries-1 {
			l.fail("%s: %d notifications that end the session, want at most %d", u.key, u.wsFatal, expiries-1)
		}
		// One login at first and one per expiry the user's session lived
		// through: a user whose reconnect the second restart cut before
		// its greeting logged in between the restarts without the client
		// seeing a second close.
		c := sim.Counts(u.key)
		res.tickets += c.TicketsIssued
		want := 1 + expiries
		if u.timesOut && restartCloses == 1 && c.TicketsIssued == want+1 {
			want++
			res.midHandshake++
		}
		if c.TicketsIssued != want || c.LiveSessions != 1 || c.SessionsRefused != 0 {
			l.fail("%s: %+v, want %d tickets (one at first, one per expiry its session lived through) and one live session", u.key, c, want)
		}
	}
	if want := len(users) * l.shape.iterations; res.httpRequests != want {
		l.fail("%d HTTP requests sent, want %d", res.httpRequests, want)
	}
	if res.replays == 0 {
		l.fail("Qlik refused no request: the expiries missed the traffic")
	}
	if n := l.failures.Load(); n > 20 {
		t.Errorf("… and %d more failures", n-20)
	}
	return res
}
