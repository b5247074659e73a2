package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/seal"
)

// RedisSessions is an identity.SessionStore in Redis, so that replicas
// share the login sessions of identity providers (OIDC). Values are
// encrypted like the jar's (AES-256-GCM, authenticated with their key),
// on top of whatever the provider does itself, and expire in Redis. It is
// also an identity.Locker (redis_lock.go), so that replicas refresh each
// OIDC login once. It is safe for concurrent use.
type RedisSessions struct {
	c          redis.UniversalClient
	prefix     string
	lockPrefix string
	ring       *seal.Ring
}

// RedisSessionsOptions configure RedisSessions.
type RedisSessionsOptions struct {
	// Prefix starts the name of every key (DefaultRedisPrefix if ""):
	// sessions are Prefix+"login:"+id, locks Prefix+"lock:login:"+name.
	Prefix string
	// Keys are the AES-256 keys, as RedisOptions.Keys. Required.
	Keys [][]byte
}

// NewRedisSessions returns a SessionStore over c, which the caller keeps
// and closes. It fails only on bad Keys.
func NewRedisSessions(c redis.UniversalClient, opts RedisSessionsOptions) (*RedisSessions, error) {
	prefix, ring, err := redisKeyspace(opts.Prefix, opts.Keys)
	if err != nil {
		return nil, err
	}
	return &RedisSessions{c: c, prefix: prefix + redisLoginNS, lockPrefix: prefix + redisLockNS + redisLoginNS, ring: ring}, nil
}

// Get implements identity.SessionStore. A value that does not decrypt is
// reported as missing.
func (s *RedisSessions) Get(ctx context.Context, id string) ([]byte, bool, error) {
	k := s.prefix + id
	v, err := s.c.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("session: redis get: %w", err)
	}
	data, err := s.ring.Open(v, []byte(k))
	if err != nil {
		return nil, false, nil
	}
	return data, true, nil
}

// Put implements identity.SessionStore. A ttl that is not positive
// deletes id.
func (s *RedisSessions) Put(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return s.Delete(ctx, id)
	}
	k := s.prefix + id
	if err := s.c.Set(ctx, k, s.ring.Seal(nil, data, []byte(k)), ttl).Err(); err != nil {
		return fmt.Errorf("session: redis set: %w", err)
	}
	return nil
}

// Delete implements identity.SessionStore.
func (s *RedisSessions) Delete(ctx context.Context, id string) error {
	if err := s.c.Del(ctx, s.prefix+id).Err(); err != nil {
		return fmt.Errorf("session: redis delete: %w", err)
	}
	return nil
}

var (
	_ identity.SessionStore = (*RedisSessions)(nil)
	_ identity.Locker       = (*RedisSessions)(nil)
)
