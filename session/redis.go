package session

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/sensegate/sensegate/seal"
	"go.uber.org/zap"
)

// DefaultRedisPrefix starts the names of the keys the Redis stores write.
const DefaultRedisPrefix = "sensegate:"

// DefaultLocalCacheSize bounds the local cache of a Redis jar.
const DefaultLocalCacheSize = 10000

// The namespaces below the prefix.
const (
	redisJarNS   = "jar:"   // Redis: a user's Qlik session
	redisLockNS  = "lock:"  // Redis.Lock: a user's login in progress
	redisLoginNS = "login:" // RedisSessions: identity provider sessions
)

// Timeouts of the Redis client. A jar lookup is on every request, so a
// Redis that stops answering (a partition, a stalled host) must turn into
// a quick 503, not requests hanging on go-redis's defaults (5 s dials, 3 s
// reads, 3 retries): a paused server fails a call in about 2 s.
const (
	redisDialTimeout = 2 * time.Second
	redisIOTimeout   = time.Second
	// redisRetries covers one dropped connection (a Redis restart).
	redisRetries = 1
)

// RedisConfig says how to reach the Redis server.
type RedisConfig struct {
	// Addr is host:port.
	Addr string
	// Username and Password authenticate (AUTH); both may be empty.
	Username, Password string
	// DB is the database number (0 is Redis's default).
	DB int
	// TLS, when not nil, is used for the connection; nil means plain TCP.
	TLS *tls.Config
}

// DialRedis returns a client of the server cfg names, after checking with
// PING that the server answers and takes the credentials. The Redis
// stores need Redis 6.2 or later (GETEX). The caller closes the client.
func DialRedis(ctx context.Context, cfg RedisConfig) (*redis.Client, error) {
	c := redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		TLSConfig:             cfg.TLS,
		ContextTimeoutEnabled: true,
		DialTimeout:           redisDialTimeout,
		ReadTimeout:           redisIOTimeout,
		WriteTimeout:          redisIOTimeout,
		MaxRetries:            redisRetries,
		// One dial per attempt: with the default 5 dials 100ms apart per
		// attempt a request waited some 2s for its 503 while Redis was
		// down.
		DialerRetries: 1,
		// Maintenance notifications are a Redis Enterprise feature; off,
		// the client does not try them on every connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("session: redis %s: ping: %w", cfg.Addr, err)
	}
	return c, nil
}

// Redis is a Store in Redis, shared by sensegate's replicas. It is safe
// for concurrent use.
//
// Entries are encrypted at rest with AES-256-GCM, authenticated together
// with their Redis key, so that neither Redis nor anyone reading it sees
// a Qlik cookie or CSRF token and a value moved to another user's key
// does not decrypt (it reads as missing). Next to the ciphertext each
// value holds the SHA-256 of its cookie, in the clear, so that Delete can
// compare and delete in one atomic script: Qlik session cookies are
// random ids, which the digest does not reveal.
//
// An entry expires in Redis after the idle timeout without use; Get
// extends it (GETEX). A small local cache in front of Redis serves
// repeated Gets for RedisOptions.LocalTTL without asking Redis. That TTL
// bounds the staleness: a replica may go on using an entry that another
// replica deleted or replaced for up to LocalTTL (its own Put and Delete
// take effect locally at once), and a Get served locally extends the
// entry's lifetime in Redis up to LocalTTL late. A stale cookie costs no
// more than the usual recovery: Qlik refuses it, the proxy invalidates it
// and finds the current one in Redis.
//
// Redis is also a Locker, so that Broker logs a user in once across
// replicas.
type Redis struct {
	c          redis.UniversalClient
	prefix     string // of entries
	lockPrefix string
	idle       time.Duration
	ring       *seal.Ring
	local      *localCache // nil: none
	log        *zap.Logger
}

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// Prefix starts the name of every key the store writes
	// (DefaultRedisPrefix if ""): entries are Prefix+"jar:"+user key,
	// login locks Prefix+"lock:"+user key.
	Prefix string
	// Keys are the AES-256 keys, seal.KeySize bytes each. The first
	// encrypts, all decrypt: to rotate, put a new key first and keep the
	// old one second for an idle timeout. Required.
	Keys [][]byte
	// Idle is the idle timeout, Qlik's session inactivity timeout: an
	// entry not read for this long expires. 0 means entries never expire.
	Idle time.Duration
	// LocalTTL is how long an entry read from Redis is served from the
	// local cache; 0 means no local cache. Keep it short (a second or
	// two): see Redis.
	LocalTTL time.Duration
	// LocalSize bounds the number of entries in the local cache
	// (DefaultLocalCacheSize if 0).
	LocalSize int
	// Now is the local cache's clock (time.Now if nil). Redis expires
	// entries by its own clock.
	Now func() time.Time
	// Logger receives warnings about values that do not decrypt (nil
	// discards them).
	Logger *zap.Logger
}

// redisKeyspace returns the key prefix of a Redis store of prefix
// (DefaultRedisPrefix when empty) and the ring of its keys.
func redisKeyspace(prefix string, keys [][]byte) (string, *seal.Ring, error) {
	ring, err := seal.New(keys)
	if err != nil {
		return "", nil, fmt.Errorf("session: encryption keys: %w", err)
	}
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return prefix, ring, nil
}

