package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an httptest server that counts the connections it
// accepted and reports those that closed.
type countingServer struct {
	*httptest.Server
	conns  atomic.Int32
	closed chan struct{}
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{closed: make(chan struct{}, 100)}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed <- struct{}{}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func newTestH1(t *testing.T, set func(*http.Transport)) *h1Transport {
	t.Helper()
	std := NewTransport(nil, DefaultUpstreamTimeout)
	if set != nil {
		set(std)
	}
	h1 := newH1Transport(std)
	t.Cleanup(h1.CloseIdleConnections)
	return h1
}

// get does a GET of url through rt and returns the status and body.
func get(t *testing.T, rt http.RoundTripper, url string, hdr ...string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitClosed(t *testing.T, s *countingServer) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the server saw no connection close")
	}
}

func TestH1TransportReusesConnections(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.WriteHeader(http.StatusNotModified)
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
			w.Header().Set("X-Sum", "42")
		default:
			io.WriteString(w, "hello "+r.URL.Path)
		}
	})
	h1 := newTestH1(t, nil)
	for i, p := range []string{"/a", "/204", "/304", "/chunked", "/b"} {
		code, body, err := get(t, h1, s.URL+p)
		if err != nil || code >= 400 {
			t.Fatalf("GET %s = %d %q, %v", p, code, body, err)
		}
		if p == "/chunked" && body != "part one, part two" {
			t.Errorf("GET /chunked = %q, want both parts", body)
		}
		if n := s.conns.Load(); n != 1 {
			t.Fatalf("after request %d (%s) the server saw %d connections, want 1", i+1, p, n)
		}
	}
	req, _ := http.NewRequest(http.MethodHead, s.URL+"/a", nil)
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := s.conns.Load(); n != 1 {
		t.Errorf("after HEAD the server saw %d connections, want 1", n)
	}
}

// The answer's trailer is read with its body.
func TestH1TransportTrailer(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Write([]byte("body"))
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
	})
	h1 := newTestH1(t, nil)
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := resp.Trailer.Get("X-Sum"); got != "42" {
		t.Errorf("trailer X-Sum = %q, want 42", got)
	}
}

// rawServer accepts connections and runs serve on each.
func rawServer(t *testing.T, serve func(c net.Conn, n int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, n)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// readRequest reads one request of c's.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err == nil {
		io.Copy(io.Discard, req.Body)
	}
	return req, err
}

// An upstream that answers one request and closes the connection without
// saying so: the next request goes on a new connection and succeeds.
func TestH1TransportServerClosedIdle(t *testing.T) {
	url := rawServer(t, func(c net.Conn, n int) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	h1 := newTestH1(t, nil)
	for i := range 3 {
		if code, body, err := get(t, h1, url); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, %v; want 200 ok", i+1, code, body, err)
		}
	}
}

// A pooled connection the server closes as the request is sent (the
// close races the request, so quiet cannot see it): the request is sent
// again on a new connection, as http.Transport does.
func TestH1TransportRetriesOnClosedReusedConn(t *testing.T) {
	var first atomic.Bool
	url := rawServer(t, func(c net.Conn, n int) {
		br := bufio.NewReader(c)
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		if n == 0 {
			// Read the second request, then close without an answer.
			readRequest(br)
			first.Store(true)
		}
	})
	h1 := newTestH1(t, nil)
	for i := range 2 {
		if code, body, err := get(t, h1, url); err != nil || code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, %v; want 200 ok", i+1, code, body, err)
		}
	}
	if !first.Load() {
		t.Error("the second request did not reach the first connection")
	}
}

// An upstream that sends two answers for one request (the second could be
// the answer to a request smuggled in the first): no later request gets
// it, whether it came with the first answer or while the connection was
// idle.
func TestH1TransportUnsolicitedAnswer(t *testing.T) {
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
	for _, tc := range []struct {
		name  string
		later bool
	}{{"same write", false}, {"while idle", true}} {
		t.Run(tc.name, func(t *testing.T) {
			sent, pooled := make(chan struct{}), make(chan struct{})
			url := rawServer(t, func(c net.Conn, n int) {
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := readRequest(br)
					if err != nil {
						return
					}
					answer := "HTTP/1.1 200 OK\r\nContent-Length: " + itoa(len(req.URL.Path)) + "\r\n\r\n" + req.URL.Path
					switch {
					case n == 0 && i == 0 && !tc.later:
						io.WriteString(c, answer+smuggled)
						close(sent)
					case n == 0 && i == 0:
						io.WriteString(c, answer)
						<-pooled
						io.WriteString(c, smuggled)
						close(sent)
					default:
						io.WriteString(c, answer)
					}
				}
			})
			h1 := newTestH1(t, nil)
			if _, body, err := get(t, h1, url+"/first"); err != nil || body != "/first" {
				t.Fatalf("first request: %q, %v", body, err)
			}
			// Written on loopback: the smuggled answer is in this side's
			// buffer, or once the connection is back in the pool, in its
			// socket.
			close(pooled)
			<-sent
			if _, body, err := get(t, h1, url+"/second"); err != nil || body != "/second" {
				t.Errorf("second request got %q (%v), want its own answer /second", body, err)
			}
		})
	}
}

