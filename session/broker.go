package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/internal/backoff"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// DefaultLoginTimeout bounds one Qlik login (ticket request plus redemption).
const DefaultLoginTimeout = 30 * time.Second

// Loginer logs a user in to Qlik and returns the session cookie;
// *ticket.Client is one.
type Loginer interface {
	Login(ctx context.Context, u identity.User) (*http.Cookie, error)
}

// NodeLoginer is a Loginer over several Qlik proxy nodes: LoginOn logs u
// in on a healthy node and names it. The Broker prefers it to Login and
// records the node in the Entry; *ticket.Nodes is one.
type NodeLoginer interface {
	LoginOn(ctx context.Context, u identity.User) (cookie *http.Cookie, node string, err error)
}

// Ender ends a Qlik session at QPS by its id (the session cookie value),
// reporting whether QPS still had it; *ticket.Client is one. NodeEnder
// does it on the session's node; *ticket.Nodes is one. The Broker's
// Abandon uses whichever its Loginer has.
type (
	Ender interface {
		EndSession(ctx context.Context, id string) (bool, error)
	}
	NodeEnder interface {
		EndSessionOn(ctx context.Context, node, id string) (bool, error)
	}
)

// Broker hands out each user's Qlik session, logging the user in when the
// jar has none. Concurrent Ensure calls for one user share a single login,
// and across replicas too when the store is a Locker; calls for different
// users never wait for each other. It is safe for concurrent use.
type Broker struct {
	store   Store
	login   Loginer
	timeout time.Duration
	now     func() time.Time
	log     *zap.Logger
	flights singleflight.Group
	metrics *Metrics
	onLogin LoginFunc
	limiter *loginLimiter // nil: logins are not rate limited
}

// BrokerOptions tune a Broker; zero values take the defaults.
type BrokerOptions struct {
	// LoginTimeout bounds one login (DefaultLoginTimeout if 0). A login
	// runs on its own context so that one caller giving up does not fail
	// the others waiting for it. With a Locker store, the login lock
	// lasts LoginTimeout plus a margin of 5s.
	LoginTimeout time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Logger receives login events (nil discards them).
	Logger *zap.Logger
	// Metrics counts logins, jar lookups and store errors (nil: none).
	Metrics *Metrics
	// OnLogin, if not nil, is told of every login (the audit log).
	OnLogin LoginFunc
	// LoginRate bounds each user's logins (the zero value: no bound).
	// A login over it is not made: Ensure fails with a *RateLimitError.
	// The buckets are this Broker's: replicas count apart.
	LoginRate LoginRate
}

// NewBroker returns a Broker over store that logs users in with login.
func NewBroker(store Store, login Loginer, opts BrokerOptions) *Broker {
	b := &Broker{store: store, login: login, timeout: opts.LoginTimeout, now: opts.Now, log: opts.Logger, metrics: opts.Metrics, onLogin: opts.OnLogin, limiter: newLoginLimiter(opts.LoginRate)}
	if b.timeout <= 0 {
		b.timeout = DefaultLoginTimeout
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = zap.NewNop()
	}
	return b
}

// Ensure returns u's session, logging u in to Qlik if the jar has none.
// It returns early with ctx's error if ctx ends first; the login itself
// goes on for the other callers and fills the jar.
func (b *Broker) Ensure(ctx context.Context, u identity.User) (Entry, error) {
	key := u.Key()
	if e, ok, err := b.store.Get(ctx, key); err != nil {
		b.metrics.storeError(opGet)
		return Entry{}, fmt.Errorf("session: jar get: %w", err)
	} else if ok {
		b.metrics.lookup(true)
		return e, nil
	}
	b.metrics.lookup(false)
	ch := b.flights.DoChan(key, func() (any, error) {
		// The login runs on a context of its own: see BrokerOptions.
		return b.flight(context.WithoutCancel(ctx), u, key)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Entry{}, r.Err
		}
		return r.Val.(Entry), nil
	case <-ctx.Done():
		return Entry{}, ctx.Err()
	}
}

