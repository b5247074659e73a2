package qliksim

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Engine websocket limits and versions.
const (
	// engineVersion is what EngineVersion and ProductVersion report: the
	// newest Engine API schema enigma.js ships.
	engineVersion = "12.2027.0"
	// engineReadLimit bounds one client message. Apps' scripts of many MB
	// must pass both ways (SetScript / GetScript).
	engineReadLimit = 256 << 20
	// engineWriteWait bounds the write of one frame, which may be large.
	engineWriteWait = 30 * time.Second
	// engineCloseGrace is how long the server waits for the client to answer
	// its close frame before dropping the connection.
	engineCloseGrace = 5 * time.Second
	// engineOutQueue is the number of frames queued for the writer before
	// the reader blocks (back pressure from a slow client).
	engineOutQueue = 16

	globalHandle   = -1 // the Global object
	docHandle      = 1  // the one Doc a socket may open
	firstObjHandle = 2  // the first generic object's handle (object.go)

	// engineDataApp is the socket path segment that means "Global only".
	engineDataApp = "enginedata"
)

// Engine error codes. The numbers are the LocalizedErrorCode enum of the
// Engine API schema shipped by enigma.js (qlik-oss/enigma.js
// schemas/12.2027.0.json, "LocalizedErrorCode"), mirrored by gopherciser
// (qlik-oss/gopherciser globals/constant/senseerror.go). Messages: the
// LOCERR texts of https://qlik.dev/apis/json-rpc/qix/errors; the JSON-RPC
// 2.0 specification's texts for -32700/-32600/-32601; "Invalid method
// parameter(s)" for -32602 as enigma.js users report it (enigma.js #756).
const (
	locerrGenericAlreadyExists  = 3    // LOCERR_GENERIC_ALREADY_EXISTS, "Already exists"
	locerrGenericInvalidPath    = 4    // LOCERR_GENERIC_INVALID_PATH, "Invalid path"
	locerrGenericAccessDenied   = 5    // LOCERR_GENERIC_ACCESS_DENIED, "Access denied"
	locerrGenericInternalError  = 10   // LOCERR_GENERIC_INTERNAL_ERROR, "Internal error"
	locerrGenericConnectionLost = 16   // LOCERR_GENERIC_CONNECTION_LOST, "Connection lost"
	locerrAppAlreadyOpen        = 1002 // LOCERR_APP_ALREADY_OPEN, "App already open"
	locerrAppNotFound           = 1003 // LOCERR_APP_NOT_FOUND, "App not found"
	locerrAppInvalid            = 1007 // LOCERR_APP_INVALID, "App invalid"
	locerrFileFormatUnsupported = 3004 // LOCERR_FILE_FORMAT_UNSUPPORTED, "File format unsupported"
	locerrRPCInvalidRequest     = -32600
	locerrRPCMethodNotFound     = -32601
	locerrRPCInvalidParams      = -32602
	locerrRPCParseError         = -32700
)

// topicMaxParallelSessions is the fatal notification a socket of a session
// beyond the parallel-session cap gets (SessionCapSocket) [M1][G7].
const topicMaxParallelSessions = "OnMaxParallelSessionsExceeded"

// Close codes the simulated proxy uses. Which codes QPS really sends is
// undocumented (protocol notes, open question 6).
const (
	closeAuthRequired = websocket.ClosePolicyViolation // 1008 after mustAuthenticate:true
	closeSessionEnded = websocket.CloseNormalClosure   // 1000 after a fatal notification
)

// engineState is the Engine's memory shared by all sockets: the live Engine
// sessions, which decide between SESSION_CREATED and SESSION_ATTACHED, and
// the apps' generated scripts. Its methods are safe for concurrent use.
type engineState struct {
	upgrader websocket.Upgrader

	mu   sync.Mutex
	live map[engineKey]int // open sockets per Engine session

	scriptMu sync.Mutex
	scripts  map[string]string // generated script by app id
}

// engineKey identifies an Engine session. QSEoW shares an Engine session
// between sockets of the same user on the same app (or engineData), unless
// the URL separates them with /identity/<x> [B3]. The proxy session is not
// part of the key: two browsers of one user share the Engine session.
type engineKey struct {
	user, app, identity string
}

func newEngineState() *engineState {
	return &engineState{
		upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			// Origin and CSRF are checked before Upgrade (serveEngine),
			// with QSEoW's own rules; gorilla's same-host default would
			// reject allowed cross-origin mashups.
			CheckOrigin:       func(*http.Request) bool { return true },
			EnableCompression: false,
		},
		live:    map[engineKey]int{},
		scripts: map[string]string{},
	}
}

// open registers a socket on Engine session k and reports whether the
// session already existed (SESSION_ATTACHED). The Engine TTL is 0: a
// session ends with its last socket, so a reconnect gets SESSION_CREATED.
func (e *engineState) open(k engineKey) (attached bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.live[k]
	e.live[k] = n + 1
	return n > 0
}

