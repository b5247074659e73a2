package bench

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// The targets, in the report's column order.
const (
	Direct    = "direct"
	Bare      = "bare"
	Nginx     = "nginx"
	Sensegate = "sensegate"
	// Baseline is another sensegate binary, measured alongside with
	// bench -baseline; its column shows only when it was.
	Baseline = "baseline"
)

// Targets lists the target names in column order.
var Targets = []string{Direct, Bare, Nginx, Sensegate}

var targetTitles = map[string]string{
	Direct:    "direct",
	Bare:      "bare ReverseProxy",
	Nginx:     "nginx",
	Sensegate: "sensegate",
	Baseline:  "sensegate (baseline)",
}

// Row keys that Checks reads.
const (
	KeyHTTPSmallRate = "http-1k-rate"
	KeyHTTPSmallP99  = "http-1k-paced-p99"
	KeyHTTPSmallCPU  = "http-1k-cpu"
	KeyHTTPSmallPeak = "http-1k-peak"
	KeyHTTPLargePeak = "http-1m-peak"
	KeyWSSmallRate   = "ws-1k-rate"
	KeyWSLargeMBps   = "ws-256k-mbps"
	KeyLoginP50      = "burst-p50"
	KeyLoginP99      = "burst-p99"
	KeyTicketP50     = "burst-ticket-p50"
	KeyTicketP99     = "burst-ticket-p99"
	KeyTickets       = "burst-tickets"
	KeySessionRSS    = "mem-session-rss"
	KeySocketRSS     = "mem-socket-rss"
)

// NginxBaseline is sensegate's HTTP 1 KiB requests/s divided by nginx's
// when issue 19 set the targets (docs/performance.md of 2026-11-26):
// the target halves the distance from it to 1.
const NginxBaseline = 0.47

// NginxTarget is the HTTP 1 KiB requests/s ratio to nginx that issue 19
// asks for: half the distance from NginxBaseline to 1.
const NginxTarget = (1 + NginxBaseline) / 2

// Row is one figure of the table: a workload's metric per target.
type Row struct {
	// Key names the row for Checks; it may be empty.
	Key      string
	Workload string
	Metric   string
	// Values by target name; a missing target was not measured.
	Values map[string]float64
	// Failed marks targets whose run had errors; their values are shown
	// with a mark and left out of the checks.
	Failed map[string]bool

	samples map[string][]float64 // every value Set, by target
	rounds  map[string][]int     // the Report.Round of each sample
}

// Machine is what the figures were measured on.
type Machine struct {
	CPU      string
	Cores    int
	Kernel   string
	Go       string
	Nginx    string
	Wrk      string
	Revision string
}

// Check is one target of the performance goals, met or not.
type Check struct {
	Goal     string
	Measured string
	// Status is "met", "not met" or "not measured".
	Status string
}

// Report is the content of docs/performance.md.
type Report struct {
	Date    time.Time
	Machine Machine
	// Setup describes the run, one Markdown list item each.
	Setup []string
	Rows  []Row
	// BurstUsers is the number of users of each cold-login burst, and
	// BurstOddUsers how many users of all the bursts did not get exactly
	// one ticket.
	BurstUsers, BurstOddUsers int
	// Notes are further remarks, one Markdown list item each.
	Notes []string
	// Round is the round of the measurements being Set: the ratios of
	// the targets pair the figures of one round.
	Round int
}

// FailedFigures names the figures measured with errors ("workload,
// metric: target"), in table order: empty when every run was clean.
func (r *Report) FailedFigures() []string {
	var out []string
	for _, row := range r.Rows {
		var targets []string
		for t := range row.Failed {
			targets = append(targets, t)
		}
		sort.Strings(targets)
		for _, t := range targets {
			out = append(out, fmt.Sprintf("%s, %s: %s", row.Workload, row.Metric, t))
		}
	}
	return out
}

