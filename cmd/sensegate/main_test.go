package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sensegate/sensegate/config"
	"go.uber.org/zap"
)

// run executes the CLI with args and returns its output.
func run(ctx context.Context, t *testing.T, out io.Writer, args ...string) error {
	t.Helper()
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	return cmd.ExecuteContext(ctx)
}

// syncBuffer is a bytes.Buffer safe for a writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), t, &out, "version"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "sensegate dev (commit unknown)") {
		t.Errorf("version = %q", got)
	}
}

// The server's logs carry no stack traces, even at error level.
func TestServerLoggerNoStacktrace(t *testing.T) {
	zc, err := serverLogConfig(config.LogConfig{Level: "info", Format: config.LogFormatJSON})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "log.json")
	zc.OutputPaths = []string{file}
	log, err := zc.Build()
	if err != nil {
		t.Fatal(err)
	}
	log.Error("could not get a Qlik session", zap.String("request_id", "r1"))
	log.Sync()
	out, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(out), `"request_id":"r1"`) || strings.Contains(string(out), "stacktrace") {
		t.Errorf("error entry %q (%v), want one without a stacktrace", out, err)
	}
}
