package ticket

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/tooling/fakeclock"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
)

// benchLogin measures Login in ModeTicket against the simulator in the
// same process: a ticket from QPS (mutual TLS) and its redemption on the
// proxy side, for a user never seen before each time (one session each,
// so the parallel-session cap never refuses). The figures include the
// simulator's share of the work (its TLS accepts, handlers), as on a
// machine that runs both. parallelism > 0 runs GOMAXPROCS×parallelism
// logins at once (b.RunParallel), as in a cold-login burst.
func benchLogin(b *testing.B, parallelism int) {
	sim := qliksimtest.Start(b, nil, qliksim.Options{Clock: fakeclock.New()})
	c, err := New(simConfig(b, sim, "", "X-Qlik-Session"), zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.CloseIdleConnections)
	ctx := context.Background()
	var n atomic.Int64
	login := func() {
		u := identity.User{Directory: "BENCH", ID: fmt.Sprintf("user%d", n.Add(1))}
		if _, err := c.Login(ctx, u); err != nil {
			b.Error(err)
		}
	}
	login() // the QPS connection, and the simulator's first handshake
	b.ReportAllocs()
	b.ResetTimer()
	if parallelism == 0 {
		for b.Loop() {
			login()
		}
		return
	}
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			login()
		}
	})
}

// BenchmarkLogin is one login after another.
func BenchmarkLogin(b *testing.B) { benchLogin(b, 0) }

// BenchmarkLoginBurst is 8 logins at a time on 2 cores (4 per core), as
// in the cold-login burst of docs/performance.md.
func BenchmarkLoginBurst(b *testing.B) { benchLogin(b, 4) }
