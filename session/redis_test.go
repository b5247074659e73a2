package session

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/sensegate/sensegate/seal"
	"github.com/sensegate/sensegate/tooling/fakeclock"
)

var (
	keyOld = bytes.Repeat([]byte{0x01}, seal.KeySize)
	keyNew = bytes.Repeat([]byte{0x02}, seal.KeySize)
)

// newRedisStore returns a Redis store on srv under a prefix of its own;
// opts.Keys defaults to keyNew.
func newRedisStore(t *testing.T, srv *redisServer, c redis.UniversalClient, opts RedisOptions) *Redis {
	t.Helper()
	if opts.Prefix == "" {
		opts.Prefix = srv.prefix()
	}
	if opts.Keys == nil {
		opts.Keys = [][]byte{keyNew}
	}
	s, err := NewRedis(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRedisStore runs the Store conformance suite on Redis, with and
// without the local cache. Redis expires keys by real time, so every store
// gets a real idle timeout of redisIdle whatever the suite asks for, and
// advance waits the real time that stands for the suite's duration at that
// scale (only the ratios of the suite's durations matter). The local
// cache reads the suite's clock, which advance moves too.
func TestRedisStore(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	const redisIdle = 1200 * time.Millisecond
	for _, localTTL := range []time.Duration{0, time.Second} {
		name := "no local cache"
		if localTTL > 0 {
			name = "local cache"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runStoreTests(t, func(t *testing.T, idle time.Duration) (Store, func(time.Duration)) {
				clock := fakeclock.New()
				// localTTL is in the suite's time, like idle.
				s := newRedisStore(t, srv, c, RedisOptions{Idle: redisIdle, LocalTTL: localTTL, Now: clock.Now})
				advance := func(d time.Duration) {
					clock.Advance(d)
					timer := time.NewTimer(time.Duration(float64(d) * float64(redisIdle) / float64(idle)))
					defer timer.Stop()
					<-timer.C
				}
				return s, advance
			})
		})
	}
}

func TestRedisEncryptedAtRest(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	prefix := srv.prefix()
	s := newRedisStore(t, srv, c, RedisOptions{Prefix: prefix, Idle: time.Hour})
	e := Entry{Cookie: "2f0c8a3e-cookie-value", CSRFToken: "csrf-token-value", Created: time.Now()}
	if err := s.Put(ctx, `ACME\alice`, e); err != nil {
		t.Fatal(err)
	}
	raw, err := c.Get(ctx, prefix+`jar:ACME\alice`).Bytes()
	if err != nil {
		t.Fatalf("raw GET of the entry: %v", err)
	}
	for _, secret := range []string{e.Cookie, e.CSRFToken, "cookie-value", "token-value"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the value in Redis contains %q", secret)
		}
	}
	if ttl := c.PTTL(ctx, prefix+`jar:ACME\alice`).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL of the entry = %s, want the idle timeout, 1h", ttl)
	}
}

