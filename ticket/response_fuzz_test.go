package ticket

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/sensegate/sensegate/tooling/qliksim"
)

// FuzzTicketResponse answers Client.Ticket with arbitrary QPS statuses and
// bodies (repeated up to past the body limit). Ticket never panics; it
// succeeds only on 200 or 201 with a JSON body holding a non-blank
// Ticket, which it returns; an error quotes at most the start of the body.
func FuzzTicketResponse(f *testing.F) {
	ok := `{"UserDirectory":"ACME","UserId":"alice","Attributes":[],"Ticket":"swiaZulzKHlfJfzr","TargetUri":null}`
	f.Add(201, []byte(ok), uint16(1))
	f.Add(200, []byte(ok), uint16(1))
	f.Add(201, []byte(`{"Ticket":""}`), uint16(1))
	f.Add(201, []byte(`{"Ticket":"   "}`), uint16(1))
	f.Add(201, []byte(`{"Ticket":123}`), uint16(1))
	f.Add(201, []byte(`{"ticket":"lower"}`), uint16(1))
	f.Add(201, []byte(`{"Ticket":"a","Ticket":"b"}`), uint16(1))
	f.Add(201, []byte(`[]`), uint16(1))
	f.Add(201, []byte(`null`), uint16(1))
	f.Add(201, []byte(`{"Ticket":"x"`), uint16(1))
	f.Add(201, []byte(``), uint16(1))
	f.Add(201, []byte(`{"Ticket":"\u0000"}`), uint16(1))
	f.Add(204, []byte(ok), uint16(1))
	f.Add(400, []byte(`{"error":"bad request"}`), uint16(1))
	f.Add(403, []byte("Too many sessions for the user"), uint16(1))
	f.Add(500, []byte("<html><body>Internal Server Error</body></html>"), uint16(1))
	f.Add(503, []byte("unavailable "), uint16(200))
	f.Add(401, []byte("SECRET-PAST-THE-SNIPPET "), uint16(500))
	f.Add(201, []byte(" "), uint16(60000))
	f.Add(201, []byte(`{"Ticket":"`+strings.Repeat("t", 1000)+`"}`), uint16(1))
	f.Add(302, []byte("moved"), uint16(1))

	var (
		mu     sync.Mutex
		status int
		body   []byte
	)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, b := status, body
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(st)
		w.Write(b)
	}))
	f.Cleanup(srv.Close)
	certs, err := qliksim.WriteCerts(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := LoadClientCert(certs.Client, certs.ClientKey)
	if err != nil {
		f.Fatal(err)
	}
	u, err := url.Parse(srv.URL)
	if err != nil {
		f.Fatal(err)
	}
	c, err := New(Config{
		ProxyURL: u, QPSURL: u, SessionCookie: "X-Qlik-Session",
		RootCAs:    srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		ClientCert: cert, Timeout: 10 * time.Second, Backoff: time.Millisecond, Retries: 0,
	}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(c.CloseIdleConnections)

	f.Fuzz(func(t *testing.T, st int, chunk []byte, repeat uint16) {
		st = 200 + abs(st)%400 // a final status WriteHeader accepts
		b := bytes.Repeat(chunk, max(1, int(repeat)))
		if len(b) > 2*maxBody {
			b = b[:2*maxBody]
		}
		mu.Lock()
		status, body = st, b
		mu.Unlock()
		tk, err := c.Ticket(context.Background(), alice)
		if err == nil {
			if st != http.StatusOK && st != http.StatusCreated {
				t.Fatalf("status %d: a ticket %q", st, tk)
			}
			if strings.TrimSpace(tk) == "" {
				t.Fatalf("status %d body %q: success with a blank ticket", st, b)
			}
			var out struct{ Ticket string }
			if json.Unmarshal(b, &out) != nil || out.Ticket != tk {
				t.Fatalf("status %d body %q: ticket %q is not the body's", st, b, tk)
			}
			return
		}
		if tk != "" {
			t.Fatalf("error %v with ticket %q", err, tk)
		}
		msg := err.Error()
		if len(msg) > 2*maxSnippet+1000 {
			t.Fatalf("error of %d bytes quotes too much: %.300q…", len(msg), msg)
		}
		// The body past the snippet is not quoted (unless it repeats the start).
		norm := strings.Join(strings.Fields(string(b)), " ")
		if len(norm) > 3*maxSnippet {
			tail := norm[len(norm)-maxSnippet/2:]
			if !strings.Contains(norm[:maxSnippet+len(tail)], tail) && strings.Contains(msg, tail) {
				t.Fatalf("error quotes the body past %d bytes: %.300q", maxSnippet, msg)
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		if n == -n { // the smallest int
			return 0
		}
		return -n
	}
	return n
}
