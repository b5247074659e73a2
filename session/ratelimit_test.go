package session

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/fakeclock"
)

// A user over the login rate gets a *RateLimitError saying when to come
// back, and no login is made; other users are not held back; the bucket
// refills at the configured rate; attributes and case do not make another
// user.
func TestBrokerLoginRate(t *testing.T) {
	clock := fakeclock.New()
	login := newFakeLogin()
	jar := NewMemory(time.Hour, clock.Now)
	b := NewBroker(jar, login, BrokerOptions{Now: clock.Now, LoginRate: LoginRate{PerMinute: 2, Burst: 2}})
	ctx := context.Background()
	relogin := func(u identity.User) error {
		t.Helper()
		if err := jar.Delete(ctx, u.Key(), ""); err != nil {
			t.Fatal(err)
		}
		_, err := b.Ensure(ctx, u)
		return err
	}

	alice := user("alice")
	for i := range 2 {
		if err := relogin(alice); err != nil {
			t.Fatalf("login %d of the burst: %v", i+1, err)
		}
	}
	// The same Qlik user, spelt otherwise and with attributes.
	other := identity.User{Directory: "acme", ID: "ALICE", Attributes: []identity.Attribute{{Key: "Group", Value: "Sales"}}}
	for _, u := range []identity.User{alice, other} {
		err := relogin(u)
		var rl *RateLimitError
		if !errors.As(err, &rl) || !errors.Is(err, ErrLoginRateLimited) || rl.RetryAfter != 30*time.Second {
			t.Fatalf("login of %v over the rate = %v, want a RateLimitError with RetryAfter 30s (2 a minute)", u, err)
		}
	}
	if got := login.count(`ACME\alice`); got != 2 {
		t.Errorf("logins of alice = %d, want 2: none over the rate", got)
	}
	if err := relogin(user("bob")); err != nil {
		t.Errorf("bob held back by alice's rate: %v", err)
	}
	// An entry in the jar needs no login, and takes nothing from the bucket.
	if _, err := b.Ensure(ctx, user("bob")); err != nil {
		t.Errorf("bob's second request: %v", err)
	}

	clock.Advance(29 * time.Second)
	if err := relogin(alice); !errors.Is(err, ErrLoginRateLimited) {
		t.Errorf("alice after 29s = %v, want still limited", err)
	}
	clock.Advance(time.Second)
	if err := relogin(alice); err != nil {
		t.Errorf("alice after 30s = %v, want one more login", err)
	}
	if got := login.count(`ACME\alice`); got != 3 {
		t.Errorf("logins of alice = %d, want 3", got)
	}
}

// Without a LoginRate logins are not limited.
func TestBrokerNoLoginRate(t *testing.T) {
	login := newFakeLogin()
	jar := NewMemory(time.Hour, nil)
	b := NewBroker(jar, login, BrokerOptions{})
	for i := range 50 {
		jar.Delete(context.Background(), user("alice").Key(), "")
		if _, err := b.Ensure(context.Background(), user("alice")); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
}

// The limiter forgets buckets that have filled again, and keeps at most
// maxLimitedUsers, however many users log in.
func TestLoginLimiterBounded(t *testing.T) {
	l := newLoginLimiter(LoginRate{PerMinute: 6, Burst: 3})
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for i := range minSweep {
		if _, ok := l.allow(fmt.Sprint("u", i), t0); !ok {
			t.Fatalf("first login of u%d refused", i)
		}
	}
	// 3 tokens at 6 a minute: full again after 30s.
	refilled := t0.Add(30 * time.Second)
	l.allow("late", refilled)
	if n := l.size(); n != 1 {
		t.Errorf("buckets after the others refilled = %d, want 1", n)
	}

	// A flood of new users within one instant: none refills.
	for i := range maxLimitedUsers + minSweep {
		l.allow(fmt.Sprint("flood", i), refilled)
		if n := l.size(); n > maxLimitedUsers {
			t.Fatalf("buckets after %d users = %d, want at most %d", i+1, n, maxLimitedUsers)
		}
	}
	// A bucket that was not dropped still limits.
	l2 := newLoginLimiter(LoginRate{PerMinute: 60, Burst: 1})
	if _, ok := l2.allow("x", t0); !ok {
		t.Fatal("first login refused")
	}
	if d, ok := l2.allow("x", t0.Add(100*time.Millisecond)); ok || d != 900*time.Millisecond {
		t.Errorf("second login 100ms later = %v, %v; want refused for 900ms", d, ok)
	}
	if newLoginLimiter(LoginRate{}) != nil {
		t.Error("the zero LoginRate made a limiter")
	}
}
