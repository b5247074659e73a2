// Package gateway assembles sensegate from a validated configuration: the
// QPS clients of the Qlik nodes, the session broker over the jar, the
// identity provider and the proxy handler in front of them. New is the one
// way to build one; serve, the demo and check --connect all go through
// this package, so what they run is what was tested.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/proxy"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"go.uber.org/zap"
)

// Deps are what a caller of New may give instead of what New would make
// from the configuration. The zero Deps builds everything from it.
type Deps struct {
	// Logger receives the gateway's logs, named per component (nil
	// discards them).
	Logger *zap.Logger
	// Now is the clock of the jar, the store of logins, the broker, the
	// Qlik nodes' health and the identity provider (nil: time.Now).
	Now func() time.Time
	// Observability receives metrics, audit and access log entries (nil:
	// none are kept). Make it once per process: its metrics are
	// registered once.
	Observability *Observability
	// Jar holds users' Qlik sessions (nil: made from cfg.Store by NewJar,
	// and closed by Close). A server that reloads gives one, so that the
	// sessions outlive the gateway.
	Jar session.Store
	// Logins is the store of logins of the identity provider (OIDC
	// sign-ins, the SPA token exchange's), nil: made from cfg by NewLogins
	// when the provider keeps logins (config.IdentityConfig.KeepsLogins)
	// and Provider is nil, and closed by Close.
	Logins identity.SessionStore
	// CookieKeys seal the login cookies and stored logins when the
	// configuration sets none (identity.cookie_secrets): nil makes a
	// random key, logged as a warning. A server that reloads makes one
	// key at start and gives it, so that a reload keeps the logins.
	CookieKeys [][]byte
	// Provider identifies users (nil: built from cfg.Identity). The demo
	// gives its development login.
	Provider identity.Provider
}

// qpsClient is what the gateway keeps of its QPS clients: *ticket.Client
// for one Qlik node, *ticket.Nodes for several.
type qpsClient interface {
	Ping(ctx context.Context) error
	CloseIdleConnections()
}

// Gateway is sensegate assembled: an http.Handler for the public
// listener, and what it owns. It is safe for concurrent use.
type Gateway struct {
	handler *proxy.Handler
	tickets qpsClient
	qps     []QPSNode
	nodes   []ticket.Node
	broker  *session.Broker
	owned   []func() error // what New made and Close closes: the jar, the store of logins

	closeOnce sync.Once
	closeErr  error
	closed    chan struct{} // closed by Close
}

// New builds the gateway cfg describes, which must have passed
// config.Validate (config.Load does it). ctx bounds what New waits for:
// the identity provider's start (OIDC discovery, JWKS) and the connection
// to Redis. Call Close when the gateway is no longer served.
func New(ctx context.Context, cfg *config.Config, deps Deps) (g *Gateway, err error) {
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	var owned []func() error
	defer func() {
		if err != nil {
			for _, c := range owned {
				c()
			}
		}
	}()
	jar := deps.Jar
	if jar == nil {
		var closeJar func() error
		if jar, closeJar, err = NewJar(ctx, cfg, log, deps.Now); err != nil {
			return nil, err
		}
		owned = append(owned, closeJar)
	}
	provider := deps.Provider
	if provider == nil {
		logins := deps.Logins
		if logins == nil && cfg.Identity.KeepsLogins() {
			var closeLogins func() error
			if logins, closeLogins, err = NewLogins(ctx, cfg, deps.Now); err != nil {
				return nil, err
			}
			owned = append(owned, closeLogins)
		}
		if provider, err = newProvider(ctx, cfg, log, logins, deps); err != nil {
			return nil, err
		}
	}
	g, err = newGateway(cfg, provider, jar, log, deps)
	if err != nil {
		return nil, err
	}
	g.owned = owned
	return g, nil
}

