package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// tuneRuntime sets a memory limit unless the environment sets one, leaves
// GOGC to Go and the operator, and logs what is in effect.
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
		wantGOGC  string // as logged
		wantLimit bool   // a limit below math.MaxInt64
	}{
		{"defaults", nil, "100", true},
		{"operator's GOGC", map[string]string{"GOGC": "150"}, "150", true},
		{"operator's GOMEMLIMIT", map[string]string{"GOMEMLIMIT": "1GiB"}, "100", false},
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
			if gc != 100 {
				t.Errorf("GOGC = %d, want 100: tuneRuntime changed it", gc)
			}
			limit := debug.SetMemoryLimit(-1)
			if got := limit < math.MaxInt64; got != tt.wantLimit {
				t.Errorf("memory limit %d: set = %t, want %t", limit, got, tt.wantLimit)
			}
			entries := logs.FilterMessage("go runtime").All()
			if len(entries) != 1 || entries[0].ContextMap()["memory_limit_bytes"] != limit || entries[0].ContextMap()["gogc"] != tt.wantGOGC {
				t.Errorf("log entries %+v, want one \"go runtime\" with gogc %s and memory_limit_bytes %d", entries, tt.wantGOGC, limit)
			}
		})
	}
}