// Set records v for target on the row with key (created with workload and
// metric when missing). A row measured several times shows the median of
// its values; failed marks the target's figure for good.
func (r *Report) Set(key, workload, metric, target string, v float64, failed bool) {
	row := r.row(key)
	if row == nil {
		r.Rows = append(r.Rows, Row{Key: key, Workload: workload, Metric: metric,
			Values: map[string]float64{}, Failed: map[string]bool{}, samples: map[string][]float64{}, rounds: map[string][]int{}})
		row = &r.Rows[len(r.Rows)-1]
	}
	row.samples[target] = append(row.samples[target], v)
	row.rounds[target] = append(row.rounds[target], r.Round)
	row.Values[target] = median(row.samples[target])
	if failed {
		row.Failed[target] = true
	}
}

// median returns the median of vs (the mean of the middle two for an even
// count).
func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func (r *Report) row(key string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Key == key {
			return &r.Rows[i]
		}
	}
	return nil
}

// Value returns the value of target on the row with key, if it was
// measured without errors.
func (r *Report) Value(key, target string) (float64, bool) {
	row := r.row(key)
	if row == nil {
		return 0, false
	}
	v, ok := row.Values[target]
	return v, ok && !row.Failed[target]
}

// Ratios returns, round by round, target's figure on the row with key
// divided by other's on the row with otherKey: one ratio for each round
// in which both were measured, none when either had errors.
func (r *Report) Ratios(key, target, otherKey, other string) []float64 {
	a, b := r.byRound(key, target), r.byRound(otherKey, other)
	var qs []float64
	for _, round := range sortedRounds(a) {
		if d, ok := b[round]; ok && d != 0 {
			qs = append(qs, a[round]/d)
		}
	}
	return qs
}

// CPUBudget returns, round by round, the most CPU time per request (µs)
// a proxy could spend for its HTTP 1 KiB rate to reach want × nginx's,
// on a machine whose cores every process shares: cores ÷ (want × nginx's
// rate), less what the load generator and the upstream spend on a
// request, cores ÷ direct's rate (their figure when they saturate the
// machine without a proxy). It is a bound from above: a proxy that
// leaves cores idle under the load reaches less than it suggests.
func (r *Report) CPUBudget(cores int, want float64) []float64 {
	direct, nginx := r.byRound(KeyHTTPSmallRate, Direct), r.byRound(KeyHTTPSmallRate, Nginx)
	var us []float64
	for _, round := range sortedRounds(direct) {
		d, n := direct[round], nginx[round]
		if d == 0 || n == 0 {
			continue
		}
		machine := float64(cores) * 1e6
		us = append(us, machine/(want*n)-machine/d)
	}
	return us
}

// byRound returns target's figures on the row with key by round: none
// when it had errors.
func (r *Report) byRound(key, target string) map[int]float64 {
	row := r.row(key)
	if row == nil || row.Failed[target] {
		return nil
	}
	m := make(map[int]float64, len(row.rounds[target]))
	for i, round := range row.rounds[target] {
		m[round] = row.samples[target][i]
	}
	return m
}

func sortedRounds(m map[int]float64) []int {
	return slices.Sorted(maps.Keys(m))
}

// Spread formats ratios: their median, and their range over the rounds.
func Spread(qs []float64) string {
	m := median(qs)
	if len(qs) == 1 {
		return fmt.Sprintf("%.2f× (one run)", m)
	}
	return fmt.Sprintf("%.2f× (%.2f–%.2f over %d rounds)", m, slices.Min(qs), slices.Max(qs), len(qs))
}

// Range formats figures of unit: their median, and their range over the
// rounds.
func Range(vs []float64, unit string) string {
	m := Num(median(vs)) + " " + unit
	if len(vs) == 1 {
		return m + " (one run)"
	}
	return fmt.Sprintf("%s (%s–%s over %d rounds)", m, Num(slices.Min(vs)), Num(slices.Max(vs)), len(vs))
}

