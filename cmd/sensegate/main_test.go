package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/tooling/sensegatetest"
)

// run executes the CLI with args, writing its output to out.
func run(ctx context.Context, out io.Writer, args ...string) error {
	return sensegatetest.Execute(ctx, newRootCmd(), out, io.Discard, args...)
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, "version"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "sensegate dev (commit unknown)") {
		t.Errorf("version = %q", got)
	}
}
