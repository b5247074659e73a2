// Package server runs a gateway as sensegate's server: the public listener
// with its connection bounds and graceful shutdown, the admin listener
// (metrics, liveness with the background checks of QPS, readiness), and
// configuration reloads on SIGHUP and when the file changes. `sensegate
// serve` and the demo both run through Run.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/sensegate/sensegate/admin"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/gateway"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options configure Run. Config is required.
type Options struct {
	// Config is the configuration to serve, validated (config.Load does
	// it).
	Config *config.Config
	// File is the file Config was loaded from, which is reloaded on
	// SIGHUP and when it changes ("": no reloads). Keys a reload cannot
	// apply are refused (see restartKeys).
	File string
	// Listener is the public listener (nil: Run listens on
	// Config.Server.Listen), for callers that need its port before they
	// build the configuration: the demo and tests, whose public URL and
	// OIDC callback name it. Run closes it.
	Listener net.Listener
	// Provider identifies users instead of the provider Config.Identity
	// describes (nil: that one). The demo gives its development login.
	Provider identity.Provider
	// Logger receives the logs (nil discards them).
	Logger *zap.Logger
	// Level is Logger's level, which a reload sets from log.level (the
	// zero value: log.level is not applied).
	Level zap.AtomicLevel
	// Version and Commit label sensegate_build_info ("": unknown).
	Version, Commit string
	// Ready, when not nil, receives the public listener's address once
	// it serves.
	Ready chan<- net.Addr
}

// Run serves opts.Config until ctx ends, then shuts down gracefully: the
// admin listener turns not ready at once, the public listener stops
// accepting, relayed websockets are closed with 1001 and requests finish,
// all within server.shutdown_grace.
func Run(ctx context.Context, opts Options) error {
	s, err := newServer(ctx, opts)
	if err != nil {
		if opts.Listener != nil {
			opts.Listener.Close()
		}
		return err
	}
	defer s.close()
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Server.Listen); err != nil {
			return fmt.Errorf("server.listen: %w", err)
		}
	}
	return s.run(ctx, ln)
}

// server is what Run runs: the live gateway and what outlives its
// reloads.
type server struct {
	opts    Options
	cfg     *config.Config
	log     *zap.Logger
	metrics *processMetrics
	// build makes a gateway of a configuration, as the first one was.
	build func(*config.Config) (*gateway.Gateway, error)
	live  *gateway.Live
	// mon checks QPS in the background, apart from readiness: its state
	// shows in /healthz and sensegate_qps_up.
	mon      *admin.Monitor
	reloader *reloader // nil: no reloads
	// watching, when not nil, is closed once the reloader watches SIGHUP
	// and the file (tests wait for it).
	watching chan struct{}
	// readiness tunes /readyz (tests turn its cache off).
	readiness admin.ReadinessOptions
	// adminAddr is the admin listener's address once start opened it.
	adminAddr   net.Addr
	closeStores func() error
	// cookieKeys seal the logins when the configuration sets no key: one
	// random key for the process, so that reloads keep the logins.
	cookieKeys [][]byte
}

