package session

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sensegate/sensegate/tooling/redistest"
)

// redisServer is the test's own redis-server (see package redistest).
type redisServer struct{ *redistest.Server }

// startRedis starts a redis-server for t and stops it when t ends.
func startRedis(t *testing.T) *redisServer { return &redisServer{redistest.Start(t)} }

// client returns a client of s, closed when t ends, dialled the way
// sensegate dials.
func (s *redisServer) client(t *testing.T) *redis.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialRedis(ctx, RedisConfig{Addr: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// prefix returns a key prefix no other store of s has used.
func (s *redisServer) prefix() string { return s.Prefix() }
