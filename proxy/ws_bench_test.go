package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Benchmarks of the Engine websocket relay, side by side as in
// bench_test.go: a client sends a small JSON-RPC request and waits for an
// answer of a given size, through
//
//	direct:    client → engine
//	bare:      client → httputil.ReverseProxy (101 byte relay) → engine
//	sensegate: client → Handler (frame relay with inspection) → engine
//	sensegate-audit: the same with an audit log (client messages read for OpenDoc)
//
//	go test -run XXX -bench Websocket -benchtime 3s -count 3 ./proxy/

// benchRequest is a typical small Engine call.
var benchRequest = []byte(`{"jsonrpc":"2.0","id":7,"method":"GetLayout","handle":1,"params":[]}`)

// benchEngine is an Engine stand-in that answers sensegate's probe and
// then every message with a fixed answer of the size the path asks for
// ("/app/1024" → 1 KiB), without any JSON work of its own.
func benchEngine(tb testing.TB) *httptest.Server {
	tb.Helper()
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	var mu sync.Mutex
	answers := map[string][]byte{}
	answer := func(path string) []byte {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := answers[path]; ok {
			return a
		}
		size := 0
		for _, c := range strings.TrimPrefix(path, "/app/") {
			size = size*10 + int(c-'0')
		}
		head := `{"jsonrpc":"2.0","id":7,"result":{"qLayout":"`
		a := []byte(head + strings.Repeat("x", max(0, size-len(head)-3)) + `"}}`)
		answers[path] = a
		return a
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		a := answer(r.URL.Path)
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			out := a
			if bytes.Contains(m, []byte(`"id":1000000007`)) {
				out = []byte(`{"jsonrpc":"2.0","id":1000000007,"result":{"qComponentVersion":"bench"}}`)
			}
			if err := c.WriteMessage(websocket.TextMessage, out); err != nil {
				return
			}
		}
	}))
}

// benchFronts starts the three fronts of engine and returns their base
// ws:// URLs; stop closes them.
func benchFronts(tb testing.TB, engine *httptest.Server) (fronts []struct{ name, url string }, stop func()) {
	tb.Helper()
	bareRP := newBareProxy(tb, engine.URL, NewTransport(nil, 0))
	bare := httptest.NewServer(bareRP)
	sg := newBenchSensegate(tb, engine.URL, nil, false)
	sense := httptest.NewServer(sg)
	// With an audit log, client messages are read for OpenDoc too.
	sgAudit := newBenchSensegate(tb, engine.URL, nil, false)
	sgAudit.audit = NewAudit(zap.NewNop())
	senseAudit := httptest.NewServer(sgAudit)
	ws := func(u string) string { return "ws" + strings.TrimPrefix(u, "http") }
	fronts = []struct{ name, url string }{
		{"direct", ws(engine.URL)},
		{"bare", ws(bare.URL)},
		{"sensegate", ws(sense.URL)},
		{"sensegate-audit", ws(senseAudit.URL)},
	}
	return fronts, func() {
		sense.Close()
		sg.Shutdown(tb.Context())
		senseAudit.Close()
		sgAudit.Shutdown(tb.Context())
		bare.Close()
		bareRP.Transport.(*http.Transport).CloseIdleConnections()
	}
}

func benchDial(tb testing.TB, url string) *websocket.Conn {
	tb.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, http.Header{"Origin": {"http://localhost"}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	return c
}

func BenchmarkWebsocket(b *testing.B) {
	engine := benchEngine(b)
	defer engine.Close()
	fronts, stop := benchFronts(b, engine)
	defer stop()
	for _, w := range []struct {
		name    string
		size    int
		sockets int
	}{
		{"1KiB-64sockets", 1 << 10, 64},
		{"256KiB-8sockets", 256 << 10, 8},
	} {
		for _, front := range fronts {
			b.Run(w.name+"/"+front.name, func(b *testing.B) {
				url := front.url + "/app/" + itoa(w.size)
				conns := make(chan *websocket.Conn, w.sockets)
				for range w.sockets {
					c := benchDial(b, url)
					defer c.Close()
					roundTrip(b, c, w.size)
					conns <- c
				}
				b.SetParallelism(max(1, w.sockets/runtime.GOMAXPROCS(0)))
				b.SetBytes(int64(w.size))
				b.ReportAllocs()
				cpu0 := processCPU()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					c := <-conns
					for pb.Next() {
						if !roundTrip(b, c, w.size) {
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				// The process's CPU time (all of its goroutines: clients,
				// engine and front) per round trip: unlike ns/op it holds
				// still when other processes share the machine.
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// roundTrip sends benchRequest on c and reads one answer of size bytes.
func roundTrip(tb testing.TB, c *websocket.Conn, size int) bool {
	if err := c.WriteMessage(websocket.TextMessage, benchRequest); err != nil {
		tb.Error(err)
		return false
	}
	_, m, err := c.ReadMessage()
	if err != nil || len(m) != size {
		tb.Errorf("answer of %d bytes (%v), want %d", len(m), err, size)
		return false
	}
	return true
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}

// BenchmarkWebsocketIdleMemory reports the heap and stack sensegate holds
// per idle relayed websocket: the same number of sockets is opened direct
// and through sensegate (whose clients and engine live in this process
// too), and the difference is sensegate's. Run it alone with -benchtime
// 1x: a second round would count what the first is still closing.
//
//	go test -run XXX -bench WebsocketIdleMemory -benchtime 1x -count 6 ./proxy/
func BenchmarkWebsocketIdleMemory(b *testing.B) {
	const sockets = 1000
	engine := benchEngine(b)
	defer engine.Close()
	fronts, stop := benchFronts(b, engine)
	defer stop()
	inuse := func() (heap, stack int64) {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapInuse), int64(ms.StackInuse)
	}
	per := map[string][2]float64{}
	for b.Loop() {
		for _, front := range fronts {
			if front.name != "direct" && front.name != "sensegate" {
				continue
			}
			heap0, stack0 := inuse()
			conns := make([]*websocket.Conn, 0, sockets)
			for range sockets {
				c := benchDial(b, front.url+"/app/64")
				roundTrip(b, c, 64)
				conns = append(conns, c)
			}
			heap, stack := inuse()
			per[front.name] = [2]float64{float64(heap-heap0) / sockets, float64(stack-stack0) / sockets}
			for _, c := range conns {
				c.Close()
			}
		}
	}
	d, s := per["direct"], per["sensegate"]
	b.ReportMetric(d[0]+d[1], "direct-B/socket")
	b.ReportMetric(s[0]-d[0], "sensegate-heap-B/socket")
	b.ReportMetric(s[1]-d[1], "sensegate-stack-B/socket")
	b.ReportMetric(s[0]+s[1]-d[0]-d[1], "sensegate-B/socket")
}