// newServer builds the first gateway and what outlives it. The jar and
// the store of OIDC logins are made once, so that a reload keeps every
// user's sessions, and so are the metrics, registered once.
func newServer(ctx context.Context, opts Options) (_ *server, err error) {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	logWarnings(log, opts.File, cfg)
	s := &server{opts: opts, cfg: cfg, log: log, closeStores: func() error { return nil }}
	defer func() {
		if err != nil {
			s.closeStores()
		}
	}()
	if s.metrics, err = newProcessMetrics(opts.Version, opts.Commit); err != nil {
		return nil, err
	}
	// Audit and access entries are written at info level whatever
	// log.level says.
	ilog, err := infoLogger(log, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	obs, err := gateway.NewObservability(s.metrics.registry, cfg, ilog)
	if err != nil {
		return nil, err
	}
	jar, closeJar, err := gateway.NewJar(ctx, cfg, log, nil)
	if err != nil {
		return nil, err
	}
	s.closeStores = closeJar
	var logins identity.SessionStore
	if opts.Provider == nil && cfg.Identity.KeepsLogins() {
		if len(cfg.Identity.CookieKeys()) == 0 {
			s.cookieKeys = gateway.RandomCookieKeys()
			log.Warn(gateway.RandomKeyWarning)
		}
		var closeLogins func() error
		if logins, closeLogins, err = gateway.NewLogins(ctx, cfg, nil); err != nil {
			return nil, err
		}
		s.closeStores = func() error { return errors.Join(closeLogins(), closeJar()) }
	}
	s.build = func(c *config.Config) (*gateway.Gateway, error) {
		return s.newGateway(ctx, c, obs, jar, logins)
	}
	g, err := s.build(cfg)
	if err != nil {
		return nil, err
	}
	s.live = gateway.NewLive(g, log)
	s.mon = newQPSMonitor(s.live.Current, s.metrics, admin.MonitorOptions{})
	if opts.File != "" {
		s.reloader = &reloader{path: opts.File, log: log, build: s.build, live: s.live, cur: cfg, watchFile: true, metrics: s.metrics}
	}
	return s, nil
}

// newGateway builds the gateway of c over the server's stores, and
// applies c's log.level.
func (s *server) newGateway(ctx context.Context, c *config.Config, obs *gateway.Observability, jar session.Store, logins identity.SessionStore) (*gateway.Gateway, error) {
	g, err := gateway.New(ctx, c, gateway.Deps{
		Logger: s.log, Observability: obs, Jar: jar, Logins: logins, Provider: s.opts.Provider,
		CookieKeys: s.cookieKeys,
	})
	if err != nil {
		return nil, err
	}
	if s.opts.Level != (zap.AtomicLevel{}) {
		if l, err := zapcore.ParseLevel(c.Log.Level); err == nil {
			s.opts.Level.SetLevel(l)
		}
	}
	return g, nil
}

// run serves on ln until ctx ends, with the QPS monitor, the admin
// listener and the reloader alongside. It closes ln.
func (s *server) run(ctx context.Context, ln net.Listener) error {
	s.probe(ctx)
	stop, err := s.start(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	err = serve(ctx, ln, s.cfg.Server, s.live, s.opts.Ready, s.log)
	return errors.Join(err, stop())
}

// start starts the QPS monitor, the admin listener and the reloader until
// ctx ends; stop stops them and waits. When ctx ends, /readyz turns not
// ready at once, so that load balancers stop sending users while the
// proxy drains, but the admin listener goes on until stop.
func (s *server) start(ctx context.Context) (stop func() error, err error) {
	mctx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { defer close(monDone); s.mon.Run(mctx) }()
	stopAdmin, addr, err := startAdmin(ctx, s.cfg.Admin, s.metrics, readinessChecks(s.live.Current), s.mon, s.readiness, s.log)
	if err != nil {
		stopMon()
		<-monDone
		return nil, err
	}
	s.adminAddr = addr
	rctx, stopReload := context.WithCancel(ctx)
	reloadDone := make(chan error, 1)
	if s.reloader != nil {
		go func() { reloadDone <- s.reloader.run(rctx, s.watching) }()
	} else {
		reloadDone <- nil
	}
	return func() error {
		stopReload()
		if err := <-reloadDone; err != nil {
			s.log.Warn("config watch ended", zap.Error(err))
		}
		stopMon()
		<-monDone
		return stopAdmin()
	}, nil
}

// close closes the gateways and the stores.
func (s *server) close() error {
	return errors.Join(s.live.Close(), s.closeStores())
}

// probe calls QPS once at startup so that a wrong certificate, CA or
// prefix shows in the log at once rather than at the first user's
// request. Qlik may come up later, so a failure is a warning.
func (s *server) probe(ctx context.Context) {
	q := s.cfg.Qlik
	ctx, cancel := context.WithTimeout(ctx, q.QPS.Timeout)
	defer cancel()
	if err := s.live.Current().Ping(ctx); err != nil {
		s.log.Warn("QPS is not usable yet; users will get errors until it is", zap.String("qps", q.QPS.URL().String()), zap.Error(err))
		return
	}
	s.log.Info("QPS reachable", zap.String("qps", q.QPS.URL().String()), zap.String("prefix", q.Prefix))
}