func TestRedisValueMovedToAnotherKey(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	prefix := srv.prefix()
	s := newRedisStore(t, srv, c, RedisOptions{Prefix: prefix, Idle: time.Hour})
	if err := s.Put(ctx, `ACME\alice`, Entry{Cookie: "alice-cookie"}); err != nil {
		t.Fatal(err)
	}
	// Someone with write access to Redis gives bob alice's session.
	v := c.Get(ctx, prefix+`jar:ACME\alice`).Val()
	if err := c.Set(ctx, prefix+`jar:ACME\bob`, v, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := s.Get(ctx, `ACME\bob`); ok || err != nil {
		t.Errorf("Get(bob) with alice's value = %+v, %v, %v; want a miss", e, ok, err)
	}
	if e, ok, _ := s.Get(ctx, `ACME\alice`); !ok || e.Cookie != "alice-cookie" {
		t.Errorf("Get(alice) = %+v, %v; want her cookie", e, ok)
	}
	// A value that is not ours at all is a miss too.
	c.Set(ctx, prefix+`jar:ACME\carol`, "garbage", time.Hour)
	if _, ok, err := s.Get(ctx, `ACME\carol`); ok || err != nil {
		t.Errorf("Get(garbage) = %v, %v; want a miss", ok, err)
	}
}

func TestRedisKeyRotation(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	prefix := srv.prefix()
	before := newRedisStore(t, srv, c, RedisOptions{Prefix: prefix, Keys: [][]byte{keyOld}})
	during := newRedisStore(t, srv, c, RedisOptions{Prefix: prefix, Keys: [][]byte{keyNew, keyOld}})
	after := newRedisStore(t, srv, c, RedisOptions{Prefix: prefix, Keys: [][]byte{keyNew}})

	before.Put(ctx, "old", Entry{Cookie: "sealed-with-old"})
	if e, ok, err := during.Get(ctx, "old"); !ok || err != nil || e.Cookie != "sealed-with-old" {
		t.Errorf("Get with [new, old] of a value sealed with old = %+v, %v, %v", e, ok, err)
	}
	if _, ok, _ := after.Get(ctx, "old"); ok {
		t.Error("Get with [new] opened a value sealed with old")
	}
	// The first key seals.
	during.Put(ctx, "new", Entry{Cookie: "sealed-with-new"})
	if _, ok, _ := before.Get(ctx, "new"); ok {
		t.Error("a store with [new, old] sealed with old")
	}
	if e, ok, _ := after.Get(ctx, "new"); !ok || e.Cookie != "sealed-with-new" {
		t.Errorf("Get with [new] of a value written with [new, old] = %+v, %v", e, ok)
	}
}

func TestNewRedisRejectsBadKeys(t *testing.T) {
	tests := []struct {
		keys [][]byte
		want string
	}{
		{nil, "session: encryption keys: at least one key is required"},
		{[][]byte{make([]byte, 16)}, "session: encryption keys: key 0 is 16 bytes, want 32"},
		{[][]byte{keyNew, make([]byte, 31)}, "session: encryption keys: key 1 is 31 bytes, want 32"},
	}
	for _, tt := range tests {
		if _, err := NewRedis(nil, RedisOptions{Keys: tt.keys}); err == nil || err.Error() != tt.want {
			t.Errorf("NewRedis = %v, want %q", err, tt.want)
		}
		if _, err := NewRedisSessions(nil, RedisSessionsOptions{Keys: tt.keys}); err == nil || err.Error() != tt.want {
			t.Errorf("NewRedisSessions = %v, want %q", err, tt.want)
		}
	}
}

// TestRedisValuesSealedBeforeSeal: values the Redis stores wrote before
// package seal (with session's own sealer, keyOld, the default prefix)
// still read, also with keyOld second after a rotation.
func TestRedisValuesSealedBeforeSeal(t *testing.T) {
	const (
		jarKey   = `sensegate:jar:ACME\alice`
		jarValue = "014a2cb336c4fce6d93b7069c0ba78bef92b1eb0857f6b3fde09a5ad3ff541f0e2" +
			"09ae60d27faac8dedfb29f8016faab4a916f35caf3a48442f32eec663942ce0a6d5fc9b4f06892486aff32d8a59a56f4a6" +
			"d2646e54471f20ba4b8a8d67144b6ba372d2ce9f940281ac32f9dc2823d56f7a3961b2a8de9e03352c9b1fa66213e5"
		loginKey   = "sensegate:login:abc"
		loginValue = "9db9d044ec2b3a274131052e26aec445a37bbb6574e58f39f0aa354ed563bd11d27ca3a80e348343c4"
	)
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	for k, v := range map[string]string{jarKey: jarValue, loginKey: loginValue} {
		raw, err := hex.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, k, raw, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := Entry{Cookie: "alice-cookie", CSRFToken: "csrf", Created: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), Node: "n1"}
	for _, keys := range [][][]byte{{keyOld}, {keyNew, keyOld}} {
		jar := newRedisStore(t, srv, c, RedisOptions{Prefix: DefaultRedisPrefix, Keys: keys})
		if e, ok, err := jar.Get(ctx, `ACME\alice`); !ok || err != nil || !cmp.Equal(e, want) {
			t.Errorf("with %d keys: jar Get = %+v, %v, %v; want %+v", len(keys), e, ok, err, want)
		}
		logins, err := NewRedisSessions(c, RedisSessionsOptions{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		if data, ok, err := logins.Get(ctx, "abc"); !ok || err != nil || string(data) != "login-session" {
			t.Errorf("with %d keys: login Get = %q, %v, %v; want login-session", len(keys), data, ok, err)
		}
	}
}

// Two replicas: A invalidates the cookie Qlik refused while B already
// stored the user's next one; B's survives. Then an invalidation on A
// reaches B once B's local cache entry is older than its TTL.
func TestRedisDeleteAcrossReplicas(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	prefix := srv.prefix()
	const localTTL = time.Second
	clockA := fakeclock.At(time.Now())
	clockB := fakeclock.At(time.Now())
	a := newRedisStore(t, srv, srv.client(t), RedisOptions{Prefix: prefix, Idle: time.Hour, LocalTTL: localTTL, Now: clockA.Now})
	b := newRedisStore(t, srv, srv.client(t), RedisOptions{Prefix: prefix, Idle: time.Hour, LocalTTL: localTTL, Now: clockB.Now})
	fresh := func() *Redis {
		return newRedisStore(t, srv, srv.client(t), RedisOptions{Prefix: prefix, Idle: time.Hour})
	}
	const key = `ACME\alice`

	a.Put(ctx, key, Entry{Cookie: "C1"})
	if e, _, _ := a.Get(ctx, key); e.Cookie != "C1" { // now in A's local cache
		t.Fatalf("A.Get = %q, want C1", e.Cookie)
	}
	b.Put(ctx, key, Entry{Cookie: "C2"})
	if err := a.Delete(ctx, key, "C1"); err != nil {
		t.Fatal(err)
	}
	if e, ok, _ := fresh().Get(ctx, key); !ok || e.Cookie != "C2" {
		t.Fatalf("in Redis after A.Delete(C1): %+v, %v; want C2 to survive", e, ok)
	}
	if e, ok, _ := a.Get(ctx, key); !ok || e.Cookie != "C2" {
		t.Errorf("A.Get after its Delete(C1) = %+v, %v; want C2 (its local entry dropped)", e, ok)
	}

	if e, _, _ := b.Get(ctx, key); e.Cookie != "C2" { // now in B's local cache
		t.Fatalf("B.Get = %q, want C2", e.Cookie)
	}
	if err := a.Delete(ctx, key, "C2"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := fresh().Get(ctx, key); ok {
		t.Fatal("A.Delete(C2) left the entry in Redis")
	}
	// The documented staleness: B may serve C2 until its local entry is
	// localTTL old, and no longer.
	if e, ok, _ := b.Get(ctx, key); ok && e.Cookie != "C2" {
		t.Fatalf("B.Get within the local TTL = %+v", e)
	}
	clockB.Advance(localTTL)
	if e, ok, err := b.Get(ctx, key); ok || err != nil {
		t.Errorf("B.Get one local TTL after A's Delete = %+v, %v, %v; want a miss", e, ok, err)
	}
}

// A read racing a write on the same replica must not leave the old value
// in the local cache: a Put drops the key and refuses fills begun before.
func TestRedisLocalCacheRefusesStaleFill(t *testing.T) {
	cache := newLocalCache(time.Hour, 100, time.Now)
	_, ok, gen := cache.get("k") // a Get misses and goes to Redis…
	if ok {
		t.Fatal("empty cache hit")
	}
	cache.drop("k")                            // …a Put completes meanwhile…
	cache.fill("k", Entry{Cookie: "old"}, gen) // …and the Get returns the old value.
	if e, ok, _ := cache.get("k"); ok {
		t.Errorf("cache holds %q, filled by a read that began before a write", e.Cookie)
	}
	_, _, gen = cache.get("k")
	cache.fill("k", Entry{Cookie: "new"}, gen)
	if e, ok, _ := cache.get("k"); !ok || e.Cookie != "new" {
		t.Errorf("cache after a clean fill = %+v, %v", e, ok)
	}
}

func TestRedisLocalCacheBounded(t *testing.T) {
	const size = 160
	cache := newLocalCache(time.Hour, size, time.Now)
	for i := range 10 * size {
		k := strings.Repeat("k", 1+i%7) + string(rune('a'+i%26)) + string(rune(i))
		_, _, gen := cache.get(k)
		cache.fill(k, Entry{Cookie: k}, gen)
	}
	if n := cache.len(); n > size {
		t.Errorf("cache holds %d entries, want at most %d", n, size)
	}
}

func TestRedisLock(t *testing.T) {
	srv := startRedis(t)
	ctx := context.Background()
	prefix := srv.prefix()
	a := newRedisStore(t, srv, srv.client(t), RedisOptions{Prefix: prefix})
	b := newRedisStore(t, srv, srv.client(t), RedisOptions{Prefix: prefix})

	unlockA, err := a.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "k", time.Minute); !errors.Is(err, ErrLocked) {
		t.Fatalf("B.Lock of a held lock = %v, want ErrLocked", err)
	}
	if _, err := b.Lock(ctx, "other", time.Minute); err != nil {
		t.Errorf("B.Lock of another key = %v", err)
	}
	if err := unlockA(ctx); err != nil {
		t.Fatal(err)
	}
	unlockB, err := b.Lock(ctx, "k", 100*time.Millisecond)
	if err != nil {
		t.Fatalf("B.Lock after A's unlock = %v", err)
	}

	// B's lock expires; A takes it; B's late unlock must leave A's lock.
	var unlockA2 func(context.Context) error
	pollUntil(t, 5*time.Second, "B's 100ms lock to expire", func() bool {
		unlockA2, err = a.Lock(ctx, "k", time.Minute)
		return err == nil
	})
	if err := unlockB(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "k", time.Minute); !errors.Is(err, ErrLocked) {
		t.Errorf("B's late unlock released A's lock: B.Lock = %v, want ErrLocked", err)
	}
	unlockA2(ctx)
	if _, err := a.Lock(ctx, "k", 0); err == nil {
		t.Error("Lock with ttl 0 (a lock that never expires) = nil error")
	}
}

// pollUntil calls cond every few milliseconds until it is true, failing t
// after limit.
func pollUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		case <-tick.C:
		}
	}
}

