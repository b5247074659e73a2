package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sensegate/sensegate/internal/backoff"
	"go.uber.org/zap"
)

// Locker is implemented by stores that replicas share (session.Redis,
// session.RedisSessions), so that what must happen once among them
// happens once: an OIDC login's refresh here (an identity provider that
// rotates refresh tokens accepts each one once, and a replica refreshing
// with a token another replica just used would be refused and end the
// login), a user's Qlik login in package session (session.Locker is this
// interface).
type Locker interface {
	// Lock takes the lock named key for ttl, after which it frees itself,
	// or returns ErrLocked at once if another holder has it. unlock
	// releases the lock if it is still the caller's.
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(context.Context) error, err error)
}

// ErrLocked is returned by Locker.Lock when another holder has the lock.
var ErrLocked = errors.New("lock held elsewhere")

// Refresh lock timing: the lock outlives a refresh (bounded by
// refreshTimeout) by refreshLockMargin, so that it frees itself when its
// holder dies; a replica that finds it taken reads the session again
// between refreshPollMin and refreshPollMax apart, doubling, with jitter.
const (
	refreshLockMargin   = 5 * time.Second // the time to store the tokens
	refreshPollMin      = 5 * time.Millisecond
	refreshPollMax      = 250 * time.Millisecond
	refreshUnlockBudget = 5 * time.Second
)

// refreshLockKey is the lock of login id's refresh: a fixed prefix and
// the id, so that distinct ids have distinct keys.
func refreshLockKey(id string) string { return "oidc-refresh:" + id }

// refreshOnce refreshes login id once among the replicas sharing the
// store. Without a Locker it refreshes at once (doRefresh). With one, the
// replica that takes the login's lock refreshes, after reading the login
// again under the lock: if another replica has refreshed it meanwhile,
// its tokens are used and the provider is not called. A replica that
// finds the lock taken waits, reading the login again with a growing
// delay, until its tokens are fresh (the holder refreshed it), it is gone
// (the holder's refresh was refused), or the lock frees (the holder
// failed or died) and it takes it; ctx bounds the wait.
func (o *OIDC) refreshOnce(ctx context.Context, id string) (User, error) {
	if o.locker == nil {
		return o.doRefresh(ctx, id)
	}
	key := refreshLockKey(id)
	poll := backoff.New(refreshPollMin, refreshPollMax)
	defer poll.Stop()
	for {
		unlock, err := o.locker.Lock(ctx, key, refreshTimeout+refreshLockMargin)
		if err == nil {
			u, err := o.doRefresh(ctx, id) // reads the login again first
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshUnlockBudget)
			if uerr := unlock(uctx); uerr != nil {
				o.log.Warn("refresh unlock failed: the lock frees itself", zap.Error(uerr))
			}
			cancel()
			return u, err
		}
		if !errors.Is(err, ErrLocked) {
			return User{}, fmt.Errorf("identity: oidc: refresh lock: %w", err)
		}
		if err := poll.Wait(ctx); err != nil {
			return User{}, fmt.Errorf("identity: oidc: waiting for another replica's refresh: %w", err)
		}
		s, err := o.load(ctx, id)
		if err != nil {
			return User{}, err // errNoSession: the other replica's refresh was refused
		}
		if o.now().Before(s.Expiry) {
			return s.User, nil
		}
	}
}
