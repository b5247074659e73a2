package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sensegate/sensegate/bench"
	"github.com/sensegate/sensegate/tooling/qliksim"
)

const mib = 1 << 20

// step is one workload: its -only id, its name in the log, and its run.
type step struct {
	id, name string
	run      func(context.Context) error
}

// runWorkloads runs every workload against every target. A workload that
// fails is noted in the report and the run goes on.
func (h *harness) runWorkloads(ctx context.Context) error {
	o := h.o
	h.describe()
	steps := []step{
		{"http-1k", "HTTP 1 KiB", func(ctx context.Context) error { return h.httpLoad(ctx, "http-1k", "HTTP 1 KiB", smallPath, smallSize) }},
		{"paced", "HTTP 1 KiB at a fixed rate", h.pacedLoad},
		{"http-1m", "HTTP 1 MiB", func(ctx context.Context) error { return h.httpLoad(ctx, "http-1m", "HTTP 1 MiB", largePath, largeSize) }},
		{"ws-1k", "websocket 1 KiB", func(ctx context.Context) error {
			return h.wsLoad(ctx, "ws-1k", fmt.Sprintf("Engine websocket 1 KiB, %d sockets", o.wsSmallConns), o.wsSmallConns, 1<<10)
		}},
		{"ws-256k", "websocket 256 KiB", func(ctx context.Context) error {
			return h.wsLoad(ctx, "ws-256k", fmt.Sprintf("Engine websocket 256 KiB, %d sockets", o.wsLargeConns), o.wsLargeConns, 256<<10)
		}},
		{"burst", "cold-login burst", h.burst},
		{"sessions", "memory per session", h.sessionMemory},
		{"sockets", "memory per idle websocket", h.socketMemory},
	}
	only := map[string]bool{}
	for _, id := range strings.Split(o.only, ",") {
		if id = strings.TrimSpace(id); id != "" {
			only[id] = true
		}
	}
	// The throughput workloads run o.rounds times each, and the report
	// shows medians: a burst of noise on a shared machine then spoils one
	// sample, not a figure. A workload's rounds run back to back, each with
	// the targets in the other order (see runOrder), so that its figures,
	// peak memory above all, owe nothing to another workload (websocket
	// buffers the collector has not yet returned to the system, say). The
	// burst and memory workloads run after them: they leave thousands of
	// sessions in the simulator and big heaps in the proxies, which would
	// slow the rounds after them.
	rounds := map[string]bool{"http-1k": true, "paced": true, "http-1m": true, "ws-1k": true, "ws-256k": true}
	n := max(o.rounds, 1)
	run := func(s step, label string) error {
		logf("%s%s", s.name, label)
		t0 := time.Now()
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return err
			}
			h.note("%s: %v", s.name, err)
			logf("%s failed: %v", s.name, err)
			return nil
		}
		logf("%s done in %s", s.name, time.Since(t0).Round(100*time.Millisecond))
		return nil
	}
	for _, s := range steps {
		if len(only) > 0 && !only[s.id] || !rounds[s.id] {
			continue
		}
		for round := range n {
			h.round = round
			h.report.Round = round
			if err := run(s, fmt.Sprintf(" (round %d of %d)", round+1, n)); err != nil {
				return err
			}
		}
	}
	h.round = 0
	h.report.Round = 0
	for _, s := range steps {
		if len(only) > 0 && !only[s.id] || rounds[s.id] {
			continue
		}
		if s.id == "burst" {
			// Short: repeated, for the spread of its target.
			for round := range n {
				h.round = round
				h.report.Round = round
				if err := run(s, fmt.Sprintf(" (round %d of %d)", round+1, n)); err != nil {
					return err
				}
			}
			h.round = 0
			h.report.Round = 0
			continue
		}
		if err := run(s, ""); err != nil {
			return err
		}
	}
	h.contextNotes()
	return nil
}

