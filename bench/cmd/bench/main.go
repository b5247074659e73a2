// Command bench runs sensegate's load harness on loopback and writes
// docs/performance.md. It starts, on free ports, the QSEoW simulator (plain
// HTTP, with 1 KB and 1 MB static resources), a bare httputil.ReverseProxy,
// nginx and sensegate in front of it; runs every workload against every
// target with wrk and loadgen as separate processes; and stops everything
// it started. `make bench` builds the programs and runs it.
//
//	bench -bin bin/bench -out docs/performance.md            # the full run
//	bench -bin bin/bench -quick -out ''                      # a smoke test
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	bin      string
	wrk      string
	nginx    string
	out      string
	duration time.Duration
	timeout  time.Duration
	quick    bool
	only     string
	rounds   int
	keep     bool
	strict   bool

	httpConns     int
	wsSmallConns  int
	wsLargeConns  int
	burstUsers    int
	burstPerUser  int
	burstParallel int
	sessions      int
	sockets       int

	// sensegateGOGC, if set, is GOGC for sensegate only.
	sensegateGOGC string
	// baseline, if set, is another sensegate binary measured alongside.
	baseline string
	// profile, if set, is where sensegate's CPU and allocation profiles
	// of each throughput workload go (admin.pprof on).
	profile string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/bench", "directory holding the sensegate, qliksim, loadgen and bareproxy binaries")
	flag.StringVar(&o.wrk, "wrk", "wrk", "the wrk binary")
	flag.StringVar(&o.nginx, "nginx", "nginx", "the nginx binary")
	flag.StringVar(&o.out, "out", "docs/performance.md", "where to write the report ('' prints it only)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long each throughput workload runs against each target, each round")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the throughput workloads; the report shows medians")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.quick, "quick", false, "a smoke test: one round of 2 s workloads, 50 burst users, 500 sessions and sockets")
	flag.StringVar(&o.only, "only", "", "run only these workloads, comma-separated: http-1k, paced (needs http-1k), http-1m, ws-1k, ws-256k, burst, sessions, sockets (needs sessions)")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a figure was measured with errors (failed requests, a wrong ticket count), e.g. for a smoke test; a target not met is not an error")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configurations and logs)")
	flag.IntVar(&o.httpConns, "http-conns", 64, "HTTP keep-alive connections")
	flag.IntVar(&o.wsSmallConns, "ws-small-conns", 64, "websockets of the 1 KB workload")
	flag.IntVar(&o.wsLargeConns, "ws-large-conns", 8, "websockets of the 256 KB workload")
	flag.IntVar(&o.burstUsers, "burst-users", 500, "users of the cold-login burst")
	flag.IntVar(&o.burstPerUser, "burst-per-user", 10, "concurrent first requests per burst user")
	flag.IntVar(&o.burstParallel, "burst-parallel", 8, "burst users logging in at once")
	flag.IntVar(&o.sessions, "sessions", 10000, "users with a cached session for the memory figure")
	flag.IntVar(&o.sockets, "sockets", 10000, "idle relayed websockets for the memory figure")
	flag.StringVar(&o.sensegateGOGC, "sensegate-gogc", "", "GOGC for sensegate alone (e.g. 400; '' leaves sensegate's own default)")
	flag.StringVar(&o.baseline, "baseline", "", "another sensegate binary to measure alongside, as target \"baseline\" (e.g. the one before a change), in the throughput and burst workloads")
	flag.StringVar(&o.profile, "profile", "", "directory for sensegate's CPU and allocation profiles of each throughput workload (turns admin.pprof on; the profiling costs sensegate some of its figures)")
	flag.Parse()
	if o.quick {
		// Smaller defaults; flags given explicitly still win.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"duration": "2s", "rounds": "1", "burst-users": "50", "sessions": "500", "sockets": "500"} {
			if !set[name] {
				flag.Set(name, v)
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	h, err := newHarness(o)
	if err != nil {
		return err
	}
	defer h.close()
	if err := h.startAll(ctx); err != nil {
		return err
	}
	if err := h.runWorkloads(ctx); err != nil {
		return err
	}
	md := h.report.Markdown()
	fmt.Print(md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if !o.strict {
		return nil
	}
	var errs []error
	if failed := h.report.FailedFigures(); len(failed) > 0 {
		errs = append(errs, fmt.Errorf("%d figures measured with errors (see the report's Notes): %s", len(failed), strings.Join(failed, "; ")))
	}
	if n := h.report.BurstOddUsers; n > 0 {
		errs = append(errs, fmt.Errorf("cold burst: %d users without exactly one ticket", n))
	}
	return errors.Join(errs...)
}

// logf reports progress on standard error.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
