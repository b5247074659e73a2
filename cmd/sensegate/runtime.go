package main

import (
	"runtime/debug"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"
)

// Go runtime settings of serve, for a proxy: its live heap is small and
// every request allocates, so with Go's default GOGC of 100 the collector
// runs many times a second, and on a small machine each cycle takes a
// share of the cores that requests wait for. A larger GOGC runs it less
// often; a memory limit under the container's makes it run more often
// again before memory gets tight. Both give way to the operator's GOGC and
// GOMEMLIMIT.
const (
	// defaultGCPercent is GOGC when the environment does not set it.
	// Measured with make bench -sensegate-gogc on a 2-core machine, the
	// p99 latency sensegate adds at a fixed load went from about 1.1-1.6
	// ms at 100 to about 0.8 ms at 200 and 400; at 400 the RSS of idle
	// relayed websockets grew from about 31 KiB a socket to 41, at 200 it
	// did not.
	defaultGCPercent = 200
	// memLimitRatio is the share of the memory limit (the container's,
	// or the machine's without one) that becomes GOMEMLIMIT.
	memLimitRatio = 0.9
)

// runtimeEnv reads the environment; os.LookupEnv in production.
type runtimeEnv func(key string) (string, bool)

// tuneRuntime applies serve's runtime settings that env does not set
// itself: GOGC defaultGCPercent, and GOMEMLIMIT memLimitRatio of the
// container's memory limit, or of the machine's memory without one. It
// changes process-wide state: main's serve command calls it, once.
func tuneRuntime(env runtimeEnv, log *zap.Logger) {
	gogc, ok := env("GOGC")
	if !ok {
		debug.SetGCPercent(defaultGCPercent)
		gogc = strconv.Itoa(defaultGCPercent)
	}
	if _, ok := env("GOMEMLIMIT"); !ok {
		// memlimit also reads AUTOMEMLIMIT: "off", or another ratio.
		if _, err := memlimit.Set(
			memlimit.WithRatio(memLimitRatio),
			memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)),
		); err != nil {
			log.Warn("could not set a Go memory limit (the collector runs by GOGC alone)", zap.Error(err))
		}
	}
	// debug.SetMemoryLimit with a negative value reads the limit.
	log.Info("go runtime", zap.String("gogc", gogc), zap.Int64("memory_limit_bytes", debug.SetMemoryLimit(-1)))
}