// NewRedis returns a Store over c, which the caller keeps and closes. It
// fails only on bad Keys.
func NewRedis(c redis.UniversalClient, opts RedisOptions) (*Redis, error) {
	prefix, ring, err := redisKeyspace(opts.Prefix, opts.Keys)
	if err != nil {
		return nil, err
	}
	r := &Redis{
		c: c, prefix: prefix + redisJarNS, lockPrefix: prefix + redisLockNS,
		idle: max(opts.Idle, 0), ring: ring, log: opts.Logger,
	}
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if opts.LocalTTL > 0 {
		now, size := opts.Now, opts.LocalSize
		if now == nil {
			now = time.Now
		}
		if size <= 0 {
			size = DefaultLocalCacheSize
		}
		r.local = newLocalCache(opts.LocalTTL, size, now)
	}
	return r, nil
}

// redisValue is what an entry's value encrypts.
type redisValue struct {
	Cookie    string    `json:"c"`
	CSRFToken string    `json:"t,omitempty"`
	Created   time.Time `json:"at"`
	Node      string    `json:"n,omitempty"`
}

// An entry's value is redisFormat, the SHA-256 of the cookie, then the
// sealed JSON of redisValue.
const (
	redisFormat    byte = 1
	redisDigestEnd      = 1 + sha256.Size
)

// deleteIfCookie deletes KEYS[1] if its value holds ARGV[1], a cookie's
// SHA-256, after the format byte (Lua strings count from 1).
var deleteIfCookie = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 2, 33) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

func (r *Redis) encode(rk string, e Entry) ([]byte, error) {
	plain, err := json.Marshal(redisValue{Cookie: e.Cookie, CSRFToken: e.CSRFToken, Created: e.Created, Node: e.Node})
	if err != nil {
		return nil, err
	}
	d := sha256.Sum256([]byte(e.Cookie))
	v := make([]byte, 0, redisDigestEnd+len(plain)+64)
	v = append(v, redisFormat)
	v = append(v, d[:]...)
	return r.ring.Seal(v, plain, []byte(rk)), nil
}

func (r *Redis) decode(rk string, v []byte) (Entry, error) {
	if len(v) < redisDigestEnd || v[0] != redisFormat {
		return Entry{}, errors.New("session: not a jar value")
	}
	plain, err := r.ring.Open(v[redisDigestEnd:], []byte(rk))
	if err != nil {
		return Entry{}, err
	}
	var rv redisValue
	if err := json.Unmarshal(plain, &rv); err != nil {
		return Entry{}, fmt.Errorf("session: jar value: %w", err)
	}
	// The digest is outside the ciphertext: one that does not match would
	// make Delete miss or hit the wrong cookie.
	if d := sha256.Sum256([]byte(rv.Cookie)); string(d[:]) != string(v[1:redisDigestEnd]) {
		return Entry{}, errors.New("session: jar value: cookie digest mismatch")
	}
	return Entry{Cookie: rv.Cookie, CSRFToken: rv.CSRFToken, Created: rv.Created, Node: rv.Node}, nil
}

// Get implements Store. A value that does not decrypt or decode, e.g.
// one moved from another key or sealed with a key no longer configured,
// is reported as missing, with a warning.
func (r *Redis) Get(ctx context.Context, key string) (Entry, bool, error) {
	var gen uint64
	if r.local != nil {
		e, ok, g := r.local.get(key)
		if ok {
			return e, true, nil
		}
		gen = g
	}
	rk := r.prefix + key
	var cmd *redis.StringCmd
	if r.idle > 0 {
		cmd = r.c.GetEx(ctx, rk, r.idle)
	} else {
		cmd = r.c.Get(ctx, rk)
	}
	v, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("session: redis get: %w", err)
	}
	e, err := r.decode(rk, v)
	if err != nil {
		r.log.Warn("jar value in redis unreadable, treated as missing", zap.String("key", rk), zap.Error(err))
		return Entry{}, false, nil
	}
	if r.local != nil {
		r.local.fill(key, e, gen)
	}
	return e, true, nil
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, key string, e Entry) error {
	rk := r.prefix + key
	v, err := r.encode(rk, e)
	if err != nil {
		return fmt.Errorf("session: jar value: %w", err)
	}
	err = r.c.Set(ctx, rk, v, r.idle).Err()
	// After the write, whether or not it failed (it may have happened):
	// the next Get reads Redis.
	r.dropLocal(key)
	if err != nil {
		return fmt.Errorf("session: redis set: %w", err)
	}
	return nil
}

// Delete implements Store: the comparison and the deletion are one
// script, atomic in Redis, so that a cookie another replica just stored
// survives the deletion of the one it replaced.
func (r *Redis) Delete(ctx context.Context, key, cookie string) error {
	rk := r.prefix + key
	var err error
	if cookie == "" {
		err = r.c.Del(ctx, rk).Err()
	} else {
		d := sha256.Sum256([]byte(cookie))
		err = deleteIfCookie.Run(ctx, r.c, []string{rk}, d[:]).Err()
	}
	r.dropLocal(key)
	if err != nil {
		return fmt.Errorf("session: redis delete: %w", err)
	}
	return nil
}

// Ping reports whether Redis answers, for readiness checks.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("session: redis ping: %w", err)
	}
	return nil
}

func (r *Redis) dropLocal(key string) {
	if r.local != nil {
		r.local.drop(key)
	}
}

var (
	_ Store  = (*Redis)(nil)
	_ Locker = (*Redis)(nil)
)
