package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensegate/sensegate/identity"
	"github.com/sensegate/sensegate/session"
	"github.com/sensegate/sensegate/ticket"
	"github.com/sensegate/sensegate/tooling/devlogin"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

// writeStall is the bound of the write limit tests.
const writeStall = 300 * time.Millisecond

// startLimited serves h behind LimitWrites(h, d) on loopback.
func startLimited(t *testing.T, h http.Handler, d time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(LimitWrites(h, d))
	t.Cleanup(srv.Close)
	return srv
}

// notUpgrades are requests' Upgrade headers that come to nothing: the
// handler does not hijack, so they lift no bound (issue 14).
var notUpgrades = []struct{ name, header string }{
	{"plain", ""},
	{"upgrade header", "Upgrade: x\r\n"},
	{"websocket headers", "Connection: Upgrade\r\nUpgrade: websocket\r\n"},
}

// A client that sends a request and never reads the answer is cut off
// once a write has made no progress for the bound, Upgrade header or not.
func TestWriteStallCutsOffClientThatDoesNotRead(t *testing.T) {
	type result struct {
		err     error
		stalled time.Duration
		written int64
	}
	// The handler's result, by path (a case's index).
	done := make([]chan result, len(notUpgrades))
	for i := range done {
		done[i] = make(chan result, 1)
	}
	srv := startLimited(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Path[1:])
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		var written int64
		last := time.Now()
		for written < 1<<30 {
			n, err := w.Write(chunk)
			written += int64(n)
			if err != nil {
				done[i] <- result{err, time.Since(last), written}
				return
			}
			last = time.Now()
		}
		done[i] <- result{nil, 0, written}
	}), writeStall)

	for i, tt := range notUpgrades {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "GET /"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: sensegate\r\n"+tt.header+"\r\n"); err != nil {
				t.Fatal(err)
			}
			// The client reads nothing from here on.
			select {
			case res := <-done[i]:
				if res.err == nil {
					t.Fatalf("the handler wrote %d bytes to a client that reads nothing, want a failed write", res.written)
				}
				if res.stalled < writeStall*8/10 || res.stalled > writeStall+5*time.Second {
					t.Errorf("the write failed after stalling %s, want about %s", res.stalled, writeStall)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("a client that reads nothing was not cut off")
			}
		})
	}
}

// A download that takes far longer than the bound but keeps moving is
// not cut off. The sockets' buffers are small, as for a slow client on a
// long way: a write then waits for the client to drain a few KiB, not
// the megabytes loopback sockets buffer, which the kernel frees in large
// steps (writers wake when a third of the send buffer is free).
func TestWriteStallSparesProgressingDownload(t *testing.T) {
	const (
		size    = 8 << 20
		sockBuf = 64 << 10
	)
	handlerErr := make(chan error, 1)
	srv := httptest.NewUnstartedServer(LimitWrites(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := bytes.Repeat([]byte("y"), 32<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				handlerErr <- err
				return
			}
		}
		handlerErr <- nil
	}), writeStall))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.(*net.TCPConn).SetWriteBuffer(sockBuf)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(sockBuf)
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)

	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/download")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// A slow reader: 32 KiB every 5ms, about 1.3s for the whole body.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	got := 0
	for {
		n, err := io.ReadFull(resp.Body, buf)
		got += n
		if err != nil {
			break
		}
		<-tick.C
	}
	elapsed := time.Since(start)
	if got != size {
		t.Errorf("the client read %d bytes, want %d", got, size)
	}
	if err := <-handlerErr; err != nil {
		t.Errorf("a progressing download was cut off: %v", err)
	}
	if elapsed < 3*writeStall {
		t.Errorf("the download took %s, want well over the bound %s for the test to mean anything", elapsed, writeStall)
	}
}

