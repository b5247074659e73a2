package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"go.uber.org/zap"
)

// storeStartTimeout bounds the connection to Redis at startup.
const storeStartTimeout = 10 * time.Second

// NewJar returns the jar of store.type, whose entries expire after
// qlik.session_timeout without use by the clock now (nil: time.Now), and
// the func that closes it (its Redis client). A redis store must answer
// within ctx and storeStartTimeout.
func NewJar(ctx context.Context, cfg *config.Config, log *zap.Logger, now func() time.Time) (session.Store, func() error, error) {
	sc := cfg.Store
	switch sc.Type {
	case config.StoreMemory:
		return session.NewMemory(cfg.Qlik.SessionTimeout, now), func() error { return nil }, nil
	case config.StoreRedis:
	default:
		return nil, nil, fmt.Errorf("store.type: %q is not supported", sc.Type)
	}
	c, err := dialRedis(ctx, sc)
	if err != nil {
		return nil, nil, err
	}
	jar, err := session.NewRedis(c, session.RedisOptions{
		Prefix: sc.Redis.KeyPrefix, Keys: sc.EncryptionKeys(), Idle: cfg.Qlik.SessionTimeout,
		LocalTTL: sc.LocalCacheTTL, Now: now, Logger: log.Named("session"),
	})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("store.encryption_keys: %w", err)
	}
	log.Info("session store: redis", zap.String("addr", sc.Redis.Addr), zap.Int("db", sc.Redis.DB), zap.String("key_prefix", sc.Redis.KeyPrefix))
	return jar, c.Close, nil
}

// NewLogins returns the store of OIDC logins, whose entries expire by the
// clock now (nil: time.Now): Redis for a redis store, so that replicas
// share logins, else memory; and the func that closes it (its Redis
// client).
func NewLogins(ctx context.Context, cfg *config.Config, now func() time.Time) (identity.SessionStore, func() error, error) {
	sc := cfg.Store
	if sc.Type != config.StoreRedis {
		return identity.NewMemorySessions(now), func() error { return nil }, nil
	}
	c, err := dialRedis(ctx, sc)
	if err != nil {
		return nil, nil, err
	}
	s, err := session.NewRedisSessions(c, session.RedisSessionsOptions{Prefix: sc.Redis.KeyPrefix, Keys: sc.EncryptionKeys()})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("store.encryption_keys: %w", err)
	}
	return s, c.Close, nil
}

// redisConfig is how to reach the Redis server of a redis store.
func redisConfig(sc config.StoreConfig) session.RedisConfig {
	r := sc.Redis
	rc := session.RedisConfig{Addr: r.Addr, Username: r.Username, Password: r.Password, DB: r.DB}
	if r.TLS {
		host, _, _ := net.SplitHostPort(r.Addr)
		rc.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return rc
}

// dialRedis connects to the Redis server of a redis store, failing when it
// does not answer PING within ctx and storeStartTimeout.
func dialRedis(ctx context.Context, sc config.StoreConfig) (*redis.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, storeStartTimeout)
	defer cancel()
	c, err := session.DialRedis(ctx, redisConfig(sc))
	if err != nil {
		return nil, fmt.Errorf("store.redis.addr: %w (is Redis up, and do store.redis.username, password and tls match it?)", err)
	}
	return c, nil
}
