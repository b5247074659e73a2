package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
)

// Benchmarks of the hot path (DESIGN.md, "Performance shape"): a warm
// user's small Qlik request, measured side by side
//
//	direct:    client → upstream
//	bare:      client → httputil.ReverseProxy (SetURL, tuned transport, BufferPool) → upstream
//	sensegate: client → Handler (identity, jar lookup, rewrite) → upstream
//
// Run them together so that the ratios come from one machine state:
//
//	go test -run XXX -bench . -benchtime 3s -count 3 ./proxy/

// benchBody is the fixed 1 KB body the upstream serves.
var benchBody = bytes.Repeat([]byte("0123456789abcdef"), 64)

// benchPaths are Qlik-looking paths; requests alternate between them.
var benchPaths = []string{"/qrs/about", "/resources/x.css"}

const (
	benchCookieName = "X-Qlik-Session"
	benchCookie     = "warm-session-cookie"
	// benchEchoPath makes the upstream echo the Cookie header it got, so
	// the setup can check that sensegate really forwards the jar's cookie.
	benchEchoPath = "/qrs/bench-echo-cookie"
	// benchClients is the number of concurrent clients.
	benchClients = 64
)

var benchUser = identity.User{Directory: "ACME", ID: "alice"}

// benchGroupUser is a user with group attributes, as header and OIDC
// providers usually give them; its key carries the attributes' digest.
var benchGroupUser = identity.User{Directory: "ACME", ID: "bob", Attributes: []identity.Attribute{
	{Key: "Group", Value: "Sales"}, {Key: "Group", Value: "EMEA"}, {Key: "Group", Value: "Analysts"},
}}

// newBenchUpstream serves benchBody as text/plain on any path.
func newBenchUpstream() *httptest.Server {
	contentLength := strconv.Itoa(len(benchBody))
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == benchEchoPath {
			w.Write([]byte(r.Header.Get("Cookie")))
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{contentLength}
		w.Write(benchBody)
	}))
}

// benchLoginer hands out one fixed cookie; it is called once, to warm the jar.
type benchLoginer struct{}

func (benchLoginer) Login(context.Context, identity.User) (*http.Cookie, error) {
	return &http.Cookie{Name: benchCookieName, Value: benchCookie}, nil
}

// newWarmBroker returns a real broker over an in-memory jar that already
// holds the sessions of benchUser and benchGroupUser, so Ensure is a jar
// hit.
func newWarmBroker(tb testing.TB, m *session.Metrics) *session.Broker {
	tb.Helper()
	br := session.NewBroker(session.NewMemory(30*time.Minute, nil), benchLoginer{}, session.BrokerOptions{Metrics: m})
	for _, u := range []identity.User{benchUser, benchGroupUser} {
		if _, err := br.Ensure(context.Background(), u); err != nil {
			tb.Fatal(err)
		}
	}
	return br
}

// newBenchSensegate returns sensegate's handler in front of qlik with a
// static identity and a warm jar. transport nil takes the handler's default.
// With metrics, the handler and broker record into a registry of their own,
// as serve wires them.
func newBenchSensegate(tb testing.TB, qlik string, transport http.RoundTripper, metrics bool) *Handler {
	tb.Helper()
	return newBenchSensegateWith(tb, qlik, transport, metrics, identity.NewStatic(benchUser))
}

// newBenchSensegateWith is newBenchSensegate with another identity
// provider; it must identify benchUser or benchGroupUser.
func newBenchSensegateWith(tb testing.TB, qlik string, transport http.RoundTripper, metrics bool, id identity.Provider) *Handler {
	tb.Helper()
	qu, err := url.Parse(qlik)
	if err != nil {
		tb.Fatal(err)
	}
	pub, _ := url.Parse("http://localhost")
	var (
		pm *Metrics
		sm *session.Metrics
	)
	if metrics {
		reg := prometheus.NewRegistry()
		if pm, err = NewMetrics(reg); err != nil {
			tb.Fatal(err)
		}
		if sm, err = session.NewMetrics(reg); err != nil {
			tb.Fatal(err)
		}
	}
	h, err := New(Options{
		Qlik:       qu,
		CookieName: benchCookieName,
		Identity:   id,
		Sessions:   newWarmBroker(tb, sm),
		PublicURL:  pub,
		Transport:  transport,
		Metrics:    pm,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// newBareProxy is the baseline: httputil.ReverseProxy with SetURL only.
func newBareProxy(tb testing.TB, upstream string, transport http.RoundTripper) *httputil.ReverseProxy {
	tb.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		tb.Fatal(err)
	}
	return &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		Transport:  transport,
		BufferPool: newBufferPool(),
	}
}

// newBenchClient allows an idle connection per concurrent client.
func newBenchClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = 2 * benchClients
	t.MaxConnsPerHost = 0
	return &http.Client{Transport: t}
}

