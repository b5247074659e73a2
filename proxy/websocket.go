package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"go.uber.org/zap"
)

// closeGrace is how long a relay waits, after one side closed, for the
// other side's close before dropping both connections.
const closeGrace = 5 * time.Second

// relay relays Engine websockets between clients and Qlik, frame by frame,
// and keeps a registry of live pairs for shutdown.
type relay struct {
	h        *Handler
	dialer   websocket.Dialer
	upgrader websocket.Upgrader

	mu      sync.Mutex
	pairs   map[*wsPair]struct{}
	closing bool
	wg      sync.WaitGroup
}

func newRelay(h *Handler) *relay {
	var tlsCfg *tls.Config
	if t, ok := h.opts.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		tlsCfg = t.TLSClientConfig.Clone()
	}
	pool := &sync.Pool{}
	return &relay{
		h: h,
		dialer: websocket.Dialer{
			TLSClientConfig:  tlsCfg,
			HandshakeTimeout: DefaultHandshakeTimeout,
			ReadBufferSize:   16 << 10,
			WriteBufferSize:  16 << 10,
			WriteBufferPool:  pool,
		},
		upgrader: websocket.Upgrader{
			ReadBufferSize:  16 << 10,
			WriteBufferSize: 16 << 10,
			WriteBufferPool: pool,
			// The Origin is checked in serve, before Qlik is dialled.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		pairs: map[*wsPair]struct{}{},
	}
}

// serve relays one Engine websocket: check the Origin, get the user's Qlik
// session, dial Qlik with it, and only then upgrade the client, so a
// refused handshake reaches the client as an HTTP status.
func (rl *relay) serve(w http.ResponseWriter, r *http.Request, u identity.User, path string) {
	h := rl.h
	if !h.originAllowed(r.Header.Get("Origin")) {
		writeError(w, r, h.log, &Error{Status: http.StatusForbidden, Msg: "websocket origin not allowed", Err: errors.New("origin " + r.Header.Get("Origin"))})
		return
	}
	e, err := h.opts.Sessions.Ensure(r.Context(), u)
	if err != nil {
		writeError(w, r, h.log, upstreamError("could not get a Qlik session", err))
		return
	}
	target := &url.URL{}
	setQlikURL(target, h.opts.Qlik, h.prefix, r.URL)
	stripTicketParams(target)
	target.Scheme = "ws"
	if h.opts.Qlik.Scheme == "https" {
		target.Scheme = "wss"
	}
	hdr := http.Header{}
	hdr.Set("Cookie", h.opts.CookieName+"="+e.Cookie)
	hdr.Set("Origin", h.opts.QlikOrigin)
	if ua := r.Header.Get("User-Agent"); ua != "" {
		hdr.Set("User-Agent", ua)
	}
	d := rl.dialer
	d.Subprotocols = websocket.Subprotocols(r)
	up, resp, err := d.DialContext(r.Context(), target.String(), hdr)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			if isLoginRedirect(resp.StatusCode, resp.Header.Get("Location")) {
				_ = h.opts.Sessions.Invalidate(r.Context(), u, e.Cookie)
				writeError(w, r, h.log, &Error{Status: http.StatusServiceUnavailable, Msg: "the Qlik session expired; retry", Err: err, RetryAfter: 1})
				return
			}
			status := resp.StatusCode
			if status < 400 {
				status = http.StatusBadGateway
			}
			writeError(w, r, h.log, &Error{Status: status, Msg: "Qlik refused the websocket", Err: err})
			return
		}
		writeError(w, r, h.log, upstreamError("could not open the Qlik websocket", err))
		return
	}
	respHdr := http.Header{}
	if sp := up.Subprotocol(); sp != "" {
		respHdr.Set("Sec-WebSocket-Protocol", sp)
	}
	client, err := rl.upgrader.Upgrade(w, r, respHdr)
	if err != nil {
		// Upgrade has answered the client.
		up.Close()
		return
	}
	p := &wsPair{rl: rl, client: client, up: up, user: u, reqID: requestID(r.Context())}
	if !rl.register(p) {
		p.closeBoth(websocket.CloseGoingAway, "sensegate is shutting down")
		client.Close()
		up.Close()
		return
	}
	defer rl.unregister(p)
	p.run()
}

