package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sensegate/sensegate/session"
)

// Issue 14: a query with "%" was re-encoded, pairs with ";" were dropped
// and the rest sorted, so a QRS filter never reached Qlik. Qlik gets the
// query as the client sent it, without the ticket parameters only.
func TestQueryReachesQlikByteForByte(t *testing.T) {
	e := newSpoofEnv(t, nil)
	tests := []struct{ sent, want string }{
		{"filter=name%20eq%20'a;b'&xrfkey=0123456789abcdef", "filter=name%20eq%20'a;b'&xrfkey=0123456789abcdef"},
		{"z=1&a=%7e&m=x+y&a=2", "z=1&a=%7e&m=x+y&a=2"},
		{"filter=name%20eq%20'a;b'&qlikTicket=T&xrfkey=k", "filter=name%20eq%20'a;b'&xrfkey=k"},
		{"qlik%54icket=T&b=%zz", "b=%zz"},
		{"a=1&&b", "a=1&&b"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", e.front.URL+"/qrs/app?"+tt.sent, nil)
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := e.qlik.take()
		if len(got) != 1 {
			t.Fatalf("?%s: Qlik got %d requests, want 1", tt.sent, len(got))
		}
		if q := got[0].URL.RawQuery; q != tt.want {
			t.Errorf("?%s reached Qlik as ?%s, want ?%s", tt.sent, q, tt.want)
		}
	}
}

// listNodes is a Nodes with every session on the node "a", which lists
// the URLs of all nodes.
type listNodes struct{ urls []*url.URL }

func (n listNodes) URL(node string) *url.URL {
	if node == "a" {
		return n.urls[0]
	}
	return nil
}
func (listNodes) Down(string, error) {}
func (n listNodes) URLs() []*url.URL { return n.urls }

// Issue 14: a redirect naming a Qlik node other than qlik.url or the one
// that answered reached the browser, with the node's address.
func TestLocationNamingAnyNodeIsRewritten(t *testing.T) {
	other, _ := url.Parse("https://qlik-node-2.internal:443")
	var loc string
	qlik := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	})
	qu, _ := url.Parse(qlik.srv.URL)
	pub, _ := url.Parse("https://sense.example.com")
	h, err := New(Options{
		Qlik: qu, CookieName: "X-Qlik-Session", Identity: bearer{}, PublicURL: pub,
		Sessions: &fakeSessions{entry: session.Entry{Cookie: "c", Node: "a"}},
		Nodes:    listNodes{urls: []*url.URL{qu, other}},
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	t.Cleanup(front.Close)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct{ loc, want string }{
		{"https://qlik-node-2.internal/sense/app/1?a=1", "https://sense.example.com/sense/app/1?a=1"},
		{"https://QLIK-NODE-2.internal:443/hub/", "https://sense.example.com/hub/"},
		{qlik.srv.URL + "/hub/", "https://sense.example.com/hub/"},
		{"https://elsewhere.example.com/x", "https://elsewhere.example.com/x"},
		{"https://qlik-node-2.internal:8443/x", "https://qlik-node-2.internal:8443/x"}, // another port: not the node
	} {
		loc = tt.loc
		req, _ := http.NewRequest("GET", front.URL+"/hub/", nil)
		req.Header.Set("Authorization", "Bearer alice")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); got != tt.want {
			t.Errorf("Qlik's Location %q reached the browser as %q, want %q", tt.loc, got, tt.want)
		}
	}
}
