package sensegatetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what Errorf reports and the
// cleanups, for the failures of Proc's own tests. Its Fatal methods are
// those of the TB it wraps.
type recorder struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// end runs the cleanups, last first, as a test's end does.
func (r *recorder) end() {
	for _, f := range slices.Backward(r.cleanups) {
		f()
	}
}

// A command's output is polled for a line, a server's address arrives on
// its channel, and both are stopped cleanly when the test ends.
func TestProcStartsAndStops(t *testing.T) {
	rec := &recorder{TB: t}
	cmd := StartCommand(context.Background(), rec, "cmd", func(ctx context.Context, out io.Writer) error {
		fmt.Fprintln(out, "listening on 127.0.0.1:1234")
		<-ctx.Done()
		return nil
	})
	if m := cmd.WaitOutput(t, regexp.MustCompile(`listening on (\S+)`)); m[1] != "127.0.0.1:1234" {
		t.Errorf("WaitOutput = %q, want the address", m)
	}
	ready := make(chan string, 1)
	srv := StartProc(context.Background(), rec, "server", func(ctx context.Context) error {
		ready <- "127.0.0.1:5678"
		<-ctx.Done()
		return nil
	})
	if got := Await(t, srv, ready); got != "127.0.0.1:5678" {
		t.Errorf("Await = %q, want the address", got)
	}
	rec.end()
	if len(rec.errs) != 0 {
		t.Errorf("stopping cleanly reported %q, want nothing", rec.errs)
	}
}

// Stop fails the test once when the function returns an error, whether
// the test or its end stops it.
func TestProcStopReportsError(t *testing.T) {
	rec := &recorder{TB: t}
	p := StartProc(context.Background(), rec, "server", func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("shutdown: boom")
	})
	p.Stop(rec)
	rec.end()
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], "server returned shutdown: boom") {
		t.Errorf("Stop of a function returning an error reported %q, want it once", rec.errs)
	}
}
