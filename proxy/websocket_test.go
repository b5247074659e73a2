package proxy

import (
	"testing"
	"time"
)

// A pump's write deadline is kept while 15/16 of the wait is left of it,
// and moved to now+wait otherwise.
func TestLazyDeadline(t *testing.T) {
	const wait = 16 * time.Second
	d := newLazyDeadline()
	steps := []struct {
		at   time.Duration // since the pump started
		want time.Duration // the new deadline, since the pump started; 0: kept
	}{
		{0, 16 * time.Second}, // the first message sets one
		{0, 0},
		{time.Second, 0}, // 15 s left: 15/16 of the wait
		{time.Second + time.Nanosecond, 17*time.Second + time.Nanosecond},
		{2 * time.Second, 0},
		{time.Minute, time.Minute + 16*time.Second}, // past it
	}
	for i, s := range steps {
		got, moved := d.move(s.at, wait)
		switch {
		case s.want == 0 && moved:
			t.Errorf("step %d: move(%v) = %v, true, want kept", i, s.at, got.Sub(d.base))
		case s.want != 0 && !moved:
			t.Errorf("step %d: move(%v) kept the deadline, want %v", i, s.at, s.want)
		case s.want != 0 && got.Sub(d.base) != s.want:
			t.Errorf("step %d: move(%v) = %v, want %v", i, s.at, got.Sub(d.base), s.want)
		}
	}
	// A deadline given is time.Now()+wait, on the monotonic clock.
	before := time.Now()
	d = newLazyDeadline()
	got, _ := d.move(d.elapsed(), wait)
	if got.Before(before.Add(wait)) || got.After(time.Now().Add(wait)) {
		t.Errorf("deadline %v, want between %v and %v", got, before.Add(wait), time.Now().Add(wait))
	}
}
