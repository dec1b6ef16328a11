package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// watchSettle is how long --watch-config waits after a change before reading the file, so
// a file written in several writes is read once, whole.
const watchSettle = 50 * time.Millisecond

// reloader re-reads the pools on SIGHUP and, when watching, when the file at path changes.
// A bad file is refused with a log line; the running configuration stays.
type reloader struct {
	path  string // the configuration file; empty: nothing to reload
	load  func() (pools, error)
	apply func(pools) error
	log   zerolog.Logger

	watcher *fsnotify.Watcher // nil unless watching
	target  string            // what Path resolves to, when it is a symlink
	stamp   string
}

// newReloader starts watching path when watch is set. It watches the file's directory, not
// the file: editors and config management replace a file by renaming a new one over it,
// which ends a watch on the old file, and a symlinked file (a Kubernetes ConfigMap) changes
// by a rename in its directory. Run releases the watch when it returns.
func newReloader(path string, watch bool, load func() (pools, error), apply func(pools) error, log zerolog.Logger) (*reloader, error) {
	r := &reloader{path: path, load: load, apply: apply, log: log, stamp: fileStamp(path)}
	if !watch || path == "" {
		return r, nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("--watch-config: %w", err)
	}
	dirs := []string{filepath.Dir(path)}
	if t, err := filepath.EvalSymlinks(path); err == nil && t != filepath.Clean(path) {
		// An edit in place of the link's target shows only in the target's directory.
		r.target = t
		dirs = append(dirs, filepath.Dir(t))
	}
	for _, d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close() //nolint:errcheck // the Add error is the one to report
			return nil, fmt.Errorf("--watch-config: watch %s: %w", d, err)
		}
	}
	r.watcher = w
	return r, nil
}

// Run reloads on each signal from hup (from notifyReload) and each change of the file until
// ctx ends. current is the configuration in force at start.
func (r *reloader) Run(ctx context.Context, hup <-chan os.Signal, current pools) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if r.watcher != nil {
		defer func() {
			if err := r.watcher.Close(); err != nil {
				r.log.Debug().Err(err).Msg("closing the configuration watch")
			}
		}()
		events, errs = r.watcher.Events, r.watcher.Errors
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		why := ""
		select {
		case <-ctx.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if r.concerns(ev) {
				settle.Reset(watchSettle)
			}
			continue
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			r.log.Warn().Err(err).Str("config", r.path).Msg("watching the configuration file")
			continue
		case <-settle.C:
			why, r.stamp = "file changed", fileStamp(r.path)
		}
		current = r.reload(why, current)
	}
}

// concerns reports whether an event in a watched directory may have changed the file:
// an event naming it or its target, or any other after which the file reads differently
// (a symlink swapped to a new version).
func (r *reloader) concerns(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if name == filepath.Clean(r.path) || (r.target != "" && name == r.target) {
		return true
	}
	return fileStamp(r.path) != r.stamp
}

// reload loads and applies the file, logs the outcome and returns the configuration in force.
func (r *reloader) reload(why string, current pools) pools {
	if r.path == "" {
		r.log.Warn().Str("trigger", why).Msg("reload: nothing to reload without --config")
		return current
	}
	p, err := r.load()
	if err == nil {
		err = r.apply(p)
	}
	if err != nil {
		r.log.Error().Str("trigger", why).Err(err).Msg("reload refused; the running configuration stays")
		return current
	}
	if samePools(current, p) {
		r.log.Info().Str("trigger", why).Str("config", p.Source).Str("changes", "none").Msg("configuration reloaded: no changes")
		return current
	}
	r.log.Info().Str("trigger", why).Str("config", p.Source).Strs("pools", poolSummaries(p)).Msg("configuration reloaded")
	return p
}

// samePools reports whether a reload brought nothing new: the same pools, key rules and
// HAProxy view (a rewrite that only touched comments or layout).
func samePools(a, b pools) bool {
	return reflect.DeepEqual(a.Policy, b.Policy) && reflect.DeepEqual(a.KeyRules, b.KeyRules) && reflect.DeepEqual(a.HAProxy, b.HAProxy)
}

// notifyReload starts catching SIGHUP, whose default action would end the process; one
// signal waits in the channel until the reloader reads it.
func notifyReload() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// fileStamp changes when the file (or what its symlink points to) is rewritten or replaced.
func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size())
}

// poolSummaries describe the pools in one short string each, for lifecycle log lines.
func poolSummaries(p pools) []string {
	var out []string
	for _, pool := range p.Policy.Pools {
		servers := make([]string, len(pool.Servers))
		for i, s := range pool.Servers {
			servers[i] = fmt.Sprintf("%s=%d/%s", s.Name, s.Quota, s.State)
		}
		out = append(out, fmt.Sprintf("%s: %s idle %s grace %s %s", pool.Name, strings.Join(servers, ","), pool.IdleTimeout, pool.DownGrace, pool.DownPolicy))
	}
	return out
}
