// Package devlog is the human-readable logger of the development tools
// (the simulator's and the demo's commands); sensegate itself logs with
// the logger its configuration describes.
package devlog

import (
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a console logger writing to w at info level, or debug when
// debug is set.
func New(w io.Writer, debug bool) *zap.Logger {
	level := zapcore.InfoLevel
	if debug {
		level = zapcore.DebugLevel
	}
	enc := zap.NewDevelopmentEncoderConfig()
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(w), level)
	return zap.New(core)
}
