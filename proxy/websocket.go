package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// invalidateTimeout bounds the jar update after Qlik ended a relayed
// socket's session.
const invalidateTimeout = 10 * time.Second

// closeGrace is how long a relay waits, after one side closed, for the
// other side's close before dropping both connections.
const closeGrace = 5 * time.Second

// Buffer sizes of relayed websockets. An idle socket should hold no
// buffer: reads go through an idleConn, which takes a chunk from a pool
// only while data is there, and gorilla's reader over it is as small as
// gorilla allows (it must hold a control frame); a message larger than a
// chunk is read straight into the other side's write buffer. Write
// buffers come from a pool while a message is being written; a large one
// means few frames and system calls for large messages.
const (
	wsReadBufferSize  = 256
	wsWriteBufferSize = 64 << 10
)

// relay relays Engine websockets between clients and Qlik, frame by frame,
// and keeps a registry of live pairs for shutdown.
type relay struct {
	h        *Handler
	dialer   websocket.Dialer
	upgrader websocket.Upgrader

	mu      sync.Mutex
	pairs   map[*wsPair]struct{}
	perUser map[string]int // sockets held by each user key, while Options.WebsocketsPerUser > 0
	closing bool
	wg      sync.WaitGroup // the live pairs
	bg      sync.WaitGroup // abandoned sessions being ended
}

func newRelay(h *Handler) *relay {
	var tlsCfg *tls.Config
	if t, ok := h.opts.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		tlsCfg = t.TLSClientConfig.Clone()
	}
	pool := &sync.Pool{}
	var nd net.Dialer
	return &relay{
		h: h,
		dialer: websocket.Dialer{
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := nd.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return newIdleConn(c), nil
			},
			TLSClientConfig:  tlsCfg,
			HandshakeTimeout: DefaultHandshakeTimeout,
			ReadBufferSize:   wsReadBufferSize,
			WriteBufferSize:  wsWriteBufferSize,
			WriteBufferPool:  pool,
		},
		upgrader: websocket.Upgrader{
			// A reader of its own: reusing net/http's (size 0) would keep
			// its connection state, and a larger buffer, alive.
			ReadBufferSize:  wsReadBufferSize,
			WriteBufferSize: wsWriteBufferSize,
			WriteBufferPool: pool,
			// The Origin is checked in serve, before Qlik is dialled.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		pairs:   map[*wsPair]struct{}{},
		perUser: map[string]int{},
	}
}