// release unregisters a socket opened with open.
func (e *engineState) release(k engineKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n := e.live[k]; n > 1 {
		e.live[k] = n - 1
	} else {
		delete(e.live, k)
	}
}

// engineTarget splits a socket path "/app/<app>[/identity/<x>]..." into
// the lower-cased app (engineDataApp for "engineData" or none) and the
// identity.
func engineTarget(path string) (app, identity string) {
	rest := strings.TrimPrefix(path, "/app/")
	seg, rest, _ := strings.Cut(rest, "/")
	app = strings.ToLower(seg)
	if app == "" {
		app = engineDataApp
	}
	if id, ok := strings.CutPrefix(rest, "identity/"); ok {
		identity, _, _ = strings.Cut(id, "/")
	}
	return app, identity
}

// serveEngine serves an Engine websocket upgrade on /{prefix}/app/... .
//
// The handshake is refused (403, plain text) for an Origin whose host is
// not on the host allow list and, with websocket CSRF protection, for a
// missing Origin, an Authorization header or a wrong qlik-csrf-token query
// parameter (a stale token of a dead session included). A dead session
// cookie gets what the virtual proxy's DeadSocket says: a refused
// handshake (500, 302, 401) or, by default, an upgrade. Otherwise the
// upgrade succeeds, with or without a session, as QSEoW's does;
// authentication is reported after the client's first message
// (OnAuthenticationInformation).
func (s *Sim) serveEngine(w http.ResponseWriter, r *http.Request, pr *proxyRequest) {
	if reason := s.engineHandshakeError(r, pr); reason != "" {
		if pr.setCookie != nil {
			http.SetCookie(w, pr.setCookie)
		}
		s.recordHTTP(r, pr, http.StatusForbidden)
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	if pr.sess == nil && pr.deadCookie && s.refuseDeadSocket(w, r, pr) {
		return
	}
	var hdr http.Header
	if pr.setCookie != nil {
		// The upgrade redeemed a ticket: the session cookie goes on the 101.
		hdr = http.Header{"Set-Cookie": {pr.setCookie.String()}}
	}
	ws, err := s.engine.upgrader.Upgrade(w, r, hdr)
	if err != nil {
		// Upgrade has answered the client (400 and the like).
		s.log.Debug("engine websocket upgrade failed", zap.String("path", r.URL.Path), zap.Error(err))
		return
	}
	ws.SetReadLimit(engineReadLimit)

	app, identity := engineTarget(pr.path)
	c := &engineConn{
		s:          s,
		ws:         ws,
		raw:        rawConn(ws.NetConn()),
		r:          r,
		pr:         pr,
		app:        app,
		identity:   identity,
		out:        make(chan []byte, engineOutQueue),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
	untrack := s.trackConn(ws)
	defer untrack()
	if pr.sess != nil && !s.st.attach(pr.sess.id, c) {
		// The session ended between authentication and now: its cookie
		// is dead, as if the session had ended before the upgrade.
		pr.sess, pr.deadCookie = nil, true
	}
	ws.SetCloseHandler(c.onClose)
	if pr.vp.DropPings {
		ws.SetPingHandler(c.dropPing)
	}
	s.record(c.event("ws-open"))
	go c.writeLoop()

	c.readLoop()

	close(c.done)
	ws.Close() // unblocks a writer stuck on a slow client
	<-c.writerDone
	c.finish()
	s.record(c.event("ws-close"))
}

// refuseDeadSocket refuses the handshake of an upgrade whose session cookie
// is dead (unknown or ended) when vp.DeadSocket says so, and reports
// whether it did. These refusals are live reports [M1]; the body of the
// 401 is not reported, the simulator writes "Unauthorized".
func (s *Sim) refuseDeadSocket(w http.ResponseWriter, r *http.Request, pr *proxyRequest) bool {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	switch pr.vp.DeadSocket {
	case DeadSocket500:
		http.Error(sw, msgAuthError, http.StatusInternalServerError)
	case DeadSocket302:
		s.redirectToLogin(sw, r, pr.vp)
	case DeadSocket401:
		http.Error(sw, "Unauthorized", http.StatusUnauthorized)
	default:
		return false // the upgrade goes ahead; the first message decides
	}
	pr.variant = "dead-socket=" + pr.vp.DeadSocket
	s.recordHTTP(r, pr, sw.status)
	return true
}

// engineHandshakeError returns why the upgrade of r must be refused, or ""
// when it may proceed. Refusals are logged without header values.
func (s *Sim) engineHandshakeError(r *http.Request, pr *proxyRequest) string {
	host, hasOrigin := originHost(r)
	if hasOrigin && !pr.vp.allowsHost(host) {
		s.log.Info("websocket origin not on the host allow list",
			zap.String("prefix", pr.vp.Prefix), zap.String("path", r.URL.Path), zap.String("originHost", host))
		return "origin"
	}
	if !pr.vp.csrf {
		return ""
	}
	reason := ""
	_, hasAuthorization := r.Header["Authorization"]
	switch {
	case hasAuthorization:
		// Since the Nov 2024 CSRF change a websocket must use the session
		// cookie, never a bearer token [C2].
		reason = "authorization header present"
	case !hasOrigin:
		// QSEoW documents only that an allowed Origin must be sent; whether
		// a missing one passes is unknown. Refusing is the stricter choice.
		reason = "origin header missing"
	case pr.sess == nil:
		reason = "no session"
	default:
		// Only the query parameter counts: a header-only token was observed
		// to get 403 [G14].
		want := s.st.peekCSRFToken(pr.sess.id)
		got := r.URL.Query().Get("qlik-csrf-token")
		if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			reason = "qlik-csrf-token missing or wrong"
		}
	}
	if reason != "" {
		s.log.Info("cross-site websocket hijacking attack prevention check failed",
			zap.String("prefix", pr.vp.Prefix), zap.String("path", r.URL.Path),
			zap.String("remoteAddr", r.RemoteAddr), zap.String("reason", reason))
	}
	return reason
}

// rawConn returns the transport under TLS, so that closing it drops the
// connection at once without a close_notify (as a crashed service would).
func rawConn(c net.Conn) net.Conn {
	if t, ok := c.(*tls.Conn); ok {
		return t.NetConn()
	}
	return c
}

// engineConn is one Engine websocket. The handler goroutine reads and
// answers requests; writeLoop is the only writer of data frames (gorilla
// allows one concurrent writer; Close and WriteControl are the exceptions).
type engineConn struct {
	s   *Sim
	ws  *websocket.Conn
	raw net.Conn
	r   *http.Request
	pr  *proxyRequest // pr.sess is nil when unauthenticated

	app, identity string

	out        chan []byte   // frames for the writer, in order
	quit       chan struct{} // closed by closeWith: write final and stop
	final      closing       // set before quit is closed
	quitOnce   sync.Once
	done       chan struct{} // closed when the reader has ended
	writerDone chan struct{}

	finishOnce sync.Once
	engineKey  *engineKey // set once the Engine session is registered

	// Read and written by the handler goroutine only (gorilla calls the
	// ping handler from ReadMessage, on that goroutine).
	doc *engineDoc
	// deaf is set by a dropped ping (VirtualProxy.DropPings): nothing
	// the client sends afterwards is answered.
	deaf bool
	// objects are the generic objects of the open doc, by handle (see
	// object.go); nextHandle is the handle the next one gets.
	objects    map[int]*engineObject
	nextHandle int
}

// engineDoc is the app a socket has opened.
type engineDoc struct {
	app    App
	noData bool
	script *string // set by SetScript; nil means the app's own script
}

// closing is how a connection ends: an optional last text frame and a close
// frame, or an abrupt drop.
type closing struct {
	notice []byte
	code   int
	reason string
	abrupt bool
}

var _ sessionSocket = (*engineConn)(nil)

// terminate implements sessionSocket. It never blocks: it hands the writer
// the fatal notification and a close frame, or drops the connection when
// topic is empty (a restart of the proxy service).
func (c *engineConn) terminate(topic, message string) {
	if topic == "" {
		c.closeWith(closing{abrupt: true})
		return
	}
	notice := mustMarshal(rpcNotification{
		JSONRPC: "2.0", Method: topic,
		Params: fatalParams{Severity: "fatal", Timestamp: c.s.clock.Now().UTC().Format(time.RFC3339), Message: message},
	})
	// The close code after a fatal message is undocumented; 1000 (normal
	// closure) keeps enigma.js from treating it as a suspendable drop.
	c.closeWith(closing{notice: notice, code: closeSessionEnded, reason: message})
}

// push implements sessionSocket.
func (c *engineConn) push(msg []byte) bool { return c.send(msg) }

// closeWith starts the end of the connection; only the first call counts.
func (c *engineConn) closeWith(cl closing) {
	c.quitOnce.Do(func() {
		c.final = cl
		if cl.abrupt {
			c.raw.Close() // net.Conn.Close is safe from any goroutine and does not block
		}
		close(c.quit)
	})
}

// isClosing reports whether the connection is ending.
func (c *engineConn) isClosing() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// send queues a frame for the writer; it reports false when the connection
// is ending and the frame was dropped. Nothing is queued once the end has
// begun (select alone would pick at random between out and quit).
func (c *engineConn) send(b []byte) bool {
	if c.isClosing() {
		return false
	}
	select {
	case c.out <- b:
		return true
	case <-c.quit:
		return false
	case <-c.writerDone:
		return false
	}
}

func (c *engineConn) writeLoop() {
	defer close(c.writerDone)
	for {
		select {
		case b := <-c.out:
			if err := c.write(b); err != nil {
				c.raw.Close() // the reader must not wait for a peer we cannot write to
				return
			}
		case <-c.quit:
			cl := c.final
			if cl.abrupt {
				return
			}
			if cl.notice != nil {
				if err := c.write(cl.notice); err != nil {
					c.raw.Close()
					return
				}
			}
			msg := websocket.FormatCloseMessage(cl.code, truncateUTF8(cl.reason, 123))
			if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(engineWriteWait)); err != nil {
				c.raw.Close()
				return
			}
			// The reader ends when the client answers the close frame, or
			// after the grace period.
			c.raw.SetReadDeadline(time.Now().Add(engineCloseGrace))
			return
		case <-c.done:
			return
		}
	}
}