func TestH1TransportResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	h1 := newTestH1(t, func(std *http.Transport) { std.ResponseHeaderTimeout = 50 * time.Millisecond })
	_, _, err := get(t, h1, s.URL)
	if !isTimeout(err) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if e := upstreamError("Qlik did not answer", err); e.Status != http.StatusGatewayTimeout {
		t.Errorf("answered with %d, want 504", e.Status)
	}
	waitClosed(t, s)
}

// ResponseHeaderTimeout bounds the header only: a body that comes slower
// is read whole, and a pooled connection gets the full bound again.
func TestH1TransportHeaderTimeoutSparesTheBody(t *testing.T) {
	const timeout = 50 * time.Millisecond
	release := make(chan struct{})
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.Header().Set("Content-Length", "10")
			w.Write([]byte("first"))
			w.(http.Flusher).Flush()
			<-release
			w.Write([]byte("-last"))
			return
		}
		io.WriteString(w, "small")
	})
	h1 := newTestH1(t, func(std *http.Transport) { std.ResponseHeaderTimeout = timeout })
	if _, body, err := get(t, h1, s.URL+"/small"); err != nil || body != "small" {
		t.Fatalf("GET /small: %q, %v", body, err)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/slow-body", nil)
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET /slow-body on the pooled connection: %v", err)
	}
	defer resp.Body.Close()
	go func() {
		// Past the header timeout, the rest of the body comes.
		<-time.After(3 * timeout)
		close(release)
	}()
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "first-last" {
		t.Errorf("body %q, %v; want first-last", b, err)
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// The request's context ends the wait for the answer and the body read;
// the connection is closed, not pooled.
func TestH1TransportContextEnds(t *testing.T) {
	headerSent := make(chan struct{}, 1)
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Write([]byte("start"))
			w.(http.Flusher).Flush()
			headerSent <- struct{}{}
		}
		<-r.Context().Done()
	})
	h1 := newTestH1(t, nil)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/header", nil)
	done := make(chan error, 1)
	go func() {
		_, err := h1.RoundTrip(req)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("waiting for the header: err = %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/body", nil)
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	<-headerSent
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("reading the body after the context ended: nil error")
	}
	resp.Body.Close()
	if h1.nidle != 0 {
		t.Errorf("%d idle connections, want none: both were cut", h1.nidle)
	}
}

// A body closed before its end closes the connection: what is left of it
// is not read.
func TestH1TransportEarlyClose(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1<<20))
	})
	h1 := newTestH1(t, nil)
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 10))
	resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 10)); err == nil {
		t.Error("read after Close: nil error")
	}
	waitClosed(t, s)
	if h1.nidle != 0 {
		t.Errorf("%d idle connections, want none", h1.nidle)
	}
}

// Close ends a Read that waits for more of the body.
func TestH1TransportCloseDuringRead(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("start"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	h1 := newTestH1(t, nil)
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 10))
		read <- err
	}()
	resp.Body.Close()
	if err := <-read; err == nil {
		t.Error("Read after a concurrent Close: nil error")
	}
	waitClosed(t, s)
}

// Answers that end their connection (Connection: close, HTTP/1.0) leave
// nothing in the pool.
func TestH1TransportConnectionClose(t *testing.T) {
	url := rawServer(t, func(c net.Conn, n int) {
		br := bufio.NewReader(c)
		req, err := readRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/close" {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
		} else {
			io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nok")
		}
	})
	h1 := newTestH1(t, nil)
	for _, p := range []string{"/close", "/http10"} {
		if _, body, err := get(t, h1, url+p); err != nil || body != "ok" {
			t.Fatalf("GET %s: %q, %v", p, body, err)
		}
		if h1.nidle != 0 {
			t.Errorf("GET %s: %d idle connections, want none", p, h1.nidle)
		}
	}
}