// serve relays one Engine websocket: check the Origin, get the user's Qlik
// session, dial Qlik with it and make sure Qlik accepts it (see connect),
// and only then upgrade the client, so the client only ever sees an
// authenticated session and a refused handshake reaches it as an HTTP
// status.
func (rl *relay) serve(w http.ResponseWriter, r *http.Request, u identity.User, path string) {
	h := rl.h
	if !h.originAllowed(r.Header.Get("Origin")) {
		writeError(w, r, h.log, &Error{Status: http.StatusForbidden, Msg: "websocket origin not allowed", Err: errors.New("origin " + r.Header.Get("Origin")), reason: refuseOrigin})
		return
	}
	// The user's socket is counted from here, before the login and the
	// dial, so that a burst of upgrades cannot get past the bound.
	key := u.Key()
	if !rl.acquire(key) {
		h.metrics.websocketRefusedUserLimit()
		limit := h.opts.WebsocketsPerUser
		writeError(w, r, h.log, &Error{Status: http.StatusTooManyRequests,
			Msg: fmt.Sprintf("too many websockets open for this user (at most %d at once): close one and retry", limit),
			Err: fmt.Errorf("user has %d relayed websockets", limit), reason: refuseWebsocketLimit})
		return
	}
	handedOver := false // to the pair, which releases it when it ends
	defer func() {
		if !handedOver {
			rl.release(key)
		}
	}()
	engine := qlik.IsEnginePath(path)
	e, err := h.opts.Sessions.Ensure(r.Context(), u)
	if err != nil {
		writeError(w, r, h.log, loginError(err))
		return
	}
	// The recovery policy (recover.go): connect, classify, renew once,
	// connect once more; all before the client is upgraded, so a failure
	// reaches it as an HTTP status.
	a := &attempt{entry: e, n: 1, replayable: true}
	var (
		up      *websocket.Conn
		pending [][]byte
	)
	for {
		up, pending, err = rl.connect(r, u, &a.entry, rl.target(r, a.entry), engine)
		if err == nil {
			break
		}
		var nodeErr error
		switch {
		case isRefused(err):
		case h.opts.Nodes != nil && a.entry.Node != "" && isNodeDown(err):
			// Before the client is upgraded: a new session on another node.
			nodeErr = err
		default:
			writeError(w, r, h.log, wsError(err))
			return
		}
		if errors.Is(err, errMayLive) {
			// Qlik may still hold the session and count it toward the
			// user's five: end it there, off the request path.
			rl.abandon(u, a.entry)
		}
		if errors.Is(err, errTooManySessions) {
			writeError(w, r, h.log, &Error{Status: http.StatusServiceUnavailable, RetryAfter: loginRetryAfter, Err: err,
				Msg: fmt.Sprintf("Qlik refused the websocket: this user has too many Qlik sessions in parallel (Qlik allows %d); close Qlik in other browsers or wait for an idle one to time out", qlik.MaxParallelSessions)})
			return
		}
		next, rerr := h.renew(r.Context(), u, a, nodeErr, true)
		if rerr != nil {
			var pe *Error
			if !errors.As(rerr, &pe) {
				pe = wsError(rerr)
			}
			writeError(w, r, h.log, pe)
			return
		}
		a = &attempt{entry: next, n: a.n + 1, replayable: true}
	}
	e = a.entry
	// The upgrader writes its own 101: repeat the request id there.
	respHdr := http.Header{HeaderRequestID: {requestID(r.Context())}}
	if sp := up.Subprotocol(); sp != "" {
		respHdr.Set("Sec-WebSocket-Protocol", sp)
	}
	client, err := rl.upgrader.Upgrade(idleHijacker{w}, r, respHdr)
	if err != nil {
		// Upgrade has answered the client.
		up.Close()
		return
	}
	p := &wsPair{rl: rl, client: client, up: up, user: u, key: key, cookie: e.Cookie, created: e.Created, reqID: requestID(r.Context()), engine: engine}
	if h.audit != nil && engine {
		p.opens = &pendingOpens{}
	}
	if !rl.register(p) {
		p.closeBoth(websocket.CloseGoingAway, "sensegate is shutting down")
		client.Close()
		up.Close()
		return
	}
	handedOver = true
	p.access = h.newWSAccess(r)
	// The notifications read while checking the session are the client's.
	client.SetWriteDeadline(time.Now().Add(DefaultWriteWait))
	relayed := h.metrics.websocketBytes(false)
	for _, m := range pending {
		if err := client.WriteMessage(websocket.TextMessage, m); err != nil {
			client.Close()
			up.Close()
			rl.unregister(p)
			return
		}
		if relayed != nil {
			relayed.Add(float64(len(m)))
		}
	}
	// The pair runs on its own goroutines and this handler returns: net/http
	// then lets go of the request, its buffers and this goroutine's stack,
	// which an idle socket would otherwise hold for its whole life.
	go p.run()
}

// target returns the Qlik websocket URL of r for session e, on e's node.
func (rl *relay) target(r *http.Request, e session.Entry) *url.URL {
	h := rl.h
	base := h.qlikBase(e)
	target := &url.URL{}
	setQlikURL(target, base, h.prefix, r.URL)
	stripTicketParams(target)
	stripParam(target, qlik.CSRFTokenParam)
	target.Scheme = "ws"
	if base.Scheme == "https" {
		target.Scheme = "wss"
	}
	return target
}

// handshakeError is Qlik refusing a websocket handshake with a status.
type handshakeError struct {
	status int
	err    error
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("qlik refused the websocket handshake with %d: %v", e.status, e.err)
}
func (e *handshakeError) Unwrap() error { return e.err }

// wsError maps a connect error to the client's answer.
func wsError(err error) *Error {
	var he *handshakeError
	if errors.As(err, &he) {
		status := he.status
		if status < 400 {
			status = http.StatusBadGateway
		}
		e := &Error{Status: status, Msg: "Qlik refused the websocket", Err: err}
		if status == http.StatusForbidden {
			// Qlik's websocket CSRF check (or its host allow list), passed
			// on after a fresh token did not cure it.
			e.reason = refuseCSRF
		}
		return e
	}
	return upstreamError("could not open the Qlik websocket", err)
}

// Errors of connect that the recovery policy acts on. Each says the
// session is gone (errors.Is finds qlik.ErrSessionGone); errMayLive marks
// those where Qlik may still hold it, and errTooManySessions the socket
// Qlik refused for the user's parallel-session cap (qseow-protocol.md
// §4b), which a new login cannot cure.
var (
	errMayLive         = errors.New("qlik may still hold the session")
	errNoGreeting      = fmt.Errorf("qlik closed the websocket before any greeting (%w): %w", errMayLive, qlik.ErrSessionGone)
	errTooManySessions = fmt.Errorf("qlik refused the websocket: %s (%w): %w", qlik.TopicMaxParallelSessions, errMayLive, qlik.ErrSessionGone)
)