func (c *engineConn) write(b []byte) error {
	c.ws.SetWriteDeadline(time.Now().Add(engineWriteWait))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// onClose handles the client's close frame: it ends the Engine session
// registration before echoing the frame, so that a client that saw the
// echo and reconnects gets SESSION_CREATED.
func (c *engineConn) onClose(code int, _ string) error {
	c.finish()
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(engineWriteWait))
	return nil
}

// finish releases the Engine session and detaches from the proxy session.
func (c *engineConn) finish() {
	c.finishOnce.Do(func() {
		if c.engineKey != nil {
			c.s.engine.release(*c.engineKey)
		}
		if c.pr.sess != nil {
			c.s.st.detach(c.pr.sess.id, c)
		}
	})
}

func (c *engineConn) event(kind string) Event {
	e := Event{Kind: kind, Prefix: c.pr.vp.Prefix, Path: c.r.URL.Path, User: c.pr.userString()}
	if c.pr.sess != nil {
		e.SessionID = c.pr.sess.id
	}
	return e
}

// dropPing is the ping handler under VirtualProxy.DropPings: QPS is
// reported not to relay ping/pong, and the next request after a ping is
// never answered [M1] (third-party, unverified). So no pong goes back and
// the socket goes deaf: it stays open, reads on and answers nothing, not
// even a first message. Whether QPS's own greeting would still come is
// not known; nothing at all is the stricter choice.
func (c *engineConn) dropPing(string) error {
	c.deaf = true
	e := c.event("ws-ping")
	e.Variant = "drop-pings"
	c.s.record(e)
	return nil
}

