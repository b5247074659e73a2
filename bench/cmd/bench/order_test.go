package main

import (
	"slices"
	"testing"

	"github.com/sensegate/sensegate/bench"
)

func names(ts []*target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.name)
	}
	return out
}

// TestOrderTargets: sensegate runs right next to every target its ratios
// divide by, in every round, and each round reverses the last.
func TestOrderTargets(t *testing.T) {
	for _, withBaseline := range []bool{false, true} {
		var ts []*target
		for _, n := range []string{bench.Direct, bench.Bare, bench.Nginx, bench.Sensegate} {
			ts = append(ts, &target{name: n})
		}
		if withBaseline {
			ts = append(ts, &target{name: bench.Baseline})
		}
		var prev []string
		for round := range 4 {
			got := names(orderTargets(ts, round))
			if len(got) != len(ts) {
				t.Fatalf("round %d: %v, want every target once", round, got)
			}
			i := slices.Index(got, bench.Sensegate)
			near := func(name string) bool {
				j := slices.Index(got, name)
				return j == i-1 || j == i+1
			}
			if !near(bench.Bare) {
				t.Errorf("round %d: %v: the bare proxy does not run next to sensegate", round, got)
			}
			if withBaseline && !near(bench.Baseline) {
				t.Errorf("round %d: %v: the baseline does not run next to sensegate", round, got)
			}
			if !withBaseline && !near(bench.Nginx) {
				t.Errorf("round %d: %v: nginx does not run next to sensegate", round, got)
			}
			if prev != nil {
				rev := slices.Clone(prev)
				slices.Reverse(rev)
				if !slices.Equal(got, rev) {
					t.Errorf("round %d: %v, want the last round's reversed (%v)", round, got, rev)
				}
			}
			prev = got
		}
		if names(ts)[0] != bench.Direct {
			t.Errorf("orderTargets reordered its argument: %v", names(ts))
		}
	}
}