// benchGet does one request and checks the answer; it returns the body
// when keep is set.
func benchGet(c *http.Client, req *http.Request, keep bool) (string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if keep {
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = &benchStatusError{resp.StatusCode}
		}
		return string(b), err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || n != int64(len(benchBody)) {
		return "", &benchStatusError{resp.StatusCode}
	}
	return "", nil
}

type benchStatusError struct{ status int }

func (e *benchStatusError) Error() string {
	return "unexpected answer: status " + strconv.Itoa(e.status) + " or wrong body length"
}

func BenchmarkHTTPSmall(b *testing.B) {
	upstream := newBenchUpstream()
	defer upstream.Close()

	bareRP := newBareProxy(b, upstream.URL, NewTransport(nil, 0))
	bare := httptest.NewServer(bareRP)
	defer bare.Close()
	defer bareRP.Transport.(*http.Transport).CloseIdleConnections()

	sg := newBenchSensegate(b, upstream.URL, nil, false) // the production default transport
	sense := httptest.NewServer(sg)
	defer sense.Close()
	defer sg.CloseIdleConnections()
	sgm := newBenchSensegate(b, upstream.URL, nil, true)
	senseMetrics := httptest.NewServer(sgm)
	defer senseMetrics.Close()
	defer sgm.CloseIdleConnections()

	// The handler must really be on the warm path: the jar's cookie goes
	// upstream, nothing else.
	{
		c := newBenchClient()
		req, _ := http.NewRequest("GET", sense.URL+benchEchoPath, nil)
		req.Header.Set("Cookie", benchCookieName+"=client-forged")
		got, err := benchGet(c, req, true)
		if err != nil || got != benchCookieName+"="+benchCookie {
			b.Fatalf("sensegate forwarded Cookie %q (%v), want the jar's", got, err)
		}
		c.CloseIdleConnections()
	}

	// What the client and the upstream allocate for a request, which
	// every front's allocs/op includes: proxy-allocs/op is the rest.
	endAllocs := 0.0
	{
		c := newBenchClient()
		const n = 2000
		reqs := make([]*http.Request, len(benchPaths))
		for i, p := range benchPaths {
			reqs[i], _ = http.NewRequest("GET", upstream.URL+p, nil)
		}
		for i := range 100 {
			benchGet(c, reqs[i%len(reqs)], false)
		}
		m0 := mallocs()
		for i := range n {
			if _, err := benchGet(c, reqs[i%len(reqs)], false); err != nil {
				b.Fatal(err)
			}
		}
		endAllocs = float64(mallocs()-m0) / n
		c.CloseIdleConnections()
	}

	for _, front := range []struct{ name, url string }{
		{"direct", upstream.URL},
		{"bare", bare.URL},
		{"sensegate", sense.URL},
		{"sensegate-metrics", senseMetrics.URL},
	} {
		b.Run(front.name, func(b *testing.B) {
			c := newBenchClient()
			defer c.CloseIdleConnections()
			for _, p := range benchPaths {
				req, _ := http.NewRequest("GET", front.url+p, nil)
				if _, err := benchGet(c, req, false); err != nil {
					b.Fatalf("GET %s: %v", p, err)
				}
			}
			b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			m0 := mallocs()
			defer func() {
				if front.name != "direct" {
					b.ReportMetric(float64(mallocs()-m0)/float64(b.N)-endAllocs, "proxy-allocs/op")
				}
			}()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// A request may be reused once its body is closed.
				reqs := make([]*http.Request, len(benchPaths))
				for i, p := range benchPaths {
					reqs[i], _ = http.NewRequest("GET", front.url+p, nil)
				}
				for i := 0; pb.Next(); i++ {
					if _, err := benchGet(c, reqs[i%len(reqs)], false); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// mallocs returns the number of heap objects allocated so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// BenchmarkUpstreamRoundTrip compares the transports that carry Qlik
// requests, alone: a GET of a 1 KiB answer from a loopback upstream,
// through http.Transport (NewTransport's) and through the h1Transport in
// front of it, which the Handler uses, by 64 concurrent callers. Both
// include the upstream server's own allocations.
func BenchmarkUpstreamRoundTrip(b *testing.B) {
	upstream := newBenchUpstream()
	defer upstream.Close()
	std := NewTransport(nil, DefaultUpstreamTimeout)
	defer std.CloseIdleConnections()
	h1 := newH1Transport(NewTransport(nil, DefaultUpstreamTimeout))
	defer h1.CloseIdleConnections()
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"http.Transport", std}, {"h1Transport", h1}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetParallelism(max(1, benchClients/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, upstream.URL+benchPaths[0], nil)
					resp, err := tc.rt.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if n != int64(len(benchBody)) {
						b.Errorf("%d bytes, want %d", n, len(benchBody))
						return
					}
				}
			})
		})
	}
}