// A websocket upgrade (or any hijacked connection) on a kept-alive
// connection inherits no deadline from the previous response.
func TestWriteStallLeavesUpgradesAlone(t *testing.T) {
	const d = 50 * time.Millisecond
	hijacked := make(chan error, 1)
	srv := startLimited(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			io.WriteString(w, "plain")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			hijacked <- err
			return
		}
		defer conn.Close()
		// Write well after the previous response's deadline passed.
		<-time.After(4 * d)
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nhello")
		hijacked <- brw.Flush()
	}), d)

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: sensegate\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: sensegate\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade answer: %v (hijacker: %v)", err, <-hijacked)
	}
	if err := <-hijacked; err != nil {
		t.Errorf("writing on the hijacked connection: %v", err)
	}
	if b, _ := io.ReadAll(io.LimitReader(br, 5)); resp.StatusCode != http.StatusSwitchingProtocols || string(b) != "hello" {
		t.Errorf("upgrade = %d then %q, want 101 then hello", resp.StatusCode, b)
	}
}

// Every flush keeps the bound too: a handler that flushes, as
// ReverseProxy does for streamed answers, sees its flush fail.
func TestWriteStallBoundsFlush(t *testing.T) {
	flushErr := make(chan error, 1)
	srv := startLimited(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		chunk := bytes.Repeat([]byte("z"), 4<<10) // below the server's buffer: only flushes write
		for range 1 << 18 {
			w.Write(chunk)
			if err := rc.Flush(); err != nil {
				flushErr <- err
				return
			}
		}
		flushErr <- nil
	}), writeStall)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: sensegate\r\n\r\n")
	select {
	case err := <-flushErr:
		if err == nil {
			t.Fatal("every flush succeeded to a client that reads nothing")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a flush to a client that reads nothing did not fail")
	}
}

// Bodies sent to sensegate's own endpoints are capped: 413 for a body
// declared too large, and for one that turns out too large.
func TestOwnEndpointBodyLimit(t *testing.T) {
	login := devlogin.New([]identity.User{{Directory: "ACME", ID: "alice"}}, false)
	e := newEnv(t, func(_ *qliksim.Config, o *Options) { o.Identity = login })
	post := func(path string, body io.Reader, length int64) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("POST", e.front.URL+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	big := "user=" + strings.Repeat("a", MaxOwnBody)
	for _, path := range []string{"/.sensegate/login", "/.sensegate/logout"} {
		resp, body := post(path, strings.NewReader(big), int64(len(big)))
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, "too large") || !strings.Contains(body, resp.Header.Get(HeaderRequestID)) {
			t.Errorf("POST %s with %d bytes = %d %q, want 413 naming the limit, with the request id", path, len(big), resp.StatusCode, body)
		}
	}
	// Without a length (chunked), the form parser hits the cap.
	resp, body := post("/.sensegate/login", io.MultiReader(strings.NewReader(big)), -1)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked POST of %d bytes to the login form = %d %q, want 413", len(big), resp.StatusCode, body)
	}
	form := url.Values{"user": {`ACME\alice`}, "rd": {"/hub/"}}.Encode()
	if resp, body := post("/.sensegate/login", strings.NewReader(form), int64(len(form))); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/hub/" {
		t.Errorf("a small login form = %d %q, want 303 to /hub/", resp.StatusCode, body)
	}
}