// flight gets u's session into the jar, one goroutine per user key at a
// time in this process. When the store is a Locker it first takes the
// user's login lock, or waits for the replica holding it.
func (b *Broker) flight(ctx context.Context, u identity.User, key string) (Entry, error) {
	if l, ok := b.store.(Locker); ok {
		unlock, e, found, err := b.lockOrWait(ctx, l, key)
		if err != nil {
			b.log.Warn("qlik login not started", zap.String("user", u.String()), zap.Error(err))
			return Entry{}, err
		}
		if found {
			return e, nil
		}
		defer func() {
			uctx, cancel := context.WithTimeout(ctx, unlockTimeout)
			defer cancel()
			if err := unlock(uctx); err != nil {
				// It expires by itself within the lock TTL.
				b.log.Warn("login lock not released", zap.String("user", u.String()), zap.Error(err))
			}
		}()
	}
	lctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	// Another flight, here or on another replica, may have filled the jar
	// between our Get and now.
	if e, ok, err := b.store.Get(lctx, key); err == nil && ok {
		return e, nil
	}
	if b.limiter != nil {
		if wait, ok := b.limiter.allow(u.QlikUserKey(), b.now()); !ok { // per Qlik user, whatever its attributes
			b.log.Warn("qlik login refused: the user's login rate is used up", zap.String("user", u.String()), zap.Duration("retry_after", wait))
			b.metrics.rateLimited()
			return Entry{}, &RateLimitError{User: u.String(), RetryAfter: wait}
		}
	}
	start := b.now()
	var (
		c    *http.Cookie
		node string
		err  error
	)
	if nl, ok := b.login.(NodeLoginer); ok {
		c, node, err = nl.LoginOn(lctx, u)
	} else {
		c, err = b.login.Login(lctx, u)
	}
	b.metrics.login(err, b.now().Sub(start))
	if err != nil {
		if b.onLogin != nil {
			b.onLogin(ctx, u, Entry{}, err)
		}
		if errors.Is(lctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %s: %w", ErrLoginTimeout, b.timeout, err)
		}
		// The caller answers the request and logs the error once, with
		// the request id; the audit hook has recorded it.
		b.log.Debug("qlik login failed", zap.String("user", u.String()), zap.Error(err))
		return Entry{}, err
	}
	e := Entry{Cookie: c.Value, Created: b.now(), Node: node}
	if b.onLogin != nil {
		b.onLogin(ctx, u, e, nil)
	}
	if err := b.store.Put(lctx, key, e); err != nil {
		b.metrics.storeError(opPut)
		return Entry{}, fmt.Errorf("session: jar put: %w", err)
	}
	b.log.Info("qlik login", zap.String("user", u.String()), zap.Duration("took", b.now().Sub(start)))
	return e, nil
}

// Locker is implemented by stores that replicas share (Redis), so that a
// user is logged in to Qlik once across replicas: Ensure takes the user's
// lock around a login, and a replica that finds it taken waits for the
// holder's entry to appear in the store. It is identity.Locker, which the
// OIDC provider's refreshes take too.
type Locker = identity.Locker

// ErrLocked is returned by Locker.Lock when another holder has the lock
// (identity.ErrLocked).
var ErrLocked = identity.ErrLocked

// Login lock timing: the lock outlives a login by lockMargin (so the
// holder also has time to store the entry); a waiter polls the store
// between pollMin and pollMax apart, doubling, with jitter.
const (
	lockMargin    = 5 * time.Second
	pollMin       = 5 * time.Millisecond
	pollMax       = 250 * time.Millisecond
	unlockTimeout = 5 * time.Second
)

