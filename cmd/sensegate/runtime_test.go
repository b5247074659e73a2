package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// tuneRuntime sets GOGC and a memory limit unless the environment sets
// them, and logs what is in effect.
func TestTuneRuntime(t *testing.T) {
	prevGC, prevLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	})
	// memlimit reads these itself: neither may come from the test's
	// environment.
	for _, k := range []string{"AUTOMEMLIMIT", "GOMEMLIMIT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	tests := []struct {
		name      string
		env       map[string]string
		wantGC    int
		wantLimit bool // a limit below math.MaxInt64
	}{
		{"defaults", nil, defaultGCPercent, true},
		{"operator's GOGC", map[string]string{"GOGC": "150"}, 100, true},
		{"operator's GOMEMLIMIT", map[string]string{"GOMEMLIMIT": "1GiB"}, defaultGCPercent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			core, logs := observer.New(zap.InfoLevel)
			tuneRuntime(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }, zap.New(core))
			// Read GOGC by setting it back to what it is.
			gc := debug.SetGCPercent(-1)
			debug.SetGCPercent(gc)
			if gc != tt.wantGC {
				t.Errorf("GOGC = %d, want %d", gc, tt.wantGC)
			}
			limit := debug.SetMemoryLimit(-1)
			if got := limit < math.MaxInt64; got != tt.wantLimit {
				t.Errorf("memory limit %d: set = %t, want %t", limit, got, tt.wantLimit)
			}
			entries := logs.FilterMessage("go runtime").All()
			if len(entries) != 1 || entries[0].ContextMap()["memory_limit_bytes"] != limit {
				t.Errorf("log entries %+v, want one \"go runtime\" with memory_limit_bytes %d", entries, limit)
			}
		})
	}
}