// A Qlik request body over the replay limit streams to Qlik as it comes:
// Qlik sees its start before the client has sent the rest.
func TestLargeBodyStreamsToQlik(t *testing.T) {
	const limit = 1 << 10
	first := bytes.Repeat([]byte("a"), 4*limit)
	rest := bytes.Repeat([]byte("b"), 4*limit)
	sawStart := make(chan struct{})
	received := make(chan []byte, 1)
	qlik := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, len(first))
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		close(sawStart)
		tail, _ := io.ReadAll(r.Body)
		received <- append(buf, tail...)
		io.WriteString(w, "stored")
	}))
	defer qlik.Close()
	qu, _ := url.Parse(qlik.URL)
	pub, _ := url.Parse("http://sensegate.example")
	h, err := New(Options{Qlik: qu, CookieName: "X-Qlik-Session", Identity: identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"}), Sessions: &fakeSessions{entry: session.Entry{Cookie: "c"}}, PublicURL: pub, ReplayLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()

	pr, pw := io.Pipe()
	go func() {
		if _, err := pw.Write(first); err != nil {
			pw.CloseWithError(err)
			return
		}
		select {
		case <-sawStart:
		case <-time.After(20 * time.Second):
			pw.CloseWithError(errors.New("Qlik never saw the start of the body: sensegate held it back"))
			return
		}
		pw.Write(rest)
		pw.Close()
	}()
	resp, err := http.Post(front.URL+"/qrs/app/upload?xrfkey="+xrf, "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "stored" {
		t.Fatalf("streamed upload = %d %q", resp.StatusCode, b)
	}
	if got, want := <-received, append(append([]byte{}, first...), rest...); !bytes.Equal(got, want) {
		t.Errorf("Qlik got %d bytes, want the %d sent", len(got), len(want))
	}
}

// errSessions fails every Ensure with err.
type errSessions struct{ err error }

func (s errSessions) Ensure(context.Context, identity.User) (session.Entry, error) {
	return session.Entry{}, s.err
}
func (errSessions) Invalidate(context.Context, identity.User, string) error    { return nil }
func (errSessions) Update(context.Context, identity.User, session.Entry) error { return nil }
func (errSessions) Peek(context.Context, identity.User) (session.Entry, bool, error) {
	return session.Entry{}, false, nil
}

// The limits sensegate keeps on logins reach the client as retryable
// answers: 503 when QPS calls are all in flight, 429 for a user over the
// login rate, each with Retry-After, on HTTP and websocket requests.
func TestLoginLimitAnswers(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		retryAfter string
		msg        string
	}{
		{"qps busy", fmt.Errorf("session: %w", realBusyError(t)), http.StatusServiceUnavailable, "5", "temporarily unavailable"},
		{"login rate", &session.RateLimitError{User: `ACME\alice`, RetryAfter: 29*time.Second + time.Millisecond}, http.StatusTooManyRequests, "30", "too many logins to Qlik for this user: retry in 30 s"},
		{"login rate under a second", &session.RateLimitError{User: `ACME\alice`, RetryAfter: time.Millisecond}, http.StatusTooManyRequests, "1", "retry in 1 s"},
	}
	qu, _ := url.Parse("http://qlik.invalid")
	pub, _ := url.Parse("http://sensegate.example")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(Options{Qlik: qu, CookieName: "X-Qlik-Session", Identity: identity.NewStatic(identity.User{Directory: "ACME", ID: "alice"}), Sessions: errSessions{tt.err}, PublicURL: pub})
			if err != nil {
				t.Fatal(err)
			}
			for _, hdr := range []http.Header{{}, {"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}} {
				r := httptest.NewRequest("GET", "/app/engineData", nil)
				r.Header = hdr
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				var js struct {
					Error string `json:"error"`
				}
				json.Unmarshal(w.Body.Bytes(), &js)
				if w.Code != tt.status || w.Header().Get("Retry-After") != tt.retryAfter || !strings.Contains(js.Error, tt.msg) {
					t.Errorf("%v: %d Retry-After %q %q, want %d Retry-After %s with %q", hdr, w.Code, w.Header().Get("Retry-After"), w.Body, tt.status, tt.retryAfter, tt.msg)
				}
			}
		})
	}
}

