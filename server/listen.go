package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/proxy"
	"go.uber.org/zap"
)

// Server limits (server.write_timeout and server.body_timeout are the
// configurable ones). With them, every phase of a connection is bounded:
// the TLS handshake (net/http uses readHeaderTimeout for it too), the
// headers, the body (also one the handler leaves unread, see
// proxy.LimitBodyReads), the response and the idle time between requests.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 1 << 20
)

// drainer is what serve serves: a handler whose relayed websockets
// Shutdown closes (a gateway, or the live gateway of a reloading server).
type drainer interface {
	http.Handler
	Shutdown(ctx context.Context) error
}

// serve runs h on ln (with TLS when sc has a certificate) until ctx ends,
// then shuts down gracefully: stop accepting, close relayed websockets
// with 1001, finish requests, all within sc.ShutdownGrace. ready, when not
// nil, receives the bound address. sc.Listen is not used. It closes ln.
func serve(ctx context.Context, ln net.Listener, sc config.ServerConfig, h drainer, ready chan<- net.Addr, log *zap.Logger) error {
	srv := &http.Server{
		// Not WriteTimeout or ReadTimeout, which would bound whole
		// responses and requests: websockets, long downloads and uploads.
		// LimitStalls bounds stalls instead, until a websocket upgrade
		// hijacks the connection.
		Handler:           proxy.LimitStalls(h, proxy.StallLimits{Write: sc.WriteTimeout, Body: sc.BodyTimeout}),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if sc.WriteTimeout > 0 {
		// LimitStalls bounds each HTTP/2 stream; this bounds the
		// connection under them, whose writes a client that stops reading
		// at the TCP level would otherwise hold until the idle timeout.
		srv.HTTP2 = &http.HTTP2Config{WriteByteTimeout: sc.WriteTimeout}
	}
	scheme := "http"
	if sc.TLS() {
		scheme = "https"
	}
	log.Info("sensegate listening", zap.String("addr", ln.Addr().String()), zap.String("scheme", scheme), zap.String("public_url", sc.PublicURL().String()))
	if ready != nil {
		ready <- ln.Addr()
	}
	errc := make(chan error, 1)
	go func() {
		if sc.TLS() {
			errc <- srv.ServeTLS(ln, sc.TLSCert, sc.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", zap.Duration("grace", sc.ShutdownGrace))
	sctx, cancel := context.WithTimeout(context.Background(), sc.ShutdownGrace)
	defer cancel()
	// Server.Shutdown neither closes nor waits for hijacked connections:
	// close the websockets ourselves, alongside.
	wsDone := make(chan error, 1)
	go func() { wsDone <- h.Shutdown(sctx) }()
	err := srv.Shutdown(sctx)
	if werr := <-wsDone; werr != nil {
		err = errors.Join(err, fmt.Errorf("websockets: %w", werr))
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		err = errors.Join(err, e)
	}
	return err
}
