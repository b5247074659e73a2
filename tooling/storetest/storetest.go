// Package storetest is the conformance suite of identity.SessionStore, the
// store of logins: every implementation (identity.MemorySessions,
// session.RedisSessions) runs the same cases.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
)

// Clock is what the suite needs of a store's time: Advance moves the
// time the store reads; nil when the store keeps real time (Redis
// expires keys itself).
type Clock interface {
	Now() time.Time
	Advance(d time.Duration)
}

// SessionStore runs the conformance cases on the stores newStore returns,
// each empty, reading the time from clock.Now (time.Now when clock is
// nil, and then the expiry case waits for real time, bounded).
func SessionStore(t *testing.T, clock Clock, newStore func(t *testing.T) identity.SessionStore) {
	ctx := context.Background()
	t.Run("put get delete", func(t *testing.T) {
		s := newStore(t)
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
		if err := s.Put(ctx, "b", []byte("two"), 0); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Get(ctx, "b"); ok {
			t.Error("Put with ttl 0 kept the entry")
		}
	})
	t.Run("ttl", func(t *testing.T) {
		s := newStore(t)
		short := time.Minute
		if clock == nil {
			short = 200 * time.Millisecond
		}
		s.Put(ctx, "short", []byte("x"), short)
		s.Put(ctx, "long", []byte("y"), time.Hour)
		if _, ok, _ := s.Get(ctx, "short"); !ok {
			t.Fatal("Get(short) right after Put found nothing")
		}
		if clock != nil {
			clock.Advance(2 * short)
		}
		expired := func() bool { _, ok, _ := s.Get(ctx, "short"); return !ok }
		for deadline := time.Now().Add(5 * time.Second); !expired(); {
			if clock != nil || time.Now().After(deadline) {
				t.Fatal("Get(short) found an expired entry")
			}
			time.Sleep(5 * time.Millisecond) // real time: Redis expires the key
		}
		if _, ok, _ := s.Get(ctx, "long"); !ok {
			t.Error("Get(long) did not find an unexpired entry")
		}
	})
	t.Run("data is copied", func(t *testing.T) {
		s := newStore(t)
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
