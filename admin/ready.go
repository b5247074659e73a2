package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of ReadinessOptions.
const (
	// DefaultReadyCacheTTL is how long a readiness result is served
	// before the checks run again, so that frequent probes (several
	// replicas of a load balancer, Kubernetes) cost QPS one call per TTL.
	DefaultReadyCacheTTL = 5 * time.Second
	// DefaultReadyTimeout bounds one round of checks. Set the prober's
	// own timeout above it (Kubernetes: timeoutSeconds: 3).
	DefaultReadyTimeout = 2 * time.Second
)

// Check is one readiness check: Probe returns nil when the dependency
// Name is usable. Probe must return when its ctx ends.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Pinger is a dependency that can tell whether it answers, e.g.
// *ticket.Client (QPS with the client certificate) or a session store with
// a network backend.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingCheck returns the Check named name that pings p.
func PingCheck(name string, p Pinger) Check { return Check{Name: name, Probe: p.Ping} }

// ReadinessOptions tune a Readiness; zero values take the defaults.
type ReadinessOptions struct {
	// CacheTTL is how long a result is reused (DefaultReadyCacheTTL;
	// negative: never reused).
	CacheTTL time.Duration
	// Timeout bounds one round of checks (DefaultReadyTimeout).
	Timeout time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Readiness runs its checks, at most one round at a time, and caches the
// result for the TTL. It is safe for concurrent use.
type Readiness struct {
	checks  []Check
	ttl     time.Duration
	timeout time.Duration
	now     func() time.Time

	// sem is held by the one round of checks in progress; callers that
	// arrive meanwhile wait for its result (or for their ctx).
	sem      chan struct{}
	mu       sync.Mutex // guards last
	last     Report
	draining atomic.Bool
}

// Report is the result of a round of checks, as /readyz serves it.
type Report struct {
	// Ready is whether every check passed (and the process is not
	// shutting down).
	Ready bool `json:"ready"`
	// Checks are the results in the order the checks were given.
	Checks []CheckResult `json:"checks"`
	// CheckedAt is when the round started.
	CheckedAt time.Time `json:"checked_at"`
}

// CheckResult is one check's result.
type CheckResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Error says why the check failed ("" when OK).
	Error string `json:"error,omitempty"`
	// DurationSeconds is how long the probe took.
	DurationSeconds float64 `json:"duration_seconds"`
}

// errShuttingDown is the readiness of a draining process.
var errShuttingDown = errors.New("sensegate is shutting down")

// NewReadiness returns a Readiness over checks.
func NewReadiness(checks []Check, opts ReadinessOptions) *Readiness {
	r := &Readiness{checks: checks, ttl: opts.CacheTTL, timeout: opts.Timeout, now: opts.Now, sem: make(chan struct{}, 1)}
	if r.ttl == 0 {
		r.ttl = DefaultReadyCacheTTL
	}
	if r.timeout <= 0 {
		r.timeout = DefaultReadyTimeout
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Drain makes the process report not ready from now on, whatever the
// checks say, so that load balancers stop sending it new users while it
// shuts down.
func (r *Readiness) Drain() { r.draining.Store(true) }

// Ready returns the current readiness: the cached report while it is
// fresh, else the result of a new round of checks. A round runs on its own
// context bounded by the Timeout, so a caller that gives up does not fail
// the round for the others; ctx only bounds the caller's wait.
func (r *Readiness) Ready(ctx context.Context) Report {
	if r.draining.Load() {
		return Report{Checks: []CheckResult{{Name: "shutdown", Error: errShuttingDown.Error()}}, CheckedAt: r.now()}
	}
	if rep, ok := r.cached(); ok {
		return rep
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return Report{Checks: []CheckResult{{Name: "readiness", Error: "gave up waiting for the checks: " + ctx.Err().Error()}}, CheckedAt: r.now()}
	}
	defer func() { <-r.sem }()
	// The round before ours may have finished while we waited.
	if rep, ok := r.cached(); ok {
		return rep
	}
	rep := r.run(context.WithoutCancel(ctx))
	r.mu.Lock()
	r.last = rep
	r.mu.Unlock()
	return rep
}

// cached returns the last report if it is still fresh.
func (r *Readiness) cached() (Report, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.CheckedAt.IsZero() || r.ttl < 0 || r.now().Sub(r.last.CheckedAt) >= r.ttl {
		return Report{}, false
	}
	return r.last, true
}

// run runs every check concurrently within the timeout.
func (r *Readiness) run(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	rep := Report{Ready: true, Checks: make([]CheckResult, len(r.checks)), CheckedAt: r.now()}
	var wg sync.WaitGroup
	for i, c := range r.checks {
		wg.Go(func() {
			start := time.Now()
			err := c.Probe(ctx)
			res := CheckResult{Name: c.Name, OK: err == nil, DurationSeconds: time.Since(start).Seconds()}
			if err != nil {
				res.Error = err.Error()
			}
			rep.Checks[i] = res
		})
	}
	wg.Wait()
	for _, c := range rep.Checks {
		rep.Ready = rep.Ready && c.OK
	}
	return rep
}

// serveReadyz answers readiness: 200 with the report when every check
// passes, 503 otherwise.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	rep := s.ready.Ready(r.Context())
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(rep)
}
