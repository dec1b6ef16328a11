package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/store/memory"
)

// checkStateFile refuses --state-file where it cannot work, at start rather than at the
// first save.
func checkStateFile(cfg storeConfig) error {
	if cfg.StateFile == "" {
		return nil
	}
	if cfg.RedisURL != "" {
		return fmt.Errorf("--state-file: seats are in Redis with --redis; --state-file is for the memory store")
	}
	dir := filepath.Dir(cfg.StateFile)
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return fmt.Errorf("--state-file: directory %s does not exist", dir)
	}
	if info, err := os.Stat(cfg.StateFile); err == nil && !info.Mode().IsRegular() {
		return fmt.Errorf("--state-file: %s is not a regular file", cfg.StateFile)
	}
	return nil
}

// restoreState loads the seats of path into the empty store. A file that cannot be
// restored (corrupt, foreign, unreadable) is renamed <path>.bad-<unix time> for a human to
// look at, and the agent starts with no seats: a bad file must never keep it down.
func restoreState(st *memory.Store, path string, log zerolog.Logger) {
	// A crash during a save leaves its temporary file (seats, owner-only): remove it.
	if n, err := memory.RemoveTempFiles(path); err != nil {
		log.Warn().Err(err).Int("removed", n).Msg("cannot remove every temporary state file left by a crash")
	} else if n > 0 {
		log.Info().Str("state_file", path).Int("removed", n).Msg("removed temporary state files left by a crash")
	}
	start := time.Now()
	restored, dropped, err := st.LoadFile(path)
	switch {
	case err == nil:
		log.Info().Str("state_file", path).Int("restored", restored).Int("expired", dropped).
			Dur("took", time.Since(start)).Msg("seats restored")
	case errors.Is(err, fs.ErrNotExist):
		log.Info().Str("state_file", path).Msg("no state file yet; starting with no seats")
	default:
		bad := path + ".bad-" + strconv.FormatInt(time.Now().Unix(), 10)
		if rerr := os.Rename(path, bad); rerr != nil {
			log.Error().Err(errors.Join(err, rerr)).Str("state_file", path).
				Msg("cannot restore seats and cannot set the file aside; starting with no seats")
			return
		}
		log.Error().Err(err).Str("state_file", path).Str("set_aside", bad).
			Msg("cannot restore seats; file set aside, starting with no seats")
	}
}

// saveState writes the store's seats to path one last time, at shutdown.
func saveState(st *memory.Store, path string, log zerolog.Logger) {
	start := time.Now()
	n, err := st.SaveFile(path)
	if err != nil {
		log.Error().Err(err).Msg("cannot save seats at shutdown")
		return
	}
	log.Info().Str("state_file", path).Int("seats", n).Dur("took", time.Since(start)).Msg("seats saved")
}
