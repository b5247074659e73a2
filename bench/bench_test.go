package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var l Latencies
	if got := l.Percentile(99); got != 0 {
		t.Errorf("empty Percentile(99) = %v, want 0", got)
	}
	// 100 durations of 1..100 ms, added out of order.
	for i := 100; i >= 1; i-- {
		l.Add(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		p    float64
		want float64
	}{{50, 50}, {99, 99}, {100, 100}, {0.1, 1}, {99.5, 100}}
	for _, tt := range tests {
		if got := l.Percentile(tt.p); got != tt.want {
			t.Errorf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	var one, other Latencies
	one.Add(3 * time.Millisecond)
	other.Add(time.Millisecond)
	one.Merge(&other)
	if one.Len() != 2 || one.Percentile(50) != 1 {
		t.Errorf("merged: Len %d, Percentile(50) %v; want 2 and 1", one.Len(), one.Percentile(50))
	}
}

const wrkOutput = `Running 2s test @ http://127.0.0.1:40001/resources/bench/1k.js
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.51ms    1.20ms  21.36ms   80.00%
    Req/Sec    12.84k     1.02k   14.50k    70.00%
  Latency Distribution
     50%  812.00us
     75%    2.90ms
     90%    3.80ms
     99%    1.02s
  51100 requests in 2.00s, 60.08MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  25550.12
Transfer/sec:     30.04MB
`

func TestParseWrk(t *testing.T) {
	got, err := ParseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := WrkResult{RequestsPerSec: 25550.12, P50: 0.812, P99: 1020, Requests: 51100, Errors: 7}
	if got != want {
		t.Errorf("ParseWrk = %+v, want %+v", got, want)
	}
	if _, err := ParseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("ParseWrk of an error message: nil error")
	}
}

func TestWrkDuration(t *testing.T) {
	for in, want := range map[string]float64{"5.00us": 0.005, "1.50ms": 1.5, "2.00s": 2000, "1.00m": 60000} {
		if got, err := wrkDuration(in); err != nil || got != want {
			t.Errorf("wrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := wrkDuration("3 parsecs"); err == nil {
		t.Error(`wrkDuration("3 parsecs"): nil error`)
	}
}

func testReport() *Report {
	r := &Report{Date: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Machine: Machine{CPU: "Test CPU", Cores: 2}, BurstUsers: 500}
	for target, v := range map[string]float64{Direct: 40000, Bare: 20000, Nginx: 25000, Sensegate: 19500} {
		r.Set(KeyHTTPSmallRate, "HTTP 1 KB", "requests/s", target, v, false)
	}
	for target, v := range map[string]float64{Direct: 1.2, Bare: 2.5, Nginx: 2, Sensegate: 2.6} {
		r.Set(KeyHTTPSmallP99, "HTTP 1 KB", "p99 ms", target, v, false)
	}
	r.Set(KeyWSSmallRate, "Websocket 1 KB", "messages/s", Direct, 10000, false)
	r.Set(KeyWSSmallRate, "Websocket 1 KB", "messages/s", Sensegate, 7000, true)
	r.Set(KeyLoginP50, "Cold burst", "p50 ms", Direct, 9, false)
	r.Set(KeyTicketP50, "Cold burst", "ticket p50 ms", Direct, 4, false)
	r.Set(KeyLoginP99, "Cold burst", "p99 ms", Sensegate, 7.5, false)
	r.Set(KeyTickets, "Cold burst", "tickets", Sensegate, 500, false)
	r.Set(KeySessionRSS, "Memory", "KiB per session", Sensegate, 2.5, false)
	r.Set(KeyHTTPSmallPeak, "HTTP 1 KB", "peak RSS", Bare, 20, false)
	r.Set(KeyHTTPSmallPeak, "HTTP 1 KB", "peak RSS", Sensegate, 25, false)
	r.Set(KeyHTTPLargePeak, "HTTP 1 MB", "peak RSS", Bare, 20, false)
	r.Set(KeyHTTPLargePeak, "HTTP 1 MB", "peak RSS", Sensegate, 27, false)
	return r
}

func TestChecks(t *testing.T) {
	got := map[string]Check{}
	for _, c := range testReport().Checks() {
		got[c.Goal] = c
	}
	tests := []struct {
		goalPart, status, measured string
	}{
		{"1.0× bare", "not met", "0.97× (one run)"},
		{"distance to nginx", "met", "0.78× (one run)"},
		{"added over direct", "not met", "+1.40 ms"},
		{"0.95× bare ReverseProxy messages", "not measured", "—"}, // sensegate's run failed
		{"0.9× direct MiB/s", "not measured", "—"},
		{"exactly one ticket", "met", "500 tickets for 500 users, 0 users without exactly one"},
		{"p99 time to first byte", "met", "7.50 ms ÷ 4.00 ms: 1.88× (one run)"},
		{"peak RSS", "not met", "1 KiB: 1.25× (one run); 1 MiB: 1.35× (one run)"},
		{"2 KiB", "not met", "2.50 KiB"},
		{"30 KiB", "not measured", "—"},
	}
	if len(got) != len(tests) {
		t.Errorf("Checks() gave %d goals, want %d", len(got), len(tests))
	}
	for _, tt := range tests {
		var c *Check
		for g := range got {
			if strings.Contains(g, tt.goalPart) {
				cc := got[g]
				c = &cc
			}
		}
		if c == nil {
			t.Errorf("no goal containing %q", tt.goalPart)
			continue
		}
		if c.Status != tt.status || c.Measured != tt.measured {
			t.Errorf("%s: %q %q, want %q %q", c.Goal, c.Measured, c.Status, tt.measured, tt.status)
		}
	}
}

// The ratios of a target pair the figures of one round, and the check
// shows their median and range.
func TestChecksPairRounds(t *testing.T) {
	var r Report
	// Sensegate's 2nd round failed to run at all: rounds 0 and 2 pair.
	setRates(&r, []roundRate{{0, Bare, 100}, {0, Sensegate, 110}, {1, Bare, 50}, {2, Sensegate, 108}, {2, Bare, 120}})
	if got, want := r.Ratios(KeyHTTPSmallRate, Sensegate, KeyHTTPSmallRate, Bare), []float64{1.1, 0.9}; !sameRatios(got, want) {
		t.Errorf("ratios = %v, want %v (rounds 0 and 2)", got, want)
	}
	for _, c := range r.Checks() {
		if strings.Contains(c.Goal, "1.0× bare") {
			if want := "1.00× (0.90–1.10 over 2 rounds)"; c.Measured != want || c.Status != "met" {
				t.Errorf("%s: %q %s, want %q met", c.Goal, c.Measured, c.Status, want)
			}
		}
	}
}

func sameRatios(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d > 1e-9 || d < -1e-9 {
			return false
		}
	}
	return true
}

func TestSetMedian(t *testing.T) {
	var r Report
	for _, v := range []float64{30, 10, 20} {
		r.Set("k", "w", "m", Bare, v, false)
	}
	r.Set("k", "w", "m", Nginx, 4, false)
	r.Set("k", "w", "m", Nginx, 1, true)
	if v, ok := r.Value("k", Bare); !ok || v != 20 {
		t.Errorf("Value(bare) after 30, 10, 20 = %v, %v; want the median 20", v, ok)
	}
	if v := r.Rows[0].Values[Nginx]; v != 2.5 {
		t.Errorf("nginx after 4 and 1 = %v, want 2.5", v)
	}
	if _, ok := r.Value("k", Nginx); ok {
		t.Error("Value(nginx) is good, want it failed (one of its runs failed)")
	}
	if len(r.Rows) != 1 {
		t.Errorf("%d rows, want 1", len(r.Rows))
	}
}

func TestMarkdown(t *testing.T) {
	r := testReport()
	r.Notes = []string{"a note"}
	md := r.Markdown()
	for _, want := range []string{
		"# Performance\n",
		"| Test CPU | 2 | ? |",
		"| workload | metric | direct | bare ReverseProxy | nginx | sensegate | sensegate ÷ direct | sensegate ÷ bare |",
		"| HTTP 1 KB | requests/s | 40000 | 20000 | 25000 | 19500 | 0.49× | 0.97× |",
		"| HTTP 1 KB | p99 ms | 1.20 | 2.50 | 2.00 | 2.60 | 2.17× | 1.04× |",
		"| Websocket 1 KB | messages/s | 10000 | — | — | 7000 ⚠ | — | — |",
		"| Memory | KiB per session | — | — | — | 2.50 | — | — |",
		"- a note\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown() lacks %q:\n%s", want, md)
		}
	}
	// A baseline gets a column, and a ratio.
	r.Set(KeyHTTPSmallRate, "HTTP 1 KB", "requests/s", Baseline, 15000, false)
	md = r.Markdown()
	for _, want := range []string{
		"| workload | metric | direct | bare ReverseProxy | nginx | sensegate | sensegate (baseline) | sensegate ÷ direct | sensegate ÷ bare | sensegate ÷ baseline |",
		"| HTTP 1 KB | requests/s | 40000 | 20000 | 25000 | 19500 | 15000 | 0.49× | 0.97× | 1.30× |",
		"| Memory | KiB per session | — | — | — | 2.50 | — | — | — | — |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown() with a baseline lacks %q:\n%s", want, md)
		}
	}
	// Every table line has as many cells as the header.
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| HTTP 1 KB |") || strings.HasPrefix(line, "| Memory |") {
			if n := strings.Count(line, "|"); n != 11 {
				t.Errorf("%q has %d bars, want 11", line, n)
			}
		}
	}
}

