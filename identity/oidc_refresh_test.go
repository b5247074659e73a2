package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The test of issue 18's refresh across replicas needs a store the
// replicas share: session.RedisSessions on a real redis-server. Package
// session imports identity, so identity's own tests cannot import it;
// oidc_redis_test.go (package identity_test) runs this test on it.

// ReplicaStore is what RefreshAcrossReplicas needs of each replica's
// store: one shared with the other replica, which is also its Locker.
type ReplicaStore interface {
	SessionStore
	Locker
}

// busyLocker reports each refused Lock (ErrLocked) on busy, so that the
// test knows a replica is waiting for another's refresh.
type busyLocker struct {
	Locker
	busy chan<- string
}

func (b busyLocker) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	unlock, err := b.Locker.Lock(ctx, key, ttl)
	if errors.Is(err, ErrLocked) {
		select {
		case b.busy <- key:
		default:
		}
	}
	return unlock, err
}

// tokenGate holds the first token request that comes through it after
// arm until release, and reports the others on later.
type tokenGate struct {
	armed   atomic.Bool
	first   chan struct{} // closed when the first request is held
	release chan struct{}
	later   chan struct{}
	n       atomic.Int32
}

func newTokenGate() *tokenGate {
	return &tokenGate{first: make(chan struct{}), release: make(chan struct{}), later: make(chan struct{}, 10)}
}

// client wraps the OP's RP client: token requests pass the gate.
func (g *tokenGate) client(o *testOP) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if g.armed.Load() && r.Method == http.MethodPost && r.URL.Path == "/oauth/token" {
			if g.n.Add(1) == 1 {
				close(g.first)
				select {
				case <-g.release:
				case <-r.Context().Done():
					return nil, r.Context().Err()
				}
			} else {
				g.later <- struct{}{}
			}
		}
		return o.RoundTrip(r)
	})}
}

// RefreshAcrossReplicas is issue 18's test of OIDC refreshes across
// replicas: two replicas (OIDC instances with stores from newStore, which
// share their data) refresh one login at once at a provider that rotates
// refresh tokens (devidp: a used refresh token is refused). The user stays
// signed in on both, and the provider sees one refresh.
//
// The first replica's refresh is held at the token endpoint until the
// second replica either waits for it (it found the login's lock taken)
// or sends a refresh of its own; then it goes on. Without the lock the
// second refresh rotates the token, the first is refused, and the login
// ends.
func RefreshAcrossReplicas(t *testing.T, newStore func(t *testing.T) ReplicaStore) {
	o := newTestOP(t)
	gate := newTokenGate()
	busy := make(chan string, 10)
	var cfg OIDCConfig
	rp := newTestRP(t, o, "sensegate", func(c *OIDCConfig) {
		c.Scopes = []string{"profile", "email", "offline_access"}
		s := newStore(t)
		c.Sessions, c.Locker, c.HTTPClient = s, busyLocker{s, busy}, gate.client(o)
		cfg = *c
	})
	signedIn(t, rp)
	if rp.session(t).RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	// The second replica: the same configuration and clock, its own store
	// object and client.
	s2 := newStore(t)
	cfg.Sessions, cfg.Locker = s2, busyLocker{s2, busy}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	replica2, err := NewOIDC(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	replicas := []*OIDC{rp.o, replica2}

	// Past the ID token's expiry; the new ID tokens outlive the jump.
	o.setIDTokenLifetime(48 * time.Hour)
	rp.clock.Advance(2 * time.Hour)
	gate.armed.Store(true)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	identify := func(i int) {
		u, err := replicas[i].Identify(rp.request("/app/x"))
		if err == nil && u.ID != wantUser.ID {
			err = fmt.Errorf("user %v", u)
		}
		errs[i] = err
	}
	wg.Go(func() { identify(0) })
	select {
	case <-gate.first:
	case <-time.After(10 * time.Second):
		t.Fatal("the first replica sent no refresh")
	}
	wg.Go(func() { identify(1) })
	select {
	case <-busy:
		// The second replica waits for the first one's refresh.
	case <-gate.later:
		// The second replica refreshes too (the bug this test is about).
	case <-time.After(10 * time.Second):
		t.Fatal("the second replica neither waited for the first nor refreshed")
	}
	close(gate.release)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Identify during the refresh = %v, want %v", i+1, err, wantUser)
		}
	}
	if n := o.grantCount("refresh_token"); n != 1 {
		t.Errorf("refreshes at the provider = %d, want 1", n)
	}
	for i, r := range replicas {
		if u, err := r.Identify(rp.request("/app/y")); err != nil || u.ID != wantUser.ID {
			t.Errorf("replica %d: Identify after the refresh = %v, %v; want the user still signed in", i+1, u, err)
		}
	}
	if n := o.grantCount("refresh_token"); n != 1 {
		t.Errorf("refreshes at the provider after more requests = %d, want still 1", n)
	}
}
