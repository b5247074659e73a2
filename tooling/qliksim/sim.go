// Package qliksim simulates the parts of Qlik Sense Enterprise on Windows
// that an authenticating reverse proxy talks to: the Qlik Proxy Service
// (ticket, session and user APIs over mutual TLS, ticket redemption, session
// cookies with idle timeout, the Personal API), the Engine JSON-RPC API over
// websocket and a subset of the Repository Service (QRS) API.
//
// It follows the protocol notes in the project's qseow-protocol reference;
// where real QSEoW behaviour is unknown the simulator takes the stricter
// choice and says so where it does. Tests drive and inspect it through Sim's
// methods, or over the optional admin listener.
package qliksim

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Options are the parts of a Sim that are not configuration.
type Options struct {
	// Clock drives idle timeouts and ticket expiry; nil means the system clock.
	Clock Clock
	// Logger receives the simulator's logs; nil discards them.
	Logger *zap.Logger
	// SweepInterval is how often idle sessions are ended in the background
	// (10 s if 0; negative disables the sweeper, for tests that call Sweep).
	SweepInterval time.Duration
}

// Sim is a running QSEoW simulator. Create it with New, then Start it.
// Its methods are safe for concurrent use.
type Sim struct {
	cfg    Config
	log    *zap.Logger
	clock  Clock
	st     *state
	events *eventLog
	engine *engineState
	fault  atomic.Int32 // QPSFault
	delay  atomic.Int64 // FaultSlow's delay, a time.Duration (DefaultQPSDelay if 0)
	certs  CertFiles
	// nodeID is the server node id that export URLs name
	// (?serverNodeId=, as QSEoW's do); a GUID per Sim.
	nodeID string

	vps      []*vproxy
	byPrefix map[string]*vproxy
	users    map[string]User // by userKey
	apps     []App
	tasks    []ReloadTask
	static   map[string]staticFile // by path after the virtual proxy prefix

	sweepEvery time.Duration
	proxyConns *connTracker // the proxy side's connections (conn.go)

	mu       sync.Mutex
	servers  []*http.Server
	conns    map[io.Closer]struct{} // hijacked websocket connections
	proxyURL string
	qpsURL   string
	qpsLn    *switchListener // nil until Start
	adminURL string
	stop     context.CancelFunc
	bg       sync.WaitGroup
	// drops is how many redemptions are still to be dropped, and
	// dropReusedOnly whether only those on a reused connection are
	// (DropRedemptions); dropped counts the redemptions dropped.
	drops          int
	dropReusedOnly bool
	dropped        int
}

// vproxy is a virtual proxy with its derived settings.
type vproxy struct {
	VirtualProxy
	cookieName string // with the "-HTTP" suffix on a plain HTTP listener
	timeout    time.Duration
	csrf       bool
	allow      map[string]bool
	secure     bool
	sameSite   http.SameSite
}

// New validates cfg, prepares the certificate export in cfg.CertDir (see
// EnsureCerts) and returns a simulator that is not yet listening.
func New(cfg Config, opts Options) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("qliksim: %w", err)
	}
	if cfg.CertDir == "" {
		return nil, errors.New("qliksim: cert_dir is required (a directory for root.pem, server.pem, client.pem and keys)")
	}
	certs, err := EnsureCerts(cfg.CertDir, nil)
	if err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:        cfg,
		log:        opts.Logger,
		clock:      opts.Clock,
		certs:      certs,
		byPrefix:   map[string]*vproxy{},
		users:      map[string]User{},
		apps:       cfg.Apps,
		tasks:      cfg.ReloadTasks,
		static:     staticFiles(cfg),
		conns:      map[io.Closer]struct{}{},
		sweepEvery: opts.SweepInterval,
		nodeID:     newGUID(),
		proxyConns: newConnTracker(),
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if s.sweepEvery == 0 {
		s.sweepEvery = 10 * time.Second
	}
	max := cfg.MaxEvents
	if max <= 0 {
		max = DefaultMaxEvents
	}
	s.events = newEventLog(max)
	s.st = newState(s.clock, caseRule(cfg.UserCase))
	s.engine = newEngineState()
	for _, u := range cfg.Users {
		s.users[s.st.rule.key(u.Directory, u.ID)] = u
	}
	for _, c := range cfg.VirtualProxies {
		vp := &vproxy{VirtualProxy: c, cookieName: c.SessionCookie, timeout: c.SessionTimeout, csrf: c.WebsocketCSRF || cfg.WebsocketCSRF, allow: map[string]bool{}}
		if vp.timeout == 0 {
			vp.timeout = DefaultSessionTimeout
		}
		// The variant keys are validated; empty means the default.
		vp.UnknownCookie = cmp.Or(c.UnknownCookie, UnknownCookie500Text)
		vp.DeadSocket = cmp.Or(c.DeadSocket, DeadSocketMustAuthenticate)
		vp.SessionCap = cmp.Or(c.SessionCap, SessionCapRedeem)
		for _, h := range c.HostAllowList {
			vp.allow[strings.ToLower(h)] = true
		}
		if cfg.ProxyHTTP {
			// QSEoW adds "-HTTP" to the cookie name on plain HTTP (Feb 2019 and later).
			vp.cookieName += "-HTTP"
			vp.secure, vp.sameSite = c.SecureHTTP, sameSite(c.SameSiteHTTP)
		} else {
			vp.secure = c.SecureHTTPS == nil || *c.SecureHTTPS
			vp.sameSite = sameSite(c.SameSiteHTTPS)
		}
		s.vps = append(s.vps, vp)
		s.byPrefix[c.Prefix] = vp
	}
	return s, nil
}