func (c *engineConn) readLoop() {
	s, sess := c.s, c.pr.sess
	first := true
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if c.isClosing() {
			continue // no answers after the end began; wait for the close reply
		}
		if c.deaf {
			// Recorded, so tests see the message arrived; not answered, and
			// not counted as activity: the Engine never saw it.
			var req rpcRequest
			_ = json.Unmarshal(data, &req)
			e := c.event("ws")
			e.Method, e.Tag, e.Variant = req.Method, req.tag(), "drop-pings"
			s.record(e)
			continue
		}
		if first {
			first = false
			if sess == nil || !s.st.touch(sess.id) {
				if sess == nil && c.pr.deadCookie && c.pr.vp.DeadSocket == DeadSocketClose {
					c.dropUngreeted(data)
					continue
				}
				c.rejectUnauthenticated(data)
				continue
			}
			if c.pr.vp.SessionCap == SessionCapSocket && s.st.refuseOverCap(sess.id) {
				c.refuseOverCap(data)
				continue
			}
			c.connected()
		} else if !s.st.touch(sess.id) {
			// Only client messages reset the idle timer, not pings: which
			// traffic counts is undocumented (open question 5), this is
			// the stricter choice. A false touch means the session has
			// ended and terminate is closing this socket.
			continue
		}
		if resp := c.handle(data); resp != nil {
			c.send(resp)
		}
	}
}

// rejectUnauthenticated answers the first message of a socket without a
// live session: OnAuthenticationInformation with mustAuthenticate:true and
// no answer to the message. Whether QPS then closes the socket is
// undocumented (open question 6); closing with 1008 is the stricter choice.
func (c *engineConn) rejectUnauthenticated(data []byte) {
	var req rpcRequest
	_ = json.Unmarshal(data, &req) // only for the event; the message is not answered
	e := Event{Kind: "ws", Prefix: c.pr.vp.Prefix, Method: req.Method, Path: c.r.URL.Path, Tag: req.tag()}
	if c.pr.deadCookie {
		e.Variant = "dead-socket=" + DeadSocketMustAuthenticate
	}
	c.s.record(e)
	notice := mustMarshal(rpcNotification{
		JSONRPC: "2.0", Method: "OnAuthenticationInformation",
		Params: authRequiredParams{LoginURI: c.loginURI(), MustAuthenticate: true},
	})
	c.closeWith(closing{notice: notice, code: closeAuthRequired, reason: "Authentication required"})
}

// dropUngreeted ends a socket with a dead session cookie at its first
// message under DeadSocketClose: the connection is dropped with neither a
// greeting nor a close frame, as a socket looks that Qlik closed before
// any greeting (a restart mid-handshake, live report [M1]). The client
// sees EOF (close 1006).
func (c *engineConn) dropUngreeted(data []byte) {
	var req rpcRequest
	_ = json.Unmarshal(data, &req) // only for the event; the message is not answered
	e := c.event("ws")
	e.Method, e.Tag, e.Variant = req.Method, req.tag(), "dead-socket="+DeadSocketClose
	c.s.record(e)
	c.closeWith(closing{abrupt: true})
}

