package session

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LoginRate bounds each user's Qlik logins with a token bucket: Burst
// logins at once, then PerMinute a minute. The zero LoginRate (PerMinute
// 0) sets no bound.
type LoginRate struct {
	PerMinute int
	// Burst is at least 1 (0 is taken as 1).
	Burst int
}

// ErrLoginRateLimited is what errors.Is finds in the error of Ensure for
// a user who needs a new Qlik login but has used up their logins for now
// (BrokerOptions.LoginRate). The error is a *RateLimitError.
var ErrLoginRateLimited = errors.New("session: too many qlik logins for the user")

// RateLimitError refuses a Qlik login over the user's login rate.
type RateLimitError struct {
	// User is the Qlik user ("DIRECTORY\id").
	User string
	// RetryAfter is how long until the user may log in again.
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("session: %s was logged in to Qlik too often: the next login is allowed in %s", e.User, e.RetryAfter.Round(time.Second))
}

// Is reports whether target is ErrLoginRateLimited.
func (e *RateLimitError) Is(target error) bool { return target == ErrLoginRateLimited }

// Bounds of the buckets a loginLimiter keeps. A bucket that has filled up
// again is as good as a new one, so it is dropped when the map grows past
// sweepAt: what remains are the users who logged in within the time a
// bucket takes to fill. Past maxLimitedUsers of those (a flood of logins
// of ever new users), arbitrary buckets go until a quarter of the room is
// free; those users' limits start afresh.
const (
	minSweep        = 1024
	maxLimitedUsers = 100_000
)

// loginLimiter keeps one token bucket (golang.org/x/time/rate) per user.
// It is safe for concurrent use.
type loginLimiter struct {
	every rate.Limit
	burst int

	mu      sync.Mutex
	users   map[string]*rate.Limiter
	sweepAt int
}

// newLoginLimiter returns the limiter of r, nil when r sets no bound.
func newLoginLimiter(r LoginRate) *loginLimiter {
	if r.PerMinute <= 0 {
		return nil
	}
	return &loginLimiter{
		every:   rate.Limit(float64(r.PerMinute) / 60),
		burst:   max(r.Burst, 1),
		users:   map[string]*rate.Limiter{},
		sweepAt: minSweep,
	}
}

// allow takes a login from the bucket of user at now, or returns how long
// until the bucket has one.
func (l *loginLimiter) allow(user string, now time.Time) (retryAfter time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, found := l.users[user]
	if !found {
		if len(l.users) >= l.sweepAt {
			l.sweep(now)
		}
		lim = rate.NewLimiter(l.every, l.burst)
		l.users[user] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// sweep drops the full buckets, then arbitrary ones if too many remain.
// l.mu is held.
func (l *loginLimiter) sweep(now time.Time) {
	full := float64(l.burst)
	for k, lim := range l.users {
		if lim.TokensAt(now) >= full {
			delete(l.users, k)
		}
	}
	if len(l.users) >= maxLimitedUsers {
		for k := range l.users {
			if len(l.users) <= maxLimitedUsers*3/4 {
				break
			}
			delete(l.users, k)
		}
	}
	l.sweepAt = min(max(minSweep, 2*len(l.users)), maxLimitedUsers)
}

// size returns the number of buckets kept.
func (l *loginLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}
