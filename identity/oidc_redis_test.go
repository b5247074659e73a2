package identity_test

import (
	"context"
	"github.com/sensegate/sensegate/seal"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/tooling/redistest"
)

// Issue 18: with a Redis store, two replicas refreshing a login at once
// at a provider that rotates refresh tokens signed the user out.
func TestOIDCRefreshAcrossReplicasOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	prefix := srv.Prefix()
	key := make([]byte, seal.KeySize)
	identity.RefreshAcrossReplicas(t, func(t *testing.T) identity.ReplicaStore {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := session.DialRedis(ctx, session.RedisConfig{Addr: srv.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := session.NewRedisSessions(c, session.RedisSessionsOptions{Prefix: prefix, Keys: [][]byte{key}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
