// Package backoff paces the polls of a loop that waits for another
// replica (the holder of a login or refresh lock): delays doubling from a
// minimum to a maximum, each drawn at random from its upper half so that
// waiters do not poll in step, and each bounded by a context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Poller waits between polls. Build it with New and Stop it when done. It
// is not safe for concurrent use.
type Poller struct {
	delay, max time.Duration
	timer      *time.Timer
}

// New returns a Poller whose first wait is about min and whose waits
// double up to about max.
func New(min, max time.Duration) *Poller { return &Poller{delay: min, max: max} }

// Wait waits the next delay (half of it to all of it, at random) and
// doubles it for the next time, up to max; it returns ctx.Err() if ctx
// ends first.
func (p *Poller) Wait(ctx context.Context) error {
	d := p.delay/2 + rand.N(p.delay/2+1)
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	p.delay = min(2*p.delay, p.max)
	select {
	case <-p.timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop releases the timer.
func (p *Poller) Stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}