// originAllowed reports whether a websocket upgrade's Origin may open a
// socket: none (a non-browser client), sensegate's public origin, or one
// of the allowed origins. This stops cross-site websocket hijacking: a
// foreign page cannot ride on the user's sensegate session.
func (h *Handler) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	o := normalizeOrigin(origin)
	if o == normalizeOrigin(h.opts.PublicURL.Scheme+"://"+h.opts.PublicURL.Host) {
		return true
	}
	for _, a := range h.opts.AllowedOrigins {
		if o == normalizeOrigin(a) {
			return true
		}
	}
	return false
}

// normalizeOrigin lower-cases an origin and drops a default port.
func normalizeOrigin(o string) string {
	u, err := url.Parse(strings.TrimSuffix(o, "/"))
	if err != nil || u.Host == "" {
		return "\x00invalid"
	}
	host := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case u.Scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	return strings.ToLower(u.Scheme) + "://" + host
}

func (rl *relay) register(p *wsPair) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closing {
		return false
	}
	rl.pairs[p] = struct{}{}
	rl.wg.Add(1)
	return true
}

func (rl *relay) unregister(p *wsPair) {
	rl.mu.Lock()
	delete(rl.pairs, p)
	rl.mu.Unlock()
	rl.wg.Done()
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
	go func() { rl.wg.Wait(); close(done) }()
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
	reqID  string
}

func (p *wsPair) run() {
	limit := p.rl.h.opts.WebsocketReadLimit
	p.client.SetReadLimit(limit)
	p.up.SetReadLimit(limit)
	ended := make(chan struct{}, 2)
	go func() { p.pumpQlikToClient(); ended <- struct{}{} }()
	go func() { p.pumpClientToQlik(); ended <- struct{}{} }()
	<-ended
	// One side closed; let the other see its close frame, then drop both.
	t := time.NewTimer(closeGrace)
	select {
	case <-ended:
		t.Stop()
		p.client.Close()
		p.up.Close()
	case <-t.C:
		p.client.Close()
		p.up.Close()
		<-ended
	}
	p.rl.h.log.Debug("websocket closed", zap.String("user", p.user.String()), zap.String("request_id", p.reqID))
}

// pumpQlikToClient and pumpClientToQlik are separate functions so the
// goroutines have telling names in stack dumps.
func (p *wsPair) pumpQlikToClient() { pump(p.client, p.up) }
func (p *wsPair) pumpClientToQlik() { pump(p.up, p.client) }

// pump copies messages from src to dst as streams (no whole-message
// buffering) until src ends, then passes src's ending on to dst.
func pump(dst, src *websocket.Conn) {
	for {
		mt, r, err := src.NextReader()
		if err != nil {
			passClose(dst, err)
			return
		}
		dst.SetWriteDeadline(time.Now().Add(DefaultWriteWait))
		w, err := dst.NextWriter(mt)
		if err != nil {
			src.Close()
			return
		}
		if _, err := io.Copy(w, r); err != nil {
			w.Close()
			if errors.Is(err, websocket.ErrReadLimit) {
				passClose(dst, err)
			} else {
				dst.Close()
			}
			return
		}
		if err := w.Close(); err != nil {
			src.Close()
			return
		}
	}
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
	deadline := time.Now().Add(time.Second)
	msg := websocket.FormatCloseMessage(code, text)
	p.client.WriteControl(websocket.CloseMessage, msg, deadline)
	p.up.WriteControl(websocket.CloseMessage, msg, deadline)
}
