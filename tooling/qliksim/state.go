package qliksim

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Clock tells the simulator the time. Tests pass a fake clock to drive idle
// timeouts and ticket expiry without sleeping.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Identity is a Qlik user: directory and user id.
type Identity struct {
	Directory string `json:"userDirectory"`
	ID        string `json:"userId"`
}

// String returns "DIRECTORY\id", the form tests and logs compare.
func (u Identity) String() string { return u.Directory + `\` + u.ID }

// normalized trims u and upper-cases its directory, as QPS echoes it.
func (u Identity) normalized() Identity {
	return Identity{Directory: strings.ToUpper(strings.TrimSpace(u.Directory)), ID: strings.TrimSpace(u.ID)}
}

// Attribute is one ticket attribute. Keys may repeat and values may be empty.
// On the wire it is a one-member object: {"Group":"Sales"}.
type Attribute struct {
	Key, Value string
}

// MarshalJSON writes the attribute as {"Key":"Value"}.
func (a Attribute) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{a.Key: a.Value})
}

// UnmarshalJSON reads {"Key":"Value"}; anything else (several members, a
// non-string value, an empty key) is an error. QPS documents only the
// one-member form, so the simulator refuses the rest.
func (a *Attribute) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New("attribute must be an object with one member, e.g. {\"Group\":\"Sales\"}")
	}
	if len(m) != 1 {
		return fmt.Errorf("attribute must have exactly one member, got %d", len(m))
	}
	for k, raw := range m {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("attribute %q: value must be a string", k)
		}
		if strings.TrimSpace(k) == "" {
			return errors.New("attribute key must not be empty")
		}
		a.Key, a.Value = k, v
	}
	return nil
}

// endReason says why a session ended; it picks the notification open
// websockets receive.
type endReason int

const (
	endTimeout endReason = iota + 1 // idle timeout or Sim.ExpireUser
	endLogout                       // Personal API or user API DELETE
	endClosed                       // session API DELETE
	endRestart                      // Sim.ExpireAll: the proxy service forgot everything
)

// notification returns the proxy message topic and text for r, or "" for a
// restart, where sockets are dropped without a message.
func (r endReason) notification() (topic, message string) {
	switch r {
	case endTimeout:
		return "OnSessionTimedOut", "Session timed out due to inactivity"
	case endLogout:
		return "OnSessionLoggedOut", "User logged out manually"
	case endClosed:
		return "OnSessionClosed", "Session closed by server"
	}
	return "", ""
}

// sessionSocket is an open Engine websocket bound to a session.
type sessionSocket interface {
	// terminate sends the fatal proxy notification topic (none when topic
	// is empty: the connection is dropped as by a restart) and closes the
	// socket. It must not block.
	terminate(topic, message string)
	// push queues msg, a text message, for the client as is; it reports
	// false when the socket is ending. It waits while the socket's queue
	// is full, so it must not be called under the state's lock.
	push(msg []byte) bool
}

type session struct {
	id         string
	seq        uint64 // creation order: the oldest sessions hold the cap's slots
	vp         *vproxy
	user       Identity
	attrs      []Attribute
	created    time.Time
	lastActive time.Time
	csrfToken  string
	sockets    map[sessionSocket]struct{}
	// exports are the files ExportData made on the session's sockets,
	// oldest first; they end with the session (export.go).
	exports []*tempFile
}

type ticketRec struct {
	vp       *vproxy
	user     Identity
	attrs    []Attribute
	targetID string
	expires  time.Time
}

type target struct {
	uri     string
	vp      *vproxy
	expires time.Time
}

// sessionState is what a cookie value resolves to.
type sessionState int

const (
	sessionUnknown sessionState = iota // never seen, or forgotten by a restart
	sessionLive
	sessionEnded // timed out or logged out
)

var errTooManySessions = errors.New("You cannot access Qlik Sense because you have too many sessions active in parallel.")

// state is the QPS memory: tickets, sessions and login targets. All methods
// are safe for concurrent use.
type state struct {
	clock Clock
	rule  caseRule // how users compare

	mu       sync.Mutex
	tickets  map[string]*ticketRec
	sessions map[string]*session
	// byUser indexes sessions by userKey, so that the cap's count looks
	// at one user's sessions, not every session (many thousands in a
	// benchmark).
	byUser  map[string]map[*session]struct{}
	ended   map[string]endReason
	targets map[string]target
	// presented counts, per ticket issued, the proxy-side requests that
	// presented it (Sim.TicketPresentations). It outlives the tickets
	// (used, expired, forgotten by a restart), so it grows by one entry
	// per ticket issued, like the event log but unbounded: fine for
	// tests and benchmarks, not for a simulator left running for weeks.
	presented map[string]int
	counts    map[string]*UserCounts // by userKey
	names     map[string]Identity    // userKey → first spelling seen
	seq       uint64                 // last session.seq given
}

func newState(clock Clock, rule caseRule) *state {
	return &state{
		clock:     clock,
		rule:      rule,
		tickets:   map[string]*ticketRec{},
		presented: map[string]int{},
		sessions:  map[string]*session{},
		byUser:    map[string]map[*session]struct{}{},
		ended:     map[string]endReason{},
		targets:   map[string]target{},
		counts:    map[string]*UserCounts{},
		names:     map[string]Identity{},
	}
}

// UserCounts are the inspection counters of one user.
type UserCounts struct {
	TicketsIssued   int `json:"ticketsIssued"`
	TicketsRedeemed int `json:"ticketsRedeemed"`
	// SessionsCreated counts sessions created by redemption, the session
	// API or forms login.
	SessionsCreated int `json:"sessionsCreated"`
	// SessionsRefused counts logins refused by the parallel-session cap
	// (VirtualProxy.SessionCap "redeem").
	SessionsRefused int `json:"sessionsRefused"`
	// SocketsRefused counts Engine sockets refused by the parallel-session
	// cap with OnMaxParallelSessionsExceeded (VirtualProxy.SessionCap
	// "socket").
	SocketsRefused int `json:"socketsRefused"`
	// LiveSessions is filled in by Sim.Users.
	LiveSessions int `json:"liveSessions"`
}

func (st *state) countsLocked(u Identity) *UserCounts {
	k := st.key(u)
	c := st.counts[k]
	if c == nil {
		c = &UserCounts{}
		st.counts[k] = c
		st.names[k] = u
	}
	return c
}

// issueTicket stores a new single-use ticket for u on vp.
func (st *state) issueTicket(vp *vproxy, u Identity, attrs []Attribute, targetID string) string {
	t := randomString(16)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.tickets[t] = &ticketRec{vp: vp, user: u, attrs: attrs, targetID: targetID, expires: st.clock.Now().Add(TicketLifetime)}
	st.presented[t] = 0
	st.countsLocked(u).TicketsIssued++
	return t
}

// presentLocked counts a presentation of t and consumes it: used or not,
// a presented ticket is gone. It returns t's record, if t was still
// valid for someone.
func (st *state) presentLocked(t string) (*ticketRec, bool) {
	if n, issued := st.presented[t]; issued {
		st.presented[t] = n + 1
	}
	rec, ok := st.tickets[t]
	delete(st.tickets, t)
	return rec, ok
}

// consumeTicket counts a presentation of t and consumes it without a
// session: a proxy that read the ticket and went down.
func (st *state) consumeTicket(t string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.presentLocked(t)
}

// presentations returns a copy of the presentation counts.
func (st *state) presentations() map[string]int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return maps.Clone(st.presented)
}

// redeemTicket consumes ticket t on vp. A ticket is valid once, for
// TicketLifetime, and only on the virtual proxy it was issued for
// (open question 9: the stricter choice).
func (st *state) redeemTicket(vp *vproxy, t string) (*ticketRec, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	rec, ok := st.presentLocked(t)
	if !ok {
		return nil, false
	}
	if rec.vp != vp || !st.clock.Now().Before(rec.expires) {
		return nil, false
	}
	st.countsLocked(rec.user).TicketsRedeemed++
	return rec, true
}

// target returns the login target id, if it is known and not expired.
func (st *state) target(id string) (target, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.targets[id]
	if !ok || !st.clock.Now().Before(t.expires) {
		return target{}, false
	}
	return t, true
}

// addTarget remembers the URL an unauthenticated request wanted and returns
// its targetId. Targets live as long as tickets.
func (st *state) addTarget(vp *vproxy, uri string) string {
	id := newGUID()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.targets[id] = target{uri: uri, vp: vp, expires: st.clock.Now().Add(TicketLifetime)}
	return id
}

// createSession starts a session for u on vp with the given id (a new GUID
// when empty). It refuses a 6th parallel session of the user unless vp
// enforces the cap on the socket (SessionCapSocket).
func (st *state) createSession(vp *vproxy, u Identity, attrs []Attribute, id string) (*session, error) {
	if id == "" {
		id = newGUID()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.countsLocked(u)
	if _, dup := st.sessions[id]; dup {
		return nil, errors.New("session id is already in use")
	}
	if vp.SessionCap != SessionCapSocket && st.liveCountLocked(u) >= MaxParallelSessions {
		c.SessionsRefused++
		return nil, errTooManySessions
	}
	now := st.clock.Now()
	st.seq++
	s := &session{id: id, seq: st.seq, vp: vp, user: u, attrs: attrs, created: now, lastActive: now, sockets: map[sessionSocket]struct{}{}}
	st.sessions[id] = s
	k := st.key(u)
	if st.byUser[k] == nil {
		st.byUser[k] = map[*session]struct{}{}
	}
	st.byUser[k][s] = struct{}{}
	delete(st.ended, id)
	c.SessionsCreated++
	return s, nil
}

func (st *state) liveCountLocked(u Identity) int {
	n := 0
	now := st.clock.Now()
	for s := range st.byUser[st.key(u)] {
		if !s.idleLocked(now) {
			n++
		}
	}
	return n
}

func (s *session) idleLocked(now time.Time) bool {
	return now.Sub(s.lastActive) > s.vp.timeout
}

// lookup resolves a session cookie value on vp. A live session has its idle
// timer reset when touch is true. A session past its idle timeout is ended
// here (its sockets notified) and reported as ended.
func (st *state) lookup(vp *vproxy, id string, touch bool) (*session, sessionState) {
	st.mu.Lock()
	s, ok := st.sessions[id]
	if !ok || s.vp != vp {
		_, wasEnded := st.ended[id]
		st.mu.Unlock()
		if wasEnded {
			return nil, sessionEnded
		}
		return nil, sessionUnknown
	}
	now := st.clock.Now()
	if s.idleLocked(now) {
		socks := st.endLocked(s, endTimeout)
		st.mu.Unlock()
		notify(socks, endTimeout)
		return nil, sessionEnded
	}
	if touch {
		s.lastActive = now
	}
	st.mu.Unlock()
	return s, sessionLive
}

// refuseOverCap reports whether session id is beyond the user's cap of
// MaxParallelSessions, and counts a refused socket when it is. The user's
// oldest live sessions, on any virtual proxy, hold the slots. How QSEoW
// picks the sessions that keep their sockets is not documented; [M1] says
// only that the 6th gets OnMaxParallelSessionsExceeded. So ending an older
// session (QPS session or user API, logout, timeout) frees a slot for the
// next socket of this one, while a session created after it is refused.
func (st *state) refuseOverCap(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	if !ok {
		return false
	}
	now := st.clock.Now()
	older := 0
	for o := range st.byUser[st.key(s.user)] {
		if o.seq < s.seq && !o.idleLocked(now) {
			older++
		}
	}
	if older < MaxParallelSessions {
		return false
	}
	st.countsLocked(s.user).SocketsRefused++
	return true
}

// touch resets the idle timer of session id and reports whether it is live.
func (st *state) touch(id string) bool {
	s, ok := st.sessionByID(id)
	if !ok {
		return false
	}
	_, state := st.lookup(s.vp, id, true)
	return state == sessionLive
}

func (st *state) sessionByID(id string) (*session, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	return s, ok
}

// attach binds a websocket to a live session; it fails if the session ended.
func (st *state) attach(id string, sock sessionSocket) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	if !ok {
		return false
	}
	s.sockets[sock] = struct{}{}
	return true
}

// detach unbinds a closed websocket.
func (st *state) detach(id string, sock sessionSocket) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.sessions[id]; ok {
		delete(s.sockets, sock)
	}
}

// peekCSRFToken returns the session's websocket CSRF token without creating
// one ("" when none was fetched).
func (st *state) peekCSRFToken(id string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.sessions[id]; ok {
		return s.csrfToken
	}
	return ""
}

// csrfToken returns the session's websocket CSRF token, creating it once.
func (st *state) csrfToken(id string) (string, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, ok := st.sessions[id]
	if !ok {
		return "", false
	}
	if s.csrfToken == "" {
		s.csrfToken = randomString(32)
	}
	return s.csrfToken, true
}

// endLocked removes s and returns the sockets to notify outside the lock.
func (st *state) endLocked(s *session, r endReason) []sessionSocket {
	delete(st.sessions, s.id)
	k := st.key(s.user)
	delete(st.byUser[k], s)
	if len(st.byUser[k]) == 0 {
		delete(st.byUser, k)
	}
	if r != endRestart {
		st.ended[s.id] = r
	}
	socks := make([]sessionSocket, 0, len(s.sockets))
	for sock := range s.sockets {
		socks = append(socks, sock)
	}
	return socks
}

func notify(socks []sessionSocket, r endReason) {
	topic, msg := r.notification()
	for _, s := range socks {
		s.terminate(topic, msg)
	}
}

// endSession ends session id and returns a snapshot of it.
func (st *state) endSession(id string, r endReason) (SessionInfo, bool) {
	st.mu.Lock()
	s, ok := st.sessions[id]
	if !ok {
		st.mu.Unlock()
		return SessionInfo{}, false
	}
	info := s.infoLocked()
	socks := st.endLocked(s, r)
	st.mu.Unlock()
	notify(socks, r)
	return info, true
}

// endUser ends every session of u (on every virtual proxy when vp is nil)
// and returns them.
func (st *state) endUser(vp *vproxy, u Identity, r endReason) []SessionInfo {
	st.mu.Lock()
	var infos []SessionInfo
	var socks []sessionSocket
	k := st.key(u)
	for _, s := range st.sessions {
		if st.key(s.user) == k && (vp == nil || s.vp == vp) {
			infos = append(infos, s.infoLocked())
			socks = append(socks, st.endLocked(s, r)...)
		}
	}
	st.mu.Unlock()
	notify(socks, r)
	sortInfos(infos)
	return infos
}

// userSockets returns the open websockets of u's sessions.
func (st *state) userSockets(u Identity) []sessionSocket {
	st.mu.Lock()
	defer st.mu.Unlock()
	var socks []sessionSocket
	k := st.key(u)
	for _, s := range st.sessions {
		if st.key(s.user) == k {
			for sock := range s.sockets {
				socks = append(socks, sock)
			}
		}
	}
	return socks
}

// endAll forgets every session, ticket and target, as a restart of the
// proxy service does: cookies it issued become unknown.
func (st *state) endAll() {
	st.mu.Lock()
	var socks []sessionSocket
	for _, s := range st.sessions {
		socks = append(socks, st.endLocked(s, endRestart)...)
	}
	st.ended = map[string]endReason{}
	st.tickets = map[string]*ticketRec{}
	st.targets = map[string]target{}
	st.mu.Unlock()
	notify(socks, endRestart)
}

// sweep ends sessions past their idle timeout and drops expired tickets and
// targets. It returns how many sessions it ended.
func (st *state) sweep() int {
	st.mu.Lock()
	now := st.clock.Now()
	var socks []sessionSocket
	n := 0
	for _, s := range st.sessions {
		if s.idleLocked(now) {
			socks = append(socks, st.endLocked(s, endTimeout)...)
			n++
		}
	}
	maps.DeleteFunc(st.tickets, func(_ string, rec *ticketRec) bool { return !now.Before(rec.expires) })
	maps.DeleteFunc(st.targets, func(_ string, t target) bool { return !now.Before(t.expires) })
	st.mu.Unlock()
	notify(socks, endTimeout)
	return n
}

// SessionInfo describes a live session for inspection and the QPS APIs.
type SessionInfo struct {
	ID         string      `json:"sessionId"`
	Prefix     string      `json:"prefix"`
	User       Identity    `json:"user"`
	Attributes []Attribute `json:"attributes"`
	Created    time.Time   `json:"created"`
	LastActive time.Time   `json:"lastActive"`
	Websockets int         `json:"websockets"`
}

func (s *session) infoLocked() SessionInfo {
	return SessionInfo{
		ID: s.id, Prefix: s.vp.Prefix, User: s.user, Attributes: slices.Clone(s.attrs),
		Created: s.created, LastActive: s.lastActive, Websockets: len(s.sockets),
	}
}

// sessions returns the live sessions matching keep, sorted by creation.
func (st *state) list(keep func(*session) bool) []SessionInfo {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.clock.Now()
	var out []SessionInfo
	for _, s := range st.sessions {
		if !s.idleLocked(now) && keep(s) {
			out = append(out, s.infoLocked())
		}
	}
	sortInfos(out)
	return out
}

func sortInfos(infos []SessionInfo) {
	sort.Slice(infos, func(i, j int) bool {
		if !infos[i].Created.Equal(infos[j].Created) {
			return infos[i].Created.Before(infos[j].Created)
		}
		return infos[i].ID < infos[j].ID
	})
}

// userCounts returns a copy of every user's counters with live sessions.
func (st *state) userCounts() map[string]UserCounts {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[string]UserCounts, len(st.counts))
	for k, c := range st.counts {
		cc := *c
		cc.LiveSessions = st.liveCountLocked(st.names[k])
		out[st.names[k].String()] = cc
	}
	return out
}

const alnum = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// randomString returns n random characters from [0-9a-zA-Z], the alphabet
// of QPS tickets.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand: Read panics rather than erring since Go 1.24)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// newGUID returns a random (version 4) GUID, the shape of Qlik session ids
// and targetIds.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// key is u's case-insensitive identity under the simulator's UserCase.
func (st *state) key(u Identity) string { return st.rule.key(u.Directory, u.ID) }