// Checks evaluates the performance goals against the rows. A goal on a
// ratio takes the median of the ratios of the rounds, and shows their
// range.
func (r *Report) Checks() []Check {
	var cs []Check
	add := func(goal string, measured func() (string, bool, bool)) {
		m, met, ok := measured()
		status := "not measured"
		if ok && met {
			status = "met"
		} else if ok {
			status = "not met"
		}
		cs = append(cs, Check{Goal: goal, Measured: m, Status: status})
	}
	// ratio checks the ratios of sensegate's figure on key to other's
	// on otherKey with met; atLeast and atMost with a bound.
	ratio := func(key, otherKey, other string, met func(q float64) bool) func() (string, bool, bool) {
		return func() (string, bool, bool) {
			qs := r.Ratios(key, Sensegate, otherKey, other)
			if len(qs) == 0 {
				return "—", false, false
			}
			return Spread(qs), met(median(qs)), true
		}
	}
	atLeast := func(key, other string, want float64) func() (string, bool, bool) {
		return ratio(key, key, other, func(q float64) bool { return q >= want })
	}
	atMost := func(key, otherKey, other string, want float64) func() (string, bool, bool) {
		return ratio(key, otherKey, other, func(q float64) bool { return q <= want })
	}
	add("HTTP 1 KiB: sensegate ≥ 1.0× bare ReverseProxy requests/s", atLeast(KeyHTTPSmallRate, Bare, 1))
	add(fmt.Sprintf("HTTP 1 KiB: half the distance to nginx, sensegate ≥ %.3f× nginx requests/s (from %.2f×)", NginxTarget, NginxBaseline),
		atLeast(KeyHTTPSmallRate, Nginx, NginxTarget))
	add("HTTP 1 KiB: p99 latency added over direct ≤ 1 ms (64 connections, fixed rate)", func() (string, bool, bool) {
		sg, ok1 := r.Value(KeyHTTPSmallP99, Sensegate)
		d, ok2 := r.Value(KeyHTTPSmallP99, Direct)
		if !ok1 || !ok2 {
			return "—", false, false
		}
		return fmt.Sprintf("%+.2f ms", sg-d), sg-d <= 1, true
	})
	add("Websocket 1 KiB: sensegate ≥ 0.95× bare ReverseProxy messages/s", atLeast(KeyWSSmallRate, Bare, 0.95))
	add("Websocket 256 KiB: sensegate ≥ 0.9× direct MiB/s", atLeast(KeyWSLargeMBps, Direct, 0.9))
	add("Cold burst: exactly one ticket per user", func() (string, bool, bool) {
		t, ok := r.Value(KeyTickets, Sensegate)
		if !ok || r.BurstUsers == 0 {
			return "—", false, false
		}
		return fmt.Sprintf("%.0f tickets for %d users, %d users without exactly one", t, r.BurstUsers, r.BurstOddUsers),
			int(t) == r.BurstUsers && r.BurstOddUsers == 0, true
	})
	add("Cold burst: p99 time to first byte ≤ 3× one ticket + redemption (direct p50, same round)", func() (string, bool, bool) {
		sg, ok1 := r.Value(KeyLoginP99, Sensegate)
		d, ok2 := r.Value(KeyTicketP50, Direct)
		m, met, ok := atMost(KeyLoginP99, KeyTicketP50, Direct, 3)()
		if !ok1 || !ok2 || !ok {
			return "—", false, false
		}
		return fmt.Sprintf("%s ms ÷ %s ms: %s", Num(sg), Num(d), m), met, true
	})
	add("Memory: peak RSS under the HTTP loads ≤ 1.3× bare ReverseProxy's", func() (string, bool, bool) {
		var parts []string
		met, any := true, false
		for _, w := range []struct{ name, key string }{{"1 KiB", KeyHTTPSmallPeak}, {"1 MiB", KeyHTTPLargePeak}} {
			m, ok1, ok := atMost(w.key, w.key, Bare, 1.3)()
			if !ok {
				continue
			}
			any = true
			met = met && ok1
			parts = append(parts, w.name+": "+m)
		}
		if !any {
			return "—", false, false
		}
		return strings.Join(parts, "; "), met, true
	})
	limit := func(key string, max float64) func() (string, bool, bool) {
		return func() (string, bool, bool) {
			v, ok := r.Value(key, Sensegate)
			if !ok {
				return "—", false, false
			}
			return Num(v) + " KiB", v <= max, true
		}
	}
	add("Memory: ≤ 2 KiB RSS per cached user session", limit(KeySessionRSS, 2))
	add("Memory: ≤ 30 KiB RSS per idle relayed websocket (both sides)", limit(KeySocketRSS, 30))
	return cs
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Performance\n\n")
	w("Written by `make bench` (`scripts/bench.sh`, programs in `bench/`) on %s.\n", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	w("Every process runs on this one machine over loopback, load generators included, so the\n")
	w("figures are only comparable within this file: regenerate it on a quiet machine before\n")
	w("drawing conclusions.\n\n")

	m := r.Machine
	w("## Machine\n\n| CPU | cores | kernel | Go | nginx | wrk | sensegate |\n|---|---|---|---|---|---|---|\n")
	w("| %s | %d | %s | %s | %s | %s | %s |\n\n", cell(m.CPU), m.Cores, cell(m.Kernel), cell(m.Go), cell(m.Nginx), cell(m.Wrk), cell(m.Revision))

	if len(r.Setup) > 0 {
		w("## How it is measured\n\n")
		for _, s := range r.Setup {
			w("- %s\n", s)
		}
		w("\n")
	}

	w("## Results\n\n")
	w("Ratios are sensegate's figure divided by direct's and by the bare ReverseProxy's: above 1\n")
	w("is more for rates, and slower for latencies, CPU and memory.\n\n")
	targets, against := Targets, []string{Direct, Bare}
	if r.hasBaseline() {
		targets = append(slices.Clone(Targets), Baseline)
		against = append(against, Baseline)
	}
	w("| workload | metric |")
	for _, t := range targets {
		w(" %s |", targetTitles[t])
	}
	for _, t := range against {
		w(" sensegate ÷ %s |", t)
	}
	w("\n|---|---|")
	w("%s", strings.Repeat("---:|", len(targets)+len(against)))
	w("\n")
	failed := false
	for _, row := range r.Rows {
		w("| %s | %s |", row.Workload, row.Metric)
		for _, t := range targets {
			v, ok := row.Values[t]
			switch {
			case !ok:
				w(" — |")
			case row.Failed[t]:
				failed = true
				w(" %s ⚠ |", Num(v))
			default:
				w(" %s |", Num(v))
			}
		}
		for _, t := range against {
			sg, ok1 := row.Values[Sensegate]
			o, ok2 := row.Values[t]
			if ok1 && ok2 && o != 0 && !row.Failed[Sensegate] && !row.Failed[t] {
				w(" %.2f× |", sg/o)
			} else {
				w(" — |")
			}
		}
		w("\n")
	}
	if failed {
		w("\n⚠: the run had errors (see Notes); the figure is not used for the targets.\n")
	}

	w("\n## Targets\n\n| target | measured | |\n|---|---|---|\n")
	for _, c := range r.Checks() {
		w("| %s | %s | %s |\n", c.Goal, c.Measured, c.Status)
	}
	if len(r.Notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

// hasBaseline reports whether a baseline sensegate was measured.
func (r *Report) hasBaseline() bool {
	for _, row := range r.Rows {
		if _, ok := row.Values[Baseline]; ok {
			return true
		}
	}
	return false
}

// Num formats a figure with about three significant digits.
func Num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 100 || v == math.Trunc(v) && a >= 10:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// cell makes s safe in a table cell.
func cell(s string) string {
	if s == "" {
		return "?"
	}
	return strings.ReplaceAll(s, "|", "/")
}