// realBusyError is the ErrBusy a real ticket.Client returns when every
// slot is taken.
func realBusyError(t *testing.T) error {
	t.Helper()
	hold := make(chan struct{})
	var once sync.Once
	arrived := make(chan struct{})
	qps := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer qps.Close()
	defer close(hold)
	pool := qps.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	certs, err := qliksim.WriteCerts(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ticket.LoadClientCert(certs.Client, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(qps.URL)
	c, err := ticket.New(ticket.Config{ProxyURL: u, QPSURL: u, SessionCookie: "X-Qlik-Session", RootCAs: pool, ClientCert: cert, MaxConcurrent: 1, Timeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	heldDone := make(chan struct{})
	go func() {
		defer close(heldDone)
		c.Ticket(ctx, identity.User{Directory: "ACME", ID: "bob"})
	}()
	defer func() { cancel(); <-heldDone }()
	<-arrived
	wctx, wcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer wcancel()
	_, err = c.Ticket(wctx, identity.User{Directory: "ACME", ID: "alice"})
	if !errors.Is(err, ticket.ErrBusy) {
		t.Fatalf("Ticket with the one slot taken = %v, want ErrBusy", err)
	}
	return err
}

// Over HTTP/2 the bound holds per stream: a client that stops reading
// one answer has that stream cut off.
func TestWriteStallHTTP2(t *testing.T) {
	done := make(chan error, 1)
	srv := httptest.NewUnstartedServer(LimitWrites(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			done <- fmt.Errorf("served over %s, want HTTP/2", r.Proto)
			return
		}
		chunk := bytes.Repeat([]byte("h"), 32<<10)
		for range 1 << 15 {
			if _, err := w.Write(chunk); err != nil {
				done <- nil
				return
			}
		}
		done <- errors.New("1 GiB went to a client that reads nothing")
	}), writeStall))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // never read
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an HTTP/2 client that reads nothing was not cut off")
	}
}

// bodyStall is the bound of the body read limit tests.
const bodyStall = 300 * time.Millisecond

// startBodyLimited serves h behind LimitBodyReads(h, bodyStall) and
// returns its address.
func startBodyLimited(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(LimitBodyReads(h, bodyStall))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// bodyRead is what a test handler got reading its request body.
type bodyRead struct {
	body []byte
	err  error
	took time.Duration // from the last byte read to the end
}

// readBody reads r's body, timing the read that ends it.
func readBody(r *http.Request) bodyRead {
	var (
		buf  bytes.Buffer
		last = time.Now()
		p    = make([]byte, 64)
	)
	for {
		n, err := r.Body.Read(p)
		if n > 0 {
			buf.Write(p[:n])
			last = time.Now()
		}
		if err == io.EOF {
			return bodyRead{buf.Bytes(), nil, time.Since(last)}
		}
		if err != nil {
			return bodyRead{buf.Bytes(), err, time.Since(last)}
		}
	}
}

// A client that sends part of its body and stops is cut off once a read
// has made no progress for the bound, Upgrade header or not.
func TestBodyStallCutsOffClientThatStops(t *testing.T) {
	// What the handler read, by path (a case's index).
	got := make([]chan bodyRead, len(notUpgrades))
	for i := range got {
		got[i] = make(chan bodyRead, 1)
	}
	addr := startBodyLimited(t, func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Path[1:])
		got[i] <- readBody(r)
	})
	for i, tt := range notUpgrades {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "POST /"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: sensegate\r\nContent-Length: 100\r\n"+tt.header+"\r\n0123456789"); err != nil {
				t.Fatal(err)
			}
			// The client sends nothing more.
			select {
			case res := <-got[i]:
				if res.err == nil {
					t.Fatalf("the handler read %d bytes of a body the client stopped sending, want a failed read", len(res.body))
				}
				if string(res.body) != "0123456789" || res.took < bodyStall*8/10 || res.took > bodyStall+5*time.Second {
					t.Errorf("read %q, then failed after %s (%v); want the 10 bytes sent, then a failure after about %s", res.body, res.took, res.err, bodyStall)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the handler still waits for a body the client stopped sending")
			}
		})
	}
}