// A Redis that stops answering without closing its connections (paused,
// as a partition or a stalled host looks) fails a store call within a
// few seconds, and the store works again once Redis answers.
func TestRedisStoreFailsFastWhenRedisHangs(t *testing.T) {
	srv := startRedis(t)
	s := newRedisStore(t, srv, srv.client(t), RedisOptions{Idle: time.Minute})
	ctx := context.Background()
	if err := s.Put(ctx, "alice", Entry{Cookie: "c1"}); err != nil {
		t.Fatal(err)
	}
	srv.Pause(t)
	// A bound well under go-redis's defaults (about 12 s here), above
	// the expected 2 s.
	const bound = 5 * time.Second
	start := time.Now()
	_, _, err := s.Get(ctx, "alice")
	took := time.Since(start)
	srv.Resume(t)
	if err == nil || took > bound {
		t.Errorf("Get while Redis is paused = %v after %s, want an error within %s", err, took.Round(time.Millisecond), bound)
	}
	if e, ok, err := s.Get(ctx, "alice"); err != nil || !ok || e.Cookie != "c1" {
		t.Errorf("Get after Resume = %+v, %t, %v; want the entry", e, ok, err)
	}
}

func TestDialRedisFails(t *testing.T) {
	srv := startRedis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, cfg := range []RedisConfig{
		{Addr: closed},
		{Addr: srv.Addr, Username: "nobody", Password: "wrong"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := DialRedis(ctx, cfg)
		cancel()
		if err == nil {
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), cfg.Addr) || !strings.Contains(err.Error(), "ping") {
			t.Errorf("DialRedis(%+v) = %v; want a ping error naming %s", cfg, err, cfg.Addr)
		}
	}
}
