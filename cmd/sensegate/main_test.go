package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
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

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), t, &out, "version"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "sensegate dev (commit unknown)") {
		t.Errorf("version = %q", got)
	}
}