func sameSite(mode string) http.SameSite {
	switch sameSiteModes[strings.ToLower(mode)] {
	case 1:
		return http.SameSiteNoneMode
	case 2:
		return http.SameSiteLaxMode
	case 3:
		return http.SameSiteStrictMode
	}
	return 0 // no attribute
}

// Certs returns the certificate export the simulator serves with.
func (s *Sim) Certs() CertFiles { return s.certs }

// Start opens the listeners and serves in the background until Shutdown.
func (s *Sim) Start() error {
	proxyTLS, err := s.certs.ServerTLS(false)
	if err != nil {
		return err
	}
	qpsTLS, err := s.certs.ServerTLS(true)
	if err != nil {
		return err
	}
	if s.cfg.ProxyHTTP {
		proxyTLS = nil
	}
	qpsTLS.VerifyConnection = s.verifyQPSClient
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel

	type listener struct {
		name, addr string
		tls        *tls.Config
		h          http.Handler
		url        *string
	}
	ls := []listener{
		{"proxy", s.cfg.ProxyListen, proxyTLS, s.proxyHandler(), &s.proxyURL},
		{"qps", s.cfg.QPSListen, qpsTLS, s.qpsHandler(), &s.qpsURL},
	}
	if s.cfg.AdminListen != "" {
		ls = append(ls, listener{"admin", s.cfg.AdminListen, nil, s.AdminHandler(), &s.adminURL})
	}
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.Shutdown(context.Background())
			return fmt.Errorf("qliksim: %s listener: %w", l.name, err)
		}
		if l.name == "qps" {
			// The QPS port can go down and come back (FaultDown).
			sl := newSwitchListener(ln)
			s.mu.Lock()
			s.qpsLn = sl
			s.mu.Unlock()
			if QPSFault(s.fault.Load()) == FaultDown {
				sl.down()
			}
			ln = sl
		}
		scheme := "http"
		if l.tls != nil {
			ln = tls.NewListener(ln, l.tls)
			scheme = "https"
		}
		srv := &http.Server{
			Handler:           l.h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          zap.NewStdLog(s.log.Named(l.name)),
			BaseContext:       func(net.Listener) context.Context { return ctx },
		}
		if l.name == "proxy" {
			srv.IdleTimeout = cmp.Or(s.cfg.ProxyIdleTimeout, DefaultProxyIdleTimeout)
			srv.ConnContext = s.proxyConns.connContext
			srv.ConnState = s.proxyConns.connState
		}
		s.mu.Lock()
		*l.url = scheme + "://" + urlHost(ln.Addr())
		s.servers = append(s.servers, srv)
		s.mu.Unlock()
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("serve", zap.String("listener", l.name), zap.Error(err))
			}
		}()
	}
	if s.sweepEvery > 0 {
		s.bg.Add(1)
		go s.sweepLoop(ctx)
	}
	return nil
}

// urlHost turns a listener address into a URL host, writing loopback
// addresses as "localhost" so that they match certificates and allow lists.
func urlHost(a net.Addr) string {
	host, port, _ := net.SplitHostPort(a.String())
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func (s *Sim) sweepLoop(ctx context.Context) {
	defer s.bg.Done()
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep()
		}
	}
}