// refuseOverCap answers the first message of a socket whose session is
// beyond the user's parallel-session cap (SessionCapSocket): the fatal
// notification OnMaxParallelSessionsExceeded [M1][G7], no answer to the
// message, and a close. Its message text and the close code are not
// documented; the simulator sends the text users see at the cap [C3] and
// 1000, as after the other fatal notifications.
func (c *engineConn) refuseOverCap(data []byte) {
	var req rpcRequest
	_ = json.Unmarshal(data, &req) // only for the event
	e := c.event("ws")
	e.Method, e.Tag, e.Variant = req.Method, req.tag(), "session-cap="+SessionCapSocket
	c.s.record(e)
	c.terminate(topicMaxParallelSessions, errTooManySessions.Error())
}

// loginURI is where an unauthenticated socket is told to log in. Its host
// comes from the Origin header when there is one [I1].
func (c *engineConn) loginURI() string {
	r, s := c.r, c.s
	host := r.Host
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			host = u.Host
		}
	}
	base := s.scheme() + "://" + host + "/"
	if c.pr.vp.Prefix != "" {
		base += c.pr.vp.Prefix + "/"
	}
	return base + "internal_forms_authentication/?targetUri=" + url.QueryEscape(c.socketURL())
}

// socketURL is the socket's own URL without ticket parameters.
func (c *engineConn) socketURL() string {
	scheme := "wss"
	if c.s.scheme() == "http" {
		scheme = "ws"
	}
	u := *c.r.URL
	if q := u.Query(); q.Has("qlikTicket") || q.Has("QlikTicket") {
		q.Del("qlikTicket")
		q.Del("QlikTicket")
		u.RawQuery = q.Encode()
	}
	return scheme + "://" + c.r.Host + u.RequestURI()
}

// connected registers the Engine session and sends the authenticated
// greeting: OnAuthenticationInformation, then OnConnected.
func (c *engineConn) connected() {
	sess := c.pr.sess
	k := engineKey{user: c.s.st.key(sess.user), app: c.app, identity: c.identity}
	state := "SESSION_CREATED"
	if c.s.engine.open(k) {
		state = "SESSION_ATTACHED"
	}
	c.engineKey = &k
	c.send(mustMarshal(rpcNotification{
		JSONRPC: "2.0", Method: "OnAuthenticationInformation",
		Params: authInfoParams{
			UserID: sess.user.ID, UserDirectory: sess.user.Directory,
			LogoutURI: c.s.vpBase(c.r, c.pr.vp) + "/qps/user", MustAuthenticate: false,
		},
	}))
	c.send(mustMarshal(rpcNotification{
		JSONRPC: "2.0", Method: "OnConnected",
		Params: connectedParams{SessionState: state},
	}))
}

// JSON-RPC wire types. Struct order fixes member order.
type (
	rpcRequest struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Handle *int            `json:"handle"`
		Params json.RawMessage `json:"params"`
		Tag    json.RawMessage `json:"tag"`
		// delta is ignored: answers are always plain results.
	}
	rpcResponse struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result,omitempty"`
		Error   *rpcError       `json:"error,omitempty"`
		Change  []int           `json:"change,omitempty"`
	}
	rpcError struct {
		Code      int    `json:"code"`
		Parameter string `json:"parameter"`
		Message   string `json:"message"`
	}
	rpcNotification struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params"`
	}
	authRequiredParams struct {
		LoginURI         string `json:"loginUri"`
		MustAuthenticate bool   `json:"mustAuthenticate"`
	}
	authInfoParams struct {
		UserID           string `json:"userId"`
		UserDirectory    string `json:"userDirectory"`
		LogoutURI        string `json:"logoutUri"`
		MustAuthenticate bool   `json:"mustAuthenticate"`
	}
	connectedParams struct {
		SessionState string `json:"qSessionState"`
	}
	fatalParams struct {
		Severity  string `json:"severity"`
		Timestamp string `json:"timestamp"`
		Message   string `json:"message"`
	}
)

// tag returns the request's "tag" member when it is a string.
func (q *rpcRequest) tag() string {
	var t string
	if len(q.Tag) > 0 && json.Unmarshal(q.Tag, &t) == nil {
		return t
	}
	return ""
}

// handle answers one client message; nil means no answer (a request
// without an id is a JSON-RPC notification).
func (c *engineConn) handle(data []byte) []byte {
	var req rpcRequest
	if err := json.Unmarshal(data, &req); err != nil {
		c.record(&req)
		code, msg := locerrRPCParseError, "Parse error"
		if json.Valid(data) {
			code, msg = locerrRPCInvalidRequest, "Invalid Request"
		}
		return mustMarshal(rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: &rpcError{Code: code, Message: msg}})
	}
	c.record(&req)
	result, change, rerr := c.call(&req)
	if req.ID == nil {
		return nil
	}
	resp := rpcResponse{JSONRPC: "2.0", ID: req.ID}
	if rerr != nil {
		resp.Error = rerr
	} else {
		resp.Result, resp.Change = result, change
	}
	return mustMarshal(resp)
}

