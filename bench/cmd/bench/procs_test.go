package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRSS(t *testing.T) {
	n, err := rss(os.Getpid(), true)
	if err != nil || n <= 0 {
		t.Fatalf("rss(self) = %d, %v; want a positive size", n, err)
	}
	if got, want := ppid(os.Getpid()), os.Getppid(); got != want {
		t.Errorf("ppid(self) = %d, want %d", got, want)
	}
	peak, err := peakRSS(os.Getpid(), false)
	if err != nil || peak < n/2 {
		t.Errorf("peakRSS(self) = %d, %v; want about RSS %d or more", peak, err, n)
	}
	if err := resetPeakRSS(os.Getpid(), false); err != nil {
		t.Errorf("resetPeakRSS(self): %v", err)
	}
}

func TestCPUTime(t *testing.T) {
	before, err := cpuTime(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	// Spin past a few clock ticks.
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	after, err := cpuTime(os.Getpid(), true)
	if err != nil || after <= before {
		t.Errorf("cpuTime(self) = %v then %v (%v); want it to grow over 50 ms of spinning", before, after, err)
	}
}

// TestStopEndsTheGroup starts a shell with a child, and checks that stop
// ends both.
func TestStopEndsTheGroup(t *testing.T) {
	p, err := start(t.TempDir(), "sh", nil, "sh", "-c", "sleep 60 & wait")
	if err != nil {
		t.Fatal(err)
	}
	var child int
	if err := waitReady(context.Background(), p, 10*time.Second, func() error {
		if c := childrenOf(p.pid()); len(c) > 0 {
			child = c[0]
			return nil
		}
		return errors.New("no child yet")
	}); err != nil {
		t.Fatal(err)
	}
	p.stop()
	if !p.exited() {
		t.Fatal("the shell is still running after stop")
	}
	// The orphaned child is reaped by init: wait, within a bound, until it
	// is gone or a zombie.
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for running(child) {
		select {
		case <-deadline:
			t.Fatalf("the shell's child %d is still running after stop", child)
		case <-tick.C:
		}
	}
}

func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && ppid(n) == pid {
			out = append(out, n)
		}
	}
	return out
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}

func TestSampleAnon(t *testing.T) {
	stop := make(chan struct{})
	close(stop)
	if n := sampleAnon(os.Getpid(), false, time.Millisecond, stop); n <= 0 {
		t.Errorf("sampleAnon(self) = %d, want a positive size", n)
	}
}
