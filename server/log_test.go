package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sensegate/sensegate/config"
	"go.uber.org/zap"
)

// The server's logs carry no stack traces, even at error level.
func TestServerLoggerNoStacktrace(t *testing.T) {
	zc, err := logConfig(config.LogConfig{Level: "info", Format: config.LogFormatJSON})
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
