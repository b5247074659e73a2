package session

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/storetest"
)

// TestRedisSessions runs the SessionStore conformance suite on
// RedisSessions, with Redis's own (real) time for the expiry case, and
// checks what is Redis's own: encryption bound to the key.
func TestRedisSessions(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	storetest.SessionStore(t, nil, func(t *testing.T) identity.SessionStore {
		s, err := NewRedisSessions(c, RedisSessionsOptions{Prefix: srv.prefix(), Keys: [][]byte{keyNew}})
		if err != nil {
			t.Fatal(err)
		}
		return s
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