// Shutdown stops the listeners, closes open websockets and waits for the
// background goroutines, or until ctx ends.
func (s *Sim) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	conns := s.conns
	s.conns = map[io.Closer]struct{}{}
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
	}
	for c := range conns {
		c.Close()
	}
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// trackConn registers a hijacked connection so that Shutdown closes it and
// waits for its handler; the handler must call the returned func when done.
func (s *Sim) trackConn(c io.Closer) (untrack func()) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.bg.Add(1) // Shutdown waits for the connection's handler to finish
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.bg.Done()
		})
	}
}

// ProxyURL is the base URL of the proxy side, e.g. https://localhost:8443.
func (s *Sim) ProxyURL() string { s.mu.Lock(); defer s.mu.Unlock(); return s.proxyURL }

// QPSURL is the base URL of the QPS API, e.g. https://localhost:4243.
func (s *Sim) QPSURL() string { s.mu.Lock(); defer s.mu.Unlock(); return s.qpsURL }

// AdminURL is the base URL of the admin listener, "" when it is disabled.
func (s *Sim) AdminURL() string { s.mu.Lock(); defer s.mu.Unlock(); return s.adminURL }

// vpFor splits a proxy-side path into its virtual proxy and the rest. The
// first path segment selects a virtual proxy when one has that prefix;
// otherwise the default virtual proxy (prefix "") serves the path.
func (s *Sim) vpFor(path string) (*vproxy, string, bool) {
	seg, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if seg != "" {
		if vp, ok := s.byPrefix[seg]; ok {
			return vp, "/" + rest, true
		}
	}
	vp, ok := s.byPrefix[""]
	return vp, path, ok
}

// vpByAPIPrefix finds the virtual proxy named in a QPS API path.
func (s *Sim) vpByAPIPrefix(prefix string) (*vproxy, bool) {
	vp, ok := s.byPrefix[prefix]
	return vp, ok
}

// allowsHost reports whether host (no port) is on vp's host allow list. The
// simulator's own loopback names are not implied: like QSEoW, the list must
// name them.
func (vp *vproxy) allowsHost(host string) bool {
	return vp.allow[strings.ToLower(host)]
}

// user returns the seeded user for u, if any.
func (s *Sim) user(u Identity) (User, bool) {
	usr, ok := s.users[s.st.key(u)]
	return usr, ok
}

// userName is the display name QSEoW reports for u.
func (s *Sim) userName(u Identity) string {
	if usr, ok := s.user(u); ok && usr.Name != "" {
		return usr.Name
	}
	return u.ID
}

// groups returns u's groups: the seeded ones and the ticket's Group attributes.
func (s *Sim) groups(u Identity, attrs []Attribute) map[string]bool {
	g := map[string]bool{}
	if usr, ok := s.user(u); ok {
		for _, x := range usr.Groups {
			g[strings.ToLower(x)] = true
		}
	}
	for _, a := range attrs {
		if strings.EqualFold(a.Key, "group") {
			g[strings.ToLower(a.Value)] = true
		}
	}
	return g
}

// canSee reports whether u (with ticket attributes attrs) may see app a.
func (s *Sim) canSee(u Identity, attrs []Attribute, a App) bool {
	if a.Everyone {
		return true
	}
	k := s.st.key(u)
	if d, id, ok := splitUser(a.Owner); ok && s.st.rule.key(d, id) == k {
		return true
	}
	for _, x := range a.Users {
		if d, id, ok := splitUser(x); ok && s.st.rule.key(d, id) == k {
			return true
		}
	}
	g := s.groups(u, attrs)
	for _, x := range a.Groups {
		if g[strings.ToLower(x)] {
			return true
		}
	}
	return false
}

// visibleApps returns the apps u may see, in configuration order.
func (s *Sim) visibleApps(u Identity, attrs []Attribute) []App {
	var out []App
	for _, a := range s.apps {
		if s.canSee(u, attrs, a) {
			out = append(out, a)
		}
	}
	return out
}

// app finds an app by id, case-insensitively.
func (s *Sim) app(id string) (App, bool) {
	for _, a := range s.apps {
		if strings.EqualFold(a.ID, id) {
			return a, true
		}
	}
	return App{}, false
}