// An upload that trickles but keeps moving is read whole, however long
// it takes altogether.
func TestBodyStallSparesProgressingUpload(t *testing.T) {
	got := make(chan bodyRead, 1)
	addr := startBodyLimited(t, func(w http.ResponseWriter, r *http.Request) { got <- readBody(r) })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const body = "abcdefgh"
	if _, err := io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: sensegate\r\nContent-Length: 8\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// A byte every third of the bound: the whole body takes over twice it.
	tick := time.NewTicker(bodyStall / 3)
	defer tick.Stop()
	for i := range len(body) {
		<-tick.C
		if _, err := io.WriteString(c, body[i:i+1]); err != nil {
			t.Fatalf("writing byte %d: %v", i, err)
		}
	}
	select {
	case res := <-got:
		if res.err != nil || string(res.body) != body {
			t.Errorf("read %q (%v), want %q", res.body, res.err, body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not finish the body")
	}
}

// Once the body is read, the bound is gone: a response that streams for
// several times the bound is not cut, nor its request's context ended.
func TestBodyStallLiftedAfterBody(t *testing.T) {
	ctxErr := make(chan error, 1)
	addr := startBodyLimited(t, func(w http.ResponseWriter, r *http.Request) {
		if res := readBody(r); res.err != nil {
			ctxErr <- res.err
			return
		}
		tick := time.NewTicker(bodyStall / 4)
		defer tick.Stop()
		for i := range 16 { // 4 bounds' worth
			<-tick.C
			if i == 0 {
				// Readers may read again past the end (decoders checking
				// for trailing data): that must not set a deadline again.
				if n, err := r.Body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					ctxErr <- fmt.Errorf("read after the end = %d, %v; want 0, EOF", n, err)
					return
				}
			}
			if _, err := io.WriteString(w, "chunk\n"); err != nil {
				break
			}
			http.NewResponseController(w).Flush()
		}
		ctxErr <- r.Context().Err()
	})
	resp, err := http.Post("http://"+addr+"/stream", "text/plain", strings.NewReader("small body"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(b), "chunk\n") != 16 {
		t.Errorf("response: %d chunks (%v), want 16", strings.Count(string(b), "chunk\n"), err)
	}
	if err := <-ctxErr; err != nil {
		t.Errorf("request context after the response: %v, want still live", err)
	}
}

// Issue 14: a handler that answers without reading the body leaves
// net/http to discard it before the connection can serve another request.
// A client that announced a body and sends none is cut off within the
// bound of the handler's start, however it announced it; one that sent
// its body keeps its connection.
func TestBodyStallBoundsUnreadBody(t *testing.T) {
	addr := startBodyLimited(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not signed in", http.StatusUnauthorized)
	})
	for _, header := range []string{"Content-Length: 100", "Transfer-Encoding: chunked", "Content-Length: 100\r\nExpect: 100-continue", "Content-Length: 1000000"} {
		t.Run(header, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			io.WriteString(c, "POST /hub/x HTTP/1.1\r\nHost: sensegate\r\n"+header+"\r\n\r\n")
			// Without the bound, net/http waits for the body for good.
			c.SetReadDeadline(start.Add(bodyStall + 5*time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("the connection is open %s after the request (%v), want closed after about %s", time.Since(start), err, bodyStall)
			}
		})
	}
	t.Run("body sent", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for i := range 2 {
			io.WriteString(c, "POST /hub/x HTTP/1.1\r\nHost: sensegate\r\nContent-Length: 5\r\n\r\nhello")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("request %d on one connection: %v", i+1, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || resp.Close {
				t.Fatalf("request %d = %d (close %v), want 401 keeping the connection", i+1, resp.StatusCode, resp.Close)
			}
		}
	})
}

// Once the handler hijacked the connection, as a websocket upgrade does,
// the bounds set nothing on it: it stays usable, after the handler
// returned, for longer than either, as a relay running on its own
// goroutines uses it.
func TestStallBoundsLiftedOnHijack(t *testing.T) {
	const d = 50 * time.Millisecond
	relayed := make(chan error, 1)
	srv := httptest.NewServer(LimitStalls(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Part of the body: the read moves the read deadline.
		if _, err := io.ReadFull(r.Body, make([]byte, 2)); err != nil {
			relayed <- err
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			relayed <- err
			return
		}
		go func() {
			defer conn.Close()
			// Well after any deadline the bounds could have set.
			<-time.After(4 * d)
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
			if err := brw.Flush(); err != nil {
				relayed <- fmt.Errorf("writing: %w", err)
				return
			}
			// The rest of the request's body, then the relayed data.
			b := make([]byte, 6)
			if _, err := io.ReadFull(brw, b); err != nil || string(b) != "cdping" {
				relayed <- fmt.Errorf("reading: %q, %v", b, err)
				return
			}
			brw.WriteString("pong")
			relayed <- brw.Flush()
		}()
	}), StallLimits{Write: d, Body: d}))
	t.Cleanup(srv.Close)

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /ws HTTP/1.1\r\nHost: sensegate\r\nConnection: Upgrade\r\nUpgrade: test\r\nContent-Length: 4\r\n\r\nab")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade answer: %v (relay: %v)", err, <-relayed)
	}
	// After the bounds would have passed.
	<-time.After(4 * d)
	io.WriteString(c, "cdping")
	b := make([]byte, 4)
	io.ReadFull(br, b)
	if err := <-relayed; err != nil || resp.StatusCode != http.StatusSwitchingProtocols || string(b) != "pong" {
		t.Errorf("upgrade = %d, then %q (relay: %v); want 101, then pong", resp.StatusCode, b, err)
	}
}