// connect dials Qlik with the session e (and its websocket CSRF token when
// Qlik wants one). For an Engine socket (engine) it then sends the probe:
// QPS authenticates a socket only at its first message, answering
// OnAuthenticationInformation. The session is gone (errSessionRefused)
// when that says mustAuthenticate, or when the handshake is refused the
// way Qlik refuses a dead session: a redirect to its login, 401, the 500
// Authentication error, or, with a CSRF token, a 403 that a fresh token
// does not cure. A socket dropped before any greeting is errNoGreeting:
// a restart mid-handshake, or a dead session on some sites. Otherwise the
// notifications that came before the probe's answer are returned for the
// client; the answer itself is dropped. Other websockets on Qlik paths
// are not probed.
func (rl *relay) connect(r *http.Request, u identity.User, e *session.Entry, target *url.URL, engine bool) (*websocket.Conn, [][]byte, error) {
	h := rl.h
	ctx := r.Context()
	token, err := rl.csrfToken(r, u, e, false)
	if err != nil {
		return nil, nil, err
	}
	up, err := rl.dial(r, e.Cookie, token, target)
	var he *handshakeError
	if errors.As(err, &he) && he.status == http.StatusForbidden && h.opts.WebsocketCSRF != CSRFOff {
		// A token belongs to one session: after a restart, a failover or
		// an idle timeout the cached one is stale, and Qlik answers 403
		// exactly as to a missing one (or it turned websocket CSRF on
		// since we asked). Ask again: with a dead cookie that call is
		// refused, which says the session is gone.
		fresh, ferr := rl.csrfToken(r, u, e, true)
		switch {
		case ferr != nil:
			return nil, nil, ferr
		case fresh != "" && fresh != token:
			up, err = rl.dial(r, e.Cookie, fresh, target)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if !engine {
		return up, nil, nil
	}
	deadline := time.Now().Add(DefaultHandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	up.SetWriteDeadline(deadline)
	up.SetReadDeadline(deadline)
	if err := up.WriteMessage(websocket.TextMessage, qlik.ProbeRequest); err != nil {
		up.Close()
		return nil, nil, fmt.Errorf("probe: %w", err)
	}
	var pending [][]byte
	for {
		_, m, err := up.ReadMessage()
		if err != nil {
			up.Close()
			var ne net.Error
			if ctx.Err() == nil && !(errors.As(err, &ne) && ne.Timeout()) {
				// Dropped, not timed out: the raw error is not wrapped, so
				// that a node is not marked down for what Qlik does to a
				// dead session.
				return nil, nil, fmt.Errorf("probe: %w: %v", errNoGreeting, err)
			}
			return nil, nil, fmt.Errorf("probe: %w", err)
		}
		var msg struct {
			ID     *int64 `json:"id"`
			Method string `json:"method"`
			Params struct {
				MustAuthenticate bool `json:"mustAuthenticate"`
			} `json:"params"`
		}
		if err := json.Unmarshal(m, &msg); err != nil {
			up.Close()
			return nil, nil, fmt.Errorf("probe: qlik sent a message that is not JSON-RPC: %w", err)
		}
		// Only notifications (a method, no id) speak for the session, as
		// on the open socket (fatalWatcher); decoding reads the top level
		// only, so a nested method is no method here.
		notification := msg.ID == nil
		switch {
		case msg.ID != nil && *msg.ID == qlik.ProbeID:
			up.SetReadDeadline(time.Time{})
			up.SetWriteDeadline(time.Time{})
			return up, pending, nil
		case notification && msg.Method == qlik.TopicAuthenticationInformation && msg.Params.MustAuthenticate:
			up.Close()
			return nil, nil, errSessionRefused
		case notification && msg.Method == qlik.TopicMaxParallelSessions:
			up.Close()
			return nil, nil, errTooManySessions
		case notification && qlik.IsSessionEndingTopic(msg.Method):
			up.Close()
			return nil, nil, fmt.Errorf("qlik ended the session at once (%s): %w", msg.Method, qlik.ErrSessionGone)
		case notification && qlik.IsFatalTopic(msg.Method):
			up.Close()
			return nil, nil, fmt.Errorf("qlik refused the websocket: %s", msg.Method)
		}
		pending = append(pending, m)
	}
}

// dial opens the Qlik side of a websocket with the session cookie (and
// CSRF token). No Authorization header is ever sent: Qlik refuses CSRF
// checked upgrades that carry one.
func (rl *relay) dial(r *http.Request, cookie, token string, target *url.URL) (*websocket.Conn, error) {
	h := rl.h
	t := *target
	if token != "" {
		// Appended: the client's query goes on as it was sent.
		p := qlik.CSRFTokenParam + "=" + url.QueryEscape(token)
		if t.RawQuery != "" {
			p = t.RawQuery + "&" + p
		}
		t.RawQuery = p
	}
	hdr := http.Header{}
	hdr.Set("Cookie", h.opts.CookieName+"="+cookie)
	hdr.Set("Origin", h.opts.QlikOrigin)
	if id := requestID(r.Context()); id != "" {
		hdr.Set(HeaderRequestID, id)
	}
	if ua := r.Header.Get("User-Agent"); ua != "" {
		hdr.Set("User-Agent", ua)
	}
	d := rl.dialer
	d.Subprotocols = websocket.Subprotocols(r)
	up, resp, err := d.DialContext(r.Context(), t.String(), hdr)
	if err == nil {
		return up, nil
	}
	if resp == nil {
		return nil, err
	}
	// gorilla keeps the first KiB of a refused handshake's body.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, qlik.AuthErrorPeek))
	resp.Body.Close()
	if qlik.IsLoginRedirect(resp.StatusCode, resp.Header.Get("Location"), h.opts.AuthModuleURL) || resp.StatusCode == http.StatusUnauthorized ||
		qlik.IsAuthError(resp.StatusCode, head) {
		return nil, errSessionRefused
	}
	return nil, &handshakeError{status: resp.StatusCode, err: err}
}

// noCSRFToken marks, in a jar entry, that Qlik has no websocket CSRF
// protection for the session.
const noCSRFToken = "-"

// csrfToken returns the websocket CSRF token to send with session e, ""
// for none. In mode auto it asks Qlik once per session (again when
// refresh) and remembers the answer in the jar.
func (rl *relay) csrfToken(r *http.Request, u identity.User, e *session.Entry, refresh bool) (string, error) {
	h := rl.h
	if h.opts.WebsocketCSRF == CSRFOff {
		return "", nil
	}
	if !refresh && e.CSRFToken != "" {
		if e.CSRFToken == noCSRFToken {
			return "", nil
		}
		return e.CSRFToken, nil
	}
	var (
		token     string
		supported bool
		err       error
	)
	if nt, ok := h.opts.CSRF.(nodeCSRFTokener); ok && e.Node != "" {
		token, supported, err = nt.CSRFTokenOn(r.Context(), e.Node, e.Cookie)
	} else {
		token, supported, err = h.opts.CSRF.CSRFToken(r.Context(), e.Cookie)
	}
	switch {
	case err != nil && isRefused(err):
		return "", errSessionRefused
	case err != nil:
		return "", fmt.Errorf("websocket CSRF token: %w", err)
	case !supported && h.opts.WebsocketCSRF == CSRFOn:
		return "", errors.New("websocket CSRF token: qlik.websocket_csrf is on but Qlik has no /qps/csrftoken (use auto or off)")
	case !supported:
		e.CSRFToken = noCSRFToken
		token = ""
	default:
		e.CSRFToken = token
	}
	if err := h.opts.Sessions.Update(r.Context(), u, *e); err != nil {
		h.log.Warn("jar update failed", zap.String("user", u.String()), zap.Error(err))
	}
	return token, nil
}

// nodeCSRFTokener is the optional ability of a CSRFTokener to ask the
// node holding a session; *ticket.Nodes has it.
type nodeCSRFTokener interface {
	CSRFTokenOn(ctx context.Context, node, sessionCookie string) (token string, supported bool, err error)
}

// sessionAbandoner is the optional ability of Sessions to end a session
// at QPS that sensegate stops using; *session.Broker has it.
type sessionAbandoner interface {
	Abandon(ctx context.Context, u identity.User, e session.Entry) (bool, error)
}

// abandon ends u's session e at QPS in the background (Qlik may still
// hold it, and count it toward the user's five sessions); shutdown waits
// for it, up to invalidateTimeout.
func (rl *relay) abandon(u identity.User, e session.Entry) {
	ab, ok := rl.h.opts.Sessions.(sessionAbandoner)
	if !ok {
		return
	}
	rl.mu.Lock()
	if rl.closing {
		// Shutdown is waiting on bg: Qlik times the session out.
		rl.mu.Unlock()
		return
	}
	rl.bg.Add(1)
	rl.mu.Unlock()
	go func() {
		defer rl.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), invalidateTimeout)
		defer cancel()
		if _, err := ab.Abandon(ctx, u, e); err != nil {
			rl.h.log.Warn("abandoned qlik session not ended", zap.String("user", u.String()), zap.Error(err))
		}
	}()
}

// isRefused reports whether err says Qlik no longer knows a session:
// qlik.ErrSessionGone, which errSessionRefused, the probe's errors and
// the ticket package's ErrSessionRefused (a dead cookie met while
// fetching a CSRF token) all wrap.
func isRefused(err error) bool { return errors.Is(err, qlik.ErrSessionGone) }

// originAllowed reports whether a request's Origin may open a websocket
// or change state: none (a non-browser client), sensegate's public origin,
// or one of the allowed origins. This stops cross-site websocket
// hijacking and cross-site request forgery: a foreign page cannot ride on
// the user's sensegate session.
func (h *Handler) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	o, ok := qlik.NormalizeOrigin(origin)
	return ok && h.origins[o]
}

