package ticket

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBusy: the Client's cap on QPS API calls in flight
// (Config.MaxConcurrent) was reached and no slot freed within the call's
// Timeout or context: QPS is slow or the load is high. The call never
// reached QPS. Temporary.
var ErrBusy = errors.New("too many qps calls in flight")

// busy is the Cause of an ErrBusy *Error. Its Temporary method lets
// callers that do not import this package see a transient condition.
type busy struct{ limit int }

func (b busy) Error() string { return fmt.Sprintf("all %d slots for QPS calls are taken", b.limit) }
func (busy) Temporary() bool { return true }

// capped reports whether r counts against Config.MaxConcurrent: every
// QPS API call but Ping.
func (r *request) capped() bool { return r.qps && !r.uncapped }

// acquire takes a slot for an attempt of r, waiting at most the call
// Timeout and ctx. A caller that went away gets the cancellation error;
// otherwise a wait that ends without a slot is ErrBusy. release gives the
// slot back.
func (rt *retrier) acquire(ctx context.Context, r *request) *Error {
	select {
	case rt.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(rt.timeout)
	defer t.Stop()
	select {
	case rt.slots <- struct{}{}:
		return nil
	case <-t.C:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return canceled(ctx, r, nil)
		}
	}
	return &Error{
		Op: r.op, User: r.user, Kind: ErrBusy, Temporary: true, Cause: busy{cap(rt.slots)},
		Msg: fmt.Sprintf("not sent: %d calls to QPS at %s are in flight already, the most allowed at once, and none finished in time (QPS is slow or the load is high)", cap(rt.slots), r.url.Host),
	}
}

func (rt *retrier) release() { <-rt.slots }
