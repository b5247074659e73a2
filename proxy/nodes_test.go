package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
	"go.uber.org/zap/zaptest"
)

// Killing one of two Qlik nodes: users stick to the node that holds their
// session, and those of the dead node get a new session on the other one
// without a client-visible error, while the others keep theirs.
func TestNodeFailover(t *testing.T) {
	certDir := t.TempDir()
	shared := func(c *qliksim.Config) { c.CertDir = certDir }
	simA := qliksimtest.Start(t, shared, qliksim.Options{})
	simB := qliksimtest.Start(t, shared, qliksim.Options{})
	pool, _ := simA.Certs().RootPool()
	cert, err := ticket.LoadClientCert(simA.Certs().Client, simA.Certs().ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []ticket.Node
	for _, sim := range []*qliksim.Sim{simA, simB} {
		proxyURL, _ := url.Parse(sim.ProxyURL())
		qpsURL, _ := url.Parse(sim.QPSURL())
		tc, err := ticket.New(ticket.Config{ProxyURL: proxyURL, QPSURL: qpsURL, SessionCookie: qliksim.DefaultCookieName, RootCAs: pool, ClientCert: cert}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tc.CloseIdleConnections)
		nodes = append(nodes, ticket.Node{ID: proxyURL.Host, Client: tc})
	}
	tn, err := ticket.NewNodes(nodes, ticket.NodesOptions{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	jar := session.NewMemory(30*time.Minute, nil)
	pub, _ := url.Parse("http://localhost")
	tr := NewTransport(&tls.Config{RootCAs: pool}, 30*time.Second)
	t.Cleanup(tr.CloseIdleConnections)
	first, _ := url.Parse(simA.ProxyURL())
	h, err := New(Options{
		Qlik: first, CookieName: qliksim.DefaultCookieName, CSRF: tn, Nodes: tn,
		Identity:  identity.NewHeader(identity.HeaderOptions{Name: "X-Forwarded-User", Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, DefaultDirectory: "ACME"}),
		Sessions:  session.NewBroker(jar, tn, session.BrokerOptions{}),
		Transport: tr, PublicURL: pub, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	get := func(user, method string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/hub/", nil)
		req.Header.Set("X-Forwarded-User", user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
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
		e, ok, _ := jar.Get(ctx, identity.User{Directory: "ACME", ID: u}.Key())
		if !ok || e.Node != nodes[1].ID {
			t.Errorf("%s: jar entry %v on node %q, want node B %q", u, ok, e.Node, nodes[1].ID)
		}
	}
}
