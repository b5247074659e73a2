// Command bareproxy is the benchmark's baseline proxy: a bare
// httputil.ReverseProxy (Rewrite with SetURL, a tuned transport and a
// buffer pool) with no identity, jar or filtering. Websockets go through
// ReverseProxy's own handling of 101 Switching Protocols.
//
//	bareproxy -listen 127.0.0.1:8081 -upstream http://127.0.0.1:8443
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	upstream := flag.String("upstream", "", "base URL of the upstream, e.g. http://127.0.0.1:8443")
	flag.Parse()
	if err := run(*listen, *upstream); err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
}

func run(listen, upstream string) error {
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("-upstream %q: want an absolute URL", upstream)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 512
	rp := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:  t,
		BufferPool: newBufferPool(),
		ErrorLog:   log.New(os.Stderr, "bareproxy: ", 0),
	}
	srv := &http.Server{Addr: listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

const bufSize = 32 << 10

// bufferPool is an httputil.BufferPool of 32 KiB buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([bufSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[bufSize]byte)[:] }

func (b *bufferPool) Put(x []byte) {
	if cap(x) >= bufSize {
		b.p.Put((*[bufSize]byte)(x[:bufSize]))
	}
}