// contextNotes adds notes that put the targets that depend on the
// machine in scale, from the figures measured.
func (h *harness) contextNotes() {
	r := h.report
	if qs := r.Ratios(bench.KeyLoginP99, bench.Direct, bench.KeyTicketP50, bench.Direct); len(qs) > 0 {
		h.note("Cold burst, for scale: a client doing the work itself (direct) reaches its first bytes at p99 in %s its own ticket + redemption p50, with one process fewer on the cores.", bench.Spread(qs))
	}
	if us := r.CPUBudget(r.Machine.Cores, bench.NginxTarget); len(us) > 0 {
		spent := func(target string) string {
			if v, ok := r.Value(bench.KeyHTTPSmallCPU, target); ok {
				return bench.Num(v) + " µs"
			}
			return "—"
		}
		h.note("HTTP 1 KiB, for scale: with every process on the machine's %d cores, a proxy that reaches %.3f× nginx's requests/s spends at most %s of CPU per request (the cores' time at that rate, less what wrk and the simulator take per request, measured direct); sensegate spends %s, the bare ReverseProxy %s, nginx %s.",
			r.Machine.Cores, bench.NginxTarget, bench.Range(us, "µs"), spent(bench.Sensegate), spent(bench.Bare), spent(bench.Nginx))
	}
	for _, w := range []struct{ name, key string }{{"1 KiB", "http-1k"}, {"1 MiB", "http-1m"}} {
		if qs := r.Ratios(w.key+"-anon", bench.Sensegate, w.key+"-anon", bench.Bare); len(qs) > 0 {
			h.note("Peak RSS under HTTP %s, anonymous part alone (heap and stacks, without the pages of the binary, %s for sensegate and %s for the bare proxy): sensegate ÷ bare %s.",
				w.name, binarySize(filepath.Join(h.o.bin, "sensegate")), binarySize(filepath.Join(h.o.bin, "bareproxy")), bench.Spread(qs))
		}
	}
}

// binarySize returns the size of the file at path in MiB, as text.
func binarySize(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(fi.Size())/mib)
}

// ordered returns the targets in this round's order (see runOrder).
func (h *harness) ordered() []*target {
	return orderTargets(h.targets, h.round)
}

// runOrder is the order of the targets in even rounds; odd rounds run it
// backwards. sensegate runs between the targets its ratios divide by,
// right after or before each: this machine's speed moves in steps that
// last seconds (the same proxy at 46 or at 64 µs of CPU a request, a minute
// apart), and two runs back to back mostly share one, where runs a target
// apart often did not (rounds of sensegate ÷ bare from 0.85× to 1.35× in
// one run). Each target runs early in some rounds and late in others.
var runOrder = []string{bench.Direct, bench.Bare, bench.Sensegate, bench.Baseline, bench.Nginx}

