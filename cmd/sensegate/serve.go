package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sensegate/sensegate/admin"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/proxy"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Server limits (server.write_timeout and server.body_timeout are the
// configurable ones). With them, every phase of a connection is bounded:
// the TLS handshake (net/http uses readHeaderTimeout for it too), the
// headers, the body (also one the handler leaves unread, see
// proxy.LimitBodyReads), the response and the idle time between requests.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 1 << 20
)

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authenticating reverse proxy in front of Qlik Sense",
		Args:  cobra.NoArgs,
	}
	configFile := addConfigFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		file := configFile()
		cfg, err := config.Load(file)
		if err != nil {
			return err
		}
		log, level, err := newServerLogger(cfg.Log)
		if err != nil {
			return err
		}
		defer log.Sync()
		logConfigWarnings(log, file, cfg)
		tuneRuntime(os.LookupEnv, log)
		return runServe(cmd.Context(), file, cfg, log, level)
	}
	return cmd
}

// runServe runs sensegate from cfg until ctx ends, reloading file on SIGHUP
// and when it changes. The jar and the store of logins are made once, so
// a reload keeps every user's sessions.
func runServe(ctx context.Context, file string, cfg *config.Config, log *zap.Logger, level zap.AtomicLevel) error {
	obs, err := newObservability(cfg, log)
	if err != nil {
		return err
	}
	jar, closeJar, err := newJar(cfg, log)
	if err != nil {
		return err
	}
	defer closeJar()
	var logins identity.SessionStore
	if cfg.Identity.Provider == config.ProviderOIDC {
		if logins, err = newLoginSessions(ctx, cfg); err != nil {
			return err
		}
	}
	build := func(c *config.Config) (*gateway, error) {
		provider, err := newProviderWith(ctx, c, log, logins)
		if err != nil {
			return nil, err
		}
		g, err := newGatewayWith(c, provider, log, obs, jar)
		if err != nil {
			return nil, err
		}
		if l, err := zapcore.ParseLevel(c.Log.Level); err == nil {
			level.SetLevel(l)
		}
		return g, nil
	}
	gw, err := build(cfg)
	if err != nil {
		return err
	}
	lv := newLive(gw)
	defer lv.close()
	gw.probe(ctx, cfg, log)
	// QPS is checked in the background, apart from readiness: its state
	// shows in /healthz and sensegate_qps_up.
	mon := newQPSMonitor(lv.current, obs, admin.MonitorOptions{})
	mctx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { defer close(monDone); mon.Run(mctx) }()
	defer func() { stopMon(); <-monDone }()
	stopAdmin, err := startAdmin(ctx, cfg.Admin, obs, readinessChecks(lv.current), mon, log)
	if err != nil {
		return err
	}
	rl := &reloader{path: file, log: log, build: build, live: lv, cur: cfg, watchFile: true, obs: obs}
	rctx, stopReload := context.WithCancel(ctx)
	reloadDone := make(chan error, 1)
	go func() { reloadDone <- rl.run(rctx, nil) }()
	err = serve(ctx, cfg.Server, lv, nil, log)
	stopReload()
	if rerr := <-reloadDone; rerr != nil {
		log.Warn("config watch ended", zap.Error(rerr))
	}
	return errors.Join(err, stopAdmin())
}

// newServerLogger builds the zap logger of log.level and log.format; the
// returned level can be changed later (log.level reloads).
func newServerLogger(lc config.LogConfig) (*zap.Logger, zap.AtomicLevel, error) {
	zc, err := serverLogConfig(lc)
	if err != nil {
		return nil, zap.AtomicLevel{}, err
	}
	log, err := zc.Build()
	return log, zc.Level, err
}

