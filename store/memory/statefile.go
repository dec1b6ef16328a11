package memory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// DefaultStateInterval is how often RunState saves when its interval is zero or negative.
const DefaultStateInterval = 5 * time.Second

// SaveFile writes the store's seats to path atomically and returns how many it wrote: the
// state goes to a new temporary file in path's directory, is synced, then renamed over path
// and the directory synced, so path always holds a whole state, the previous one until the
// rename. A symlink at path is replaced by the file, its target left alone. Concurrent calls
// are serialized, so an older state never lands after a newer one.
func (s *Store) SaveFile(path string) (int, error) {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	dir := filepath.Dir(path)
	// A fresh, unpredictable name created exclusively (O_EXCL, mode 0600): a file planted
	// at a fixed name would keep its own mode (the keys are the users' identities) and a
	// symlink planted there would redirect the write to its target.
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("state file %s: %w", path, err)
	}
	tmp := f.Name()
	n, err := s.writeState(f)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return 0, fmt.Errorf("state file %s: %w", path, errors.Join(err, os.Remove(tmp)))
	}
	// The rename is durable only once the directory is.
	if err := syncDir(dir); err != nil {
		return n, fmt.Errorf("state file %s: %w", path, err)
	}
	return n, nil
}

// RemoveTempFiles removes the temporary files a SaveFile of path interrupted by a crash
// left in path's directory, and returns how many it removed: regular files named
// <base of path>.tmp-<digits>, as SaveFile names them, owned by this process's user. Call
// it at start, before any save. Nothing else is touched: no other name, no link, no file
// of another user.
func RemoveTempFiles(path string) (int, error) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+".tmp-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("state file %s: temporary files: %w", path, err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if !ownedBySelf(info) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("state file %s: temporary files: %w", path, err)
	}
	return removed, nil
}

// writeState fills f, owner-only whatever the umask, syncs and closes it.
func (s *Store) writeState(f *os.File) (int, error) {
	err := f.Chmod(0o600)
	n := 0
	if err == nil {
		n, err = s.Save(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// changes returns a count that grows whenever a request or an eviction changes a pool.
func (s *Store) changes() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n uint64
	for _, p := range s.pools {
		p.mu.Lock()
		n += p.changes
		p.mu.Unlock()
	}
	return n
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// LoadFile restores the state SaveFile wrote to path, with the semantics and errors of Load.
// A missing file is an error wrapping fs.ErrNotExist.
func (s *Store) LoadFile(path string) (restored, dropped int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("state file: %w", err)
	}
	defer f.Close()
	restored, dropped, err = s.Load(f)
	if err != nil {
		return 0, 0, fmt.Errorf("state file %s: %w", path, err)
	}
	return restored, dropped, nil
}

// RunState saves the store to path every interval (DefaultStateInterval when zero or
// negative) until ctx is done; a crash loses at most one interval of changes. An interval in
// which no request or eviction touched the store writes nothing: the file's seats are still
// right, since their remaining life is counted from their last-seen time. RunState does not
// save when ctx is done: requests may still be in flight then, so the caller calls SaveFile
// once they are over. A failing save is logged once at Error until a save succeeds again.
func (s *Store) RunState(ctx context.Context, path string, every time.Duration, log zerolog.Logger) {
	if every <= 0 {
		every = DefaultStateInterval
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	s.runState(ctx, path, ticker.C, log)
}

// runState saves on every tick; tests drive it with their own channel.
func (s *Store) runState(ctx context.Context, path string, tick <-chan time.Time, log zerolog.Logger) {
	failing := false
	saved, ok := uint64(0), false // the change count the file reflects
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		// Read before the save, which sees at least these changes.
		changes := s.changes()
		if ok && changes == saved {
			continue
		}
		start := time.Now()
		n, err := s.SaveFile(path)
		saved, ok = changes, err == nil
		switch {
		case err != nil && !failing:
			log.Error().Err(err).Msg("cannot save state; retrying every interval")
		case err != nil:
			log.Debug().Err(err).Msg("cannot save state")
		case failing:
			log.Info().Int("seats", n).Str("state_file", path).Msg("state saved again")
		default:
			log.Debug().Int("seats", n).Dur("took", time.Since(start)).Msg("state saved")
		}
		failing = err != nil
	}
}
