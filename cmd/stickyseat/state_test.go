package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
)

func TestStateFlagErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"state file with redis", []string{"--redis", "redis://127.0.0.1:1", "--state-file", filepath.Join(dir, "s")}, "--state-file: seats are in Redis with --redis; --state-file is for the memory store"},
		{"zero interval", []string{"--state-interval", "0s"}, "--state-interval: duration must be positive, got 0s"},
		{"bad interval", []string{"--state-interval", "often"}, `--state-interval: "often" is not a duration (e.g. 30s, 15m, 24h)`},
		{"missing directory", []string{"--state-file", filepath.Join(dir, "nowhere", "s")}, "--state-file: directory " + filepath.Join(dir, "nowhere") + " does not exist"},
		{"directory", []string{"--state-file", dir}, "--state-file: " + dir + " is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"stickyseat", "serve", "--servers", "s1"}, tt.args...)
			err := run(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("run(%q) = %v; want %q", tt.args, err, tt.want)
			}
		})
	}
}

// TestRestoreState checks the three cases at start: a good file is restored, a missing one
// is a fresh start, a bad one is set aside with one log line and the store starts empty.
func TestRestoreState(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	src := memory.New(memory.Options{})
	servers := []store.Server{{Name: "s1", Quota: 2, Accepting: true}}
	for _, key := range []string{"alice", "bob"} {
		if _, err := src.Assign(context.Background(), store.Request{Pool: "p", Key: key, Servers: servers, Idle: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.SaveFile(good); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("stickyseat-state 1\nnot really"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		seats      int
		log        string
	}{
		{"good", good, 2, `"message":"seats restored"`},
		{"missing", filepath.Join(dir, "missing"), 0, `"message":"no state file yet; starting with no seats"`},
		{"bad", bad, 0, `"message":"cannot restore seats; file set aside, starting with no seats"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			st := memory.New(memory.Options{})
			restoreState(st, tt.path, zerolog.New(&out))
			if got := st.Seats("p"); got != tt.seats {
				t.Errorf("Seats(p) = %d; want %d", got, tt.seats)
			}
			if lines := strings.Count(out.String(), "\n"); lines != 1 || !strings.Contains(out.String(), tt.log) {
				t.Errorf("log = %q; want one line with %s", out.String(), tt.log)
			}
		})
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("bad file still at %s (%v); want it set aside", bad, err)
	}
	aside, err := filepath.Glob(bad + ".bad-*")
	if err != nil || len(aside) != 1 {
		t.Errorf("set-aside files %v (%v); want one %s.bad-*", aside, err, bad)
	}
}

// TestRestoreStateRemovesCrashTempFiles: at start the temporary files a crashed save left
// beside the state file are removed (and said so), and the seats restored.
func TestRestoreStateRemovesCrashTempFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seats")
	if _, err := memory.New(memory.Options{}).SaveFile(path); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, "seats.tmp-1234567")
	if err := os.WriteFile(left, []byte("half a state"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	restoreState(memory.New(memory.Options{}), path, zerolog.New(&out))
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("temporary file left by a crash still there (%v)", err)
	}
	if !strings.Contains(out.String(), `"removed":1`) || !strings.Contains(out.String(), "seats restored") {
		t.Errorf("log = %q; want the removal and the restore", out.String())
	}
}