// lockOrWait takes key's login lock, returning unlock, or waits until the
// holder's entry is in the store, returning it with found true; if the
// holder gives up (its login failed) or dies, its lock frees and this
// replica takes it.
func (b *Broker) lockOrWait(ctx context.Context, l Locker, key string) (unlock func(context.Context) error, e Entry, found bool, err error) {
	ttl := b.timeout + lockMargin
	// A lock taken by another holder before our first try frees itself
	// within ttl, and we try at least every pollMax: waiting longer than
	// that means the store is failing.
	wait := ttl + 2*pollMax
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	poll := backoff.New(pollMin, pollMax)
	defer poll.Stop()
	for {
		unlock, err := l.Lock(wctx, key, ttl)
		if err == nil {
			return unlock, Entry{}, false, nil
		}
		if !errors.Is(err, ErrLocked) {
			if wctx.Err() != nil {
				return nil, Entry{}, false, fmt.Errorf("%w: waiting %s for another replica's login: %w", ErrLoginTimeout, wait, err)
			}
			return nil, Entry{}, false, fmt.Errorf("session: login lock: %w", err)
		}
		if poll.Wait(wctx) != nil {
			return nil, Entry{}, false, fmt.Errorf("%w: waiting %s for another replica's login", ErrLoginTimeout, wait)
		}
		// A read error is as good as a miss here: the next round tries
		// the lock again, and Lock reports a store that is down.
		if e, ok, err := b.store.Get(wctx, key); err == nil && ok {
			return nil, e, true, nil
		}
	}
}

// Invalidate drops u's session if it still holds cookie, the one Qlik
// just refused, so that the next Ensure logs u in again.
func (b *Broker) Invalidate(ctx context.Context, u identity.User, cookie string) error {
	if err := b.store.Delete(ctx, u.Key(), cookie); err != nil {
		b.metrics.storeError(opDelete)
		return fmt.Errorf("session: jar delete: %w", err)
	}
	return nil
}

// Logouter ends all of a user's Qlik sessions; *ticket.Client is one.
type Logouter interface {
	Logout(ctx context.Context, u identity.User) (int, error)
}

// Logout ends u's Qlik sessions (when the Loginer is also a Logouter) and
// drops u's jar entry. It returns how many Qlik sessions ended.
func (b *Broker) Logout(ctx context.Context, u identity.User) (int, error) {
	n := 0
	var err error
	if lo, ok := b.login.(Logouter); ok {
		n, err = lo.Logout(ctx, u)
	}
	if derr := b.store.Delete(ctx, u.Key(), ""); derr != nil {
		b.metrics.storeError(opDelete)
		err = errors.Join(err, fmt.Errorf("session: jar delete: %w", derr))
	}
	return n, err
}

// Abandon drops e, u's session, from the jar if the jar still holds it,
// and ends it at QPS: for a session sensegate stops using while Qlik may
// still hold it (its websocket was refused for the parallel-session cap,
// or dropped before its greeting), which would otherwise count toward
// Qlik's five sessions per user until it timed out. It reports whether
// QPS ended it (false: QPS did not know it, or the Loginer cannot end
// sessions). Call it off the request path: it is a QPS call.
func (b *Broker) Abandon(ctx context.Context, u identity.User, e Entry) (bool, error) {
	err := b.Invalidate(ctx, u, e.Cookie)
	var ended bool
	var qerr error
	switch l := b.login.(type) {
	case NodeEnder:
		ended, qerr = l.EndSessionOn(ctx, e.Node, e.Cookie)
	case Ender:
		ended, qerr = l.EndSession(ctx, e.Cookie)
	}
	if ended {
		b.metrics.abandoned()
	}
	return ended, errors.Join(err, qerr)
}

// Peek returns u's session without logging in.
func (b *Broker) Peek(ctx context.Context, u identity.User) (Entry, bool, error) {
	e, ok, err := b.store.Get(ctx, u.Key())
	if err != nil {
		b.metrics.storeError(opGet)
	}
	return e, ok, err
}

// Update stores e as u's session, e.g. when Qlik sets a new session
// cookie on a proxied response.
func (b *Broker) Update(ctx context.Context, u identity.User, e Entry) error {
	if err := b.store.Put(ctx, u.Key(), e); err != nil {
		b.metrics.storeError(opPut)
		return fmt.Errorf("session: jar put: %w", err)
	}
	return nil
}
