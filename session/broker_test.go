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

// fakeLogin counts logins per user; a user listed in block waits until its
// channel is closed.
type fakeLogin struct {
	mu     sync.Mutex
	counts map[string]int
	block  map[string]chan struct{}
	fail   atomic.Bool
	n      atomic.Int64
}

func newFakeLogin() *fakeLogin {
	return &fakeLogin{counts: map[string]int{}, block: map[string]chan struct{}{}}
}

func (f *fakeLogin) Login(ctx context.Context, u identity.User) (*http.Cookie, error) {
	f.mu.Lock()
	f.counts[u.String()]++
	ch := f.block[u.String()]
	f.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.fail.Load() {
		return nil, errors.New("qps: 503")
	}
	return &http.Cookie{Name: "X-Qlik-Session", Value: fmt.Sprintf("%s-%d", u.ID, f.n.Add(1))}, nil
}

func (f *fakeLogin) count(u string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.counts[u] }

func user(id string) identity.User { return identity.User{Directory: "ACME", ID: id} }

func TestBrokerOneLoginForConcurrentFirstRequests(t *testing.T) {
	login := newFakeLogin()
	gate := make(chan struct{})
	login.block[`ACME\alice`] = gate
	b := NewBroker(NewMemory(time.Hour, nil), login, BrokerOptions{})
	const n = 100
	var wg sync.WaitGroup
	cookies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := b.Ensure(context.Background(), user("alice"))
			if err != nil {
				t.Errorf("Ensure: %v", err)
			}
			cookies[i] = e.Cookie
		}()
	}
	// Let the single login finish only once every caller is waiting on it
	// or has not yet reached the broker; either way one login happens.
	close(gate)
	wg.Wait()
	if got := login.count(`ACME\alice`); got != 1 {
		t.Errorf("logins = %d, want 1", got)
	}
	for i, c := range cookies {
		if c != cookies[0] {
			t.Fatalf("caller %d got cookie %q, caller 0 %q: want one shared session", i, c, cookies[0])
		}
	}
}

func TestBrokerUsersDoNotWaitForEachOther(t *testing.T) {
	login := newFakeLogin()
	slow := make(chan struct{})
	login.block[`ACME\slow`] = slow
	b := NewBroker(NewMemory(time.Hour, nil), login, BrokerOptions{})
	slowDone := make(chan error, 1)
	go func() { _, err := b.Ensure(context.Background(), user("slow")); slowDone <- err }()

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Ensure(context.Background(), user(fmt.Sprint("u", i))); err != nil {
				t.Errorf("Ensure(u%d): %v", i, err)
			}
		}()
	}
	wg.Wait() // would hang if a slow login blocked the others
	for i := range 20 {
		if got := login.count(fmt.Sprintf(`ACME\u%d`, i)); got != 1 {
			t.Errorf("u%d logins = %d, want 1", i, got)
		}
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow login finished before release: %v", err)
	default:
	}
	close(slow)
	if err := <-slowDone; err != nil {
		t.Errorf("slow Ensure: %v", err)
	}
}

func TestBrokerCallerGivesUpLoginGoesOn(t *testing.T) {
	login := newFakeLogin()
	gate := make(chan struct{})
	login.block[`ACME\alice`] = gate
	b := NewBroker(NewMemory(time.Hour, nil), login, BrokerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := b.Ensure(ctx, user("alice")); errc <- err }()
	// Wait until the login is in flight, then cancel the caller.
	for deadline := time.Now().Add(5 * time.Second); login.count(`ACME\alice`) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("login never started")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Ensure after cancel = %v, want context.Canceled", err)
	}
	close(gate) // the login completes for the jar
	e, err := b.Ensure(context.Background(), user("alice"))
	if err != nil || e.Cookie == "" {
		t.Fatalf("Ensure after the abandoned login = %+v, %v", e, err)
	}
	if got := login.count(`ACME\alice`); got != 1 {
		t.Errorf("logins = %d, want 1 (the abandoned login filled the jar)", got)
	}
}

func TestBrokerLoginTimeout(t *testing.T) {
	login := newFakeLogin()
	login.block[`ACME\alice`] = make(chan struct{}) // never released
	b := NewBroker(NewMemory(time.Hour, nil), login, BrokerOptions{LoginTimeout: 50 * time.Millisecond})
	_, err := b.Ensure(context.Background(), user("alice"))
	if !errors.Is(err, ErrLoginTimeout) {
		t.Errorf("Ensure with a hung login = %v, want ErrLoginTimeout", err)
	}
}

func TestBrokerErrorsAreNotCached(t *testing.T) {
	login := newFakeLogin()
	login.fail.Store(true)
	b := NewBroker(NewMemory(time.Hour, nil), login, BrokerOptions{})
	if _, err := b.Ensure(context.Background(), user("alice")); err == nil {
		t.Fatal("Ensure with a failing login = nil error")
	}
	login.fail.Store(false)
	if _, err := b.Ensure(context.Background(), user("alice")); err != nil {
		t.Fatalf("Ensure after recovery = %v", err)
	}
	if got := login.count(`ACME\alice`); got != 2 {
		t.Errorf("logins = %d, want 2", got)
	}
}

func TestBrokerInvalidate(t *testing.T) {
	login := newFakeLogin()
	b := NewBroker(NewMemory(time.Hour, nil), login, BrokerOptions{})
	ctx := context.Background()
	first, _ := b.Ensure(ctx, user("alice"))
	if err := b.Invalidate(ctx, user("alice"), first.Cookie); err != nil {
		t.Fatal(err)
	}
	second, _ := b.Ensure(ctx, user("alice"))
	if second.Cookie == first.Cookie {
		t.Fatal("Ensure after Invalidate returned the refused cookie")
	}
	// A late Invalidate of the old cookie must not drop the new session.
	b.Invalidate(ctx, user("alice"), first.Cookie)
	third, _ := b.Ensure(ctx, user("alice"))
	if third.Cookie != second.Cookie || login.count(`ACME\alice`) != 2 {
		t.Errorf("late Invalidate(old) caused a new login: cookie %q (want %q), logins %d", third.Cookie, second.Cookie, login.count(`ACME\alice`))
	}
}

func TestUserKey(t *testing.T) {
	a := identity.User{Directory: "acme", ID: "Alice", Attributes: []identity.Attribute{{Key: "Group", Value: "A"}, {Key: "Group", Value: "B"}}}
	b := identity.User{Directory: "ACME", ID: "alice", Attributes: []identity.Attribute{{Key: "Group", Value: "B"}, {Key: "Group", Value: "A"}}}
	c := identity.User{Directory: "ACME", ID: "alice", Attributes: []identity.Attribute{{Key: "Group", Value: "A"}}}
	if a.Key() != b.Key() {
		t.Errorf("Key differs by case or attribute order: %q vs %q", a.Key(), b.Key())
	}
	if a.Key() == c.Key() {
		t.Errorf("Key ignores attributes: %q", a.Key())
	}
}
