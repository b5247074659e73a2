package admin

import (
	"context"
	"regexp"
	"sync"
	"time"
)

// Defaults of MonitorOptions.
const (
	// DefaultMonitorInterval is how often a Monitor checks its
	// dependencies in the background.
	DefaultMonitorInterval = 15 * time.Second
	// DefaultMonitorTimeout bounds one round of a Monitor's checks.
	DefaultMonitorTimeout = 5 * time.Second
)

// MonitorOptions tune a Monitor; zero values take the defaults.
type MonitorOptions struct {
	// Interval is the time between rounds of Run (DefaultMonitorInterval).
	Interval time.Duration
	// Timeout bounds one round (DefaultMonitorTimeout).
	Timeout time.Duration
	// OnRound, when not nil, is told every round's results (to set a
	// gauge), on the round's goroutine.
	OnRound func([]CheckStatus)
}

// Monitor checks dependencies whose trouble must not make the process
// unready, since it would make every replica unready at once (QPS, which
// users with a session do not need): it checks them in the background,
// one round at a time, and keeps the last results for /healthz. It is
// safe for concurrent use.
type Monitor struct {
	name     string
	checks   func() []Check
	interval time.Duration
	timeout  time.Duration
	onRound  func([]CheckStatus)

	round sync.Mutex // held by the round in progress
	mu    sync.Mutex // guards last
	last  []CheckStatus
}

// CheckStatus is the last result of one of a Monitor's checks.
type CheckStatus struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Error says why the check failed ("" when Up), with URL queries
	// removed.
	Error string `json:"error,omitempty"`
	// CheckedAt is when the check ran.
	CheckedAt time.Time `json:"checked_at"`
	// DurationSeconds is how long the probe took.
	DurationSeconds float64 `json:"duration_seconds"`
}

// NewMonitor returns a Monitor named name (its key in /healthz' JSON)
// over the checks that checks returns at each round (the set may change
// with a configuration reload).
func NewMonitor(name string, checks func() []Check, opts MonitorOptions) *Monitor {
	m := &Monitor{name: name, checks: checks, interval: opts.Interval, timeout: opts.Timeout, onRound: opts.OnRound}
	if m.interval <= 0 {
		m.interval = DefaultMonitorInterval
	}
	if m.timeout <= 0 {
		m.timeout = DefaultMonitorTimeout
	}
	return m
}

// Name returns the Monitor's name.
func (m *Monitor) Name() string { return m.name }

// Run checks at once, then every Interval, until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check runs one round of checks now, concurrently and within the
// Timeout, records and returns the results.
func (m *Monitor) Check(ctx context.Context) []CheckStatus {
	m.round.Lock()
	defer m.round.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	checks := m.checks()
	res := make([]CheckStatus, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			start := time.Now()
			err := c.Probe(ctx)
			s := CheckStatus{Name: c.Name, Up: err == nil, CheckedAt: start, DurationSeconds: time.Since(start).Seconds()}
			if err != nil {
				s.Error = redactQueries(err.Error())
			}
			res[i] = s
		})
	}
	wg.Wait()
	m.mu.Lock()
	m.last = res
	m.mu.Unlock()
	if m.onRound != nil {
		m.onRound(res)
	}
	return res
}

// Status returns the last round's results (nil before the first).
func (m *Monitor) Status() []CheckStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// urlQuery matches the query of a URL in an error text (Go's url.Error
// quotes the whole URL): a client's xrfkey or a ticket must not reach
// /healthz.
var urlQuery = regexp.MustCompile(`\?[^\s"']*`)

// redactQueries removes URL queries from an error text.
func redactQueries(s string) string { return urlQuery.ReplaceAllString(s, "") }
