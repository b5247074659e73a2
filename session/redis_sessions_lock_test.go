package session

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
)

// RedisSessions is the identity.Locker of OIDC refreshes (issue 18): one
// holder per name across replicas, under a namespace of its own.
func TestRedisSessionsLock(t *testing.T) {
	srv := startRedis(t)
	prefix := srv.prefix()
	ctx := context.Background()
	replica := func() *RedisSessions {
		s, err := NewRedisSessions(srv.client(t), RedisSessionsOptions{Prefix: prefix, Keys: [][]byte{keyNew}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := replica(), replica()

	unlock, err := a.Lock(ctx, "oidc-refresh:x", time.Hour)
	if err != nil {
		t.Fatalf("Lock = %v", err)
	}
	if _, err := b.Lock(ctx, "oidc-refresh:x", time.Hour); !errors.Is(err, identity.ErrLocked) {
		t.Errorf("Lock of a held name on another replica = %v, want identity.ErrLocked", err)
	}
	if u, err := b.Lock(ctx, "oidc-refresh:y", time.Hour); err != nil {
		t.Errorf("Lock of another name = %v", err)
	} else {
		u(ctx)
	}
	if err := unlock(ctx); err != nil {
		t.Fatalf("unlock = %v", err)
	}
	unlockB, err := b.Lock(ctx, "oidc-refresh:x", time.Hour)
	if err != nil {
		t.Fatalf("Lock after unlock = %v", err)
	}
	unlockB(ctx)

	// Its own namespace: the jar's lock of the same name is another lock,
	// and the key is where the documentation says.
	jar := newRedisStore(t, srv, srv.client(t), RedisOptions{Prefix: prefix})
	unlockJar, err := jar.Lock(ctx, "oidc-refresh:x", time.Hour)
	if err != nil {
		t.Fatalf("the jar's Lock of the same name = %v", err)
	}
	unlockA, err := a.Lock(ctx, "oidc-refresh:x", time.Hour)
	if err != nil {
		t.Fatalf("Lock while the jar holds the same name = %v", err)
	}
	if n, err := srv.client(t).Exists(ctx, prefix+"lock:login:oidc-refresh:x", prefix+"lock:oidc-refresh:x").Result(); err != nil || n != 2 {
		t.Errorf("lock keys in Redis = %d, %v; want %slock:login:oidc-refresh:x and the jar's", n, err, prefix)
	}
	unlockJar(ctx)
	unlockA(ctx)

	// A lock that expired and was taken again stays its new holder's.
	stale, err := a.Lock(ctx, "oidc-refresh:z", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var fresh func(context.Context) error
	pollUntil(t, 5*time.Second, "the 100ms lock to free itself", func() bool {
		fresh, err = b.Lock(ctx, "oidc-refresh:z", time.Hour)
		return err == nil
	})
	stale(ctx)
	if _, err := a.Lock(ctx, "oidc-refresh:z", time.Hour); !errors.Is(err, identity.ErrLocked) {
		t.Errorf("Lock after a stale holder's unlock = %v, want identity.ErrLocked: the new holder's lock was released", err)
	}
	fresh(ctx)
}
