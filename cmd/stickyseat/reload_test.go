package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// startReloader runs a reloader on path whose load returns the file's content as the pools'
// Source; it returns the channel of applied contents and the SIGHUP channel.
func startReloader(t *testing.T, path string, watch bool) (<-chan string, chan<- os.Signal) {
	t.Helper()
	applied := make(chan string, 16)
	hup := make(chan os.Signal, 1)
	load := func() (pools, error) {
		b, err := os.ReadFile(path)
		return pools{Source: string(b)}, err
	}
	apply := func(p pools) error { applied <- p.Source; return nil }
	var logs bytes.Buffer
	r, err := newReloader(path, watch, load, apply, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx, hup, pools{}) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("reloader log:\n%s", logs.String())
		}
	})
	return applied, hup
}

// waitApplied waits for the reloader to apply want, skipping earlier contents (a file
// written in steps may be read more than once).
func waitApplied(t *testing.T, applied <-chan string, want string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case got := <-applied:
			if got == want {
				return
			}
		case <-deadline.C:
			t.Fatalf("%q not applied within 10s", want)
		}
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatchRenameReplace: editors and config management write a new file and rename it over
// the old one; every such replace is applied, not only the first (a watch on the file itself
// would end with the first rename).
func TestWatchRenameReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stickyseat.yaml")
	writeTestFile(t, path, "v0")
	applied, _ := startReloader(t, path, true)
	for _, v := range []string{"v1", "v2", "v3"} {
		writeTestFile(t, path+".tmp", v)
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
		waitApplied(t, applied, v)
	}
}

// TestWatchWriteInPlace: a file rewritten in place is applied too.
func TestWatchWriteInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stickyseat.yaml")
	writeTestFile(t, path, "v0")
	applied, _ := startReloader(t, path, true)
	for _, v := range []string{"v1", "v2"} {
		writeTestFile(t, path, v)
		waitApplied(t, applied, v)
	}
}

// TestWatchSymlinkSwap: a Kubernetes ConfigMap volume changes by pointing a symlink at a new
// directory; the file's own name sees no event, the change is caught all the same.
func TestWatchSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(v string) {
		t.Helper()
		vd := filepath.Join(dir, "..v"+v)
		if err := os.Mkdir(vd, 0o755); err != nil {
			t.Fatal(err)
		}
		writeTestFile(t, filepath.Join(vd, "stickyseat.yaml"), v)
		if err := os.Symlink("..v"+v, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("0")
	path := filepath.Join(dir, "stickyseat.yaml")
	if err := os.Symlink("..data/stickyseat.yaml", path); err != nil {
		t.Fatal(err)
	}
	applied, _ := startReloader(t, path, true)
	version("1")
	waitApplied(t, applied, "1")
}

// TestReloadOnSignal: SIGHUP reloads with or without a watch.
func TestReloadOnSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stickyseat.yaml")
	writeTestFile(t, path, "v0")
	applied, hup := startReloader(t, path, false)
	writeTestFile(t, path, "v1")
	hup <- os.Interrupt // any signal value: the loop only counts arrivals
	waitApplied(t, applied, "v1")
}
