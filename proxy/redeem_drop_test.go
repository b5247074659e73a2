package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Cold logins through sensegate while the Qlik proxy closes kept-alive
// redemption connections under them without an answer (a restart or a
// load balancer failing mid-request): every user's first requests still
// reach Qlik as that user, no ticket is presented twice, and each lost
// redemption costs exactly one more ticket.
func TestColdLoginsSurviveDroppedRedemptions(t *testing.T) {
	e := newEnv(t)
	if resp, body := e.do(t, "GET", "/qps/user", "warm"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first login: %d %.200q", resp.StatusCode, body)
	}
	const drops, waves, perWave, perUser = 3, 4, 3, 4
	e.sim.DropRedemptions(drops, true)

	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(user string) error {
		req, err := http.NewRequest(http.MethodGet, e.front.URL+"/qps/user", nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Forwarded-User", user)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", user, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var me struct{ UserID string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &me) != nil || !strings.EqualFold(me.UserID, user) {
			return fmt.Errorf("%s: GET /qps/user = %d %.200q, want 200 for %s", user, resp.StatusCode, b, user)
		}
		return nil
	}
	// Waves of users, so that later logins find pooled connections (the
	// simulator drops redemptions on reused connections only).
	users := 0
	for w := range waves {
		var wg sync.WaitGroup
		errs := make(chan error, perWave*perUser)
		for i := range perWave {
			user := fmt.Sprintf("cold-%d-%d", w, i)
			users++
			for range perUser {
				wg.Go(func() {
					if err := get(user); err != nil {
						errs <- err
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}

	dropped := e.sim.DroppedRedemptions()
	if dropped == 0 {
		t.Fatal("no redemption was dropped: the logins did not reuse connections, nothing was tested")
	}
	for tk, n := range e.sim.TicketPresentations() {
		if n > 1 {
			t.Errorf("a ticket (%.6s…) was presented %d times", tk, n)
		}
	}
	if got, want := e.sim.TicketsIssued(), 1+users+dropped; got != want {
		t.Errorf("%d tickets issued for 1+%d users with %d redemptions dropped, want %d (one login per user, one more ticket per drop)", got, users, dropped, want)
	}
}
