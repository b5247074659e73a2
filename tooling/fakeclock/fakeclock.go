// Package fakeclock is the one fake clock of sensegate's tests: a time that
// moves only when a test advances it. Its Now method fits every Now
// func() time.Time option of the runtime packages and the simulator's
// Clock interface.
package fakeclock

import (
	"sync"
	"time"
)

// Start is where a clock made by New starts: a fixed instant, so that
// tests read the same times on every run.
var Start = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// Clock is a fake clock, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock at Start.
func New() *Clock { return At(Start) }

// At returns a clock at t.
func At(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
