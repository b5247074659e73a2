package proxy

import (
	"net/http"
	"testing"
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
