package qliksim

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Event is one request or websocket message as the simulator saw it, with
// the user it ran as. Tests use the log to prove isolation: every request
// must have run as the user it was sent for.
type Event struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is "http" (proxy side, also a refused websocket handshake),
	// "qps" (QPS API), "ws-open", "ws" (one Engine request), "ws-ping" (a
	// ping dropped under VirtualProxy.DropPings) or "ws-close".
	Kind   string `json:"kind"`
	Prefix string `json:"prefix"`
	// Method is the HTTP method, or the JSON-RPC method of a "ws" event.
	Method string `json:"method"`
	Path   string `json:"path"`
	// User is "DIRECTORY\id", empty when the request had no session.
	User      string `json:"user"`
	SessionID string `json:"sessionId,omitempty"`
	Status    int    `json:"status,omitempty"`
	// Tag is the value of the request's X-Sim-Tag header, or of the
	// JSON-RPC request's "tag" member, so tests can tie events to what
	// they sent (and which user they sent it for).
	Tag string `json:"tag,omitempty"`
	// Variant names the "session gone" variant (protocol notes §4b) the
	// simulator played in answering, so tests can tell them apart; empty
	// for every other answer. Values: "unknown-cookie=" plus the
	// VirtualProxy.UnknownCookie value (an HTTP request with a cookie QPS
	// does not know), "dead-socket=" plus the VirtualProxy.DeadSocket
	// value (a websocket with a dead cookie, on the refused handshake or
	// on the first message), "session-cap=socket" (a first message
	// answered with OnMaxParallelSessionsExceeded) and "drop-pings" (a
	// dropped ping, and each message left unanswered after it); and for
	// the connection of a redemption, "redeem-connection=close" (answered
	// with Connection: close, Config.RedeemConnection) and
	// "drop-redemption" (read and its connection closed without an
	// answer, Sim.DropRedemptions).
	Variant string `json:"variant,omitempty"`
	// Conn numbers the proxy-side connection an "http" event came on, in
	// accept order from 1, and ConnRequest is the request's place on it
	// (1: the connection's first request; more: a kept-alive connection
	// reused). Both are 0 for other kinds.
	Conn        int64 `json:"conn,omitempty"`
	ConnRequest int64 `json:"connRequest,omitempty"`
}

type eventLog struct {
	mu      sync.Mutex
	max     int
	seq     int64
	events  []Event
	dropped int64
}

func newEventLog(max int) *eventLog { return &eventLog{max: max} }

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq = l.seq
	if len(l.events) >= l.max {
		n := (len(l.events) + 1) / 2
		l.dropped += int64(n)
		l.events = append(l.events[:0], l.events[n:]...)
	}
	l.events = append(l.events, e)
}

func (l *eventLog) since(seq int64) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

func (s *Sim) record(e Event) {
	e.Time = s.clock.Now()
	s.events.add(e)
}

// Events returns the logged events with a sequence number above since
// (0 for all that are kept).
func (s *Sim) Events(since int64) []Event { return s.events.since(since) }

// Users returns the inspection counters of every user seen, keyed by
// "DIRECTORY\id".
func (s *Sim) Users() map[string]UserCounts { return s.st.userCounts() }

// Counts returns the counters of one user ("DIRECTORY\id").
func (s *Sim) Counts(user string) UserCounts {
	d, id, ok := splitUser(user)
	if !ok {
		return UserCounts{}
	}
	k := s.st.rule.key(d, id)
	for name, c := range s.Users() {
		if dd, ii, _ := splitUser(name); s.st.rule.key(dd, ii) == k {
			return c
		}
	}
	return UserCounts{}
}

// Sessions returns the live sessions, sorted by creation.
func (s *Sim) Sessions() []SessionInfo {
	return s.st.list(func(*session) bool { return true })
}

// TicketPresentations returns, for every ticket issued, how many
// requests on the proxy side presented it (qlikTicket or QlikTicket on a
// GET): 0 for a ticket never redeemed, 1 for one used once, whether the
// presentation succeeded or not (refused as expired or of another virtual
// proxy, forgotten by ExpireAll, dropped by DropRedemptions). A ticket is
// valid once: a count above 1 is a client presenting it again. Values
// that were never issued are not counted. The keys are the tickets
// themselves, credentials in a real site: tests only.
func (s *Sim) TicketPresentations() map[string]int { return s.st.presentations() }

