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

// spareMediaTypeParse keeps ReverseProxy from parsing the Content-Type of
// an answer that cannot be an event stream; both proxies' ModifyResponse
// end with it. ReverseProxy parses every answer's Content-Type
// (mime.ParseMediaType in its flushInterval: two allocations and a scan
// per request) only to flush text/event-stream at once. It looks the
// value up with Header.Get, which does not find a lower-case key, and
// copies the header to the client with Header.Add, which canonicalises
// the key again: moved under "content-type", the values reach the client
// as they came, in order, and no parse runs. A value that mentions
// event-stream in any case keeps its key, and ReverseProxy decides as it
// always did. TestContentTypeThroughProxy checks both halves.
func spareMediaTypeParse(hdr http.Header) {
	const canonical, lower = "Content-Type", "content-type"
	vv, ok := hdr[canonical]
	if !ok {
		return
	}
	if _, dup := hdr[lower]; dup {
		return // not from a parsed answer: leave it be
	}
	for _, v := range vv {
		if containsFoldASCII(v, "event-stream") {
			return
		}
	}
	delete(hdr, canonical)
	hdr[lower] = vv
}

// containsFoldASCII reports whether s contains sub (lower-case ASCII)
// with ASCII letters in any case. mime.ParseMediaType's media type is
// ASCII, so it finds every spelling of text/event-stream.
func containsFoldASCII(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
			j++
		}
		if j == len(sub) {
			return true
		}
	}
	return false
}