func (rl *relay) register(p *wsPair) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closing {
		return false
	}
	rl.pairs[p] = struct{}{}
	rl.wg.Add(1)
	rl.h.metrics.websocketOpened()
	return true
}

func (rl *relay) unregister(p *wsPair) {
	rl.mu.Lock()
	delete(rl.pairs, p)
	rl.releaseLocked(p.key)
	rl.mu.Unlock()
	rl.h.metrics.websocketClosed()
	rl.wg.Done()
}

// acquire counts one more relayed websocket for the user with key and
// reports true, or reports false when the user already has
// Options.WebsocketsPerUser. release gives it back.
func (rl *relay) acquire(key string) bool {
	limit := rl.h.opts.WebsocketsPerUser
	if limit == 0 {
		return true
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.perUser[key] >= limit {
		return false
	}
	rl.perUser[key]++
	return true
}

func (rl *relay) release(key string) {
	rl.mu.Lock()
	rl.releaseLocked(key)
	rl.mu.Unlock()
}

func (rl *relay) releaseLocked(key string) {
	if rl.h.opts.WebsocketsPerUser == 0 {
		return
	}
	// Users without sockets leave the map: it holds only the connected.
	if rl.perUser[key]--; rl.perUser[key] <= 0 {
		delete(rl.perUser, key)
	}
}

// closeUser sends a close frame to both sides of every relayed websocket of
// the user with key and returns how many there were.
func (rl *relay) closeUser(key string, code int, text string) int {
	rl.mu.Lock()
	var pairs []*wsPair
	for p := range rl.pairs {
		if p.key == key {
			pairs = append(pairs, p)
		}
	}
	rl.mu.Unlock()
	for _, p := range pairs {
		p.closeBoth(code, text)
	}
	return len(pairs)
}

func (rl *relay) count() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return len(rl.pairs)
}

