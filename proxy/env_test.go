package proxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// env is sensegate in front of a simulator: the end-to-end setup of
// most tests. The front server is plain HTTP on loopback; users are named
// with the X-Forwarded-User header (loopback is a trusted proxy). Its
// replica fields are the first replica's.
type env struct {
	*replica
	sim      *qliksim.Sim   // the first Qlik node
	sims     []*qliksim.Sim // every Qlik node (envConfig.nodes)
	replicas []*replica     // every replica (envConfig.jars)
}

// replica is one sensegate process: its own ticket clients, broker,
// transport to Qlik, handler and front server.
type replica struct {
	h       *Handler
	front   *httptest.Server
	broker  *session.Broker
	tickets *ticket.Client // for the first node
	qlikTr  *http.Transport
}

// envOption changes the simulators' seed and sensegate's options.
type envOption func(*qliksim.Config, *Options)

// newEnv is newEnvWith the zero envConfig.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	return newEnvWith(t, envConfig{}, opts...)
}

// envConfig is what newEnvWith sets beyond the options; the zero value is
// newEnv's setup: one simulator, one replica on a memory jar, the default
// ticket client, debug logs to the test.
type envConfig struct {
	// clock is the simulators' clock (nil: the real one).
	clock qliksim.Clock
	// nodes is the number of Qlik nodes, simulators sharing one
	// certificate export, over which ticket.Nodes spreads the logins
	// (0 or 1: one node, no ticket.Nodes).
	nodes int
	// jars are the session stores of the replicas, one each, every
	// replica with its own ticket clients, broker and handler (nil: one
	// replica on a memory store). Replicas share sessions the way
	// sensegate's do: through one Redis, each with a store of its own.
	jars []session.Store
	// tickets is the ticket clients' configuration, less what the builder
	// sets: the simulator's URLs, the options' prefix and cookie name, and,
	// when unset, RootCAs (which the transport to Qlik trusts too) and
	// ClientCert from the simulator's export, and Retries (0 here:
	// ticket.DefaultRetries, serve's default; no test needs none).
	tickets ticket.Config
	// broker is the brokers' options (a nil Logger: log's "session").
	broker session.BrokerOptions
	// login, if not nil, wraps what the brokers log users in with.
	login func(session.Loginer) session.Loginer
	// log is what sensegate logs to (nil: the test, at debug level).
	log *zap.Logger
}