// Requests with a body, upgrades and 100-continue go through the
// *http.Transport; so do those a proxy from the environment would carry.
func TestH1TransportHandsOver(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	})
	h1 := newTestH1(t, nil)
	post, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader("body"))
	upgrade, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	upgrade.Header.Set("Upgrade", "websocket")
	expect, _ := http.NewRequest(http.MethodPut, s.URL, strings.NewReader("body"))
	expect.Header.Set("Expect", "100-continue")
	del, _ := http.NewRequest(http.MethodDelete, s.URL, nil)
	for _, req := range []*http.Request{post, upgrade, expect, del} {
		if h1.fits(req) {
			t.Errorf("%s with %v: fits, want it handed over", req.Method, req.Header)
		}
	}
	resp, err := h1.RoundTrip(post)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if h1.nidle != 0 {
		t.Errorf("the POST left %d connections in h1Transport's pool, want none (it is std's)", h1.nidle)
	}
	proxied := newTestH1(t, func(std *http.Transport) {
		std.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse("http://proxy.example:3128") }
	})
	get, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	if proxied.fits(get) {
		t.Error("a GET a proxy would carry fits, want it handed over")
	}
}

func TestH1TransportRefusesBadHeaders(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request with a bad header reached the server: %v", r.Header)
	})
	h1 := newTestH1(t, nil)
	for _, kv := range [][2]string{{"X-Split", "a\r\nX-Injected: 1"}, {"Bad Name", "v"}, {"X-Nul", "a\x00b"}} {
		req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
		req.Header[kv[0]] = []string{kv[1]}
		if _, err := h1.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid header") {
			t.Errorf("header %q: %q: err = %v, want invalid header", kv[0], kv[1], err)
		}
	}
}

// Interim answers reach the request's trace (ReverseProxy passes them on
// to the client); 101 to a request that asked for no upgrade is refused.
func TestH1TransportInterimAnswers(t *testing.T) {
	url := rawServer(t, func(c net.Conn, n int) {
		br := bufio.NewReader(c)
		req, err := readRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/101" {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
			return
		}
		io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	h1 := newTestH1(t, nil)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, itoa(code)+" "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, url+"/hints", nil)
	resp, err := h1.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" {
		t.Errorf("status %d, hints %q; want 200 after one 103 with its Link", resp.StatusCode, hints)
	}
	if _, _, err := get(t, h1, url+"/101"); err == nil {
		t.Error("101 to a plain GET: nil error")
	}
}

func TestH1TransportHeaderLimit(t *testing.T) {
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("x", 8<<10))
	})
	h1 := newTestH1(t, func(std *http.Transport) { std.MaxResponseHeaderBytes = 4 << 10 })
	if _, _, err := get(t, h1, s.URL); err == nil {
		t.Error("an 8 KiB header under a 4 KiB bound: nil error")
	}
}

func TestH1TransportIdlePool(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	s := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			arrived.Done()
			<-release
		}
		io.WriteString(w, "ok")
	})
	h1 := newTestH1(t, func(std *http.Transport) {
		std.MaxIdleConnsPerHost = 2
		std.IdleConnTimeout = 50 * time.Millisecond
	})
	// Five at once: five connections, two kept.
	var wg sync.WaitGroup
	arrived.Add(5)
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, body, err := get(t, h1, s.URL+"/wait"); err != nil || body != "ok" {
				t.Errorf("GET: %q, %v", body, err)
			}
		}()
	}
	arrived.Wait()
	close(release)
	wg.Wait()
	for range 3 {
		waitClosed(t, s)
	}
	h1.mu.Lock()
	n := h1.nidle
	h1.mu.Unlock()
	if n != 2 {
		t.Errorf("%d idle connections, want MaxIdleConnsPerHost 2", n)
	}
	// Then IdleConnTimeout closes those two.
	waitClosed(t, s)
	waitClosed(t, s)
	h1.mu.Lock()
	n = h1.nidle
	h1.mu.Unlock()
	if n != 0 {
		t.Errorf("%d idle connections after IdleConnTimeout, want none", n)
	}
}

// Over TLS: std's root CAs are trusted and nothing else; no HTTP/2 is
// offered, and connections are reused as over plain HTTP.
func TestH1TransportTLS(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	var conns atomic.Int32
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.EnableHTTP2 = true
	s.StartTLS()
	defer s.Close()
	std := NewTransport(&tls.Config{RootCAs: s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}, DefaultUpstreamTimeout)
	h1 := newH1Transport(std)
	defer h1.CloseIdleConnections()
	for range 3 {
		code, proto, err := get(t, h1, s.URL)
		if err != nil || code != 200 || proto != "HTTP/1.1" {
			t.Fatalf("GET = %d %q, %v; want 200 over HTTP/1.1", code, proto, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d TLS connections for 3 requests, want 1", n)
	}
	untrusting := newTestH1(t, nil)
	if _, _, err := get(t, untrusting, s.URL); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("with the system roots: err = %v, want a certificate error", err)
	}
}