// FailedFigures names each figure measured with errors, in table order,
// and nothing for a clean run (bench -strict fails on them).
func TestFailedFigures(t *testing.T) {
	var r Report
	r.Set("a", "HTTP", "requests/s", Sensegate, 1, false)
	r.Set("a", "HTTP", "requests/s", Nginx, 1, false)
	if got := r.FailedFigures(); len(got) != 0 {
		t.Fatalf("clean run: FailedFigures = %q, want none", got)
	}
	r.Set("b", "Burst", "p99", Sensegate, 1, true)
	r.Set("a", "HTTP", "requests/s", Sensegate, 2, true)
	r.Set("a", "HTTP", "requests/s", Bare, 1, true)
	want := []string{"HTTP, requests/s: " + Bare, "HTTP, requests/s: " + Sensegate, "Burst, p99: " + Sensegate}
	if got := r.FailedFigures(); !slices.Equal(got, want) {
		t.Fatalf("FailedFigures = %q, want %q", got, want)
	}
}

func TestCPUBudget(t *testing.T) {
	var r Report
	// Round 1: direct 50000/s on 2 cores is 40 µs a request for wrk and
	// the simulator; 0.5 × nginx's 40000/s is 20000/s, 100 µs a request
	// of the cores: 60 µs are left for the proxy. Round 2 has no nginx.
	setRates(&r, []roundRate{{0, Direct, 50000}, {0, Nginx, 40000}, {1, Direct, 60000}, {2, Direct, 40000}, {2, Nginx, 25000}})
	if got, want := r.CPUBudget(2, 0.5), []float64{60, 110}; !sameRatios(got, want) {
		t.Errorf("budget = %v, want %v (rounds 0 and 2)", got, want)
	}
	if got, want := Range(r.CPUBudget(2, 0.5), "µs"), "85 µs (60–110 over 2 rounds)"; got != want {
		t.Errorf("Range = %q, want %q", got, want)
	}
	r.Set(KeyHTTPSmallRate, "HTTP", "requests/s", Nginx, 1, true)
	if got := r.CPUBudget(2, 0.5); len(got) != 0 {
		t.Errorf("budget with nginx's run failed = %v, want none", got)
	}
}

// roundRate is a target's HTTP 1 KiB requests/s in a round.
type roundRate struct {
	round  int
	target string
	v      float64
}

// setRates records rates in r, each in its round.
func setRates(r *Report, rates []roundRate) {
	for _, s := range rates {
		r.Round = s.round
		r.Set(KeyHTTPSmallRate, "HTTP", "requests/s", s.target, s.v, false)
	}
}
