package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sensegate/sensegate/identity"
)

// failingStore fails the operations named in fail.
type failingStore struct {
	Store
	mu   sync.Mutex
	fail map[string]bool
}

func (s *failingStore) failing(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail[op] {
		return errors.New("store down")
	}
	return nil
}

func (s *failingStore) Get(ctx context.Context, key string) (Entry, bool, error) {
	if err := s.failing(opGet); err != nil {
		return Entry{}, false, err
	}
	return s.Store.Get(ctx, key)
}

func (s *failingStore) Put(ctx context.Context, key string, e Entry) error {
	if err := s.failing(opPut); err != nil {
		return err
	}
	return s.Store.Put(ctx, key, e)
}

func (s *failingStore) Delete(ctx context.Context, key, cookie string) error {
	if err := s.failing(opDelete); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key, cookie)
}

func (s *failingStore) set(op string, fail bool) { s.mu.Lock(); s.fail[op] = fail; s.mu.Unlock() }

type ctxKey struct{}

// The broker's metrics count logins by result, jar lookups by result and
// store errors by operation; OnLogin sees each login once, with the values
// of the request that started it.
func TestBrokerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	login := newFakeLogin()
	store := &failingStore{Store: NewMemory(time.Hour, nil), fail: map[string]bool{}}
	type seen struct {
		user, reqID string
		created     bool
		err         error
	}
	var (
		mu     sync.Mutex
		logins []seen
	)
	b := NewBroker(store, login, BrokerOptions{Metrics: m, OnLogin: func(ctx context.Context, u identity.User, e Entry, err error) {
		id, _ := ctx.Value(ctxKey{}).(string)
		mu.Lock()
		logins = append(logins, seen{u.String(), id, !e.Created.IsZero(), err})
		mu.Unlock()
	}})
	ctx := context.WithValue(context.Background(), ctxKey{}, "req-1")
	for range 3 {
		if _, err := b.Ensure(ctx, user("alice")); err != nil {
			t.Fatal(err)
		}
	}
	login.fail.Store(true)
	if _, err := b.Ensure(ctx, user("bob")); err == nil {
		t.Fatal("Ensure with a failing login = nil error")
	}
	login.fail.Store(false)
	store.set(opGet, true)
	b.Ensure(ctx, user("carol"))
	b.Peek(ctx, user("carol"))
	store.set(opGet, false)
	store.set(opPut, true)
	b.Ensure(ctx, user("carol")) // the login works, storing it does not
	b.Update(ctx, user("carol"), Entry{Cookie: "c"})
	store.set(opPut, false)
	store.set(opDelete, true)
	b.Invalidate(ctx, user("alice"), "x")
	b.Logout(ctx, user("alice"))

	got := gather(t, reg)
	for series, want := range map[string]float64{
		`sensegate_tickets_total{result="issued"}`:       2, // alice, carol
		`sensegate_tickets_total{result="failed"}`:       1, // bob
		`sensegate_tickets_total{result="rate_limited"}`: 0,
		`sensegate_qlik_sessions_abandoned_total{}`:      0,
		`sensegate_jar_lookups_total{result="hit"}`:      2, // alice twice
		// alice, bob and carol's second try; the Get that failed is an error
		`sensegate_jar_lookups_total{result="miss"}`: 3,
		`sensegate_store_errors_total{op="get"}`:     2,
		`sensegate_store_errors_total{op="put"}`:     2,
		`sensegate_store_errors_total{op="delete"}`:  2,
		`sensegate_store_errors_total{op="ping"}`:    0,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	if len(got) != 12 {
		t.Errorf("gathered %d series, want 12: %v", len(got), got)
	}
	// Every login is timed, by result.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	timed := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "sensegate_qlik_login_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			timed[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
	}
	if timed["issued"] != 2 || timed["failed"] != 1 {
		t.Errorf("sensegate_qlik_login_duration_seconds counts = %v, want issued 2, failed 1", timed)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []seen{{`ACME\alice`, "req-1", true, nil}, {`ACME\bob`, "req-1", false, errors.New("qps: 503")}, {`ACME\carol`, "req-1", true, nil}}
	if len(logins) != len(want) {
		t.Fatalf("OnLogin calls = %+v, want %+v", logins, want)
	}
	for i, w := range want {
		g := logins[i]
		if g.user != w.user || g.reqID != w.reqID || g.created != w.created || (g.err == nil) != (w.err == nil) {
			t.Errorf("OnLogin call %d = %+v, want %+v", i, g, w)
		}
	}
}

