// Package redistest starts a real redis-server for tests: on a free
// loopback port, persistence off, files in a temporary directory, stopped
// when the test ends. A missing redis-server fails the test (never skips
// it): scripts/deps.sh installs Debian's.
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	// Addr is its host:port.
	Addr string
	n    atomic.Int64 // for unique key prefixes

	bin string
	mu  sync.Mutex
	// stop ends the running process; nil while stopped. signal sends
	// the process a signal.
	stop   func()
	signal func(os.Signal) error
}

const (
	redisStartTimeout = 10 * time.Second
	redisStopTimeout  = 5 * time.Second
)

// Start starts a redis-server for t and stops it when t ends. It
// fails t, never skips it, when redis-server is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (%v): run scripts/deps.sh, which installs Debian's redis-server", err)
	}
	// The free port may be taken between our probe and the server's
	// bind: try a few.
	var lastErr error
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		stop, signal, err := startOn(t, bin, port)
		if err == nil {
			s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, stop: stop, signal: signal}
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

// Stop stops the server, as an outage would: clients get "connection
// refused" until Restart. Its data is lost (persistence is off). Stopping
// a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart starts a stopped server again on the same address, empty; it
// fails t if the server is running or cannot start.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		t.Fatalf("redistest: Restart of %s, which is running", s.Addr)
	}
	_, p, _ := net.SplitHostPort(s.Addr)
	port, _ := strconv.Atoi(p)
	stop, signal, err := startOn(t, s.bin, port)
	if err != nil {
		t.Fatal(err)
	}
	s.stop, s.signal = stop, signal
}

// Pause freezes the running server (SIGSTOP), as a network partition or
// a stalled host would look: connections are accepted by the kernel and
// stay open, but nothing is answered until Resume. Stop resumes a paused
// server before stopping it.
func (s *Server) Pause(t testing.TB) { s.send(t, syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume(t testing.TB) { s.send(t, syscall.SIGCONT) }

func (s *Server) send(t testing.TB, sig os.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		t.Fatalf("redistest: %v to %s, which is stopped", sig, s.Addr)
	}
	if err := s.signal(sig); err != nil {
		t.Fatalf("redistest: %v to %s: %v", sig, s.Addr, err)
	}
}

// startOn starts redis-server on port and returns the funcs that stop it
// and signal it.
func startOn(t testing.TB, bin string, port int) (stop func(), signal func(os.Signal) error, err error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
	)
	// The server's output, for failure messages: read only once it has
	// exited, when Wait has copied all of it.
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot act on SIGTERM
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(redisStopTimeout):
			cmd.Process.Kill()
			<-exited
		}
	}

	// Wait for PING, polling with a bounded deadline; a server that
	// exited (port taken) ends the wait at once.
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), redisStartTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.Ping(ctx).Err() == nil {
			return stop, cmd.Process.Signal, nil
		}
		select {
		case <-exited:
			return nil, nil, fmt.Errorf("redis-server on %s exited:\n%s", addr, out.String())
		case <-ctx.Done():
			stop()
			return nil, nil, fmt.Errorf("redis-server on %s did not answer PING within %s:\n%s", addr, redisStartTimeout, out.String())
		case <-tick.C:
		}
	}
}

// Client returns a client of s, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Prefix returns a key prefix no other user of s has had, so that each
// store starts empty.
func (s *Server) Prefix() string { return fmt.Sprintf("test%d:", s.n.Add(1)) }