// serverLogConfig is the zap configuration of newServerLogger: standard
// error, lc's level and format, every entry kept (no sampling), no stack
// traces.
func serverLogConfig(lc config.LogConfig) (zap.Config, error) {
	level, err := zapcore.ParseLevel(lc.Level)
	if err != nil {
		return zap.Config{}, fmt.Errorf("log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	// Errors here are operational (QPS down, a client gone): a stack
	// trace, all of writeError's, would cost each failing request and
	// bury the message when many fail at once.
	zc.DisableStacktrace = true
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	if lc.Format == config.LogFormatConsole {
		zc.Encoding = "console"
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	return zc, nil
}

// providerStartTimeout bounds the start of an identity provider (OIDC
// discovery).
const providerStartTimeout = 30 * time.Second

// newProvider builds the configured identity provider.
func newProvider(ctx context.Context, cfg *config.Config, log *zap.Logger) (identity.Provider, error) {
	return newProviderWith(ctx, cfg, log, nil)
}

// newProviderWith is newProvider with the store of OIDC logins given (nil:
// made from cfg), so that a reload keeps the logins.
func newProviderWith(ctx context.Context, cfg *config.Config, log *zap.Logger, logins identity.SessionStore) (identity.Provider, error) {
	ic := cfg.Identity
	switch ic.Provider {
	case config.ProviderHeader:
		hc := ic.Header
		return identity.NewHeader(identity.HeaderOptions{
			Name: hc.Name, DirectoryHeader: hc.DirectoryHeader, GroupsHeader: hc.GroupsHeader,
			Trusted: hc.TrustedProxies(), DefaultDirectory: cfg.Qlik.UserDirectory,
		}), nil
	case config.ProviderStatic:
		u, err := identity.ParseUser(ic.Static.User, cfg.Qlik.UserDirectory)
		if err != nil {
			return nil, fmt.Errorf("identity.static.user: %w", err)
		}
		if !cfg.Server.TLS() && !isLoopbackListen(cfg.Server.Listen) {
			log.Warn("DANGER: identity provider static serves every visitor as one Qlik user, without TLS, on a non-loopback address: use it for development only",
				zap.String("user", u.String()), zap.String("listen", cfg.Server.Listen))
		}
		return identity.NewStatic(u), nil
	case config.ProviderOIDC, config.ProviderJWT:
	default:
		return nil, fmt.Errorf("identity.provider: %q is not supported", ic.Provider)
	}
	mc := ic.Mapping
	mapping, err := identity.NewMapping(identity.MappingConfig{
		UserIDClaim: mc.UserIDClaim, UserIDPattern: mc.UserIDPattern, Directory: cfg.Qlik.UserDirectory,
		DirectoryClaim: mc.DirectoryClaim, GroupsClaim: mc.GroupsClaim, Attributes: mc.Attributes,
	})
	if err != nil {
		return nil, fmt.Errorf("identity.mapping: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, providerStartTimeout)
	defer cancel()
	if ic.Provider == config.ProviderJWT {
		jc := ic.JWT
		keys, err := identity.LoadPublicKeys(jc.PublicKeys...)
		if err != nil && len(jc.PublicKeys) > 0 {
			return nil, fmt.Errorf("identity.jwt.public_keys: %w", err)
		}
		p, err := identity.NewJWT(ctx, identity.JWTConfig{
			Issuer: jc.Issuer, Audiences: jc.Audiences, JWKSURL: jc.JWKSURL, PublicKeys: keys,
			Algorithms: jc.Algorithms, ClockSkew: jc.ClockSkew, Mapping: mapping, Logger: log.Named("identity"),
		})
		if err != nil {
			return nil, fmt.Errorf("identity.jwt: %w", err)
		}
		return p, nil
	}
	sessions := logins
	if sessions == nil {
		sessions, err = newLoginSessions(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	oc := ic.OIDC
	keys := oc.CookieKeys()
	if len(keys) == 0 {
		key := make([]byte, 32)
		rand.Read(key)
		keys = [][]byte{key}
		log.Warn("identity.oidc.cookie_secrets is not set: using a random key, so logins end when sensegate restarts and replicas cannot share them")
	}
	p, err := identity.NewOIDC(ctx, identity.OIDCConfig{
		Issuer: oc.Issuer, ClientID: oc.ClientID, ClientSecret: oc.ClientSecret,
		RedirectURL: oc.EffectiveRedirectURL(), Scopes: oc.Scopes, Mapping: mapping,
		Sessions: sessions, CookieName: oc.CookieName, CookieKeys: keys,
		Secure: cfg.Server.PublicURL().Scheme == "https", SessionLifetime: oc.SessionLifetime,
		PostLogoutRedirectURL: oc.EffectivePostLogoutURL(), Logger: log.Named("identity"),
	})
	if err != nil {
		return nil, fmt.Errorf("identity.oidc: %w", err)
	}
	return p, nil
}

// storeStartTimeout bounds the connection to Redis at startup.
const storeStartTimeout = 10 * time.Second

// redisConfig is how to reach the Redis server of a redis store.
func redisConfig(sc config.StoreConfig) session.RedisConfig {
	r := sc.Redis
	rc := session.RedisConfig{Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB}
	if r.TLS {
		host, _, _ := net.SplitHostPort(r.Addr)
		rc.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return rc
}

// dialRedis connects to the Redis server of a redis store, failing when it
// does not answer PING.
func dialRedis(ctx context.Context, sc config.StoreConfig) (*redis.Client, error) {
	c, err := session.DialRedis(ctx, redisConfig(sc))
	if err != nil {
		return nil, fmt.Errorf("store.redis.addr: %w (is Redis up, and do store.redis.username, password and tls match it?)", err)
	}
	return c, nil
}

// newLoginSessions returns the store of OIDC logins: Redis for a redis
// store, so that replicas share logins, else memory. Its Redis client
// lives as long as the process (identity providers are not closed).
func newLoginSessions(ctx context.Context, cfg *config.Config) (identity.SessionStore, error) {
	sc := cfg.Store
	if sc.Type != config.StoreRedis {
		return identity.NewMemorySessions(nil), nil
	}
	c, err := dialRedis(ctx, sc)
	if err != nil {
		return nil, err
	}
	s, err := session.NewRedisSessions(c, session.RedisSessionsOptions{Prefix: sc.Redis.KeyPrefix, Keys: sc.EncryptionKeys()})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("store.encryption_keys: %w", err)
	}
	return s, nil
}

// newJar returns the jar of store.type and the func that closes it.
func newJar(cfg *config.Config, log *zap.Logger) (session.Store, func(), error) {
	sc := cfg.Store
	switch sc.Type {
	case config.StoreMemory:
		return session.NewMemory(cfg.Qlik.SessionTimeout, nil), func() {}, nil
	case config.StoreRedis:
	default:
		return nil, nil, fmt.Errorf("store.type: %q is not supported", sc.Type)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeStartTimeout)
	defer cancel()
	c, err := dialRedis(ctx, sc)
	if err != nil {
		return nil, nil, err
	}
	jar, err := session.NewRedis(c, session.RedisOptions{
		Prefix: sc.Redis.KeyPrefix, Keys: sc.EncryptionKeys(), Idle: cfg.Qlik.SessionTimeout,
		LocalTTL: sc.LocalCacheTTL, Logger: log.Named("session"),
	})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("store.encryption_keys: %w", err)
	}
	log.Info("session store: redis", zap.String("addr", sc.Redis.Addr), zap.Int("db", sc.Redis.DB), zap.String("key_prefix", sc.Redis.KeyPrefix))
	return jar, func() { c.Close() }, nil
}

// isLoopbackListen reports whether a listen address binds only loopback.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// qpsClient is what the gateway keeps of its QPS clients: *ticket.Client
// for one Qlik node, *ticket.Nodes for several.
type qpsClient interface {
	Ping(ctx context.Context) error
	CloseIdleConnections()
}

// gateway is sensegate assembled: the proxy handler and what it owns.
type gateway struct {
	handler  *proxy.Handler
	tickets  qpsClient
	nodes    []ticket.Node // the QPS client of each node, for the QPS monitor
	broker   *session.Broker
	closeJar func() // nil: nothing to close
}

func (g *gateway) close() {
	g.tickets.CloseIdleConnections()
	g.handler.CloseIdleConnections()
	if g.closeJar != nil {
		g.closeJar()
	}
}

// probe calls QPS once at startup so that a wrong certificate, CA or
// prefix shows in the log at once rather than at the first user's
// request. Qlik may come up later, so a failure is a warning.
func (g *gateway) probe(ctx context.Context, cfg *config.Config, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Qlik.QPS.Timeout)
	defer cancel()
	if err := g.tickets.Ping(ctx); err != nil {
		log.Warn("QPS is not usable yet; users will get errors until it is", zap.String("qps", cfg.Qlik.QPS.URL().String()), zap.Error(err))
		return
	}
	log.Info("QPS reachable", zap.String("qps", cfg.Qlik.QPS.URL().String()), zap.String("prefix", cfg.Qlik.Prefix))
}

// newGateway wires the QPS client, the session broker and the proxy
// handler from cfg, without metrics or audit log.
func newGateway(cfg *config.Config, provider identity.Provider, log *zap.Logger) (*gateway, error) {
	return newObservedGateway(cfg, provider, log, nil)
}

// newObservedGateway is newGateway recording metrics and audit entries
// into obs (nil: none), which outlives the gateway.
func newObservedGateway(cfg *config.Config, provider identity.Provider, log *zap.Logger, obs *observability) (*gateway, error) {
	jar, closeJar, err := newJar(cfg, log)
	if err != nil {
		return nil, err
	}
	g, err := newGatewayWith(cfg, provider, log, obs, jar)
	if err != nil {
		closeJar()
		return nil, err
	}
	g.closeJar = closeJar
	return g, nil
}

// ticketConfig is the QPS client configuration of node n: serve's, and
// check --connect's.
func ticketConfig(q config.QlikConfig, n config.NodeURLs, cert tls.Certificate, mode ticket.Mode) ticket.Config {
	return ticket.Config{
		ProxyURL: n.Proxy, QPSURL: n.QPS, Prefix: q.Prefix, SessionCookie: q.SessionCookie,
		RedeemPath: q.RedeemPath, Mode: mode, RootCAs: q.RootCAs(), ClientCert: cert,
		Timeout: q.QPS.Timeout, Retries: q.QPS.Retries, MaxConcurrent: q.QPS.MaxConcurrent, Origin: q.WebsocketOrigin(),
	}
}

// qpsNode is one Qlik node's URLs and the QPS client serve talks to it
// with.
type qpsNode struct {
	urls   config.NodeURLs
	client *ticket.Client
}

// newQPSClients builds the QPS client of every node of q, as serve, check
// --connect and the preflight use them, logging to log (named per node),
// and returns the login mode they use.
func newQPSClients(q config.QlikConfig, log *zap.Logger) ([]qpsNode, ticket.Mode, error) {
	cert, err := ticket.LoadClientCert(q.QPS.ClientCert, q.QPS.ClientKey)
	if err != nil {
		return nil, 0, fmt.Errorf("qlik.qps.client_cert/client_key: %w", err)
	}
	mode, err := ticket.ParseMode(string(q.Login))
	if err != nil {
		return nil, 0, fmt.Errorf("qlik.login: %w", err)
	}
	var out []qpsNode
	for _, n := range q.NodeURLs() {
		tc, err := ticket.New(ticketConfig(q, n, cert, mode), log.With(zap.String("node", n.Proxy.Host)))
		if err != nil {
			return nil, 0, fmt.Errorf("qlik: %w", err)
		}
		out = append(out, qpsNode{urls: n, client: tc})
	}
	return out, mode, nil
}

// newGatewayWith builds a gateway on a given jar, which it does not close:
// `serve` makes the jar once so that reloads keep the sessions.
func newGatewayWith(cfg *config.Config, provider identity.Provider, log *zap.Logger, obs *observability, jar session.Store) (*gateway, error) {
	q := cfg.Qlik
	qn, _, err := newQPSClients(q, log.Named("ticket"))
	if err != nil {
		return nil, err
	}
	var clients []ticket.Node
	for _, n := range qn {
		clients = append(clients, ticket.Node{ID: n.urls.Proxy.Host, Client: n.client})
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
		tn, err := ticket.NewNodes(clients, ticket.NodesOptions{Logger: log.Named("nodes")})
		if err != nil {
			return nil, fmt.Errorf("qlik.nodes: %w", err)
		}
		tickets, loginer, csrf, nodes = tn, tn, tn, tn
	}
	broker := session.NewBroker(jar, loginer, obs.brokerOptions(session.BrokerOptions{
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
	return &gateway{handler: h, tickets: tickets, nodes: clients, broker: broker}, nil
}

// serve runs h on sc.Listen until ctx ends, then shuts down gracefully:
// stop accepting, close relayed websockets with 1001, finish requests, all
// within sc.ShutdownGrace. ready, when not nil, receives the bound address.
// drainer is what serve serves: a handler whose relayed websockets
// Shutdown closes (*proxy.Handler, or the live gateway of a reloading
// server).
type drainer interface {
	http.Handler
	Shutdown(ctx context.Context) error
}

func serve(ctx context.Context, sc config.ServerConfig, h drainer, ready chan<- net.Addr, log *zap.Logger) error {
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	return serveOn(ctx, ln, sc, h, ready, log)
}

// serveOn is serve on a listener the caller opened, for callers that need
// the port before they build the configuration (the demo and tests, whose
// public URL and OIDC callback name it); sc.Listen is not used. It closes
// ln.
func serveOn(ctx context.Context, ln net.Listener, sc config.ServerConfig, h drainer, ready chan<- net.Addr, log *zap.Logger) error {
	srv := &http.Server{
		// Not WriteTimeout or ReadTimeout, which would bound whole
		// responses and requests: websockets, long downloads and uploads.
		// LimitStalls bounds stalls instead, until a websocket upgrade
		// hijacks the connection.
		Handler:           proxy.LimitStalls(h, proxy.StallLimits{Write: sc.WriteTimeout, Body: sc.BodyTimeout}),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if sc.WriteTimeout > 0 {
		// LimitStalls bounds each HTTP/2 stream; this bounds the
		// connection under them, whose writes a client that stops reading
		// at the TCP level would otherwise hold until the idle timeout.
		srv.HTTP2 = &http.HTTP2Config{WriteByteTimeout: sc.WriteTimeout}
	}
	scheme := "http"
	if sc.TLS() {
		scheme = "https"
	}
	log.Info("sensegate listening", zap.String("addr", ln.Addr().String()), zap.String("scheme", scheme), zap.String("public_url", sc.PublicURL().String()))
	if ready != nil {
		ready <- ln.Addr()
	}
	errc := make(chan error, 1)
	go func() {
		if sc.TLS() {
			errc <- srv.ServeTLS(ln, sc.TLSCert, sc.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.Duration("grace", sc.ShutdownGrace))
	sctx, cancel := context.WithTimeout(context.Background(), sc.ShutdownGrace)
	defer cancel()
	// Server.Shutdown neither closes nor waits for hijacked connections:
	// close the websockets ourselves, alongside.
	wsDone := make(chan error, 1)
	go func() { wsDone <- h.Shutdown(sctx) }()
	err := srv.Shutdown(sctx)
	if werr := <-wsDone; werr != nil {
		err = errors.Join(err, fmt.Errorf("websockets: %w", werr))
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	return err
}
