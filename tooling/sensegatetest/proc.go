package sensegatetest

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent
// readers: the output of a command a test polls. The zero value is an
// empty buffer.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// Proc is a function a test runs in the background until its context
// ends: a command, a server. Its methods are safe for concurrent use.
type Proc struct {
	// Out holds what the function wrote to its output (StartCommand).
	Out *SyncBuffer

	name   string
	cancel context.CancelFunc
	exited chan struct{} // closed once the function returned err
	err    error
	stop   sync.Once
}

// Bounds of Proc's waits.
const (
	startTimeout = 30 * time.Second // Await, WaitOutput
	stopTimeout  = 15 * time.Second // Stop
)

// StartProc runs f in a goroutine with a context of its own, derived from
// ctx. Named name in failure messages, it is stopped (Stop) when t ends
// unless the test stopped it before.
func StartProc(ctx context.Context, t testing.TB, name string, f func(ctx context.Context) error) *Proc {
	t.Helper()
	return StartCommand(ctx, t, name, func(ctx context.Context, _ io.Writer) error { return f(ctx) })
}

// StartCommand is StartProc for a function that writes its output to out,
// which p.Out keeps (for WaitOutput and failure messages).
func StartCommand(ctx context.Context, t testing.TB, name string, f func(ctx context.Context, out io.Writer) error) (p *Proc) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	p = &Proc{Out: &SyncBuffer{}, name: name, cancel: cancel, exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		p.err = f(ctx, p.Out)
	}()
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Cancel cancels p's context and returns at once; Stop waits.
func (p *Proc) Cancel() { p.cancel() }

// Stop cancels p's context and waits up to 15 s for its function to
// return; it fails t unless the function returned nil in time. Later
// calls do nothing.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	p.stop.Do(func() {
		p.cancel()
		select {
		case <-p.exited:
			if p.err != nil {
				t.Errorf("%s returned %v", p.name, p.err)
			}
		case <-time.After(stopTimeout):
			t.Errorf("%s did not return within %s of its context's end; output:\n%s", p.name, stopTimeout, p.Out)
		}
	})
}

// exitedEarly fails t because p's function returned while the test
// waited for what.
func (p *Proc) exitedEarly(t testing.TB, what string) {
	t.Helper()
	t.Fatalf("%s returned %v before %s; output:\n%s", p.name, p.err, what, p.Out)
}

// WaitOutput polls p's output until re matches it and returns the
// submatches. It fails t when p's function returns first or nothing
// matches within 30 s.
func (p *Proc) WaitOutput(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(startTimeout)
	for {
		if m := re.FindStringSubmatch(p.Out.String()); m != nil {
			return m
		}
		select {
		case <-p.exited:
			if m := re.FindStringSubmatch(p.Out.String()); m != nil {
				return m
			}
			p.exitedEarly(t, "printing "+re.String())
		case <-deadline:
			t.Fatalf("%s did not print %s within %s; output:\n%s", p.name, re, startTimeout, p.Out)
		case <-time.After(20 * time.Millisecond): // bounded polling: the output has no event to wait on
		}
	}
}

// Await returns the first value ch receives (an address a server sends
// once it listens). It fails t when p's function returns first or
// nothing arrives within 30 s.
func Await[T any](t testing.TB, p *Proc, ch <-chan T) T {
	t.Helper()
	var v T
	select {
	case v = <-ch:
	case <-p.exited:
		p.exitedEarly(t, "it was ready")
	case <-time.After(startTimeout):
		t.Fatalf("%s was not ready within %s; output:\n%s", p.name, startTimeout, p.Out)
	}
	return v
}

// Execute runs cmd with args, ctx, and its standard output and error
// going to stdout and stderr, as main would.
func Execute(ctx context.Context, cmd *cobra.Command, stdout, stderr io.Writer, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	return cmd.ExecuteContext(ctx)
}
