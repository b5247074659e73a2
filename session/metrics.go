package session

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/identity"
)

// Store operations, the op label of sensegate_store_errors_total.
const (
	opGet    = "get"
	opPut    = "put"
	opDelete = "delete"
	opPing   = "ping"
)

// Metrics are the broker's Prometheus metrics:
//
//	sensegate_tickets_total{result="issued"|"failed"|"rate_limited"}
//	                                                   Qlik logins (ticket or session API); rate_limited:
//	                                                   refused over the user's login rate, QPS not asked
//	sensegate_jar_lookups_total{result="hit"|"miss"}   Ensure's jar lookups
//	sensegate_store_errors_total{op}                   failed store calls (get, put, delete, ping)
//	sensegate_qlik_sessions_abandoned_total            sessions ended at QPS by Abandon
//	sensegate_qlik_login_duration_seconds{result}      time of each Qlik login (issued, failed)
//
// Every counter is created with its labels when Metrics is made, so that
// recording is one atomic add. A nil *Metrics records nothing.
type Metrics struct {
	ticketsIssued, ticketsFailed prometheus.Counter
	ticketsRateLimited           prometheus.Counter
	jarHit, jarMiss              prometheus.Counter
	storeErrors                  map[string]prometheus.Counter // by op; read-only after NewMetrics
	abandonedSessions            prometheus.Counter
	loginOK, loginFailed         prometheus.Observer
}

// loginBuckets are the buckets of sensegate_qlik_login_duration_seconds: a
// login is a ticket request and a redemption, tens of milliseconds on a
// healthy Qlik, up to the login timeout on a struggling one.
var loginBuckets = []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics creates the broker's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	tickets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_tickets_total",
		Help: "Qlik logins (ticket request and redemption, or session API) by result: issued, failed, or rate_limited (over the user's qlik.login_rate, QPS not asked).",
	}, []string{"result"})
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_jar_lookups_total",
		Help: "Lookups of a user's Qlik session in the jar by result: hit, or miss (a login follows).",
	}, []string{"result"})
	storeErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sensegate_store_errors_total",
		Help: "Failed calls to the session store by operation.",
	}, []string{"op"})
	abandoned := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sensegate_qlik_sessions_abandoned_total",
		Help: "Qlik sessions sensegate stopped using while Qlik might still hold them (a socket refused for the parallel-session cap, or dropped before its greeting), ended at QPS so that they do not count toward the user's 5.",
	})
	loginTime := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sensegate_qlik_login_duration_seconds",
		Help:    "Time of each Qlik login (ticket request and redemption, or session API, retries included), by result: issued or failed.",
		Buckets: loginBuckets,
	}, []string{"result"})
	for _, c := range []prometheus.Collector{tickets, lookups, storeErrors, abandoned, loginTime} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m := &Metrics{
		ticketsIssued:      tickets.WithLabelValues("issued"),
		ticketsFailed:      tickets.WithLabelValues("failed"),
		ticketsRateLimited: tickets.WithLabelValues("rate_limited"),
		jarHit:             lookups.WithLabelValues("hit"),
		jarMiss:            lookups.WithLabelValues("miss"),
		storeErrors:        map[string]prometheus.Counter{},
		abandonedSessions:  abandoned,
		loginOK:            loginTime.WithLabelValues("issued"),
		loginFailed:        loginTime.WithLabelValues("failed"),
	}
	for _, op := range []string{opGet, opPut, opDelete, opPing} {
		m.storeErrors[op] = storeErrors.WithLabelValues(op)
	}
	return m, nil
}

func (m *Metrics) lookup(hit bool) {
	switch {
	case m == nil:
	case hit:
		m.jarHit.Inc()
	default:
		m.jarMiss.Inc()
	}
}

// abandoned counts a session ended at QPS by Abandon.
func (m *Metrics) abandoned() {
	if m != nil {
		m.abandonedSessions.Inc()
	}
}

// rateLimited counts a login refused over the user's login rate.
func (m *Metrics) rateLimited() {
	if m != nil {
		m.ticketsRateLimited.Inc()
	}
}

// login counts a login that took d and ended with err.
func (m *Metrics) login(err error, d time.Duration) {
	switch {
	case m == nil:
	case err == nil:
		m.ticketsIssued.Inc()
		m.loginOK.Observe(d.Seconds())
	default:
		m.ticketsFailed.Inc()
		m.loginFailed.Observe(d.Seconds())
	}
}

func (m *Metrics) storeError(op string) {
	if m != nil {
		m.storeErrors[op].Inc()
	}
}

// LoginFunc is told of every Qlik login the broker makes (once per login,
// not per waiting caller): the user, the new session (zero on failure)
// and the login's error. ctx carries the values of the request that
// started the login (its request id, say) but is never cancelled by it.
// It is called on the login's goroutine: keep it quick. Entry.Cookie is a
// secret: never log it.
type LoginFunc func(ctx context.Context, u identity.User, e Entry, err error)

// Pinger is a Store that can tell whether its backend answers (a store
// over the network). A Store that is not one is always ready.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Ping reports whether the jar is usable: the store's Ping when the store
// is a Pinger, nil otherwise (memory is always ready).
func (b *Broker) Ping(ctx context.Context) error {
	p, ok := b.store.(Pinger)
	if !ok {
		return nil
	}
	if err := p.Ping(ctx); err != nil {
		b.metrics.storeError(opPing)
		return err
	}
	return nil
}