// stubTransport answers every request with a canned 1 KB text/plain
// response without any network, so that only the proxies' own work is
// measured.
type stubTransport struct{ contentLength string }

func (s *stubTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		Status:     "200 OK",
		StatusCode: http.StatusOK,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   {"text/plain; charset=utf-8"},
			"Content-Length": {s.contentLength},
		},
		Body:          io.NopCloser(bytes.NewReader(benchBody)),
		ContentLength: int64(len(benchBody)),
		Request:       req,
	}, nil
}

// discardWriter is a reusable http.ResponseWriter that drops the body.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

func BenchmarkHandlerNoNetwork(b *testing.B) {
	const qlik = "http://qlik.example:443"
	stub := &stubTransport{contentLength: strconv.Itoa(len(benchBody))}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", newBareProxy(b, qlik, stub)},
		{"sensegate", newBenchSensegate(b, qlik, stub, false)},
		{"sensegate-metrics", newBenchSensegate(b, qlik, stub, true)},
		// As make bench runs it: the user from a trusted front door's header.
		{"sensegate-header", newBenchSensegateWith(b, qlik, stub, true, identity.NewHeader(identity.HeaderOptions{
			Name: "X-Remote-User", Trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, DefaultDirectory: benchUser.Directory,
		}))},
		// A browser's request (its headers below) of a user with groups.
		{"sensegate-browser", newBenchSensegateWith(b, qlik, stub, true, identity.NewStatic(benchGroupUser))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// The requests are what net/http's server hands the handler
			// for the client of BenchmarkHTTPSmall (or a browser's);
			// handlers do not modify them (they clone), so they are
			// reused.
			reqs := make([]*http.Request, len(benchPaths))
			for i, p := range benchPaths {
				r := httptest.NewRequest("GET", p, nil)
				r.Header.Set("User-Agent", "Go-http-client/1.1")
				r.Header.Set("Accept-Encoding", "gzip")
				r.Header.Set("X-Remote-User", benchUser.ID)
				if tc.name == "sensegate-browser" {
					setBrowserHeaders(r.Header)
				}
				reqs[i] = r
			}
			w := &discardWriter{h: make(http.Header)}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				w.reset()
				tc.h.ServeHTTP(w, reqs[i%len(reqs)])
				i++
				if w.status != http.StatusOK || w.n != len(benchBody) {
					b.Fatalf("status %d, %d bytes", w.status, w.n)
				}
			}
		})
	}
}

// setBrowserHeaders gives hdr the headers a browser sends with a request
// for a stylesheet of a Qlik page.
func setBrowserHeaders(hdr http.Header) {
	hdr.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36")
	hdr.Set("Accept", "text/css,*/*;q=0.1")
	hdr.Set("Accept-Encoding", "gzip, deflate, br, zstd")
	hdr.Set("Accept-Language", "en-GB,en;q=0.9")
	hdr.Set("Connection", "keep-alive")
	hdr.Set("Cookie", "sensegate_login=opaque-login-cookie; _ga=GA1.1.123")
	hdr.Set("Referer", "http://localhost/sense/app/0f1e2d3c")
	hdr.Set("Sec-Fetch-Dest", "style")
	hdr.Set("Sec-Fetch-Mode", "no-cors")
	hdr.Set("Sec-Fetch-Site", "same-origin")
	hdr.Del("X-Remote-User")
}

// reqState is allocated for every request: its size class is part of the
// hot path's cost (context.go).
func TestReqStateSize(t *testing.T) {
	if got, want := unsafe.Sizeof(reqState{}), uintptr(320); got > want {
		t.Errorf("reqState is %d bytes, want at most %d (the next size class costs 32 more per request)", got, want)
	}
}
