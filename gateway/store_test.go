package gateway

import (
	"crypto/tls"
	"testing"

	"github.com/sensegate/sensegate/config"
)

// The Redis client speaks TLS 1.2 or later to the server it names.
func TestRedisTLSConfig(t *testing.T) {
	rc := redisConfig(config.StoreConfig{Redis: config.RedisConfig{Addr: "redis.example.com:6380", TLS: true}})
	if rc.TLS == nil || rc.TLS.MinVersion != tls.VersionTLS12 || rc.TLS.ServerName != "redis.example.com" || rc.TLS.InsecureSkipVerify {
		t.Errorf("Redis TLS config = %+v, want TLS 1.2+ verifying redis.example.com", rc.TLS)
	}
	if rc := redisConfig(config.StoreConfig{Redis: config.RedisConfig{Addr: "redis:6379"}}); rc.TLS != nil {
		t.Errorf("store.redis.tls false gave a TLS config")
	}
}