func (c *engineConn) record(req *rpcRequest) {
	e := c.event("ws")
	e.Method, e.Tag = req.Method, req.tag()
	c.s.record(e)
}

// call runs one request and returns its result, the changed handles and
// an error.
func (c *engineConn) call(req *rpcRequest) (any, []int, *rpcError) {
	if req.Handle == nil {
		return nil, nil, errInvalidHandle()
	}
	p, err := parseParams(req.Params)
	if err != nil {
		return nil, nil, err
	}
	switch *req.Handle {
	case globalHandle:
		return c.callGlobal(req.Method, p)
	case docHandle:
		if c.doc != nil {
			res, err := c.callDoc(req.Method, p)
			return res, nil, err
		}
	default:
		if o := c.objects[*req.Handle]; o != nil {
			res, err := c.callObject(o, req.Method, p)
			return res, nil, err
		}
	}
	return nil, nil, errInvalidHandle()
}

// errInvalidHandle answers a request on a handle this socket does not
// hold. The real Engine's answer for this case is not documented.
func errInvalidHandle() *rpcError {
	return &rpcError{Code: locerrRPCInvalidParams, Parameter: "Invalid handle", Message: "Invalid method parameter(s)"}
}

func errMethodNotFound(method string) *rpcError {
	return &rpcError{Code: locerrRPCMethodNotFound, Parameter: method, Message: "Method not found"}
}

func errInvalidParams(name string) *rpcError {
	return &rpcError{Code: locerrRPCInvalidParams, Parameter: name, Message: "Invalid method parameter(s)"}
}

type docReturn struct {
	Type      string `json:"qType"`
	Handle    int    `json:"qHandle"`
	GenericID string `json:"qGenericId"`
}

func (d *engineDoc) qReturn() map[string]docReturn {
	return map[string]docReturn{"qReturn": {Type: "Doc", Handle: docHandle, GenericID: d.app.ID}}
}

func (c *engineConn) callGlobal(method string, p rpcParams) (any, []int, *rpcError) {
	s, sess := c.s, c.pr.sess
	switch method {
	case "EngineVersion":
		return map[string]map[string]string{"qVersion": {"qComponentVersion": engineVersion}}, nil, nil
	case "ProductVersion":
		return map[string]string{"qReturn": engineVersion}, nil, nil
	case "GetAuthenticatedUser":
		return map[string]string{"qReturn": "UserDirectory=" + sess.user.Directory + "; UserId=" + sess.user.ID}, nil, nil
	case "GetDocList":
		apps := s.visibleApps(sess.user, sess.attrs)
		list := make([]docListEntry, 0, len(apps))
		for _, a := range apps {
			list = append(list, s.docListEntry(sess.user, a))
		}
		return map[string][]docListEntry{"qDocList": list}, nil, nil
	case "OpenDoc":
		var name string
		var noData bool
		if err := p.get(0, "qDocName", &name); err != nil {
			return nil, nil, err
		}
		// qUserName, qPassword and qSerial (1-3) do not apply to a server.
		if err := p.get(4, "qNoData", &noData); err != nil {
			return nil, nil, err
		}
		if c.doc != nil {
			return nil, nil, &rpcError{Code: locerrAppAlreadyOpen, Parameter: name, Message: "App already open"}
		}
		a, ok := s.app(name)
		if !ok {
			return nil, nil, &rpcError{Code: locerrAppNotFound, Parameter: name, Message: "App not found"}
		}
		if !s.canSee(sess.user, sess.attrs, a) {
			return nil, nil, &rpcError{Code: locerrGenericAccessDenied, Parameter: name, Message: "Access denied"}
		}
		c.doc = &engineDoc{app: a, noData: noData}
		return c.doc.qReturn(), []int{docHandle}, nil
	case "GetActiveDoc":
		if c.doc == nil {
			// The Engine's answer here is not documented. The simulator
			// answers LOCERR_APP_INVALID with "No active document";
			// LOCERR_APP_NOT_OPEN (1017) exists in newer schemas but is not
			// known to be used for this.
			return nil, nil, &rpcError{Code: locerrAppInvalid, Parameter: "No active document", Message: "App invalid"}
		}
		return c.doc.qReturn(), nil, nil
	}
	return nil, nil, errMethodNotFound(method)
}

func (c *engineConn) callDoc(method string, p rpcParams) (any, *rpcError) {
	s, d := c.s, c.doc
	switch method {
	case "GetAppLayout":
		return map[string]appLayout{"qLayout": s.appLayout(c.pr.sess.user, d)}, nil
	case "GetScript":
		script := s.appScript(d.app)
		if d.script != nil {
			script = *d.script
		}
		return map[string]string{"qScript": script}, nil
	case "SetScript":
		var script string
		if err := p.get(0, "qScript", &script); err != nil {
			return nil, err
		}
		d.script = &script
		return struct{}{}, nil
	case "CreateSessionObject":
		return c.createSessionObject(p)
	case "GetObject":
		return c.getObject(p)
	}
	return nil, errMethodNotFound(method)
}

