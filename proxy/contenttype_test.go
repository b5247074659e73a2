package proxy

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
)

// TestContentTypeThroughProxy: an answer's Content-Type reaches the client as Qlik or a route sent it (one
// canonical header line per value, in order), and an event stream is
// still flushed at once although its length is known.
func TestContentTypeThroughProxy(t *testing.T) {
	release := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/events"):
			// With a Content-Length, only the media type makes
			// ReverseProxy flush before the body ends.
			w.Header().Set("Content-Type", "Text/Event-Stream; charset=utf-8")
			w.Header().Set("Content-Length", "1000")
			w.Write([]byte("data: 1\n\n"))
			http.NewResponseController(w).Flush()
			<-release
		case strings.HasSuffix(r.URL.Path, "/two"):
			w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8", "text/html"}
			w.Write([]byte("two"))
		default:
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
			w.Write([]byte("body{}"))
		}
	}))
	defer upstream.Close()
	qu, _ := url.Parse(upstream.URL)
	pub, _ := url.Parse("http://localhost")
	h, err := New(Options{
		Qlik: qu, CookieName: benchCookieName, Identity: identity.NewStatic(benchUser), Sessions: newWarmBroker(t, nil),
		PublicURL: pub, Routes: []Route{{Path: "/mashup/", Upstream: qu}},
	})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	defer h.CloseIdleConnections()
	// First of all: a stream still open would keep front.Close waiting.
	defer close(release)

	for _, path := range []string{"/resources/", "/mashup/"} {
		for _, tc := range []struct{ name, want string }{
			{"x.css", "Content-Type: text/css; charset=utf-8\r\n"},
			{"two", "Content-Type: text/plain; charset=utf-8\r\nContent-Type: text/html\r\n"},
		} {
			head := rawHead(t, front.URL, path+tc.name)
			if got := contentTypeLines(head); got != tc.want {
				t.Errorf("GET %s%s: Content-Type lines %q, want %q (head %q)", path, tc.name, got, tc.want, head)
			}
		}
		t.Run(path+"events", func(t *testing.T) {
			// Unflushed, even the answer's header stays in the proxy:
			// the whole exchange runs apart, and the test waits for it.
			type answer struct {
				ct   []string
				line string
				err  error
			}
			got := make(chan answer, 1)
			go func() {
				resp, err := http.Get(front.URL + path + "events")
				if err != nil {
					got <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				line, err := bufio.NewReader(resp.Body).ReadString('\n')
				got <- answer{resp.Header.Values("Content-Type"), line, err}
			}()
			select {
			case a := <-got:
				if a.err != nil || a.line != "data: 1\n" {
					t.Errorf("first event %q (%v), want %q", a.line, a.err, "data: 1\n")
				}
				if len(a.ct) != 1 || a.ct[0] != "Text/Event-Stream; charset=utf-8" {
					t.Errorf("Content-Type %q, want the upstream's", a.ct)
				}
			case <-time.After(10 * time.Second):
				t.Error("the event stream's first event was not flushed")
			}
		})
	}
}

// rawHead returns the header block of the answer to GET base+path, as the
// bytes came on the wire.
func rawHead(t *testing.T, base, path string) string {
	t.Helper()
	u, _ := url.Parse(base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the answer's head: %v (so far %q)", err, head.String())
		}
		if line == "\r\n" {
			return head.String()
		}
		head.WriteString(line)
	}
}

// contentTypeLines returns the lines of head whose name is Content-Type
// in any spelling, as they are.
func contentTypeLines(head string) string {
	var out strings.Builder
	for line := range strings.SplitAfterSeq(head, "\r\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Content-Type") {
			out.WriteString(line)
		}
	}
	return out.String()
}
