package fakeclock

import (
	"testing"
	"time"
)

func TestClockMovesOnlyWhenAdvanced(t *testing.T) {
	c := New()
	if !c.Now().Equal(Start) {
		t.Fatalf("Now = %v, want %v", c.Now(), Start)
	}
	c.Advance(time.Minute)
	if got := c.Now().Sub(Start); got != time.Minute {
		t.Fatalf("after Advance(1m) the clock moved %v", got)
	}
}
