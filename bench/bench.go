// Package bench is the load harness behind `make bench`: sensegate, a bare
// httputil.ReverseProxy, nginx and a direct connection, each in front of
// the QSEoW simulator on loopback, under the same loads.
//
// The programs are in cmd/: bench starts every process, runs every
// workload against every target and writes docs/performance.md; loadgen is
// the load generator for websockets, login bursts and memory (HTTP load is
// wrk's); bareproxy is the bare ReverseProxy. This package holds what they
// share: results, percentiles, the Qlik login of a client, wrk's output and
// the report.
package bench

import (
	"math"
	"slices"
	"time"
)

// Result is what one load generator run measured. loadgen prints it as
// one JSON line on standard output.
type Result struct {
	// Ops counts completed operations: requests, or websocket round trips.
	Ops int64 `json:"ops"`
	// Bytes counts the payload bytes received (websocket messages).
	Bytes int64 `json:"bytes"`
	// Seconds is the measured interval.
	Seconds float64 `json:"seconds"`
	// P50 and P99 are latency percentiles in milliseconds: round trip, or
	// time to first byte.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	// LoginP50 and LoginP99 are the percentiles of the logins alone
	// (ticket and redemption) of a login run with first requests.
	LoginP50 float64 `json:"login_p50_ms,omitempty"`
	LoginP99 float64 `json:"login_p99_ms,omitempty"`
	// Errors counts failed operations; FirstError describes one.
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
	// Ready is set on the line an idle run prints once its sockets are
	// open and relayed; Conns is how many are.
	Ready bool `json:"ready,omitempty"`
	Conns int  `json:"conns,omitempty"`
}

// PerSecond returns n per second of r's interval (0 for an empty one).
func (r Result) PerSecond(n int64) float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(n) / r.Seconds
}

// Latencies collects durations for percentiles. The zero value is ready;
// it is not safe for concurrent use (give each worker its own, then Merge).
type Latencies struct {
	d []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) { l.d = append(l.d, d) }

// Merge adds o's durations to l.
func (l *Latencies) Merge(o *Latencies) { l.d = append(l.d, o.d...) }

// Len returns the number of durations recorded.
func (l *Latencies) Len() int { return len(l.d) }

// Percentile returns the p-th percentile (0 < p ≤ 100) by the nearest-rank
// method, in milliseconds; 0 when nothing was recorded.
func (l *Latencies) Percentile(p float64) float64 {
	if len(l.d) == 0 {
		return 0
	}
	if !slices.IsSorted(l.d) {
		slices.Sort(l.d)
	}
	rank := int(math.Ceil(p / 100 * float64(len(l.d))))
	rank = min(max(rank, 1), len(l.d))
	return float64(l.d[rank-1]) / float64(time.Millisecond)
}
