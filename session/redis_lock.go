package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// unlockScript deletes the lock KEYS[1] only if it still holds ARGV[1],
// the token of whoever releases it: a lock that expired and was taken by
// another replica stays theirs.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Lock implements Locker with SET NX PX under the prefix's "lock:"
// namespace, holding a random token that unlock compares before deleting.
func (r *Redis) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	return redisLock(ctx, r.c, r.lockPrefix+key, ttl)
}

// Lock implements Locker (identity.Locker), so that replicas refresh each
// OIDC login once: as Redis.Lock, under the prefix's "lock:login:"
// namespace (user keys, the jar's lock names, start with a digit: the two
// never meet).
func (s *RedisSessions) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	return redisLock(ctx, s.c, s.lockPrefix+key, ttl)
}

// redisLock takes the lock lk for ttl with SET NX PX, holding a random
// token that unlock compares before deleting, or returns ErrLocked if
// another holder has it.
func redisLock(ctx context.Context, c redis.UniversalClient, lk string, ttl time.Duration) (func(context.Context) error, error) {
	if ttl <= 0 {
		return nil, errors.New("session: redis lock: ttl must be positive")
	}
	token := rand.Text()
	ok, err := c.SetNX(ctx, lk, token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("session: redis lock: %w", err)
	}
	if !ok {
		return nil, ErrLocked
	}
	return func(ctx context.Context) error {
		if err := unlockScript.Run(ctx, c, []string{lk}, token).Err(); err != nil {
			return fmt.Errorf("session: redis unlock: %w", err)
		}
		return nil
	}, nil
}