// orderTargets returns targets in round's order (see runOrder); targets
// not in runOrder come last.
func orderTargets(targets []*target, round int) []*target {
	rank := func(t *target) int {
		if i := slices.Index(runOrder, t.name); i >= 0 {
			return i
		}
		return len(runOrder)
	}
	out := slices.Clone(targets)
	slices.SortStableFunc(out, func(a, b *target) int { return rank(a) - rank(b) })
	if round%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

func (h *harness) note(format string, args ...any) {
	h.report.Notes = append(h.report.Notes, fmt.Sprintf(format, args...))
}

func (h *harness) loadgen(mode string, args ...string) []string {
	return append([]string{filepath.Join(h.o.bin, "loadgen"), mode}, args...)
}

func headerFlags(t *target) []string {
	var f []string
	for _, a := range t.auth {
		f = append(f, "-header", a)
	}
	return f
}

// httpLoad runs wrk against each target.
func (h *harness) httpLoad(ctx context.Context, key, workload, path string, size int) error {
	workload = fmt.Sprintf("%s, %d connections, saturating", workload, h.o.httpConns)
	secs := max(int(h.o.duration.Round(time.Second)/time.Second), 1)
	for _, t := range h.ordered() {
		wrk := func(secs int) ([]byte, error) {
			argv := []string{h.o.wrk, "-t", "2", "-c", strconv.Itoa(h.o.httpConns), "-d", fmt.Sprintf("%ds", secs), "--latency", "--timeout", "10s"}
			for _, a := range t.auth {
				argv = append(argv, "-H", a)
			}
			argv = append(argv, t.base+path)
			bctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+time.Minute)
			defer cancel()
			return command(bctx, argv...).CombinedOutput()
		}
		// The peak RSS is the proxy's under this load alone, the warming
		// included; so is the peak of its anonymous part, sampled.
		var (
			stopAnon chan struct{}
			anonPeak = make(chan int64, 1)
		)
		if t.proc != nil {
			if err := resetPeakRSS(t.proc.pid(), t.tree); err != nil {
				h.note("%s, %s: peak RSS not reset: %v", workload, t.name, err)
			}
			stopAnon = make(chan struct{})
			go func() { anonPeak <- sampleAnon(t.proc.pid(), t.tree, 50*time.Millisecond, stopAnon) }()
		}
		// An unmeasured second first: connection pools and the Go
		// processes' heaps grow to the load, which otherwise costs the
		// first target of a round some of its figure.
		wrk(1)
		var (
			out []byte
			err error
		)
		cpu0 := h.cpu(t)
		h.profiled(ctx, t, key, secs, func() { out, err = wrk(secs) })
		cpu1 := h.cpu(t)
		var anon int64
		if stopAnon != nil {
			close(stopAnon)
			anon = <-anonPeak
		}
		if err != nil {
			h.note("%s, %s: wrk: %v: %s", workload, t.name, err, strings.TrimSpace(string(out)))
			continue
		}
		w, err := bench.ParseWrk(string(out))
		if err != nil {
			h.note("%s, %s: %v", workload, t.name, err)
			continue
		}
		failed := w.Errors > 0
		if failed {
			h.note("%s, %s: %d of %d requests failed (non-2xx or socket errors)", workload, t.name, w.Errors, w.Requests)
		}
		metric := "requests/s"
		if size == mib {
			metric = "requests/s (= MiB/s)"
		}
		h.report.Set(key+"-rate", workload, metric, t.name, w.RequestsPerSec, failed)
		h.report.Set(key+"-p50", workload, "latency p50 (ms)", t.name, w.P50, failed)
		h.report.Set(key+"-p99", workload, "latency p99 (ms)", t.name, w.P99, failed)
		cpuNote := ""
		if cpu0 >= 0 && cpu1 >= 0 && w.Requests > 0 {
			us := float64(cpu1-cpu0) / float64(time.Microsecond) / float64(w.Requests)
			h.report.Set(key+"-cpu", workload, "proxy CPU per request (µs)", t.name, us, failed)
			cpuNote = fmt.Sprintf("  CPU %5.1f µs/req", us)
		}
		peakNote := ""
		if t.proc != nil {
			if peak, err := peakRSS(t.proc.pid(), t.tree); err == nil {
				h.report.Set(key+"-peak", workload, "proxy peak RSS (MiB)", t.name, float64(peak)/mib, failed)
				peakNote = fmt.Sprintf("  peak RSS %5.1f MiB", float64(peak)/mib)
			}
			if anon > 0 {
				h.report.Set(key+"-anon", workload, "proxy peak anonymous RSS, sampled (MiB)", t.name, float64(anon)/mib, failed)
				peakNote += fmt.Sprintf(" (anonymous %5.1f)", float64(anon)/mib)
			}
		}
		logf("  %-9s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms%s%s", t.name, w.RequestsPerSec, w.P50, w.P99, cpuNote, peakNote)
	}
	return nil
}

// cpu returns the CPU time t's proxy process has used, -1 when t has none
// or it cannot be read.
func (h *harness) cpu(t *target) time.Duration {
	if t.proc == nil {
		return -1
	}
	d, err := cpuTime(t.proc.pid(), t.tree)
	if err != nil {
		return -1
	}
	return d
}

// pacedFraction of the slowest target's saturated rate is the fixed rate
// of pacedLoad: low enough that every process, load generator included,
// has CPU to spare on a small machine, so latencies are not queueing.
const pacedFraction = 0.25