// shutdown sends 1001 to every client and Qlik, then waits for the pairs to
// finish; when ctx ends first it drops the remaining connections.
func (rl *relay) shutdown(ctx context.Context) error {
	rl.mu.Lock()
	rl.closing = true
	pairs := make([]*wsPair, 0, len(rl.pairs))
	for p := range rl.pairs {
		pairs = append(pairs, p)
	}
	rl.mu.Unlock()
	for _, p := range pairs {
		p.closeBoth(websocket.CloseGoingAway, "sensegate is shutting down")
	}
	done := make(chan struct{})
	go func() { rl.wg.Wait(); rl.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, p := range pairs {
			p.client.Close()
			p.up.Close()
		}
		<-done
		return ctx.Err()
	}
}

// wsPair is one relayed websocket: the client's connection and Qlik's.
// Each connection has exactly one data writer (the pump reading the other
// side); close frames go through WriteControl, which gorilla allows
// concurrently.
type wsPair struct {
	rl     *relay
	client *websocket.Conn
	up     *websocket.Conn
	user   identity.User
	key    string // user.Key(), as counted for Options.WebsocketsPerUser
	cookie string // the Qlik session the socket runs on
	// created is when that session was made (for the audit log).
	created time.Time
	reqID   string
	// engine is whether the socket is the Engine's (/app/…), which speaks
	// JSON-RPC: only its messages are watched.
	engine bool
	// opens are the OpenDoc requests sent and not yet answered, for the
	// audit (nil without one).
	opens *pendingOpens
	// access is the socket's access log record (nil without the access
	// log).
	access *wsAccess

	// closeMu guards the first ending seen: its close code and the side
	// that ended the socket.
	closeMu   sync.Mutex
	closeCode int
	closeSide string
	// relayed counts the message bytes relayed both ways.
	relayed atomic.Int64
}

// noteClose records how the socket ended, if nothing was recorded yet:
// the first side to end it is the one that closed it.
func (p *wsPair) noteClose(code int, side string) {
	p.closeMu.Lock()
	if p.closeSide == "" {
		p.closeCode, p.closeSide = code, side
	}
	p.closeMu.Unlock()
}