// A nil *Metrics records nothing and does not panic.
func TestBrokerNoMetrics(t *testing.T) {
	b := NewBroker(NewMemory(time.Hour, nil), newFakeLogin(), BrokerOptions{})
	if _, err := b.Ensure(context.Background(), user("alice")); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Errorf("Ping of a memory jar = %v, want nil (always ready)", err)
	}
}

// gather returns the counters of reg as name{label="value",…} → value.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, lp := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			m[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = mt.GetCounter().GetValue()
		}
	}
	return m
}

// The Redis store is a Pinger: readiness reaches Redis through the broker.
var _ Pinger = (*Redis)(nil)

// Broker.Ping pings a Redis jar: a server that answers is ready, one that
// does not is an error, counted as a store error.
func TestBrokerPingRedis(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := startRedis(t)
	up := NewBroker(newRedisStore(t, srv, srv.client(t), RedisOptions{}), nil, BrokerOptions{Metrics: m})
	if err := up.Ping(context.Background()); err != nil {
		t.Errorf("Ping with Redis up = %v", err)
	}
	// A port nothing listens on: the listener is closed before the ping.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	down := NewBroker(newRedisStore(t, srv, c, RedisOptions{}), nil, BrokerOptions{Metrics: m})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := down.Ping(ctx); err == nil {
		t.Error("Ping with Redis down = nil, want an error")
	}
	if got := gather(t, reg)[`sensegate_store_errors_total{op="ping"}`]; got != 1 {
		t.Errorf(`sensegate_store_errors_total{op="ping"} = %v, want 1`, got)
	}
}

// A login refused over the user's login rate is counted as rate_limited,
// and QPS is not asked.
func TestBrokerMetricsRateLimited(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	login := newFakeLogin()
	jar := NewMemory(time.Hour, nil)
	b := NewBroker(jar, login, BrokerOptions{Metrics: m, LoginRate: LoginRate{PerMinute: 1, Burst: 1}})
	ctx := context.Background()
	if _, err := b.Ensure(ctx, user("alice")); err != nil {
		t.Fatal(err)
	}
	jar.Delete(ctx, user("alice").Key(), "")
	if _, err := b.Ensure(ctx, user("alice")); !errors.Is(err, ErrLoginRateLimited) {
		t.Fatalf("second login at once = %v, want ErrLoginRateLimited", err)
	}
	got := gather(t, reg)
	if got[`sensegate_tickets_total{result="rate_limited"}`] != 1 || got[`sensegate_tickets_total{result="issued"}`] != 1 || login.count(`ACME\alice`) != 1 {
		t.Errorf("tickets %v, logins %d; want 1 issued, 1 rate_limited, 1 login", got, login.count(`ACME\alice`))
	}
}

// endingLogin is a fakeLogin that can end sessions at QPS, which knows
// the sessions in live.
type endingLogin struct {
	*fakeLogin
	mu    sync.Mutex
	live  map[string]bool
	ended []string
}

func (e *endingLogin) Login(ctx context.Context, u identity.User) (*http.Cookie, error) {
	c, err := e.fakeLogin.Login(ctx, u)
	if err == nil {
		e.mu.Lock()
		e.live[c.Value] = true
		e.mu.Unlock()
	}
	return c, err
}

func (e *endingLogin) EndSession(_ context.Context, id string) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ended = append(e.ended, id)
	ok := e.live[id]
	delete(e.live, id)
	return ok, nil
}

// Abandon drops the session from the jar and ends it at QPS, counted;
// the next Ensure logs in anew.
func TestBrokerAbandon(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	login := &endingLogin{fakeLogin: newFakeLogin(), live: map[string]bool{}}
	b := NewBroker(NewMemory(time.Hour, nil), login, BrokerOptions{Metrics: m})
	ctx := context.Background()
	e, err := b.Ensure(ctx, user("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if ended, err := b.Abandon(ctx, user("alice"), e); !ended || err != nil {
		t.Fatalf("Abandon = %v, %v; want ended", ended, err)
	}
	if ended, _ := b.Abandon(ctx, user("alice"), e); ended {
		t.Error("Abandon of a session QPS no longer has reported it ended")
	}
	next, err := b.Ensure(ctx, user("alice"))
	if err != nil || next.Cookie == e.Cookie || login.count(`ACME\alice`) != 2 {
		t.Errorf("Ensure after Abandon = %q, %v with %d logins; want a new session", next.Cookie, err, login.count(`ACME\alice`))
	}
	if got := gather(t, reg)["sensegate_qlik_sessions_abandoned_total{}"]; got != 1 {
		t.Errorf("abandoned sessions = %v, want 1", got)
	}
}
