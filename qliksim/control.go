package qliksim

import (
	"encoding/json"
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
	// Kind is "http" (proxy side), "qps" (QPS API), "ws-open", "ws" (one
	// Engine request) or "ws-close".
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
	k := userKey(d, id)
	for name, c := range s.Users() {
		if dd, ii, _ := splitUser(name); userKey(dd, ii) == k {
			return c
		}
	}
	return UserCounts{}
}

// Sessions returns the live sessions, sorted by creation.
func (s *Sim) Sessions() []SessionInfo {
	return s.st.list(func(*session) bool { return true })
}

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
)

var faultNames = map[string]QPSFault{"none": FaultNone, "5xx": Fault5xx, "hang": FaultHang, "close": FaultClose}

// String returns the mode's name as the admin API spells it.
func (f QPSFault) String() string {
	for n, v := range faultNames {
		if v == f {
			return n
		}
	}
	return strconv.Itoa(int(f))
}

// SetQPSFault makes every following QPS API call fail as f says.
func (s *Sim) SetQPSFault(f QPSFault) { s.fault.Store(int32(f)) }

// AdminHandler serves the inspection and fault controls as JSON:
//
//	GET  /users                       counters per user
//	GET  /sessions                    live sessions
//	GET  /events?since=N              request log
//	POST /expire-all                  restart: forget every session
//	POST /expire-user?user=DIR\id     idle-timeout one user's sessions
//	POST /sweep                       end idle sessions now
//	POST /fault?qps=none|5xx|hang|close
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
	mux.HandleFunc("POST /fault", func(w http.ResponseWriter, r *http.Request) {
		f, ok := faultNames[r.URL.Query().Get("qps")]
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("qps=%q: want none, 5xx, hang or close", r.URL.Query().Get("qps"))})
			return
		}
		s.SetQPSFault(f)
		writeJSON(w, http.StatusOK, map[string]string{"qps": f.String()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