// newGateway wires the QPS clients, the broker over jar and the proxy
// handler with provider.
func newGateway(cfg *config.Config, provider identity.Provider, jar session.Store, log *zap.Logger, deps Deps) (*Gateway, error) {
	q := cfg.Qlik
	qn, err := newQPSClients(q, log.Named("ticket"))
	if err != nil {
		return nil, err
	}
	var clients []ticket.Node
	for _, n := range qn {
		clients = append(clients, ticket.Node{ID: n.URLs.Proxy.Host, Client: n.Client})
	}
	if len(clients) == 0 {
		return nil, errors.New("qlik: no node configured (validate the configuration first)")
	}
	// One node is the plain client, as before qlik.nodes; several are
	// ticket.Nodes, which pick each login's node and route by it.
	var (
		tickets qpsClient         = clients[0].Client
		loginer session.Loginer   = clients[0].Client
		csrf    proxy.CSRFTokener = clients[0].Client
		nodes   proxy.Nodes
	)
	if len(q.Nodes) > 0 {
		tn, err := ticket.NewNodes(clients, ticket.NodesOptions{Now: deps.Now, Logger: log.Named("nodes")})
		if err != nil {
			return nil, fmt.Errorf("qlik.nodes: %w", err)
		}
		tickets, loginer, csrf, nodes = tn, tn, tn, tn
	}
	obs := deps.Observability
	broker := session.NewBroker(jar, loginer, obs.brokerOptions(session.BrokerOptions{
		Now:       deps.Now,
		Logger:    log.Named("session"),
		LoginRate: session.LoginRate{PerMinute: q.LoginRate.PerMinute, Burst: q.LoginRate.Burst},
	}))
	var routes []proxy.Route
	for _, r := range cfg.Routes {
		routes = append(routes, proxy.Route{Path: r.Path, Upstream: r.UpstreamURL(), StripPrefix: r.StripPrefix})
	}
	h, err := proxy.New(obs.proxyOptions(proxy.Options{
		Qlik: q.URL(), Prefix: q.Prefix, CookieName: q.SessionCookie, QlikOrigin: q.WebsocketOrigin(),
		Identity: provider, Sessions: broker, Nodes: nodes,
		WebsocketCSRF: proxy.CSRFMode(q.WebsocketCSRF), CSRF: csrf,
		WebsocketPing: q.WebsocketPing, WebsocketsPerUser: q.WebsocketPerUser,
		ReplayLimit: q.ReplayLimit, AuthModuleURL: q.AuthModuleURL,
		PublicPaths:    cfg.Identity.PublicPaths,
		Paths:          q.Paths(),
		Transport:      proxy.NewTransport(&tls.Config{RootCAs: q.RootCAs()}, q.Timeout),
		Routes:         routes,
		PublicURL:      cfg.Server.PublicURL(),
		AllowedOrigins: cfg.Server.AllowedOrigins(),
		Logger:         log.Named("proxy"),
		AccessLog:      obs.accessLog(cfg.Log),
	}))
	if err != nil {
		return nil, err
	}
	return &Gateway{handler: h, tickets: tickets, qps: qn, nodes: clients, broker: broker, closed: make(chan struct{})}, nil
}

// ServeHTTP implements http.Handler: sensegate's public listener.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// Shutdown closes every websocket the gateway relays with 1001 (going
// away), waiting up to ctx for the closes to be sent (proxy.Handler's
// Shutdown). http.Server's Shutdown does not touch them.
func (g *Gateway) Shutdown(ctx context.Context) error { return g.handler.Shutdown(ctx) }

// Close releases what the gateway holds once it is no longer served: the
// idle connections to Qlik, the routes and QPS, and the jar and the store
// of logins when New made them. Requests still in flight go on, on new
// connections. Close is idempotent; it returns the first call's error.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.tickets.CloseIdleConnections()
		g.handler.CloseIdleConnections()
		var errs []error
		for _, c := range g.owned {
			errs = append(errs, c())
		}
		g.closeErr = errors.Join(errs...)
		close(g.closed)
	})
	return g.closeErr
}

// Ping calls QPS once (every node's, with several) with the client
// certificate: nil when it answers.
func (g *Gateway) Ping(ctx context.Context) error { return g.tickets.Ping(ctx) }

// Nodes returns the QPS client of each Qlik node, named by the node's
// proxy host, for the background checks of QPS. The caller must not
// change the slice.
func (g *Gateway) Nodes() []ticket.Node { return g.nodes }

// QPSNodes returns each Qlik node's URLs and QPS client, in the order of
// the configuration (qlik.nodes, or qlik.url and qlik.qps alone): check
// --connect calls them one by one. The caller must not change the slice.
func (g *Gateway) QPSNodes() []QPSNode { return g.qps }

// PingStore reports whether the jar answers (always nil in memory): the
// readiness of the gateway.
func (g *Gateway) PingStore(ctx context.Context) error { return g.broker.Ping(ctx) }