// TicketsIssued returns the number of tickets issued over all users.
func (s *Sim) TicketsIssued() int {
	n := 0
	for _, c := range s.Users() {
		n += c.TicketsIssued
	}
	return n
}

// ExpireAll simulates a restart of the proxy service: every session,
// ticket and login target is forgotten and open websockets are dropped
// without a message. Cookies issued before become unknown to QPS.
func (s *Sim) ExpireAll() { s.st.endAll() }

// ExpireUser ends every session of user ("DIRECTORY\id") as the idle
// timeout would: open websockets get OnSessionTimedOut and are closed. It
// returns how many sessions ended.
func (s *Sim) ExpireUser(user string) int {
	d, id, ok := splitUser(user)
	if !ok {
		return 0
	}
	return len(s.st.endUser(nil, Identity{Directory: d, ID: id}, endTimeout))
}

// Push sends msg, as is, as a text message on every open Engine websocket
// of user ("DIRECTORY\id"), as if the Engine or the proxy service had sent
// it, and returns how many sockets it was queued on. Tests use it to play
// messages the simulator does not make of its own: notifications of other
// shapes, or user data echoed back that looks like one.
func (s *Sim) Push(user string, msg []byte) int {
	d, id, ok := splitUser(user)
	if !ok {
		return 0
	}
	n := 0
	for _, sock := range s.st.userSockets(Identity{Directory: d, ID: id}) {
		if sock.push(msg) {
			n++
		}
	}
	return n
}

// Sweep ends the sessions whose idle timeout has passed (by the Sim's
// clock) and returns how many ended. The background sweeper calls it too.
func (s *Sim) Sweep() int { return s.st.sweep() }

// QPSFault is a failure mode of the QPS API, for fault tests.
type QPSFault int32

// The QPS fault modes.
const (
	FaultNone  QPSFault = iota // answer normally
	Fault5xx                   // answer 503 Service Unavailable
	FaultHang                  // never answer (until the client gives up or the simulator stops)
	FaultClose                 // close the connection without an answer
	// FaultSlow answers normally, but only after a delay (see SetQPSSlow);
	// a client that gives up first, or the simulator stopping, ends the
	// wait without an answer.
	FaultSlow
	// FaultBadJSON answers every call with its success status (201 for
	// POST, else 200) and a truncated JSON body, as a failing node or a
	// middlebox might; nothing is issued or changed.
	FaultBadJSON
	// FaultCertRejected refuses the TLS handshake whatever client
	// certificate is presented, and drops the connections made before, as
	// after the site's certificates were regenerated. QSEoW is also
	// reported to answer 403 to a certificate it does not accept; refusing
	// the handshake is the stricter choice (nothing reaches HTTP).
	FaultCertRejected
	// FaultDown closes the QPS port, so that clients get "connection
	// refused", and drops its connections, as when the service stops.
	// Setting any other mode listens on the same address again.
	FaultDown
)

// DefaultQPSDelay is FaultSlow's delay unless SetQPSSlow sets another:
// longer than sensegate's default QPS timeout (10s).
const DefaultQPSDelay = 15 * time.Second

var faultNames = map[string]QPSFault{
	"none": FaultNone, "5xx": Fault5xx, "hang": FaultHang, "close": FaultClose,
	"slow": FaultSlow, "badjson": FaultBadJSON, "cert": FaultCertRejected, "down": FaultDown,
}

// String returns the mode's name as the admin API spells it.
func (f QPSFault) String() string {
	for n, v := range faultNames {
		if v == f {
			return n
		}
	}
	return strconv.Itoa(int(f))
}

// SetQPSFault makes every following QPS API call fail as f says. It fails
// only when leaving FaultDown cannot listen on the QPS address again (the
// port was taken meanwhile); QPS then stays down.
func (s *Sim) SetQPSFault(f QPSFault) error {
	s.fault.Store(int32(f))
	s.mu.Lock()
	ln := s.qpsLn
	s.mu.Unlock()
	if ln == nil {
		return nil // not started: Start applies FaultDown
	}
	if f == FaultDown {
		ln.down()
		return nil
	}
	if err := ln.up(); err != nil {
		return err
	}
	if f == FaultCertRejected {
		ln.drop() // connections made with the old trust end too
	}
	return nil
}

