package identity

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sensegate/sensegate/tooling/fakeclock"
)

func TestMemorySessionsSweep(t *testing.T) {
	ctx := context.Background()
	clock := fakeclock.New()
	m := NewMemorySessions(clock.Now)
	for i := range 100 {
		m.Put(ctx, fmt.Sprint(i), []byte("x"), time.Minute)
	}
	m.Put(ctx, "long", []byte("x"), time.Hour)
	clock.Advance(memorySweepInterval + time.Second)
	// Expired entries nobody reads again go at the next Put after the
	// sweep interval.
	m.Put(ctx, "new", []byte("x"), time.Hour)
	if got := m.len(); got != 2 {
		t.Errorf("len after sweep = %d, want 2", got)
	}
	if err := m.Put(ctx, "new", nil, 0); err != nil || m.len() != 1 {
		t.Errorf("Put with ttl 0 = %v, len %d; want it deleted", err, m.len())
	}
}
