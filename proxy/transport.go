package proxy

import (
	"crypto/tls"
	"net/http"
	"sync"
	"time"
)

// Transport sizing: enough idle connections for one busy Qlik proxy node.
// Go's default of 2 idle connections per host costs an order of magnitude
// in throughput under load (see the design notes' measurements).
const (
	maxIdleConns        = 1024
	maxIdleConnsPerHost = 512
	idleConnTimeout     = 90 * time.Second
)

// NewTransport returns a transport for an upstream: a clone of
// http.DefaultTransport with a large idle pool, TLS 1.2 or later with
// tlsConfig (nil: system roots), and responseHeaderTimeout bounding the
// wait for an answer (0: none).
func NewTransport(tlsConfig *tls.Config, responseHeaderTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxIdleConns
	t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	t.IdleConnTimeout = idleConnTimeout
	t.ResponseHeaderTimeout = responseHeaderTimeout
	if tlsConfig == nil {
		tlsConfig = &tls.Config{}
	} else {
		tlsConfig = tlsConfig.Clone()
	}
	if tlsConfig.MinVersion < tls.VersionTLS12 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	t.TLSClientConfig = tlsConfig
	return t
}

const poolBufSize = 32 << 10

// bufferPool is an httputil.BufferPool of 32 KiB buffers. It pools array
// pointers, so Put does not allocate.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([poolBufSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[poolBufSize]byte)[:] }

func (b *bufferPool) Put(x []byte) {
	if cap(x) >= poolBufSize {
		b.p.Put((*[poolBufSize]byte)(x[:poolBufSize]))
	}
}
