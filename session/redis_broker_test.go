package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
)

// busyRedis is a replica's Redis store that reports each refused Lock
// (ErrLocked) on busy, which the replicas of a test share, so that the
// test knows a replica is waiting for another.
type busyRedis struct {
	*Redis
	busy chan string
}

func (b *busyRedis) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	unlock, err := b.Redis.Lock(ctx, key, ttl)
	if errors.Is(err, ErrLocked) {
		select {
		case b.busy <- key:
		default:
		}
	}
	return unlock, err
}

// replicaLogin is a Loginer shared by replicas: it counts logins per user,
// reports each start on started, and holds a user's login while gates has
// an open channel for them. The next fail[user] logins of a user fail.
type replicaLogin struct {
	started chan string
	n       atomic.Int64

	mu     sync.Mutex
	counts map[string]int
	gates  map[string]chan struct{}
	fail   map[string]int
}

func newReplicaLogin() *replicaLogin {
	return &replicaLogin{
		started: make(chan string, 100),
		counts:  map[string]int{}, gates: map[string]chan struct{}{}, fail: map[string]int{},
	}
}

func (l *replicaLogin) Login(ctx context.Context, u identity.User) (*http.Cookie, error) {
	l.mu.Lock()
	l.counts[u.ID]++
	gate := l.gates[u.ID]
	l.mu.Unlock()
	l.started <- u.ID
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l.mu.Lock()
	fail := l.fail[u.ID] > 0
	if fail {
		l.fail[u.ID]--
	}
	l.mu.Unlock()
	if fail {
		return nil, errors.New("qps: 503")
	}
	return &http.Cookie{Name: "X-Qlik-Session", Value: fmt.Sprintf("%s-%d", u.ID, l.n.Add(1))}, nil
}

func (l *replicaLogin) count(id string) int { l.mu.Lock(); defer l.mu.Unlock(); return l.counts[id] }

func (l *replicaLogin) gate(id string) chan struct{} {
	ch := make(chan struct{})
	l.mu.Lock()
	l.gates[id] = ch
	l.mu.Unlock()
	return ch
}

func (l *replicaLogin) failNext(id string, n int) {
	l.mu.Lock()
	l.fail[id] = n
	l.mu.Unlock()
}

// replica is a Broker over a Redis store of its own, on a shared server.
type replica struct {
	*Broker
	store *busyRedis
}

// newReplicas returns n replicas sharing srv under one prefix, login,
// and the channel of refused locks.
func newReplicas(t *testing.T, srv *redisServer, login Loginer, n int) []replica {
	t.Helper()
	prefix := srv.prefix()
	busy := make(chan string, 1000)
	var rs []replica
	for range n {
		s := &busyRedis{
			Redis: newRedisStore(t, srv, srv.client(t), RedisOptions{Prefix: prefix, Idle: time.Hour, LocalTTL: time.Second}),
			busy:  busy,
		}
		rs = append(rs, replica{Broker: NewBroker(s, login, BrokerOptions{LoginTimeout: 10 * time.Second}), store: s})
	}
	return rs
}

// await fails t unless ch delivers within limit.
func await[T any](t *testing.T, ch <-chan T, limit time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("gave up after %s waiting for %s", limit, what)
		var zero T
		return zero
	}
}

// Once per user across replicas: 50 concurrent first requests of one user,
// spread over two replicas, make one Qlik login, and every request gets
// its cookie.
func TestBrokerOneLoginAcrossReplicas(t *testing.T) {
	srv := startRedis(t)
	login := newReplicaLogin()
	gate := login.gate("alice")
	rs := newReplicas(t, srv, login, 2)

	const n = 50
	var wg sync.WaitGroup
	cookies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := rs[i%2].Ensure(context.Background(), user("alice"))
			if err != nil {
				t.Errorf("Ensure on replica %d: %v", i%2, err)
			}
			cookies[i] = e.Cookie
		}()
	}
	// Hold the login until the other replica has been refused the lock
	// twice, i.e. is waiting: without the lock it would log in too.
	await(t, login.started, 5*time.Second, "the first login")
	await(t, rs[0].store.busy, 5*time.Second, "a replica refused the login lock (is the lock taken at all?)")
	await(t, rs[0].store.busy, 5*time.Second, "a replica refused the login lock again")
	close(gate)
	wg.Wait()

	if got := login.count("alice"); got != 1 {
		t.Errorf("logins across two replicas = %d, want 1", got)
	}
	for i, c := range cookies {
		if c == "" || c != cookies[0] {
			t.Fatalf("request %d got cookie %q, request 0 %q: want the one session", i, c, cookies[0])
		}
	}
	for i, r := range rs {
		if e, ok, _ := r.Peek(context.Background(), user("alice")); !ok || e.Cookie != cookies[0] {
			t.Errorf("replica %d's jar has %+v, %v; want %q", i, e, ok, cookies[0])
		}
	}
}

