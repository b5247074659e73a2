package server

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/sensegate/sensegate/config"
	"github.com/sensegate/sensegate/gateway"
	"go.uber.org/zap"
)

// reloadDebounce lets a burst of file events (editors write, rename and
// chmod; Kubernetes swaps a symlink) settle into one reload.
const reloadDebounce = 300 * time.Millisecond

// restartKeys lists the keys whose change a reload cannot apply: the
// listener, its TLS files and the jar's store. Everything else (identity,
// routes, qlik.*, timeouts, log.level) is rebuilt on reload.
func restartKeys(old, new *config.Config) []string {
	var keys []string
	if old.Server.Listen != new.Server.Listen {
		keys = append(keys, "server.listen")
	}
	if old.Server.TLSCert != new.Server.TLSCert || old.Server.TLSKey != new.Server.TLSKey {
		keys = append(keys, "server.tls_cert/tls_key")
	}
	if old.Server.ShutdownGrace != new.Server.ShutdownGrace {
		keys = append(keys, "server.shutdown_grace")
	}
	if old.Server.WriteTimeout != new.Server.WriteTimeout {
		keys = append(keys, "server.write_timeout")
	}
	if old.Server.BodyTimeout != new.Server.BodyTimeout {
		keys = append(keys, "server.body_timeout")
	}
	if old.Log.Format != new.Log.Format {
		keys = append(keys, "log.format")
	}
	if !reflect.DeepEqual(old.Store, new.Store) {
		keys = append(keys, "store")
	}
	if old.Qlik.SessionTimeout != new.Qlik.SessionTimeout {
		keys = append(keys, "qlik.session_timeout") // the jar's idle timeout
	}
	if old.Admin != new.Admin {
		keys = append(keys, "admin")
	}
	if old.Identity.KeepsLogins() != new.Identity.KeepsLogins() {
		keys = append(keys, "identity.provider/identity.jwt.session") // the store of logins is made at start
	}
	return keys
}

// reloader re-reads the configuration file on SIGHUP and when it changes,
// builds a new gateway from it and swaps it in (the replaced one is
// closed once drained, see gateway.Live); on any error the running
// configuration stays in force and the error is logged.
type reloader struct {
	path  string
	log   *zap.Logger
	build func(*config.Config) (*gateway.Gateway, error)
	live  *gateway.Live
	// watchFile reloads when the file changes; SIGHUP always reloads.
	watchFile bool
	// metrics counts the reloads (nil: not counted).
	metrics *processMetrics

	mu  sync.Mutex
	cur *config.Config
}

// reload applies the file once.
func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.apply()
	r.metrics.reloaded(err)
	return err
}

// apply is reload, with r.mu held and without counting.
func (r *reloader) apply() error {
	cfg, err := config.Load(r.path)
	if err != nil {
		r.log.Error("config reload failed; the running configuration stays in force", zap.String("file", r.path), zap.Error(err))
		return err
	}
	if keys := restartKeys(r.cur, cfg); len(keys) > 0 {
		err := fmt.Errorf("changed keys need a restart: %v", keys)
		r.log.Error("config reload refused; the running configuration stays in force", zap.String("file", r.path), zap.Error(err))
		return err
	}
	g, err := r.build(cfg)
	if err != nil {
		r.log.Error("config reload failed; the running configuration stays in force", zap.String("file", r.path), zap.Error(err))
		return err
	}
	r.live.Swap(g)
	r.cur = cfg
	r.log.Info("configuration reloaded", zap.String("file", r.path))
	logWarnings(r.log, r.path, cfg)
	return nil
}

// run reloads on SIGHUP and on changes of the file until ctx ends. ready,
// when not nil, is closed once both are watched.
func (r *reloader) run(ctx context.Context, ready chan<- struct{}) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if r.watchFile {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("config watch: %w", err)
		}
		defer w.Close()
		// Watch the directory: editors replace the file, and Kubernetes
		// ConfigMaps swap a symlink next to it.
		if err := w.Add(filepath.Dir(r.path)); err != nil {
			return fmt.Errorf("config watch %s: %w", filepath.Dir(r.path), err)
		}
		events, errs = w.Events, w.Errors
	}
	if ready != nil {
		close(ready)
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			r.log.Info("SIGHUP: reloading the configuration")
			r.reload()
		case ev := <-events:
			if filepath.Base(ev.Name) == filepath.Base(r.path) || filepath.Base(ev.Name) == "..data" {
				debounce = time.After(reloadDebounce)
			}
		case err := <-errs:
			r.log.Warn("config watch", zap.Error(err))
		case <-debounce:
			debounce = nil
			r.reload()
		}
	}
}