// rpcParams are a request's params, positional (enigma.js) or named.
type rpcParams struct {
	pos   []json.RawMessage
	named map[string]json.RawMessage
}

func parseParams(raw json.RawMessage) (rpcParams, *rpcError) {
	var p rpcParams
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	var err error
	switch raw[0] {
	case '[':
		err = json.Unmarshal(raw, &p.pos)
	case '{':
		err = json.Unmarshal(raw, &p.named)
	default:
		return p, errInvalidParams("params")
	}
	if err != nil {
		return p, errInvalidParams("params")
	}
	return p, nil
}

// get decodes parameter i (named name) into dst; an absent or null
// parameter leaves dst unchanged.
func (p rpcParams) get(i int, name string, dst any) *rpcError {
	var raw json.RawMessage
	if p.named != nil {
		raw = p.named[name]
	} else if i < len(p.pos) {
		raw = p.pos[i]
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errInvalidParams(name)
	}
	return nil
}

// App metadata matches the QRS answers (qrs.go seed dates and file size);
// QSEoW writes "1753-01-01T00:00:00.000Z" for "never".
const (
	qlikNeverTime = "1753-01-01T00:00:00.000Z"
	seedFileSize  = 1048576
)

// oleDate converts a Qlik timestamp to an OLE automation date (days since
// 1899-12-30), the unit of qFileTime.
func oleDate(ts string) float64 {
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return 0
	}
	return t.Sub(time.Date(1899, 12, 30, 0, 0, 0, 0, time.UTC)).Hours() / 24
}

type (
	qStream struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	qMeta struct {
		CreatedDate              string   `json:"createdDate"`
		ModifiedDate             string   `json:"modifiedDate"`
		Published                bool     `json:"published"`
		PublishTime              string   `json:"publishTime"`
		Privileges               []string `json:"privileges"`
		Description              string   `json:"description"`
		FileSize                 int64    `json:"qFileSize"`
		DynamicColor             string   `json:"dynamicColor"`
		Create                   any      `json:"create"`
		Stream                   *qStream `json:"stream,omitempty"`
		CanCreateDataConnections bool     `json:"canCreateDataConnections"`
	}
	qThumbnail struct {
		URL string `json:"qUrl"`
	}
	docListEntry struct {
		DocName        string     `json:"qDocName"`
		ConnectedUsers int        `json:"qConnectedUsers"`
		FileTime       float64    `json:"qFileTime"`
		FileSize       int64      `json:"qFileSize"`
		DocID          string     `json:"qDocId"`
		Meta           qMeta      `json:"qMeta"`
		LastReloadTime string     `json:"qLastReloadTime"`
		Title          string     `json:"qTitle"`
		Thumbnail      qThumbnail `json:"qThumbnail"`
	}
	appLayout struct {
		Title               string      `json:"qTitle"`
		FileName            string      `json:"qFileName"`
		LastReloadTime      string      `json:"qLastReloadTime"`
		Modified            bool        `json:"qModified"`
		HasScript           bool        `json:"qHasScript"`
		StateNames          []string    `json:"qStateNames"`
		Meta                qMeta       `json:"qMeta"`
		LocaleInfo          qLocaleInfo `json:"qLocaleInfo"`
		HasData             bool        `json:"qHasData"`
		ReadOnly            bool        `json:"qReadOnly"`
		IsOpenedWithoutData bool        `json:"qIsOpenedWithoutData"`
		Thumbnail           qThumbnail  `json:"qThumbnail"`
	}
	qCalendarStrings struct {
		DayNames       []string `json:"qDayNames"`
		MonthNames     []string `json:"qMonthNames"`
		LongDayNames   []string `json:"qLongDayNames"`
		LongMonthNames []string `json:"qLongMonthNames"`
	}
	qLocaleInfo struct {
		DecimalSep            string           `json:"qDecimalSep"`
		ThousandSep           string           `json:"qThousandSep"`
		ListSep               string           `json:"qListSep"`
		MoneyDecimalSep       string           `json:"qMoneyDecimalSep"`
		MoneyThousandSep      string           `json:"qMoneyThousandSep"`
		CurrentYear           int              `json:"qCurrentYear"`
		MoneyFmt              string           `json:"qMoneyFmt"`
		TimeFmt               string           `json:"qTimeFmt"`
		DateFmt               string           `json:"qDateFmt"`
		TimestampFmt          string           `json:"qTimestampFmt"`
		CalendarStrings       qCalendarStrings `json:"qCalendarStrings"`
		FirstWeekDay          int              `json:"qFirstWeekDay"`
		BrokenWeeks           bool             `json:"qBrokenWeeks"`
		ReferenceDay          int              `json:"qReferenceDay"`
		FirstMonthOfYear      int              `json:"qFirstMonthOfYear"`
		CollationLocale       string           `json:"qCollationLocale"`
		NumericalAbbreviation string           `json:"qNumericalAbbreviation"`
	}
)