// closeCodeOf returns the close code of the error that ended a read: the
// peer's close code, 1009 for a message over the read limit, 1006 for a
// dropped connection.
func closeCodeOf(err error) int {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return ce.Code
	case errors.Is(err, websocket.ErrReadLimit):
		return websocket.CloseMessageTooBig
	}
	return websocket.CloseAbnormalClosure
}

// noteEnd records how a pump from side src (to dst) ended: with src's
// read error (fromSrc), src closed the socket, unless it sent a message
// over the read limit, which sensegate closes with 1009; otherwise a
// write to dst failed, and dst dropped.
func (p *wsPair) noteEnd(src, dst string, err error, fromSrc bool) {
	switch {
	case !fromSrc:
		p.noteClose(websocket.CloseAbnormalClosure, dst)
	case errors.Is(err, websocket.ErrReadLimit):
		p.noteClose(websocket.CloseMessageTooBig, sideSensegate)
	default:
		p.noteClose(closeCodeOf(err), src)
	}
}

// run relays until both sides have ended, then unregisters the pair.
func (p *wsPair) run() {
	defer p.rl.unregister(p)
	limit := p.rl.h.opts.WebsocketReadLimit
	p.client.SetReadLimit(limit)
	p.up.SetReadLimit(limit)
	if every := p.rl.h.opts.WebsocketPing; every > 0 {
		// A timer, not a goroutine: idle sockets should cost little.
		var ping *time.Timer
		ping = time.AfterFunc(every, func() {
			if p.up.WriteControl(websocket.PingMessage, nil, time.Now().Add(DefaultWriteWait)) == nil {
				ping.Reset(every)
			}
		})
		defer ping.Stop()
	}
	// One pump runs here, the other in a goroutine of its own. Once one
	// side has ended, the other has closeGrace to pass its close frame
	// through before both connections are dropped.
	var (
		ended      = make(chan struct{})
		clientDrop *time.Timer // armed when Qlik's side ends, before ended closes
	)
	go func() {
		p.pumpQlikToClient()
		clientDrop = time.AfterFunc(closeGrace, func() { p.client.Close() })
		close(ended)
	}()
	p.pumpClientToQlik()
	t := time.NewTimer(closeGrace)
	select {
	case <-ended:
		t.Stop()
	case <-t.C:
		p.up.Close()
		<-ended
	}
	clientDrop.Stop()
	p.client.Close()
	p.up.Close()
	if p.opens != nil {
		// Both pumps have ended: what is pending was never answered.
		for _, app := range p.opens.drain() {
			p.rl.h.audit.appOpen(p, app, openNoAnswer, nil)
		}
	}
	p.closeMu.Lock()
	code, side := p.closeCode, p.closeSide
	p.closeMu.Unlock()
	if side == "" {
		code, side = websocket.CloseAbnormalClosure, sideSensegate
	}
	h := p.rl.h
	h.metrics.websocketEnded(code, side)
	h.logWebsocket(p.access, code, side, p.relayed.Load())
	h.log.Debug("websocket closed", zap.String("user", p.user.String()), zap.String("request_id", p.reqID), zap.Int("close_code", code), zap.String("closed_by", side))
}

// pumpClientToQlik copies the client's messages to Qlik. With an audit
// log it reads each text message, as it streams, for OpenDoc requests;
// without one it does not look at them.
func (p *wsPair) pumpClientToQlik() {
	var w watcher
	if p.rl.h.audit != nil && p.engine {
		w = newOpenDocWatcher(p)
	}
	err, fromSrc, n := pump(p.up, p.client, w, p.rl.h.metrics.websocketBytes(true))
	p.relayed.Add(n)
	p.noteEnd(sideClient, sideQlik, err, fromSrc)
}

// pumpQlikToClient copies Qlik's messages to the client, watching for the
// notifications that end the session: the jar entry is then dropped so
// the next request logs in again, and Qlik's close follows through.
func (p *wsPair) pumpQlikToClient() {
	var w watcher
	if p.engine {
		w = &fatalWatcher{p: p, s: rpcScanner{match: isFatalMethod}}
	}
	err, fromSrc, n := pump(p.client, p.up, w, p.rl.h.metrics.websocketBytes(false))
	p.relayed.Add(n)
	p.noteEnd(sideQlik, sideClient, err, fromSrc)
}

