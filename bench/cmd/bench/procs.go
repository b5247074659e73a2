package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sensegate/sensegate/bench"
)

// stopGrace is how long a process has to exit after SIGTERM before its
// process group is killed.
const stopGrace = 5 * time.Second

// proc is a long-running child: the simulator, a proxy, nginx. Each runs
// in its own process group, which is what stop signals, so only processes
// the harness started (and their children, such as nginx's workers) are
// ever signalled.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start runs argv in the background with its output in dir/name.log.
func start(dir, name string, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	// Pdeathsig: should the harness die without cleaning up, the kernel
	// ends its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after stopGrace.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// waitReady polls ready every 50 ms until it succeeds, p exits or the
// bound passes.
func waitReady(ctx context.Context, p *proc, bound time.Duration, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v\n%s", p.name, bound, err, p.tail())
		case <-tick.C:
		}
	}
}

// dialable reports whether addr accepts TCP connections.
func dialable(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// freePort returns a loopback address with a port that was free a moment
// ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// command returns a bounded command in its own process group, killed as a
// group when ctx ends.
func command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = stopGrace
	return cmd
}

// runLoad runs a load generator to completion within bound and returns
// its result.
func runLoad(ctx context.Context, bound time.Duration, argv ...string) (bench.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := command(ctx, argv...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return bench.Result{}, fmt.Errorf("%s %s: %w: %s", filepath.Base(argv[0]), argv[1], err, strings.TrimSpace(stderr.String()))
	}
	return lastResult(stdout.Bytes())
}

func lastResult(out []byte) (bench.Result, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	var r bench.Result
	if err := json.Unmarshal(lines[len(lines)-1], &r); err != nil {
		return r, fmt.Errorf("load generator output %q: %w", out, err)
	}
	return r, nil
}

// holder is a load generator that holds sockets open until released.
type holder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan []byte
	cancel context.CancelFunc
}

// hold starts a loadgen idle run and waits, within bound, for its ready
// line.
func hold(ctx context.Context, bound time.Duration, argv ...string) (*holder, bench.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	cmd := command(ctx, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err1 := cmd.StdinPipe()
	stdout, err2 := cmd.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		cancel()
		return nil, bench.Result{}, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, bench.Result{}, err
	}
	h := &holder{cmd: cmd, stdin: stdin, lines: make(chan []byte, 2), cancel: cancel}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(h.lines)
	}()
	select {
	case line, ok := <-h.lines:
		var r bench.Result
		if !ok || json.Unmarshal(line, &r) != nil || !r.Ready {
			h.release()
			return nil, r, fmt.Errorf("loadgen idle: no ready line (%q): %s", line, strings.TrimSpace(stderr.String()))
		}
		return h, r, nil
	case <-ctx.Done():
		h.release()
		return nil, bench.Result{}, fmt.Errorf("loadgen idle: not ready within %s: %s", bound, strings.TrimSpace(stderr.String()))
	}
}

// release closes the holder's standard input, so it closes its sockets
// and exits, and waits for it.
func (h *holder) release() {
	h.stdin.Close()
	for range h.lines {
	}
	h.cmd.Wait()
	h.cancel()
}

// rss returns the resident set size in bytes of pid and, with tree, of
// its children too (nginx's workers).
func rss(pid int, tree bool) (int64, error) {
	return statusSum(pid, tree, "VmRSS")
}

// peakRSS returns the peak resident set size in bytes (VmHWM) of pid
// and, with tree, the sum of its children's peaks too, since it started
// or since resetPeakRSS.
func peakRSS(pid int, tree bool) (int64, error) {
	return statusSum(pid, tree, "VmHWM")
}

// sampleAnon reads the anonymous RSS (RssAnon: the heap and stacks, not
// the binary's pages) of pid and, with tree, its children, every interval
// until stop is closed, and returns the largest sum it read (0 if none).
func sampleAnon(pid int, tree bool, interval time.Duration, stop <-chan struct{}) int64 {
	var peak int64
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if n, err := statusSum(pid, tree, "RssAnon"); err == nil && n > peak {
			peak = n
		}
		select {
		case <-stop:
			return peak
		case <-tick.C:
		}
	}
}

// resetPeakRSS sets pid's peak RSS (and with tree its children's) to its
// current RSS (Linux's clear_refs 5).
func resetPeakRSS(pid int, tree bool) error {
	pids := []int{pid}
	if tree {
		pids = append(pids, children(pid)...)
	}
	var errs []error
	for _, p := range pids {
		errs = append(errs, os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p), []byte("5"), 0))
	}
	return errors.Join(errs...)
}

// statusSum returns the size in bytes of field (VmRSS, VmHWM) of pid's
// /proc/PID/status and, with tree, the sum with its children's.
func statusSum(pid int, tree bool, field string) (int64, error) {
	total, err := statusSize(pid, field)
	if err != nil || !tree {
		return total, err
	}
	for _, child := range children(pid) {
		if n, err := statusSize(child, field); err == nil {
			total += n
		}
	}
	return total, nil
}

// statusSize reads a size field of /proc/PID/status in bytes.
func statusSize(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ,
// 100 on Linux whatever the kernel's own tick).
const clockTick = 10 * time.Millisecond

// cpuTime returns the CPU time (user and system) pid has used so far
// and, with tree, its children too (nginx's workers).
func cpuTime(pid int, tree bool) (time.Duration, error) {
	total, err := procCPU(pid)
	if err != nil || !tree {
		return total, err
	}
	for _, child := range children(pid) {
		if n, err := procCPU(child); err == nil {
			total += n
		}
	}
	return total, nil
}

// procCPU reads utime and stime from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// After "pid (comm)": state is f[0], utime f[11], stime f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(u+s) * clockTick, nil
}

// statFields returns the fields of /proc/PID/stat after "pid (comm)";
// comm may hold spaces and parentheses.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// children returns the processes whose parent is pid.
func children(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err == nil && ppid(child) == pid {
			out = append(out, child)
		}
	}
	return out
}

// ppid returns the parent of pid, or 0.
func ppid(pid int) int {
	// state ppid …
	f, err := statFields(pid)
	if err != nil || len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// settledRSS reads the RSS every 200 ms until two reads in a row differ by
// less than 1% (the collector and scavenger are done with the last load),
// for at most 5 s, and returns the last read.
func settledRSS(ctx context.Context, pid int, tree bool) (int64, error) {
	prev, err := rss(pid, tree)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return prev, ctx.Err()
		case <-tick.C:
		}
		cur, err := rss(pid, tree)
		if err != nil {
			return 0, err
		}
		if d := cur - prev; d < prev/100 && -d < prev/100 {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}