// pacedLoad measures the latency of 1 KiB requests at a fixed rate that
// every target sustains with room to spare.
func (h *harness) pacedLoad(ctx context.Context) error {
	slowest := 0.0
	for _, t := range h.targets {
		v, ok := h.report.Value("http-1k-rate", t.name)
		if !ok {
			return fmt.Errorf("no saturated rate of %s to pace by", t.name)
		}
		if slowest == 0 || v < slowest {
			slowest = v
		}
	}
	if h.pacedRate == 0 {
		// Fixed once, so that every round measures at the same rate.
		h.pacedRate = max(int(slowest*pacedFraction/100)*100, 100)
	}
	rate := h.pacedRate
	workload := fmt.Sprintf("HTTP 1 KiB, %d connections at %d requests/s", h.o.httpConns, rate)
	for _, t := range h.ordered() {
		argv := h.loadgen("rate", append([]string{"-url", t.base + smallPath, "-conns", strconv.Itoa(h.o.httpConns),
			"-rate", strconv.Itoa(rate), "-duration", h.o.duration.String()}, headerFlags(t)...)...)
		r, err := runLoad(ctx, h.o.duration+time.Minute, argv...)
		if err != nil {
			h.note("%s, %s: %v", workload, t.name, err)
			continue
		}
		failed := r.Errors > 0
		if failed {
			h.note("%s, %s: %d of %d requests failed: %s", workload, t.name, r.Errors, r.Errors+r.Ops, r.FirstError)
		}
		h.report.Set("http-1k-paced-p50", workload, "latency p50 (ms)", t.name, r.P50, failed)
		h.report.Set(bench.KeyHTTPSmallP99, workload, "latency p99 (ms)", t.name, r.P99, failed)
		logf("  %-9s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms", t.name, r.PerSecond(r.Ops), r.P50, r.P99)
	}
	return nil
}

// wsLoad runs loadgen ws against each target.
func (h *harness) wsLoad(ctx context.Context, key, workload string, conns, size int) error {
	for _, t := range h.ordered() {
		ws := "ws" + strings.TrimPrefix(t.base, "http") + "/app/" + benchApp
		argv := h.loadgen("ws", append([]string{"-url", ws, "-conns", strconv.Itoa(conns), "-size", strconv.Itoa(size),
			"-duration", h.o.duration.String()}, headerFlags(t)...)...)
		var (
			r   bench.Result
			err error
		)
		// The profile starts with loadgen, so it also sees the sockets
		// being opened and the app set up, a small part of it.
		cpu0 := h.cpu(t)
		h.profiled(ctx, t, key, max(int(h.o.duration/time.Second), 1), func() { r, err = runLoad(ctx, h.o.duration+2*time.Minute, argv...) })
		cpu1 := h.cpu(t)
		if err != nil {
			h.note("%s, %s: %v", workload, t.name, err)
			continue
		}
		failed := r.Errors > 0
		if failed {
			h.note("%s, %s: %d sockets failed: %s", workload, t.name, r.Errors, r.FirstError)
		}
		h.report.Set(key+"-rate", workload, "messages/s", t.name, r.PerSecond(r.Ops), failed)
		h.report.Set(key+"-mbps", workload, "MiB/s", t.name, r.PerSecond(r.Bytes)/mib, failed)
		h.report.Set(key+"-p50", workload, "round trip p50 (ms)", t.name, r.P50, failed)
		h.report.Set(key+"-p99", workload, "round trip p99 (ms)", t.name, r.P99, failed)
		if cpu0 >= 0 && cpu1 >= 0 && r.Ops > 0 {
			// The sockets' setup is in it too: a small part of a run.
			h.report.Set(key+"-cpu", workload, "proxy CPU per message (µs)", t.name, float64(cpu1-cpu0)/float64(time.Microsecond)/float64(r.Ops), failed)
		}
		logf("  %-9s %8.0f msg/s  %7.1f MiB/s  p50 %6.2f ms  p99 %6.2f ms", t.name, r.PerSecond(r.Ops), r.PerSecond(r.Bytes)/mib, r.P50, r.P99)
	}
	return nil
}