// A watcher looks at the text messages a pump relays.
type watcher interface {
	// start is called at the start of each text message with its
	// reader. It may read ahead of r, a bounded amount: it returns those
	// bytes (head), which are relayed first, with the error of that read,
	// and the reader of the rest (r itself or r behind a scanner).
	start(r io.Reader) (rest io.Reader, head []byte, err error)
	// end is called once the whole message has been read, before its
	// last frame is sent on.
	end()
}

// peekSize is how much of each Qlik message is read ahead: enough to rule
// out a session notification in almost every message (a response names
// its id first), while the rest of the message streams.
const peekSize = 256

// maxNotification bounds the Qlik messages that can be session
// notifications. Qlik's are about 150 bytes, params included; a longer
// message is not one, and is read ahead no further than this, and only
// when its first peekSize bytes could begin one.
const maxNotification = 4 << 10

// fatalWatcher drops the jar entry when Qlik sends a notification that
// ends the session: a top-level JSON-RPC notification (a method, no id)
// of a fatal topic, and nothing else, whatever text user data carries.
// It decides before the message goes on, so a client that reacts to it
// at once already finds the jar without the dead session.
type fatalWatcher struct {
	p   *wsPair
	s   rpcScanner
	buf *[maxNotification + 1]byte // the head of the message being relayed, from headBufs
}

// headBufs holds the buffers of the heads of Qlik's messages: peekSize
// bytes, or up to maxNotification+1 for those that may be session
// notifications.
var headBufs = sync.Pool{New: func() any { return new([maxNotification + 1]byte) }}

func (w *fatalWatcher) start(r io.Reader) (io.Reader, []byte, error) {
	w.s.reset()
	// A buffer of the pool's for the message's head, given back once the
	// message was sent on (end): a socket waiting for its next message
	// holds none.
	w.buf = headBufs.Get().(*[maxNotification + 1]byte)
	n, err := io.ReadFull(r, w.buf[:peekSize])
	w.s.Write(w.buf[:n])
	if err == nil && !w.s.ruledOut() {
		// The head may begin a notification: read on to its bound, one
		// byte past it to tell a message of exactly the bound.
		var m int
		m, err = io.ReadFull(r, w.buf[n:])
		w.s.Write(w.buf[n : n+m])
		n += m
	}
	head := w.buf[:n]
	if (err == io.EOF || err == io.ErrUnexpectedEOF) && w.s.notification() {
		w.p.sessionEnded(w.s.method)
	}
	if o := w.p.opens; o != nil && o.waiting() {
		w.p.openAnswered(head)
	}
	return r, head, err
}

func (w *fatalWatcher) end() {
	if w.buf != nil {
		headBufs.Put(w.buf)
		w.buf = nil
	}
}

// isFatalMethod reports whether a proxy notification's method ends the
// session.
func isFatalMethod(m []byte) bool { return qlik.IsSessionEndingTopic(string(m)) }

// openDocWatcher writes an app_open audit entry for each OpenDoc request:
// a top-level "method":"OpenDoc" wherever it sits in the message, read as
// the message streams, so that no padding hides it.
type openDocWatcher struct {
	p *wsPair
	s rpcScanner
	r scanReader
}

func newOpenDocWatcher(p *wsPair) *openDocWatcher {
	w := &openDocWatcher{p: p, s: rpcScanner{match: isOpenDocMethod, doc: true}}
	w.r.s = &w.s
	return w
}

func (w *openDocWatcher) start(r io.Reader) (io.Reader, []byte, error) {
	w.s.reset()
	w.r.r = r
	return &w.r, nil, nil
}

// end registers the OpenDoc before its last frame reaches Qlik, so that
// its answer finds it: the entry is written with the answer's outcome.
// An OpenDoc without a number id, or beyond maxPendingOpens, is written
// at once, its outcome unknown.
func (w *openDocWatcher) end() {
	if w.s.matched == 0 {
		return
	}
	app := w.s.docName()
	if id := w.s.idNumber(); id == "" || !w.p.opens.add(id, app) {
		w.p.rl.h.audit.appOpen(w.p, app, openSent, nil)
	}
}

// scanReader hands what it reads from r to s as well.
type scanReader struct {
	r io.Reader
	s *rpcScanner
}

func (r *scanReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.s.Write(p[:n])
	return n, err
}

// sessionEnded drops the jar entry of the pair's session: Qlik sent
// topic, a notification that ends it.
func (p *wsPair) sessionEnded(topic string) {
	h := p.rl.h
	h.metrics.sessionNotification(topic)
	h.log.Info("qlik ended the session of a websocket", zap.String("user", p.user.String()), zap.String("topic", topic), zap.String("request_id", p.reqID))
	// The upgrade request is long gone: the drop gets a context of its own.
	ctx, cancel := context.WithTimeout(context.Background(), invalidateTimeout)
	defer cancel()
	if err := h.opts.Sessions.Invalidate(ctx, p.user, p.cookie); err != nil {
		h.log.Warn("jar invalidate failed", zap.String("user", p.user.String()), zap.Error(err))
	}
}