// SetQPSSlow makes every following QPS API call answer normally after
// delay (DefaultQPSDelay if delay <= 0): FaultSlow.
func (s *Sim) SetQPSSlow(delay time.Duration) error {
	s.delay.Store(int64(delay))
	return s.SetQPSFault(FaultSlow)
}

// qpsDelay is FaultSlow's current delay.
func (s *Sim) qpsDelay() time.Duration {
	if d := time.Duration(s.delay.Load()); d > 0 {
		return d
	}
	return DefaultQPSDelay
}

// errCertRejected refuses a QPS handshake under FaultCertRejected.
var errCertRejected = errors.New("qliksim: client certificate rejected (fault cert)")

// verifyQPSClient is the QPS listener's tls.Config.VerifyConnection: the
// root verified the certificate already; FaultCertRejected refuses it.
func (s *Sim) verifyQPSClient(tls.ConnectionState) error {
	if QPSFault(s.fault.Load()) == FaultCertRejected {
		return errCertRejected
	}
	return nil
}

// AdminHandler serves the inspection and fault controls as JSON:
//
//	GET  /users                       counters per user
//	GET  /sessions                    live sessions
//	GET  /events?since=N              request log
//	POST /expire-all                  restart: forget every session
//	POST /expire-user?user=DIR\id     idle-timeout one user's sessions
//	POST /sweep                       end idle sessions now
//	POST /fault?qps=none|5xx|hang|close|slow|badjson|cert|down[&delay=D]
//	GET  /conns                       proxy-side connections (ProxyConns)
//	POST /drop-redemptions?n=N[&reused=true]   DropRedemptions
//
// delay, a Go duration such as 2s, goes only with qps=slow
// (DefaultQPSDelay if absent).
//
// It is served on Config.AdminListen, which should stay on loopback.
func (s *Sim) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Users()) })
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Sessions()) })
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		writeJSON(w, http.StatusOK, s.Events(since))
	})
	mux.HandleFunc("POST /expire-all", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireAll()
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.HandleFunc("POST /expire-user", func(w http.ResponseWriter, r *http.Request) {
		u := r.URL.Query().Get("user")
		if _, _, ok := splitUser(u); !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `user must be DIRECTORY\id`})
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"ended": s.ExpireUser(u)})
	})
	mux.HandleFunc("POST /sweep", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"ended": s.Sweep()})
	})
	mux.HandleFunc("GET /conns", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.ProxyConns()) })
	mux.HandleFunc("POST /drop-redemptions", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, err := strconv.Atoi(q.Get("n"))
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("n=%q: want a number of redemptions, 0 or more", q.Get("n"))})
			return
		}
		reused := false
		if q.Has("reused") {
			if reused, err = strconv.ParseBool(q.Get("reused")); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("reused=%q: want true or false", q.Get("reused"))})
				return
			}
		}
		s.DropRedemptions(n, reused)
		writeJSON(w, http.StatusOK, map[string]any{"drop": n, "reusedOnly": reused})
	})
	mux.HandleFunc("POST /fault", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f, ok := faultNames[q.Get("qps")]
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("qps=%q: want none, 5xx, hang, close, slow, badjson, cert or down", q.Get("qps"))})
			return
		}
		var delay time.Duration
		if q.Has("delay") {
			d, err := time.ParseDuration(q.Get("delay"))
			switch {
			case f != FaultSlow:
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "delay goes only with qps=slow"})
				return
			case err != nil || d <= 0:
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("delay=%q: want a positive duration such as 2s", q.Get("delay"))})
				return
			}
			delay = d
		}
		var err error
		if f == FaultSlow {
			err = s.SetQPSSlow(delay)
		} else {
			err = s.SetQPSFault(f)
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		out := map[string]string{"qps": f.String()}
		if f == FaultSlow {
			out["delay"] = s.qpsDelay().String()
		}
		writeJSON(w, http.StatusOK, out)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