// burst measures cold logins through sensegate. Its direct baseline is a
// client doing the same work itself: a ticket and its redemption for each
// user, then the same first requests with the session cookie.
func (h *harness) burst(ctx context.Context) error {
	o := h.o
	workload := fmt.Sprintf("Cold-login burst, %d users × %d first requests, %d users at a time", o.burstUsers, o.burstPerUser, o.burstParallel)
	base, err := runLoad(ctx, 5*time.Minute, h.loadgen("login", "-qps", h.simQPS, "-url", h.simProxy+smallPath, "-certs", h.certDir,
		"-users", strconv.Itoa(o.burstUsers), "-per-user", strconv.Itoa(o.burstPerUser), "-parallel", strconv.Itoa(o.burstParallel),
		"-user-prefix", fmt.Sprintf("login-r%d-", h.round))...)
	if err != nil {
		return err
	}
	if base.Errors > 0 {
		h.note("%s, direct: %d of %d requests failed: %s", workload, base.Errors, base.Errors+base.Ops, base.FirstError)
	}
	h.report.Set(bench.KeyLoginP50, workload, "time to first byte p50 (ms)", bench.Direct, base.P50, base.Errors > 0)
	h.report.Set(bench.KeyLoginP99, workload, "time to first byte p99 (ms)", bench.Direct, base.P99, base.Errors > 0)
	h.report.Set(bench.KeyTicketP50, workload, "ticket + redemption p50 (ms)", bench.Direct, base.LoginP50, base.Errors > 0)
	h.report.Set(bench.KeyTicketP99, workload, "ticket + redemption p99 (ms)", bench.Direct, base.LoginP99, base.Errors > 0)
	logf("  direct: first byte p50 %.2f ms  p99 %.2f ms; ticket + redemption p50 %.2f ms  p99 %.2f ms", base.P50, base.P99, base.LoginP50, base.LoginP99)

	if b, ok := h.byName[bench.Baseline]; ok {
		if _, err := h.burstThrough(ctx, workload, b, "base"); err != nil {
			return err
		}
	}
	if _, err := h.burstThrough(ctx, workload, h.byName[bench.Sensegate], "burst"); err != nil {
		return err
	}

	var counts map[string]qliksim.UserCounts
	if err := getJSON(ctx, h.simAdmin+"/users", &counts); err != nil {
		return err
	}
	byUser := make(map[string]int, len(counts))
	for u, c := range counts {
		byUser[strings.ToLower(u)] = c.TicketsIssued
	}
	tickets, odd := 0, 0
	for i := range o.burstUsers {
		n := byUser[strings.ToLower(fmt.Sprintf(`%s\burst-r%d-%d`, directory, h.round, i))]
		tickets += n
		if n != 1 {
			odd++
		}
	}
	h.report.Set(bench.KeyTickets, workload, "tickets issued", bench.Sensegate, float64(tickets), false)
	h.report.BurstUsers = o.burstUsers
	h.report.BurstOddUsers += odd
	logf("  %d tickets for %d users", tickets, o.burstUsers)
	return nil
}

// burstThrough runs loadgen burst through sg, a sensegate, with new
// users named prefix-rROUND-N.
func (h *harness) burstThrough(ctx context.Context, workload string, sg *target, prefix string) (bench.Result, error) {
	o := h.o
	r, err := runLoad(ctx, 10*time.Minute, h.loadgen("burst", "-url", sg.base+smallPath, "-users", strconv.Itoa(o.burstUsers),
		"-per-user", strconv.Itoa(o.burstPerUser), "-parallel", strconv.Itoa(o.burstParallel),
		"-user-header", userHeader, "-user-prefix", fmt.Sprintf("%s-r%d-", prefix, h.round))...)
	if err != nil {
		return r, err
	}
	failed := r.Errors > 0
	if failed {
		h.note("%s, %s: %d of %d requests failed: %s", workload, sg.name, r.Errors, r.Errors+r.Ops, r.FirstError)
	}
	h.report.Set(bench.KeyLoginP50, workload, "time to first byte p50 (ms)", sg.name, r.P50, failed)
	h.report.Set(bench.KeyLoginP99, workload, "time to first byte p99 (ms)", sg.name, r.P99, failed)
	logf("  %-9s p50 %.2f ms  p99 %.2f ms", sg.name, r.P50, r.P99)
	return r, nil
}

