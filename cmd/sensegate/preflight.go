package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/qlik"
	"github.com/sensegate/sensegate/ticket"
)

// preflightEngineTimeout bounds the Engine websocket step: the handshake
// and the wait for the probe's answer.
const preflightEngineTimeout = 15 * time.Second

// preflightClient is what the preflight needs of a node's QPS client
// (*ticket.Client).
type preflightClient interface {
	Ping(ctx context.Context) error
	Ticket(ctx context.Context, u identity.User) (string, error)
	Redeem(ctx context.Context, ticket string) (*http.Cookie, error)
	Login(ctx context.Context, u identity.User) (*http.Cookie, error)
	CSRFToken(ctx context.Context, sessionCookie string) (string, bool, error)
	EndSession(ctx context.Context, id string) (bool, error)
}

var _ preflightClient = (*ticket.Client)(nil)

// preflight logs u in to every Qlik node as serve would, step by step, and
// opens an Engine websocket as that user: ticket, redemption on qlik.url,
// /qps/csrftoken, the websocket to /app/engineData with qlik.origin, and
// the greeting Qlik sends for its first message. It prints each step that
// succeeded to out and ends the session at QPS whatever happened, so that
// it leaves nothing behind. The first failing step is the error, naming
// the fix.
func preflight(ctx context.Context, out io.Writer, cfg *config.Config, u identity.User) error {
	g, err := buildGateway(ctx, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	for _, n := range g.QPSNodes() {
		p := &preflightRun{out: out, q: cfg.Qlik, node: n.URLs, mode: n.Mode, tc: n.Client, user: u}
		if err := p.run(ctx); err != nil {
			return fmt.Errorf("preflight as %s on %s: %w", u, n.URLs.Proxy.Host, err)
		}
	}
	return nil
}

// preflightRun is the preflight on one node.
type preflightRun struct {
	out  io.Writer
	q    config.QlikConfig
	node config.NodeURLs
	mode ticket.Mode
	tc   preflightClient
	user identity.User
}

func (p *preflightRun) step(format string, args ...any) {
	fmt.Fprintf(p.out, "  ok  "+format+"\n", args...)
}

func (p *preflightRun) run(ctx context.Context) (err error) {
	if err := p.tc.Ping(ctx); err != nil {
		if te := (*ticket.Error)(nil); errors.As(err, &te) && te.Status == http.StatusNotFound {
			return fmt.Errorf("qps: %w: set qlik.prefix to the prefix of a virtual proxy of this node (QMC, Virtual proxies; \"\" for the default one)", err)
		}
		return fmt.Errorf("qps: %w", err)
	}
	p.step("qps %s: client certificate accepted, virtual proxy prefix %q known", p.node.QPS, p.q.Prefix)
	var cookie *http.Cookie
	if p.mode == ticket.ModeSession {
		if cookie, err = p.tc.Login(ctx, p.user); err != nil {
			return fmt.Errorf("session: %w", err)
		}
		p.step("session: QPS created a session for %s (qlik.login: session)", p.user)
	} else {
		t, err := p.tc.Ticket(ctx, p.user)
		if err != nil {
			return fmt.Errorf("ticket: %w", err)
		}
		p.step("ticket: QPS issued a ticket for %s", p.user)
		if cookie, err = p.tc.Redeem(ctx, t); err != nil {
			return fmt.Errorf("redeem: %w", err)
		}
		p.step("redeem: %s set the session cookie %q", p.node.Proxy, cookie.Name)
	}
	defer func() {
		// The preflight leaves nothing behind: the session would count
		// toward the user's parallel sessions until it timed out.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.q.QPS.Timeout+5*time.Second)
		defer cancel()
		if _, eerr := p.tc.EndSession(ectx, cookie.Value); eerr != nil {
			err = errors.Join(err, fmt.Errorf("end session: %w (Qlik times it out after its inactivity timeout)", eerr))
			return
		}
		p.step("end session: the preflight's Qlik session was ended at QPS")
	}()
	var token string
	if p.q.WebsocketCSRF != config.CSRFOff {
		tok, supported, err := p.tc.CSRFToken(ctx, cookie.Value)
		switch {
		case err != nil:
			return fmt.Errorf("csrftoken: %w", err)
		case !supported && p.q.WebsocketCSRF == config.CSRFOn:
			return errors.New("csrftoken: qlik.websocket_csrf is on but Qlik answered 404 to /qps/csrftoken (no websocket CSRF protection before November 2024): set qlik.websocket_csrf to auto or off")
		case supported:
			p.step("csrftoken: Qlik protects websockets with a CSRF token (sent with the websocket)")
		default:
			p.step("csrftoken: Qlik has no websocket CSRF protection (404): none needed")
		}
		token = tok
	}
	return p.engine(ctx, cookie.Value, token)
}

// engine opens the Engine websocket /app/engineData with the session and
// checks Qlik's greeting.
func (p *preflightRun) engine(ctx context.Context, cookie, token string) error {
	ctx, cancel := context.WithTimeout(ctx, preflightEngineTimeout)
	defer cancel()
	target := *p.node.Proxy
	target.Path = strings.TrimSuffix(target.Path, "/")
	if p.q.Prefix != "" {
		target.Path += "/" + p.q.Prefix
	}
	target.Path += qlik.EnginePath + "engineData"
	target.Scheme = "wss"
	if p.node.Proxy.Scheme == "http" {
		target.Scheme = "ws"
	}
	if token != "" {
		target.RawQuery = qlik.CSRFTokenParam + "=" + url.QueryEscape(token)
	}
	origin := p.q.WebsocketOrigin()
	hdr := http.Header{}
	hdr.Set("Cookie", p.q.SessionCookie+"="+cookie)
	hdr.Set("Origin", origin)
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: p.q.RootCAs()}, HandshakeTimeout: preflightEngineTimeout}
	where := target.Redacted()
	if token != "" {
		where = strings.TrimSuffix(where, "?"+target.RawQuery)
	}
	conn, resp, err := d.DialContext(ctx, target.String(), hdr)
	if err != nil {
		return p.handshakeError(where, origin, resp, err)
	}
	defer conn.Close()
	p.step("websocket %s: Qlik accepted the upgrade with Origin %s", where, origin)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
		conn.SetWriteDeadline(dl)
	}
	if err := conn.WriteMessage(websocket.TextMessage, qlik.ProbeRequest); err != nil {
		return fmt.Errorf("engine: sending the first message: %w", err)
	}
	var info *qlik.AuthenticationInformation
	for {
		_, m, err := conn.ReadMessage()
		if err != nil {
			if info == nil {
				return fmt.Errorf("engine: Qlik closed the websocket before %s: %w (the session may be unknown to this node, or the proxy dropped it: see the Qlik proxy's log)", qlik.TopicAuthenticationInformation, err)
			}
			return fmt.Errorf("engine: Qlik closed the websocket before answering EngineVersion: %w", err)
		}
		var msg struct {
			ID     *int64          `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(m, &msg); err != nil {
			return fmt.Errorf("engine: Qlik sent a message that is not JSON-RPC: %w", err)
		}
		switch {
		case msg.ID != nil && *msg.ID == qlik.ProbeID:
			if info == nil {
				return fmt.Errorf("engine: Qlik answered without %s: is %s the Qlik proxy, and not the Engine directly?", qlik.TopicAuthenticationInformation, p.node.Proxy)
			}
			p.step("engine: EngineVersion answered; the Engine serves %s", p.user)
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			return nil
		case msg.ID != nil:
		case msg.Method == qlik.TopicAuthenticationInformation:
			info = &qlik.AuthenticationInformation{}
			if err := json.Unmarshal(msg.Params, info); err != nil {
				return fmt.Errorf("engine: %s params: %w", msg.Method, err)
			}
			if info.MustAuthenticate {
				return fmt.Errorf("engine: %s says mustAuthenticate: the websocket carried no session Qlik knows: check qlik.session_cookie against the virtual proxy's session cookie header name, and that qlik.url and qlik.prefix reach the virtual proxy that issued it (the one linked to this proxy)", msg.Method)
			}
			got := identity.User{Directory: info.UserDirectory, ID: info.UserID}
			if !strings.EqualFold(got.String(), p.user.String()) {
				return fmt.Errorf("engine: %s names %s, not %s: the websocket ran on another session than the preflight's", msg.Method, got, p.user)
			}
			p.step("engine: %s as %s", msg.Method, got)
		case msg.Method == qlik.TopicConnected:
			var c struct {
				State string `json:"qSessionState"`
			}
			json.Unmarshal(msg.Params, &c)
			p.step("engine: %s (%s)", msg.Method, c.State)
		case msg.Method == qlik.TopicMaxParallelSessions:
			return fmt.Errorf("engine: %s: %s has %d Qlik sessions already; end some (QMC, or wait for the inactivity timeout) and retry", msg.Method, p.user, qlik.MaxParallelSessions)
		case strings.HasPrefix(msg.Method, "OnLicenseAccessDenied"):
			return fmt.Errorf("engine: %s: %s has no licence: allocate one in the QMC (a professional or analyzer allocation, or a login access rule)", msg.Method, p.user)
		case qlik.IsFatalTopic(msg.Method):
			return fmt.Errorf("engine: Qlik refused the websocket with %s", msg.Method)
		}
	}
}

// handshakeError names a refused Engine websocket handshake and its fix.
func (p *preflightRun) handshakeError(where, origin string, resp *http.Response, err error) error {
	if resp == nil {
		var (
			unknown  x509.UnknownAuthorityError
			hostname x509.HostnameError
			verify   *tls.CertificateVerificationError
		)
		switch {
		case errors.As(err, &hostname):
			return fmt.Errorf("websocket %s: Qlik's certificate does not name the host of qlik.url: use the host name in the certificate: %w", where, err)
		case errors.As(err, &unknown) || errors.As(err, &verify):
			return fmt.Errorf("websocket %s: Qlik's certificate is not trusted: set qlik.ca to the CA that signed it (root.pem of the QMC export): %w", where, err)
		}
		return fmt.Errorf("websocket %s: %w", where, err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, qlik.AuthErrorPeek))
	status := resp.StatusCode
	switch {
	case status == http.StatusForbidden:
		return fmt.Errorf("websocket %s: Qlik refused the upgrade with 403 for Origin %s: add %q to the host allow list of the virtual proxy in the QMC, or set qlik.origin to an origin whose host is on it", where, origin, hostOf(origin))
	case qlik.IsLoginRedirect(status, resp.Header.Get("Location"), p.q.AuthModuleURL) || status == http.StatusUnauthorized || qlik.IsAuthError(status, head):
		return fmt.Errorf("websocket %s: Qlik did not know the session just made (%d): check that qlik.url and qlik.prefix reach the virtual proxy whose QPS issued the ticket", where, status)
	case status == http.StatusNotFound:
		return fmt.Errorf("websocket %s: 404: check qlik.prefix %q and qlik.url (the Qlik proxy, not the hub)", where, p.q.Prefix)
	}
	return fmt.Errorf("websocket %s: Qlik refused the upgrade with %d %s: %w", where, status, http.StatusText(status), err)
}

// hostOf is the host of an origin.
func hostOf(origin string) string {
	if u, err := url.Parse(origin); err == nil {
		return u.Hostname()
	}
	return origin
}