// newEnvWith starts sensegate in front of the simulator as ec and opts
// say, and stops both when the test ends. The options start as
// CookieName qliksim.DefaultCookieName, WebsocketCSRF CSRFOff and
// ReplayLimit DefaultReplayLimit; Identity, if opts leave it nil, is the
// X-Forwarded-User header from loopback, in directory ACME. Qlik,
// Sessions, CSRF, Nodes, Transport, PublicURL and Logger are the
// builder's.
func newEnvWith(t *testing.T, ec envConfig, opts ...envOption) *env {
	t.Helper()
	o := Options{CookieName: qliksim.DefaultCookieName, WebsocketCSRF: CSRFOff, ReplayLimit: DefaultReplayLimit}
	e := &env{}
	certDir := t.TempDir()
	for i := range max(ec.nodes, 1) {
		e.sims = append(e.sims, qliksimtest.Start(t, func(cfg *qliksim.Config) {
			oi := &o
			if i > 0 {
				oi = &Options{} // the options are set once
			}
			for _, f := range opts {
				f(cfg, oi)
			}
			if ec.nodes > 1 {
				cfg.CertDir = certDir
			}
		}, qliksim.Options{Clock: ec.clock}))
	}
	e.sim = e.sims[0]
	log := ec.log
	if log == nil {
		log = zaptest.NewLogger(t)
	}
	if ec.tickets.RootCAs == nil {
		pool, err := e.sim.Certs().RootPool()
		if err != nil {
			t.Fatal(err)
		}
		ec.tickets.RootCAs = pool
	}
	if ec.tickets.ClientCert.Certificate == nil {
		cert, err := ticket.LoadClientCert(e.sim.Certs().Client, e.sim.Certs().ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		ec.tickets.ClientCert = cert
	}
	ec.tickets.Prefix, ec.tickets.SessionCookie = o.Prefix, o.CookieName
	if ec.tickets.Retries == 0 {
		ec.tickets.Retries = ticket.DefaultRetries // as serve's default
	}
	if o.Identity == nil {
		o.Identity = identity.NewHeader(identity.HeaderOptions{Name: "X-Forwarded-User", Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, DefaultDirectory: "ACME"})
	}
	o.Qlik, _ = url.Parse(e.sim.ProxyURL())
	jars := ec.jars
	if jars == nil {
		jars = []session.Store{session.NewMemory(30*time.Minute, nil)}
	}
	for i, jar := range jars {
		rlog := log
		if len(jars) > 1 {
			rlog = log.Named(fmt.Sprint("replica", i))
		}
		e.replicas = append(e.replicas, startReplica(t, e.sims, o, ec, jar, rlog))
	}
	e.replica = e.replicas[0]
	return e
}

// startReplica starts a sensegate with options o in front of sims, set
// up as ec says (its ticket configuration complete but for the URLs),
// with its sessions in jar.
func startReplica(t *testing.T, sims []*qliksim.Sim, o Options, ec envConfig, jar session.Store, log *zap.Logger) *replica {
	t.Helper()
	r := &replica{}
	var nodes []ticket.Node
	for _, sim := range sims {
		cfg := ec.tickets
		cfg.ProxyURL, _ = url.Parse(sim.ProxyURL())
		cfg.QPSURL, _ = url.Parse(sim.QPSURL())
		tc, err := ticket.New(cfg, log.Named("ticket"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tc.CloseIdleConnections)
		nodes = append(nodes, ticket.Node{ID: cfg.ProxyURL.Host, Client: tc})
	}
	r.tickets = nodes[0].Client
	var qps interface {
		session.Loginer
		CSRFTokener
	} = r.tickets
	if len(nodes) > 1 {
		tn, err := ticket.NewNodes(nodes, ticket.NodesOptions{Logger: log.Named("nodes")})
		if err != nil {
			t.Fatal(err)
		}
		qps, o.Nodes = tn, tn
	}
	if o.WebsocketCSRF != CSRFOff {
		o.CSRF = qps
	}
	var login session.Loginer = qps
	if ec.login != nil {
		login = ec.login(login)
	}
	bo := ec.broker
	if bo.Logger == nil {
		bo.Logger = log.Named("session")
	}
	r.broker = session.NewBroker(jar, login, bo)
	o.Sessions = r.broker
	r.qlikTr = NewTransport(&tls.Config{RootCAs: ec.tickets.RootCAs}, 30*time.Second)
	o.Transport = r.qlikTr
	o.Logger = log
	r.front = httptest.NewUnstartedServer(nil)
	o.PublicURL, _ = url.Parse("http://" + r.front.Listener.Addr().String())
	var err error
	r.h, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	r.front.Config.Handler = r.h
	r.front.Start()
	t.Cleanup(r.front.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.h.Shutdown(ctx)
	})
	t.Cleanup(r.qlikTr.CloseIdleConnections)
	return r
}

// do sends a request as user (no identity header when user is "") and
// returns the response with its body read.
func (e *env) do(t *testing.T, method, path, user string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.front.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-Forwarded-User", user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const xrf = "abcdefghijklmnop"

// qrs calls a QRS path through sensegate as user and decodes the JSON.
func (e *env) qrs(t *testing.T, path, user string, v any) *http.Response {
	t.Helper()
	resp, body := e.do(t, "GET", path+"?xrfkey="+xrf, user, "X-Qlik-Xrfkey", xrf)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v in %q", path, err, body)
		}
	}
	return resp
}

// dialEngine opens an Engine websocket through sensegate as user.
func (e *env) dialEngine(t *testing.T, path, user string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	if hdr == nil {
		hdr = http.Header{}
	}
	if user != "" {
		hdr.Set("X-Forwarded-User", user)
	}
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(e.front.URL, "http")+path, hdr)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// rpc is an Engine JSON-RPC message as the tests read it.
type rpc struct {
	ID     int             `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends a request and returns its answer, skipping notifications
// (returned separately).
func call(t *testing.T, c *websocket.Conn, id int, method string, handle int, tag string, params ...any) (rpc, []rpc) {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	req := map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "handle": handle, "params": params}
	if tag != "" {
		req["tag"] = tag
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteJSON(req); err != nil {
		t.Fatalf("%s: write: %v", method, err)
	}
	var notes []rpc
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		var m rpc
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("%s: read: %v (notifications so far %v)", method, err, notes)
		}
		if m.Method != "" && m.ID == 0 {
			notes = append(notes, m)
			continue
		}
		if m.ID != id {
			t.Fatalf("%s: answer id %d, want %d", method, m.ID, id)
		}
		return m, notes
	}
}