// pump copies messages from src to dst as streams (no whole-message
// buffering) until src ends, then passes src's ending on to dst. A
// watcher, when not nil, sees each text message (see watcher). relayed,
// when not nil, counts the payload bytes sent. It returns the error that
// ended it, whether that came from reading src (else writing to dst
// failed), and the payload bytes it sent.
func pump(dst, src *websocket.Conn, watch watcher, relayed prometheus.Counter) (end error, fromSrc bool, total int64) {
	wd := newLazyDeadline()
	for {
		mt, r, err := src.NextReader()
		if err != nil {
			passClose(dst, err)
			return err, true, total
		}
		var (
			rest = r
			head []byte
			rerr error
		)
		watched := watch != nil && mt == websocket.TextMessage
		if watched {
			rest, head, rerr = watch.start(r)
		}
		if t, moved := wd.move(wd.elapsed(), DefaultWriteWait); moved {
			dst.SetWriteDeadline(t)
		}
		w, err := dst.NextWriter(mt)
		if err != nil {
			src.Close()
			return err, false, total
		}
		var sent int64
		if len(head) > 0 {
			var n int
			n, err = w.Write(head)
			sent = int64(n)
		}
		if err == nil && rerr == nil {
			var n int64
			n, err = io.Copy(w, rest)
			sent += n
		} else if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			err = rerr
		}
		total += sent
		if relayed != nil {
			relayed.Add(float64(sent))
		}
		if err != nil {
			w.Close()
			if errors.Is(err, websocket.ErrReadLimit) {
				passClose(dst, err)
				return err, true, total
			}
			dst.Close()
			return err, false, total
		}
		if watched {
			watch.end()
		}
		if err := w.Close(); err != nil {
			src.Close()
			return err, false, total
		}
	}
}

// lazyDeadline is the write deadline a pump gives each message it sends:
// DefaultWriteWait from the message, moved lazily, as idleConn does with
// a connection's deadline. gorilla passes the deadline to the connection
// at every frame it writes, and moving it costs a runtime timer update
// (idleConn's lazy rule spares that) and a clock reading in idleConn, on
// top of the pump's own. Kept while it leaves 15/16 of the wait, the
// deadline stays the same value, which idleConn recognises without
// reading the clock (and a connection that is no idleConn, a client's
// TLS connection, does not move its timer); the pump reads the monotonic
// clock only, once a message.
type lazyDeadline struct {
	base time.Time     // when the pump started, with a monotonic reading
	set  time.Duration // the deadline given, as time since base; 0 before the first
}

func newLazyDeadline() lazyDeadline { return lazyDeadline{base: time.Now()} }

// elapsed returns the time since base. time.Since of a time with a
// monotonic reading reads that clock only, where time.Now reads the wall
// clock too; deadlines compare monotonic readings (net's
// SetWriteDeadline goes through time.Until), so a wall clock step moves
// none of them.
func (d *lazyDeadline) elapsed() time.Duration { return time.Since(d.base) }

// move reports whether a message sent at elapsed (since base) needs a
// new deadline, and returns it: elapsed+wait, when less than 15/16 of
// wait is left of the one given.
func (d *lazyDeadline) move(elapsed, wait time.Duration) (time.Time, bool) {
	if d.set != 0 && keepDeadline(elapsed+wait-d.set, wait) {
		return time.Time{}, false
	}
	d.set = elapsed + wait
	return d.base.Add(d.set), true
}

// passClose ends dst the way src ended: the same close code and reason, a
// 1009 when src's message was too big, or a dropped connection when src
// was dropped (1006 cannot be sent, so the peer must see it for itself).
func passClose(dst *websocket.Conn, err error) {
	deadline := time.Now().Add(DefaultWriteWait)
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure && ce.Code != websocket.CloseTLSHandshake:
		dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ce.Text), deadline)
	case errors.Is(err, websocket.ErrReadLimit):
		dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""), deadline)
	default:
		dst.NetConn().Close()
	}
}

// closeBoth sends a close frame to both sides.
func (p *wsPair) closeBoth(code int, text string) {
	p.noteClose(code, sideSensegate)
	deadline := time.Now().Add(time.Second)
	msg := websocket.FormatCloseMessage(code, text)
	p.client.WriteControl(websocket.CloseMessage, msg, deadline)
	p.up.WriteControl(websocket.CloseMessage, msg, deadline)
}
