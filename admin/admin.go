// Package admin is sensegate's operations side: a Prometheus registry per
// process, and the admin HTTP listener that serves it (/metrics) with the
// liveness (/healthz) and readiness (/readyz) probes. It knows nothing of
// Qlik or sessions: readiness runs the Checks it is given, and the packages
// that do the work register their own metrics on the registry.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// NewRegistry returns a fresh registry holding the process and Go runtime
// collectors. Every sensegate process builds its own: nothing is
// registered on prometheus.DefaultRegisterer.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	return reg
}

// Paths of the admin endpoints.
const (
	PathMetrics = "/metrics"
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	// PathPprof is the prefix of the runtime profiles, with
	// Options.Profiling.
	PathPprof = "/debug/pprof/"
)

// Server limits of the admin listener.
const (
	readHeaderTimeout = 5 * time.Second
	// shutdownTimeout bounds the wait for scrapes and probes in flight
	// when the listener stops.
	shutdownTimeout = 5 * time.Second
)

// Options configure a Server.
type Options struct {
	// Gatherer is what /metrics serves (nil: /metrics answers 404).
	Gatherer prometheus.Gatherer
	// Readiness answers /readyz (nil: always ready).
	Readiness *Readiness
	// Health, when not nil, adds its last results to /healthz' JSON under
	// its name; they never change /healthz' status.
	Health *Monitor
	// Logger receives the listener's errors (nil discards them).
	Logger *zap.Logger
	// Profiling serves net/http/pprof's profiles under PathPprof.
	Profiling bool
}

// Server is the admin HTTP handler and listener. It is safe for
// concurrent use.
type Server struct {
	mux    *http.ServeMux
	ready  *Readiness
	health *Monitor
	log    *zap.Logger
}

// NewServer returns the admin handler for opts.
func NewServer(opts Options) *Server {
	s := &Server{mux: http.NewServeMux(), ready: opts.Readiness, health: opts.Health, log: opts.Logger}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.ready == nil {
		s.ready = NewReadiness(nil, ReadinessOptions{})
	}
	if opts.Gatherer != nil {
		s.mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      zap.NewStdLog(s.log),
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	s.mux.HandleFunc("GET "+PathHealthz, s.serveHealthz)
	s.mux.HandleFunc("GET "+PathReadyz, s.serveReadyz)
	if opts.Profiling {
		s.mux.HandleFunc(PathPprof, pprof.Index)
		s.mux.HandleFunc(PathPprof+"cmdline", pprof.Cmdline)
		s.mux.HandleFunc(PathPprof+"profile", pprof.Profile)
		s.mux.HandleFunc(PathPprof+"symbol", pprof.Symbol)
		s.mux.HandleFunc(PathPprof+"trace", pprof.Trace)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Readiness returns the readiness the server reports.
func (s *Server) Readiness() *Readiness { return s.ready }

// Run serves on ln until ctx ends, then stops within a few seconds. It
// closes ln.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          zap.NewStdLog(s.log),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// serveHealthz answers liveness: 200 whenever the process serves HTTP,
// with JSON {"status":"ok"} and the Health monitor's last results under
// its name.
func (s *Server) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	body := map[string]any{"status": "ok"}
	if s.health != nil {
		st := s.health.Status()
		if st == nil {
			st = []CheckStatus{}
		}
		body[s.health.Name()] = st
	}
	json.NewEncoder(w).Encode(body)
}
