package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPollerDoublesUpToMax(t *testing.T) {
	p := New(2*time.Millisecond, 8*time.Millisecond)
	defer p.Stop()
	for _, want := range []time.Duration{4 * time.Millisecond, 8 * time.Millisecond, 8 * time.Millisecond} {
		if err := p.Wait(context.Background()); err != nil {
			t.Fatalf("Wait = %v", err)
		}
		if p.delay != want {
			t.Errorf("next delay = %v, want %v", p.delay, want)
		}
	}
}

func TestPollerStopsWithContext(t *testing.T) {
	p := New(time.Hour, time.Hour)
	defer p.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with an ended context = %v, want context.Canceled", err)
	}
}
