package identity

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/fakeclock"
)

// runSessionStoreTests is the SessionStore conformance suite; every
// implementation runs it. newStore returns an empty store reading the
// time from now.
func runSessionStoreTests(t *testing.T, newStore func(t *testing.T, now func() time.Time) SessionStore) {
	ctx := context.Background()
	t.Run("put get delete", func(t *testing.T) {
		s := newStore(t, time.Now)
		if _, ok, err := s.Get(ctx, "a"); ok || err != nil {
			t.Fatalf("Get(missing) = %v, %v; want false, nil", ok, err)
		}
		if err := s.Put(ctx, "a", []byte("one"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "b", []byte("two"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.Get(ctx, "a"); string(got) != "one" || !ok || err != nil {
			t.Errorf("Get(a) = %q, %v, %v; want one", got, ok, err)
		}
		if err := s.Put(ctx, "a", []byte("three"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.Get(ctx, "a"); string(got) != "three" {
			t.Errorf("Get(a) after overwrite = %q, want three", got)
		}
		if err := s.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Get(ctx, "a"); ok {
			t.Error("Get(a) after Delete found it")
		}
		if got, ok, _ := s.Get(ctx, "b"); string(got) != "two" || !ok {
			t.Errorf("Get(b) = %q, %v; want two", got, ok)
		}
		if err := s.Delete(ctx, "missing"); err != nil {
			t.Errorf("Delete(missing) = %v", err)
		}
	})
	t.Run("ttl", func(t *testing.T) {
		clock := fakeclock.New()
		s := newStore(t, clock.Now)
		s.Put(ctx, "short", []byte("x"), time.Minute)
		s.Put(ctx, "long", []byte("y"), time.Hour)
		clock.Advance(2 * time.Minute)
		if _, ok, _ := s.Get(ctx, "short"); ok {
			t.Error("Get(short) found an expired entry")
		}
		if _, ok, _ := s.Get(ctx, "long"); !ok {
			t.Error("Get(long) did not find an unexpired entry")
		}
	})
	t.Run("data is copied", func(t *testing.T) {
		s := newStore(t, time.Now)
		data := []byte("abc")
		s.Put(ctx, "a", data, time.Hour)
		data[0] = 'X'
		got, _, _ := s.Get(ctx, "a")
		got[1] = 'Y'
		if again, _, _ := s.Get(ctx, "a"); string(again) != "abc" {
			t.Errorf("Get = %q after the caller's slices changed, want abc", again)
		}
	})
}

func TestMemorySessions(t *testing.T) {
	runSessionStoreTests(t, func(_ *testing.T, now func() time.Time) SessionStore { return NewMemorySessions(now) })
}

func TestMemorySessionsSweep(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New()
	m := NewMemorySessions(clock.Now)
	for i := range 100 {
		m.Put(ctx, fmt.Sprint(i), []byte("x"), time.Minute)
	}
	m.Put(ctx, "long", []byte("x"), time.Hour)
	clock.Advance(memorySweepInterval + time.Second)
	// Expired entries nobody reads again go at the next Put after the
	// sweep interval.
	m.Put(ctx, "new", []byte("x"), time.Hour)
	if got := m.len(); got != 2 {
		t.Errorf("len after sweep = %d, want 2", got)
	}
	if err := m.Put(ctx, "new", nil, 0); err != nil || m.len() != 1 {
		t.Errorf("Put with ttl 0 = %v, len %d; want it deleted", err, m.len())
	}
}
