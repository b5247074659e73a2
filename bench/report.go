package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The targets, in the report's column order.
const (
	Direct    = "direct"
	Bare      = "bare"
	Nginx     = "nginx"
	Sensegate = "sensegate"
)

// Targets lists the target names in column order.
var Targets = []string{Direct, Bare, Nginx, Sensegate}

var targetTitles = map[string]string{
	Direct:    "direct",
	Bare:      "bare ReverseProxy",
	Nginx:     "nginx",
	Sensegate: "sensegate",
}

// Row keys that Checks reads.
const (
	KeyHTTPSmallRate = "http-1k-rate"
	KeyHTTPSmallP99  = "http-1k-paced-p99"
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
	// BurstUsers is the number of users of the cold-login burst, and
	// BurstOddUsers how many of them did not get exactly one ticket.
	BurstUsers, BurstOddUsers int
	// Notes are further remarks, one Markdown list item each.
	Notes []string
}

// Set records v for target on the row with key (created with workload and
// metric when missing). A row measured several times shows the median of
// its values; failed marks the target's figure for good.
func (r *Report) Set(key, workload, metric, target string, v float64, failed bool) {
	row := r.row(key)
	if row == nil {
		r.Rows = append(r.Rows, Row{Key: key, Workload: workload, Metric: metric,
			Values: map[string]float64{}, Failed: map[string]bool{}, samples: map[string][]float64{}})
		row = &r.Rows[len(r.Rows)-1]
	}
	row.samples[target] = append(row.samples[target], v)
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

// Checks evaluates the performance goals against the rows.
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
	ratio := func(key, target string, want float64) func() (string, bool, bool) {
		return func() (string, bool, bool) {
			sg, ok1 := r.Value(key, Sensegate)
			other, ok2 := r.Value(key, target)
			if !ok1 || !ok2 || other == 0 {
				return "—", false, false
			}
			q := sg / other
			return fmt.Sprintf("%.2f×", q), q >= want, true
		}
	}
	add("HTTP 1 KiB: sensegate ≥ 0.95× bare ReverseProxy requests/s", ratio(KeyHTTPSmallRate, Bare, 0.95))
	add("HTTP 1 KiB: sensegate ≥ nginx requests/s", ratio(KeyHTTPSmallRate, Nginx, 1))
	add("HTTP 1 KiB: p99 latency added over direct ≤ 1 ms (64 connections, fixed rate)", func() (string, bool, bool) {
		sg, ok1 := r.Value(KeyHTTPSmallP99, Sensegate)
		d, ok2 := r.Value(KeyHTTPSmallP99, Direct)
		if !ok1 || !ok2 {
			return "—", false, false
		}
		return fmt.Sprintf("%+.2f ms", sg-d), sg-d <= 1, true
	})
	add("Websocket 1 KiB: sensegate ≥ 0.8× direct messages/s", ratio(KeyWSSmallRate, Direct, 0.8))
	add("Websocket 256 KiB: sensegate ≥ 0.9× direct MiB/s", ratio(KeyWSLargeMBps, Direct, 0.9))
	add("Cold burst: exactly one ticket per user", func() (string, bool, bool) {
		t, ok := r.Value(KeyTickets, Sensegate)
		if !ok || r.BurstUsers == 0 {
			return "—", false, false
		}
		return fmt.Sprintf("%.0f tickets for %d users, %d users without exactly one", t, r.BurstUsers, r.BurstOddUsers),
			int(t) == r.BurstUsers && r.BurstOddUsers == 0, true
	})
	add("Cold burst: p99 time to first byte ≤ 2× one ticket + redemption (direct p50, same burst)", func() (string, bool, bool) {
		sg, ok1 := r.Value(KeyLoginP99, Sensegate)
		d, ok2 := r.Value(KeyTicketP50, Direct)
		if !ok1 || !ok2 || d == 0 {
			return "—", false, false
		}
		return fmt.Sprintf("%s ms = %.2f× %s ms", num(sg), sg/d, num(d)), sg <= 2*d, true
	})
	limit := func(key string, max float64) func() (string, bool, bool) {
		return func() (string, bool, bool) {
			v, ok := r.Value(key, Sensegate)
			if !ok {
				return "—", false, false
			}
			return num(v) + " KiB", v <= max, true
		}
	}
	add("Memory: ≤ 2 KiB RSS per cached user session", limit(KeySessionRSS, 2))
	add("Memory: ≤ 40 KiB RSS per idle relayed websocket (both sides)", limit(KeySocketRSS, 40))
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
	w("is more for rates, and slower for latencies and memory.\n\n")
	w("| workload | metric |")
	for _, t := range Targets {
		w(" %s |", targetTitles[t])
	}
	w(" sensegate ÷ direct | sensegate ÷ bare |\n|---|---|")
	w("%s", strings.Repeat("---:|", len(Targets)+2))
	w("\n")
	failed := false
	for _, row := range r.Rows {
		w("| %s | %s |", row.Workload, row.Metric)
		for _, t := range Targets {
			v, ok := row.Values[t]
			switch {
			case !ok:
				w(" — |")
			case row.Failed[t]:
				failed = true
				w(" %s ⚠ |", num(v))
			default:
				w(" %s |", num(v))
			}
		}
		for _, t := range []string{Direct, Bare} {
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

// num formats a figure with about three significant digits.
func num(v float64) string {
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
