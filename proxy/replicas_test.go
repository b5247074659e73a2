package proxy

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"github.com/sensegate/sensegate/tooling/qliksim"
	"github.com/sensegate/sensegate/tooling/qliksim/qliksimtest"
	"github.com/sensegate/sensegate/tooling/redistest"
	"go.uber.org/zap/zaptest"
)

// Two sensegate replicas sharing one real Redis in front of one Qlik: a
// user's concurrent first requests spread over both make one ticket, and
// a Qlik restart seen by both is recovered with one new ticket.
func TestReplicasShareOneSession(t *testing.T) {
	sim := qliksimtest.Start(t, nil, qliksim.Options{})
	rdb := redistest.Start(t)
	key := make([]byte, 32)
	rand.Read(key)
	prefix := rdb.Prefix()
	pool, _ := sim.Certs().RootPool()
	cert, err := ticket.LoadClientCert(sim.Certs().Client, sim.Certs().ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL, _ := url.Parse(sim.ProxyURL())
	qpsURL, _ := url.Parse(sim.QPSURL())
	var fronts []string
	for i := range 2 {
		tc, err := ticket.New(ticket.Config{ProxyURL: proxyURL, QPSURL: qpsURL, SessionCookie: qliksim.DefaultCookieName, RootCAs: pool, ClientCert: cert}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tc.CloseIdleConnections)
		jar, err := session.NewRedis(rdb.Client(t), session.RedisOptions{Prefix: prefix, Keys: [][]byte{key}, Idle: 30 * time.Minute, LocalTTL: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := url.Parse("http://localhost")
		tr := NewTransport(&tls.Config{RootCAs: pool}, 30*time.Second)
		t.Cleanup(tr.CloseIdleConnections)
		h, err := New(Options{
			Qlik: proxyURL, CookieName: qliksim.DefaultCookieName, WebsocketCSRF: CSRFOff,
			Identity:  identity.NewHeader(identity.HeaderOptions{Name: "X-Forwarded-User", Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, DefaultDirectory: "ACME"}),
			Sessions:  session.NewBroker(jar, tc, session.BrokerOptions{}),
			Transport: tr, PublicURL: pub, Logger: zaptest.NewLogger(t).Named(fmt.Sprint("replica", i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		fronts = append(fronts, srv.URL)
	}
	burst := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("GET", fronts[i%2]+"/hub/", nil)
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
	if got := sim.Counts(`ACME\alice`).TicketsIssued; got != 1 {
		t.Fatalf("tickets after 50 first requests over 2 replicas = %d, want 1", got)
	}
	sim.ExpireAll()
	burst(20)
	c := sim.Counts(`ACME\alice`)
	if c.TicketsIssued != 2 || c.LiveSessions != 1 {
		t.Errorf("after a Qlik restart seen by both replicas: %+v, want 2 tickets and 1 live session", c)
	}
}
