package server

import (
	"fmt"

	"github.com/sensegate/sensegate/config"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewLogger builds the logger of log.level and log.format, on standard
// error; the returned level can be changed later (Options.Level: a reload
// applies log.level).
func NewLogger(lc config.LogConfig) (*zap.Logger, zap.AtomicLevel, error) {
	zc, err := logConfig(lc)
	if err != nil {
		return nil, zap.AtomicLevel{}, err
	}
	log, err := zc.Build()
	return log, zc.Level, err
}

// logConfig is the zap configuration of NewLogger: standard error, lc's
// level and format, every entry kept (no sampling), no stack traces.
func logConfig(lc config.LogConfig) (zap.Config, error) {
	level, err := zapcore.ParseLevel(lc.Level)
	if err != nil {
		return zap.Config{}, fmt.Errorf("log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.Sampling = nil
	// Errors here are operational (QPS down, a client gone): a stack
	// trace, all of writeError's, would cost each failing request and
	// bury the message when many fail at once.
	zc.DisableStacktrace = true
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	if lc.Format == config.LogFormatConsole {
		zc.Encoding = "console"
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	return zc, nil
}

// infoLogger returns log when it is enabled at info level, else a logger
// of its own at info level (lc's format, standard error): audit and access
// entries are written whatever log.level says.
func infoLogger(log *zap.Logger, lc config.LogConfig) (*zap.Logger, error) {
	if log.Core().Enabled(zapcore.InfoLevel) {
		return log, nil
	}
	ilog, _, err := NewLogger(config.LogConfig{Level: "info", Format: lc.Format})
	return ilog, err
}

// logWarnings logs what cfg, loaded from file, allows but is risky
// (config.Config.Warnings), one line each: at startup and on every
// reload (check prints them).
func logWarnings(log *zap.Logger, file string, cfg *config.Config) {
	for _, w := range cfg.Warnings() {
		log.Warn("risky configuration", zap.String("file", file), zap.String("warning", w.Error()))
	}
}
