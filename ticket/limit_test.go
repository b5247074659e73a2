package ticket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
)

// At most MaxConcurrent QPS calls are in flight at once, counted at QPS:
// while they hang, further calls fail with a temporary ErrBusy (503)
// without reaching QPS, a caller that gives up gets its cancellation, and
// Ping still gets through. When the calls finish, their slots serve new
// ones.
func TestMaxConcurrentQPSCalls(t *testing.T) {
	const limit = 3
	var (
		mu             sync.Mutex
		inFlight, most int
		tickets        int
	)
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	_, cfg := fakeQPS(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/qps/user/") {
			io.WriteString(w, "[]") // Ping
			return
		}
		mu.Lock()
		inFlight++
		tickets++
		most = max(most, inFlight)
		mu.Unlock()
		defer func() { mu.Lock(); inFlight--; mu.Unlock() }()
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"Ticket":"t0123456789abcdef"}`)
	})
	cfg.MaxConcurrent = limit
	cfg.Timeout = 30 * time.Second // the held calls must outlast the rest of the test
	c, _ := newClient(t, cfg, nil)
	user := func(i int) identity.User { return identity.User{Directory: "ACME", ID: fmt.Sprintf("user%d", i)} }

	held := make(chan error, limit)
	for i := range limit {
		go func() {
			_, err := c.Ticket(context.Background(), user(i))
			held <- err
		}()
	}
	for range limit {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the first calls did not reach QPS")
		}
	}

	// Every slot is taken: more calls wait, then fail without reaching QPS.
	const extra = 5
	errs := make(chan error, extra)
	for i := range extra {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := c.Ticket(ctx, user(limit+i))
			errs <- err
		}()
	}
	for range extra {
		err := <-errs
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrBusy) || !e.Temporary || e.Attempts != 1 || e.Permanent() {
			t.Errorf("Ticket with every slot taken = %v, want a temporary ErrBusy after 1 attempt", err)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%d calls to QPS", limit)) {
			t.Errorf("ErrBusy message %q does not name the cap", err)
		}
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Ticket(gone, user(99)); !errors.Is(err, context.Canceled) || errors.Is(err, ErrBusy) {
		t.Errorf("Ticket of a caller that went away = %v, want its cancellation", err)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if err := c.Ping(pctx); err != nil {
		t.Errorf("Ping with every slot taken = %v, want it to bypass the cap", err)
	}
	mu.Lock()
	gotMost, gotTickets := most, tickets
	mu.Unlock()
	if gotMost != limit || gotTickets != limit {
		t.Errorf("QPS saw %d ticket calls, at most %d at once; want %d and %d", gotTickets, gotMost, limit, limit)
	}

	close(release)
	for range limit {
		if err := <-held; err != nil {
			t.Errorf("a held call failed: %v", err)
		}
	}
	if _, err := c.Ticket(context.Background(), user(100)); err != nil {
		t.Errorf("Ticket after the slots freed = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != limit || tickets != limit+1 {
		t.Errorf("QPS saw %d ticket calls, at most %d at once; want %d and %d", tickets, most, limit+1, limit)
	}
}

func TestMaxConcurrentConfig(t *testing.T) {
	_, cfg := fakeQPS(t, func(http.ResponseWriter, *http.Request) {})
	cfg.MaxConcurrent = -1
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "MaxConcurrent: -1 is negative") {
		t.Errorf("New with MaxConcurrent -1 = %v, want it named", err)
	}
	cfg.MaxConcurrent = 0
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if got := cap(c.rt.slots); got != DefaultMaxConcurrent {
		t.Errorf("slots with MaxConcurrent 0 = %d, want DefaultMaxConcurrent (%d)", got, DefaultMaxConcurrent)
	}
}
