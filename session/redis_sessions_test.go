package session

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
)

// TestRedisSessions replicates identity's SessionStore conformance suite
// (runSessionStoreTests, unexported in identity's tests) on RedisSessions,
// with real time for the TTL case.
func TestRedisSessions(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	newStore := func(t *testing.T) identity.SessionStore {
		s, err := NewRedisSessions(c, RedisSessionsOptions{Prefix: srv.prefix(), Keys: [][]byte{keyNew}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
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
		s.Put(ctx, "short", []byte("x"), 200*time.Millisecond)
		s.Put(ctx, "long", []byte("y"), time.Hour)
		if _, ok, _ := s.Get(ctx, "short"); !ok {
			t.Fatal("Get(short) right after Put found nothing")
		}
		pollUntil(t, 5*time.Second, "the 200ms entry to expire", func() bool {
			_, ok, _ := s.Get(ctx, "short")
			return !ok
		})
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
	t.Run("encrypted and bound to its key", func(t *testing.T) {
		prefix := srv.prefix()
		s, _ := NewRedisSessions(c, RedisSessionsOptions{Prefix: prefix, Keys: [][]byte{keyNew}})
		secret := []byte("refresh-token-of-alice")
		s.Put(ctx, "alice", secret, time.Hour)
		raw, err := c.Get(ctx, prefix+"login:alice").Bytes()
		if err != nil {
			t.Fatalf("raw GET: %v", err)
		}
		if bytes.Contains(raw, secret) || bytes.Contains(raw, []byte("alice")) {
			t.Errorf("the value in Redis holds the data in the clear: %q", raw)
		}
		c.Set(ctx, prefix+"login:mallory", raw, time.Hour)
		if got, ok, err := s.Get(ctx, "mallory"); ok || err != nil {
			t.Errorf("Get(mallory) with alice's value = %q, %v, %v; want a miss", got, ok, err)
		}
		rotated, _ := NewRedisSessions(c, RedisSessionsOptions{Prefix: prefix, Keys: [][]byte{keyOld, keyNew}})
		if got, ok, _ := rotated.Get(ctx, "alice"); !ok || !bytes.Equal(got, secret) {
			t.Errorf("Get with [old, new] of a value sealed with new = %q, %v", got, ok)
		}
	})
}
