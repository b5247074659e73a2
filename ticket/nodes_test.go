package ticket

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHealthCooldownAndProbe(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	probeErr := map[int]error{}
	var probed []int
	h := newHealth(3, 10*time.Second, func() time.Time { return now }, func(_ context.Context, i int) error {
		probed = append(probed, i)
		return probeErr[i]
	})
	ctx := context.Background()
	step := func(name string, first int, want []int, wantProbed []int) {
		t.Helper()
		probed = nil
		if diff := cmp.Diff(want, h.order(ctx, first)); diff != "" {
			t.Errorf("%s: order(%d) (-want +got):\n%s", name, first, diff)
		}
		if diff := cmp.Diff(wantProbed, probed); diff != "" {
			t.Errorf("%s: probes (-want +got):\n%s", name, diff)
		}
	}
	step("all up", 1, []int{1, 2, 0}, nil)
	if !h.markDown(1) {
		t.Error("markDown(1) of an up node = false, want true")
	}
	if h.markDown(1) {
		t.Error("markDown(1) of a down node = true, want false")
	}
	step("down node last", 1, []int{2, 0, 1}, nil)
	now = now.Add(9 * time.Second)
	step("within cooldown", 1, []int{2, 0, 1}, nil)
	if h.up(1) {
		t.Error("up(1) within cooldown = true")
	}
	now = now.Add(2 * time.Second)
	probeErr[1] = errors.New("still down")
	step("probe fails", 1, []int{2, 0, 1}, []int{1})
	now = now.Add(5 * time.Second)
	step("new cooldown after failed probe", 0, []int{0, 2, 1}, nil)
	now = now.Add(5 * time.Second)
	delete(probeErr, 1)
	step("probe succeeds", 1, []int{1, 2, 0}, []int{1})
	step("up again, no probe", 1, []int{1, 2, 0}, nil)
}
