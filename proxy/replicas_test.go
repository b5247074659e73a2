package proxy

import (
	"crypto/rand"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/tooling/redistest"
)

// Two sensegate replicas sharing one real Redis in front of one Qlik: a
// user's concurrent first requests spread over both make one ticket, and
// a Qlik restart seen by both is recovered with one new ticket.
func TestReplicasShareOneSession(t *testing.T) {
	rdb := redistest.Start(t)
	key := make([]byte, 32)
	rand.Read(key)
	prefix := rdb.Prefix() // one: the replicas share the sessions
	var jars []session.Store
	for range 2 {
		jar, err := session.NewRedis(rdb.Client(t), session.RedisOptions{Prefix: prefix, Keys: [][]byte{key}, Idle: 30 * time.Minute, LocalTTL: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		jars = append(jars, jar)
	}
	e := newEnvWith(t, envConfig{jars: jars})
	burst := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", e.replicas[i%2].front.URL+"/hub/", nil)
				req.Header.Set("X-Forwarded-User", "alice")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("replica %d: %d", i%2, resp.StatusCode)
				}
			}()
		}
		wg.Wait()
	}
	burst(50)
	if got := e.sim.Counts(`ACME\alice`).TicketsIssued; got != 1 {
		t.Fatalf("tickets after 50 first requests over 2 replicas = %d, want 1", got)
	}
	e.sim.ExpireAll()
	burst(20)
	c := e.sim.Counts(`ACME\alice`)
	if c.TicketsIssued != 2 || c.LiveSessions != 1 {
		t.Errorf("after a Qlik restart seen by both replicas: %+v, want 2 tickets and 1 live session", c)
	}
}
