package ticket

import (
	"context"
	mrand "math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// maxBackoff caps the doubling backoff.
const maxBackoff = 30 * time.Second

// retryPolicy is what sending a request twice risks, which bounds when
// the retrier may try it again. Every request states its own.
type retryPolicy int

const (
	// attemptOnce makes a single attempt, whatever the failure (Ping:
	// readiness probes repeat anyway). It is the zero retryPolicy.
	attemptOnce retryPolicy = iota
	// retryUnsent retries only a temporary failure before the request
	// left (dial or TLS handshake): a copy that reached the server could
	// only fail. A redemption: the proxy consumes the single-use ticket
	// as soon as it reads the request.
	retryUnsent
	// retryReplay retries any temporary failure, even after the request
	// may have reached the server (a network error once it was sent, a
	// 5xx): the call is idempotent, or a duplicate is harmless.
	retryReplay
)

// retrier is the retry engine of a Client: it makes the attempts of one
// call, each QPS attempt within a slot of the cap on calls in flight
// (limit.go), and after a failure decides whether to try again and when.
// The calls (client.go) say what they send, which answers they accept
// and, with the request's retryPolicy, what a repeat risks; the retrier
// alone says how often and after what wait. It is safe for concurrent
// use.
type retrier struct {
	// retries is the number of extra attempts after a temporary failure
	// (Config.Retries; 0: none).
	retries int
	// backoff is the wait before the first retry (Config.Backoff).
	backoff time.Duration
	// timeout bounds an attempt's wait for a slot (Config.Timeout).
	timeout time.Duration
	// slots holds one token per capped QPS call in flight
	// (Config.MaxConcurrent).
	slots chan struct{}
	log   *zap.Logger
	// send makes one attempt of r (Client.attempt). wrote reports whether
	// the request may have reached the server.
	send func(ctx context.Context, r *request) (res *response, wrote bool, err error)
}

// do runs r until check accepts an answer, an error is final, the retries
// are used up or ctx ends. check returns nil to accept, or the *Error the
// answer means, Temporary if another attempt may get a better one.
func (rt *retrier) do(ctx context.Context, r *request, check func(*response) *Error) error {
	for n := 1; ; n++ {
		start := time.Now()
		if r.capped() {
			// A call that found no slot is not retried: the wait was
			// its share of time already.
			if e := rt.acquire(ctx, r); e != nil {
				e.Attempts = n
				// The caller logs the error it returns (one line per
				// failure, with the request's context): here, debug.
				rt.log.Debug("qlik request failed", append(attemptFields(r, n, start, nil), zap.Bool("retry", false), zap.Error(e))...)
				return e
			}
		}
		res, wrote, err := rt.send(ctx, r)
		if r.capped() {
			rt.release()
		}
		var e *Error
		switch {
		case err == errTooLarge:
			e = &Error{Op: r.op, User: r.user, Kind: ErrRejected, Msg: "QPS answered with an oversized body", Cause: err}
		case err != nil:
			e = transportError(ctx, r, err, rt.timeout)
		default:
			res.attempt = n
			e = check(res)
		}
		fields := attemptFields(r, n, start, res)
		if e == nil {
			rt.log.Debug("qlik request", fields...)
			return nil
		}
		e.Attempts = n
		retry := rt.again(r, n, e, res != nil || wrote) && ctx.Err() == nil
		var wait time.Duration
		if retry {
			wait = backoff(rt.backoff, n)
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				retry = false // no time left for another attempt: report the real error
			}
		}
		// Each attempt at debug: the final error says how many there
		// were, and the caller logs it once, with the request's context.
		rt.log.Debug("qlik request failed", append(fields, zap.Bool("retry", retry), zap.Error(e))...)
		if !retry {
			return e
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			ce := canceled(ctx, r, e)
			ce.Attempts = n
			return ce
		case <-t.C:
		}
	}
}

// again reports whether attempt n of r, which failed with e, may be
// followed by another: e is temporary, retries are left, and r's policy
// allows a repeat (sent: the request may have reached the server).
func (rt *retrier) again(r *request, n int, e *Error, sent bool) bool {
	if !e.Temporary || n > rt.retries {
		return false
	}
	switch r.retry {
	case retryReplay:
		return true
	case retryUnsent:
		return !sent
	}
	return false
}

// attemptFields are the log fields of attempt n of r, begun at start; res
// is its answer, if any.
func attemptFields(r *request, n int, start time.Time, res *response) []zap.Field {
	fields := []zap.Field{zap.String("op", r.op), zap.Int("attempt", n), zap.Duration("duration", time.Since(start))}
	if r.user != "" {
		fields = append(fields, zap.String("user", r.user))
	}
	if res != nil {
		fields = append(fields, zap.Int("status", res.status))
	}
	return fields
}

// backoff is the wait after attempt n (1-based): base doubled n-1 times,
// capped, with jitter in [d/2, d).
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	if d < 2 {
		return d
	}
	return d/2 + mrand.N(d/2)
}