// sessionMemory measures sensegate's memory per cached user session.
func (h *harness) sessionMemory(ctx context.Context) error {
	n := h.o.sessions
	workload := fmt.Sprintf("Memory, %d users with a cached session", n)
	sg := h.byName[bench.Sensegate]
	rss0, err := settledRSS(ctx, sg.proc.pid(), false)
	if err != nil {
		return err
	}
	heap0, heapErr := h.heapInUse(ctx)
	r, err := runLoad(ctx, 15*time.Minute, h.loadgen("users", "-url", sg.base+smallPath, "-users", strconv.Itoa(n),
		"-parallel", "32", "-user-header", userHeader, "-user-prefix", "mem-")...)
	if err != nil {
		return err
	}
	rss1, err := settledRSS(ctx, sg.proc.pid(), false)
	if err != nil {
		return err
	}
	failed := r.Errors > 0
	if failed {
		h.note("%s: %d of %d users failed: %s", workload, r.Errors, n, r.FirstError)
	}
	per := float64(rss1-rss0) / float64(n) / 1024
	h.report.Set(bench.KeySessionRSS, workload, "RSS per session (KiB)", bench.Sensegate, per, failed)
	heap1, heapErr1 := h.heapInUse(ctx)
	if heapErr == nil && heapErr1 == nil {
		h.report.Set("mem-session-heap", workload, "Go heap in use per session (KiB)", bench.Sensegate, (heap1-heap0)/float64(n)/1024, failed)
	}
	logf("  sensegate RSS %d → %d MiB: %.2f KiB per session (%d logins in %.1f s)", rss0/mib, rss1/mib, per, r.Ops, r.Seconds)
	return nil
}

// socketMemory measures each proxy's memory per idle relayed websocket.
func (h *harness) socketMemory(ctx context.Context) error {
	n := h.o.sockets
	// sensegate holds two descriptors per socket; leave room for the rest.
	if fit := int(h.nofile/2) - 1000; n > fit {
		h.note("Idle websockets: %d instead of %d, to fit the open-file limit of %d", fit, n, h.nofile)
		n = fit
	}
	workload := fmt.Sprintf("Memory, %d idle websockets", n)
	for _, name := range []string{bench.Bare, bench.Nginx, bench.Sensegate} {
		t := h.byName[name]
		args := []string{"-url", "ws" + strings.TrimPrefix(t.base, "http") + "/app/engineData", "-conns", strconv.Itoa(n), "-parallel", "64"}
		if name == bench.Sensegate {
			// The users of sessionMemory: their sessions are in the jar.
			args = append(args, "-user-header", userHeader, "-user-prefix", "mem-", "-users", strconv.Itoa(h.o.sessions))
		} else {
			args = append(args, headerFlags(t)...)
		}
		rss0, err := settledRSS(ctx, t.proc.pid(), t.tree)
		if err != nil {
			return err
		}
		heap0, heapErr := h.heapInUse(ctx)
		hd, ready, err := hold(ctx, 10*time.Minute, h.loadgen("idle", args...)...)
		if err != nil {
			h.note("%s, %s: %v", workload, name, err)
			continue
		}
		rss1, err := settledRSS(ctx, t.proc.pid(), t.tree)
		heap1, heapErr1 := h.heapInUse(ctx)
		hd.release()
		if err != nil {
			return err
		}
		failed := ready.Errors > 0 || ready.Conns == 0
		if failed {
			h.note("%s, %s: %d sockets failed: %s", workload, name, ready.Errors, ready.FirstError)
		}
		per := float64(rss1-rss0) / float64(max(ready.Conns, 1)) / 1024
		h.report.Set(bench.KeySocketRSS, workload, "RSS per idle websocket (KiB)", name, per, failed)
		if name == bench.Sensegate && heapErr == nil && heapErr1 == nil {
			h.report.Set("mem-socket-heap", workload, "Go heap in use per idle websocket (KiB)", name, (heap1-heap0)/float64(max(ready.Conns, 1))/1024, failed)
		}
		logf("  %-9s RSS %d → %d MiB: %.1f KiB per socket (%d open in %.1f s)", name, rss0/mib, rss1/mib, per, ready.Conns, ready.Seconds)
	}
	return nil
}

// heapInUse reads go_memstats_heap_inuse_bytes from sensegate's metrics.
func (h *harness) heapInUse(ctx context.Context) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.sgAdmin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no go_memstats_heap_inuse_bytes in sensegate's metrics")
}

