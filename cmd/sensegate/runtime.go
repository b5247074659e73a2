package main

import (
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"
)

// Go runtime settings of serve. GOGC stays Go's default (100, or the
// operator's): sensegate's live heap is a few MiB, and the collector's
// heap floor grows with GOGC (4 MiB at 100, 8 at 200), which is most of
// the difference in peak memory under load. Measured with make bench on a
// 2-core machine (docs/runtime.md), 200 instead of 100 raised peak RSS
// under the HTTP load by 2.5-6.7 MiB (10-27%) for 3-15% more requests/s
// at saturation and 0.2-0.4 ms less p99 at a fixed rate. A memory limit under the container's makes the collector run more
// often before memory gets tight; it gives way to the operator's
// GOMEMLIMIT.
const (
	// memLimitRatio is the share of the memory limit (the container's,
	// or the machine's without one) that becomes GOMEMLIMIT.
	memLimitRatio = 0.9
)

// runtimeEnv reads the environment; os.LookupEnv in production.
type runtimeEnv func(key string) (string, bool)

// tuneRuntime sets GOMEMLIMIT to memLimitRatio of the container's memory
// limit, or of the machine's memory without one, unless env sets it, and
// logs GOGC and the limit in effect. It changes process-wide state:
// main's serve command calls it, once.
func tuneRuntime(env runtimeEnv, log *zap.Logger) {
	gogc, ok := env("GOGC")
	if !ok {
		gogc = "100"
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