// A slow login of X on replica A holds X's lock only: Y is logged in on
// replica B meanwhile, and X's request on B waits for A's login.
func TestBrokerReplicasDoNotBlockOtherUsers(t *testing.T) {
	srv := startRedis(t)
	login := newReplicaLogin()
	gate := login.gate("x")
	rs := newReplicas(t, srv, login, 2)
	a, b := rs[0], rs[1]

	xOnA := make(chan Entry, 1)
	go func() { e, _ := a.Ensure(context.Background(), user("x")); xOnA <- e }()
	await(t, login.started, 5*time.Second, "x's login on A")
	xOnB := make(chan Entry, 1)
	go func() { e, _ := b.Ensure(context.Background(), user("x")); xOnB <- e }()
	await(t, b.store.busy, 5*time.Second, "B to wait for x's login on A")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if e, err := b.Ensure(ctx, user("y")); err != nil || e.Cookie == "" {
		t.Fatalf("Ensure(y) on B during x's slow login on A = %+v, %v", e, err)
	}
	select {
	case e := <-xOnB:
		t.Fatalf("x's Ensure on B returned %+v before A's login finished", e)
	default:
	}
	close(gate)
	ea := await(t, xOnA, 5*time.Second, "x's Ensure on A")
	eb := await(t, xOnB, 5*time.Second, "x's Ensure on B")
	if ea.Cookie == "" || eb.Cookie != ea.Cookie {
		t.Errorf("x's cookie on A %q, on B %q; want A's login's on both", ea.Cookie, eb.Cookie)
	}
	if got := login.count("x"); got != 1 {
		t.Errorf("x's logins = %d, want 1", got)
	}
}

// When the replica holding the lock fails to log in, it releases the lock
// and a waiting replica logs in itself instead of waiting out the TTL.
func TestBrokerLockHolderFails(t *testing.T) {
	srv := startRedis(t)
	login := newReplicaLogin()
	gate := login.gate("alice")
	login.failNext("alice", 1) // A's; B's login starts after A's ended
	rs := newReplicas(t, srv, login, 2)
	a, b := rs[0], rs[1]

	errA := make(chan error, 1)
	go func() { _, err := a.Ensure(context.Background(), user("alice")); errA <- err }()
	await(t, login.started, 5*time.Second, "the login on A")
	onB := make(chan Entry, 1)
	go func() { e, _ := b.Ensure(context.Background(), user("alice")); onB <- e }()
	await(t, b.store.busy, 5*time.Second, "B to wait for the login on A")

	close(gate)
	if err := await(t, errA, 5*time.Second, "A's failed login"); err == nil {
		t.Fatal("A's Ensure = nil error, want its login's")
	}
	e := await(t, onB, 5*time.Second, "B's own login after A's failed")
	if e.Cookie == "" {
		t.Error("B's Ensure returned no cookie")
	}
	if got := login.count("alice"); got != 2 {
		t.Errorf("logins = %d, want 2 (A's failed, B's)", got)
	}
}

// A lock left by a replica that died frees itself after its TTL, and a
// waiting replica then logs in.
func TestBrokerLockOfDeadReplicaExpires(t *testing.T) {
	srv := startRedis(t)
	login := newReplicaLogin()
	rs := newReplicas(t, srv, login, 1)
	if _, err := rs[0].store.Redis.Lock(context.Background(), user("alice").Key(), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := rs[0].Ensure(ctx, user("alice"))
	if err != nil || e.Cookie == "" {
		t.Fatalf("Ensure behind a dead replica's lock = %+v, %v", e, err)
	}
	if got := login.count("alice"); got != 1 {
		t.Errorf("logins = %d, want 1", got)
	}
}