// getJSON decodes the body of a GET of url into v.
func getJSON(ctx context.Context, url string, v any) error {
	body, err := get(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	return json.NewDecoder(body).Decode(v)
}

// describe writes how the run measures into the report.
func (h *harness) describe() {
	o := h.o
	d := o.duration.String()
	h.report.Setup = []string{
		"Upstream of every target: the QSEoW simulator (`cmd/qliksim`, plain HTTP), serving two " +
			"static resources of 1 KiB and 1 MiB to authenticated sessions, and the Engine API.",
		"Targets: **direct** to the simulator; **bare**, `bench/cmd/bareproxy`: `httputil.ReverseProxy` " +
			"(Rewrite with SetURL, 512 idle connections per host, a 32 KiB BufferPool, 101 handling for websockets); " +
			"**nginx** from Debian (`worker_processes auto`, upstream `keepalive 256`, HTTP/1.1, the Upgrade/Connection map, " +
			"`proxy_buffering off`, no access log); **sensegate** `serve` with the header identity (the load generator " +
			"is its trusted front door), defaults otherwise, its jar warm with the bench user's Qlik session. Direct, bare " +
			"and nginx are sent a Qlik session cookie the harness got with a ticket and its redemption; sensegate is sent " +
			"only the user name and adds the cookie itself.",
		fmt.Sprintf("HTTP: `wrk -t 2 -c %d -d %s --latency`, GET of the 1 KiB or the 1 MiB resource, keep-alive, "+
			"as fast as the target answers (saturating: latencies then are mostly queueing), after an unmeasured second of "+
			"the same load; the CPU time (user and system) each proxy process used over the measured run, per request, "+
			"and its peak RSS (VmHWM, reset before the warming second) under the load, and the peak of its anonymous part "+
			"(RssAnon, sampled every 50 ms: the heap and stacks without the binary's own pages). For latency, `loadgen rate` "+
			"sends 1 KiB GETs at a fixed rate, a quarter of the slowest target's saturated rate, over %d connections for %s, each "+
			"timed from when it was due (a late answer's delay to the next request counts).", o.httpConns, d, o.httpConns, d),
		fmt.Sprintf("Engine websocket: `loadgen ws` opens an app (OpenDoc) and sets its script (SetScript) so that each "+
			"GetScript answer is 1 KiB (%d sockets) or 256 KiB (%d sockets), then every socket calls GetScript in a loop "+
			"for %s. A message is one round trip: a small request and its answer. The proxies' CPU time per message "+
			"includes the sockets' setup, a small part of a run.", o.wsSmallConns, o.wsLargeConns, d),
		fmt.Sprintf("Cold-login burst: `loadgen burst` sends, for %d users never seen before (%d at a time), %d "+
			"concurrent first requests each through sensegate and times each to its first byte; the tickets are counted "+
			"at the simulator. Its direct figure is a client doing the same work without sensegate: for %d other users, "+
			"%d at a time, a ticket from QPS (mutual TLS, warm connections) and its redemption, then the same %d concurrent "+
			"first requests with the session cookie, each timed to its first byte from the start of the login; the "+
			"ticket + redemption rows are those logins alone, the baseline of the burst target.",
			o.burstUsers, o.burstParallel, o.burstPerUser, o.burstUsers, o.burstParallel, o.burstPerUser),
		fmt.Sprintf("Memory: a process's VmRSS (and sensegate's `go_memstats_heap_inuse_bytes`) once it has settled, before "+
			"and after %d users made one request each through sensegate (a login and a jar entry each), divided by the "+
			"users; then the same for idle websockets held open through each proxy after one Engine call each (so "+
			"relaying has begun), divided by the sockets. nginx's figure sums its master and workers. Both include "+
			"garbage the Go collector has not yet returned: up to about twice the live memory with Go's default GOGC of 100 "+
			"(the bare proxy's and sensegate's).", o.sessions),
		fmt.Sprintf("The throughput, latency and burst figures are medians of %d rounds (a throughput "+
			"workload's rounds back to back, the targets in one order and then the reverse, sensegate between the bare "+
			"proxy and nginx so that each ratio pairs runs back to back; the bursts after them, with new users each); the memory figures come "+
			"from one run, after all the rounds. A target on a ratio takes the median of the rounds' ratios and shows "+
			"their range.", max(o.rounds, 1)),
		fmt.Sprintf("Every process (simulator, proxies, wrk, loadgen) shares the machine's %d cores, so a proxy's "+
			"figures also depend on the CPU it leaves to the others. Open-file limit: %d.", h.report.Machine.Cores, h.nofile),
	}
}