// appMeta is the qMeta of a for user u: owners get the owner privileges.
func (s *Sim) appMeta(u Identity, a App) qMeta {
	privs := []string{"read", "exportappdata", "offlineaccess"}
	if d, id, ok := splitUser(a.Owner); ok && s.st.rule.key(d, id) == s.st.key(u) {
		privs = []string{"read", "update", "delete", "exportappdata", "publish", "duplicate", "offlineaccess", "change_owner"}
	}
	m := qMeta{
		CreatedDate:  seedCreated,
		ModifiedDate: seedModified,
		PublishTime:  qlikNeverTime,
		Privileges:   privs,
		FileSize:     seedFileSize,
	}
	if a.Stream != "" {
		m.Published = true
		m.PublishTime = seedModified
		m.Stream = &qStream{ID: streamID(a.Stream), Name: a.Stream}
	}
	return m
}

func (s *Sim) docListEntry(u Identity, a App) docListEntry {
	return docListEntry{
		DocName:        a.Name,
		FileTime:       oleDate(seedModified),
		FileSize:       seedFileSize,
		DocID:          a.ID,
		Meta:           s.appMeta(u, a),
		LastReloadTime: seedReloaded,
		Title:          a.Name,
	}
}

func (s *Sim) appLayout(u Identity, d *engineDoc) appLayout {
	return appLayout{
		Title:               d.app.Name,
		FileName:            d.app.ID,
		LastReloadTime:      seedReloaded,
		HasScript:           true,
		StateNames:          []string{},
		Meta:                s.appMeta(u, d.app),
		LocaleInfo:          s.localeInfo(),
		HasData:             true,
		IsOpenedWithoutData: d.noData,
	}
}

// localeInfo is an en-US locale as a freshly created app has it.
func (s *Sim) localeInfo() qLocaleInfo {
	return qLocaleInfo{
		DecimalSep: ".", ThousandSep: ",", ListSep: ",", MoneyDecimalSep: ".", MoneyThousandSep: ",",
		CurrentYear:  s.clock.Now().Year(),
		MoneyFmt:     "$#,##0.00;-$#,##0.00",
		TimeFmt:      "h:mm:ss TT",
		DateFmt:      "M/D/YYYY",
		TimestampFmt: "M/D/YYYY h:mm:ss[.fff] TT",
		CalendarStrings: qCalendarStrings{
			DayNames:       []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"},
			MonthNames:     []string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
			LongDayNames:   []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"},
			LongMonthNames: []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
		},
		FirstWeekDay:          6,
		FirstMonthOfYear:      1,
		CollationLocale:       "en-US",
		NumericalAbbreviation: "3:k;6:M;9:G;12:T;15:P;18:E;21:Z;24:Y;-3:m;-6:μ;-9:n;-12:p;-15:f;-18:a;-21:z;-24:y",
	}
}

// appScript returns a's deterministic load script, exactly
// Config.ScriptSize bytes long when that is set. Scripts are generated once.
func (s *Sim) appScript(a App) string {
	e := s.engine
	e.scriptMu.Lock()
	defer e.scriptMu.Unlock()
	if sc, ok := e.scripts[a.ID]; ok {
		return sc
	}
	sc := generateScript(a, s.cfg.ScriptSize)
	e.scripts[a.ID] = sc
	return sc
}

func generateScript(a App, size int) string {
	var b strings.Builder
	b.WriteString("///$tab Main\r\n" +
		"SET ThousandSep=',';\r\nSET DecimalSep='.';\r\nSET MoneyThousandSep=',';\r\nSET MoneyDecimalSep='.';\r\n" +
		"SET MoneyFormat='$#,##0.00;-$#,##0.00';\r\nSET TimeFormat='h:mm:ss TT';\r\nSET DateFormat='M/D/YYYY';\r\n" +
		"SET TimestampFormat='M/D/YYYY h:mm:ss[.fff] TT';\r\nSET FirstWeekDay=6;\r\nSET BrokenWeeks=0;\r\n" +
		"SET ReferenceDay=0;\r\nSET FirstMonthOfYear=1;\r\nSET CollationLocale='en-US';\r\n\r\n" +
		"///$tab Data\r\n// " + a.Name + " (" + a.ID + ")\r\n" +
		"Data:\r\nLOAD * INLINE [\r\nRegion, Amount\r\n")
	for _, r := range exportRows {
		b.WriteString(r[0] + ", " + r[1] + "\r\n")
	}
	b.WriteString("];\r\n")
	if size <= 0 {
		return b.String()
	}
	if b.Len() >= size {
		return b.String()[:size]
	}
	b.Grow(size - b.Len())
	const filler = " ................................................................\r\n"
	for i := 0; b.Len() < size; i++ {
		line := "// padding " + itoa6(i) + filler
		if rest := size - b.Len(); len(line) > rest {
			line = line[:rest]
		}
		b.WriteString(line)
	}
	return b.String()
}

func itoa6(n int) string {
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return string(d[:])
}

// mustMarshal encodes v without HTML escaping (the Engine sends "<" and
// "&" as they are). v is always one of this file's wire types, which
// always encode; should one not, the client gets an internal error.
func mustMarshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"parameter":"","message":"Internal error"}}`)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
