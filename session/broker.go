package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sensegate/sensegate/identity"
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

// Broker hands out each user's Qlik session, logging the user in when the
// jar has none. Concurrent Ensure calls for one user share a single login;
// calls for different users never wait for each other. It is safe for
// concurrent use.
type Broker struct {
	store   Store
	login   Loginer
	timeout time.Duration
	now     func() time.Time
	log     *zap.Logger
	flights singleflight.Group
}

// BrokerOptions tune a Broker; zero values take the defaults.
type BrokerOptions struct {
	// LoginTimeout bounds one login (DefaultLoginTimeout if 0). A login
	// runs on its own context so that one caller giving up does not fail
	// the others waiting for it.
	LoginTimeout time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Logger receives login events (nil discards them).
	Logger *zap.Logger
}

// NewBroker returns a Broker over store that logs users in with login.
func NewBroker(store Store, login Loginer, opts BrokerOptions) *Broker {
	b := &Broker{store: store, login: login, timeout: opts.LoginTimeout, now: opts.Now, log: opts.Logger}
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
		return Entry{}, fmt.Errorf("session: jar get: %w", err)
	} else if ok {
		return e, nil
	}
	ch := b.flights.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
		defer cancel()
		// Another flight may have filled the jar between our Get and now.
		if e, ok, err := b.store.Get(lctx, key); err == nil && ok {
			return e, nil
		}
		start := b.now()
		c, err := b.login.Login(lctx, u)
		if err != nil {
			if errors.Is(lctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				err = fmt.Errorf("%w after %s: %w", ErrLoginTimeout, b.timeout, err)
			}
			b.log.Warn("qlik login failed", zap.String("user", u.String()), zap.Error(err))
			return nil, err
		}
		e := Entry{Cookie: c.Value, Created: b.now()}
		if err := b.store.Put(lctx, key, e); err != nil {
			return nil, fmt.Errorf("session: jar put: %w", err)
		}
		b.log.Info("qlik login", zap.String("user", u.String()), zap.Duration("took", b.now().Sub(start)))
		return e, nil
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

// Invalidate drops u's session if it still holds cookie, the one Qlik
// just refused, so that the next Ensure logs u in again.
func (b *Broker) Invalidate(ctx context.Context, u identity.User, cookie string) error {
	if err := b.store.Delete(ctx, u.Key(), cookie); err != nil {
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
		err = errors.Join(err, fmt.Errorf("session: jar delete: %w", derr))
	}
	return n, err
}

// Peek returns u's session without logging in.
func (b *Broker) Peek(ctx context.Context, u identity.User) (Entry, bool, error) {
	return b.store.Get(ctx, u.Key())
}

// Update stores e as u's session, e.g. when Qlik sets a new session
// cookie on a proxied response.
func (b *Broker) Update(ctx context.Context, u identity.User, e Entry) error {
	if err := b.store.Put(ctx, u.Key(), e); err != nil {
		return fmt.Errorf("session: jar put: %w", err)
	}
	return nil
}