// Over HTTP/2, a body read after the handler returned (ReverseProxy's
// transport may still be writing it upstream) sets no deadline on the
// finished stream, whose ResponseWriter is gone: it must not panic.
func TestBodyStallReaderOutlivesHandlerHTTP2(t *testing.T) {
	release := make(chan struct{})
	readErr := make(chan error, 1)
	srv := httptest.NewUnstartedServer(LimitBodyReads(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/upload" {
			return
		}
		go func() {
			<-release
			_, err := r.Body.Read(make([]byte, 10))
			readErr <- err
		}()
	}), bodyStall))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pr, pw := io.Pipe()
	defer pw.Close()
	resp, err := srv.Client().Post(srv.URL+"/upload", "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("served over %s, want HTTP/2", resp.Proto)
	}
	// Another round trip on the connection: the first handler is done.
	resp, err = srv.Client().Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	close(release)
	select {
	case err := <-readErr:
		if err == nil {
			t.Error("a read after the handler returned succeeded, want an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read after the handler returned hangs")
	}
}

// Over HTTP/2 the body bound holds per stream: a stalled body fails the
// handler's read after the bound, and a body the handler leaves unread
// costs neither the answer nor the connection, whose other streams go on.
func TestBodyStallHTTP2(t *testing.T) {
	got := make(chan bodyRead, 1)
	srv := httptest.NewUnstartedServer(LimitBodyReads(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/read":
			got <- readBody(r)
		case "/unread":
			http.Error(w, "not signed in", http.StatusUnauthorized)
		}
	}), bodyStall))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	post := func(path string, body io.Reader) (*http.Response, error) {
		return srv.Client().Post(srv.URL+path, "text/plain", body)
	}

	// Ten bytes of the body, then nothing.
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("0123456789"))
	respc := make(chan error, 1)
	go func() {
		resp, err := post("/read", pr)
		if err == nil {
			resp.Body.Close()
		}
		respc <- err
	}()
	select {
	case res := <-got:
		if res.err == nil || string(res.body) != "0123456789" || res.took < bodyStall*8/10 || res.took > bodyStall+5*time.Second {
			t.Errorf("read %q, then %v after %s; want the 10 bytes sent, then a failure after about %s", res.body, res.err, res.took, bodyStall)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the handler still waits for a body the client stopped sending")
	}
	pw.Close()
	<-respc

	pr2, pw2 := io.Pipe()
	defer pw2.Close()
	resp, err := post("/unread", pr2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unread body over %s = %d, want 401 over HTTP/2", resp.Proto, resp.StatusCode)
	}
	resp, err = post("/unread", strings.NewReader("x"))
	if err != nil {
		t.Fatalf("a request after the unread body: %v", err)
	}
	resp.Body.Close()
}
