package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// Killing one of two Qlik nodes: users stick to the node that holds their
// session, and those of the dead node get a new session on the other one
// without a client-visible error, while the others keep theirs.
func TestNodeFailover(t *testing.T) {
	jar := session.NewMemory(30*time.Minute, nil)
	e := newEnvWith(t, envConfig{nodes: 2, jars: []session.Store{jar}}, func(_ *qliksim.Config, o *Options) { o.WebsocketCSRF = CSRFAuto })
	simA, simB := e.sims[0], e.sims[1]
	nodeB, _ := url.Parse(simB.ProxyURL())
	get := func(user, method string) {
		t.Helper()
		if resp, _ := e.do(t, method, "/hub/", user); resp.StatusCode != http.StatusOK {
			t.Errorf("%s %s for %s = %d, want 200", method, "/hub/", user, resp.StatusCode)
		}
	}
	var users []string
	for i := range 12 {
		users = append(users, fmt.Sprint("user", i))
	}
	for range 3 {
		for _, u := range users {
			get(u, http.MethodGet)
		}
	}
	onA := map[string]bool{}
	beforeB := map[string]int{}
	for _, u := range users {
		a, b := simA.Counts(`ACME\`+u).TicketsIssued, simB.Counts(`ACME\`+u).TicketsIssued
		if a+b != 1 {
			t.Fatalf("%s: tickets on A %d, on B %d; want one in all", u, a, b)
		}
		onA[u], beforeB[u] = a == 1, b
	}
	var nA int
	for _, a := range onA {
		if a {
			nA++
		}
	}
	if nA == 0 || nA == len(users) {
		t.Fatalf("%d of %d users on node A, want them spread", nA, len(users))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := simA.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, u := range users {
			get(u, http.MethodGet)
		}
	}
	for _, u := range users {
		// Exactly one new ticket on B for the users of A, none for B's.
		want := beforeB[u]
		if onA[u] {
			want++
		}
		if got := simB.Counts(`ACME\` + u).TicketsIssued; got != want {
			t.Errorf("%s (on A: %v): tickets on B = %d, want %d", u, onA[u], got, want)
		}
		entry, ok, _ := jar.Get(ctx, identity.User{Directory: "ACME", ID: u}.Key())
		if !ok || entry.Node != nodeB.Host {
			t.Errorf("%s: jar entry %v on node %q, want node B %q", u, ok, entry.Node, nodeB.Host)
		}
	}
}
