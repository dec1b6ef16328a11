package memory_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/storetest"
)

// seatList returns every live seat of the pool, most recently seen first.
func seatList(t *testing.T, s *memory.Store, pool string) []store.Seat {
	t.Helper()
	seats, err := s.LiveSeats(context.Background(), pool, slices.Collect(maps.Keys(s.Usage(pool))), 0, 1<<30)
	if err != nil {
		t.Fatalf("LiveSeats(%q): %v", pool, err)
	}
	return seats
}

// stateFixture fills two pools over four seconds: in pool a, u1 (s1) at +0, u2 (s2) at +1s,
// u3 (s1) at +2s, u1 refreshed at +3s; in pool b, x (t1) at +1s. The clock ends at +3s.
func stateFixture(t *testing.T) *fixture {
	f := newFixture(t)
	a := []store.Server{up("s1", 2), up("s2", 2)}
	b := []store.Server{up("t1", 5)}
	f.assign("a", "u1", a...)
	f.clock.Advance(time.Second)
	f.assign("a", "u2", a...)
	f.assign("b", "x", b...)
	f.clock.Advance(time.Second)
	f.assign("a", "u3", a...)
	f.clock.Advance(time.Second)
	if got := f.assign("a", "u1", a...); got.Outcome != store.OutcomeHit {
		t.Fatalf("refresh of u1 = %+v; want a hit", got)
	}
	return f
}

func save(t *testing.T, s *memory.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Save(&buf); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return buf.Bytes()
}

func TestStateRoundTrip(t *testing.T) {
	f := stateFixture(t)
	data := save(t, f.store)

	// Restart two seconds later (at +5s), on a fresh store whose epoch is the restart.
	clock := storetest.NewClock(start.Add(5 * time.Second))
	s := memory.New(memory.Options{Clock: clock.Now})
	restored, dropped, err := s.Load(bytes.NewReader(data))
	if err != nil || restored != 4 || dropped != 0 {
		t.Fatalf("Load = %d, %d, %v; want 4, 0, nil", restored, dropped, err)
	}
	for _, pool := range []string{"a", "b"} {
		if got, want := seatList(t, s, pool), seatList(t, f.store, pool); !slices.Equal(got, want) {
			t.Errorf("pool %s after Load: seats %v; want %v (keys, servers, last-seen and its order)", pool, got, want)
		}
		if got, want := s.Usage(pool), f.store.Usage(pool); !maps.Equal(got, want) {
			t.Errorf("Usage(%q) after Load = %v; want %v", pool, got, want)
		}
	}

	// The seats keep their counts and servers: u1 is a hit on s1, s1 is full, s2 has one place.
	ctx := context.Background()
	a := []store.Server{up("s1", 2), up("s2", 2)}
	for _, tt := range []struct {
		key  string
		want store.Result
	}{
		{"u1", store.Result{Outcome: store.OutcomeHit, Server: "s1"}},
		{"u2", store.Result{Outcome: store.OutcomeHit, Server: "s2"}},
		{"n1", store.Result{Outcome: store.OutcomeNew, Server: "s2"}},
		{"n2", store.Result{Outcome: store.OutcomeFull}},
	} {
		got, err := s.Assign(ctx, store.Request{Pool: "a", Key: tt.key, Servers: a, Idle: idle})
		if err != nil || got != tt.want {
			t.Errorf("Assign(%q) after Load = %+v, %v; want %+v", tt.key, got, err, tt.want)
		}
	}
}

// TestStateExpiryAfterLoad checks a restored seat lives exactly as long as it had left.
func TestStateExpiryAfterLoad(t *testing.T) {
	f := stateFixture(t)
	data := save(t, f.store)
	clock := storetest.NewClock(start.Add(5 * time.Second))
	s := memory.New(memory.Options{Clock: clock.Now})
	if _, _, err := s.Load(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// Pool b's x was seen at +1s: live until +11s exclusive.
	clock.Advance(6*time.Second - 1)
	if got := s.Seats("b"); got != 1 {
		t.Errorf("Seats(b) 1ns before x expires = %d; want 1", got)
	}
	clock.Advance(1)
	if got := s.Seats("b"); got != 0 {
		t.Errorf("Seats(b) when x expires = %d; want 0", got)
	}
	// Pool a: u2 (+1s) goes with x, then u3 (+2s), then u1 (+3s).
	for _, want := range []int{2, 1, 0} {
		if got := s.Seats("a"); got != want {
			t.Errorf("Seats(a) at +%s = %d; want %d", clock.Now().Sub(start), got, want)
		}
		clock.Advance(time.Second)
	}
}

func TestStateDropsExpired(t *testing.T) {
	f := stateFixture(t)
	data := save(t, f.store)
	// At +11.5s, u1 (refreshed at +3s) and u3 (+2s) have time left; u2 and x (+1s) do not.
	clock := storetest.NewClock(start.Add(11*time.Second + 500*time.Millisecond))
	s := memory.New(memory.Options{Clock: clock.Now})
	restored, dropped, err := s.Load(bytes.NewReader(data))
	if err != nil || restored != 2 || dropped != 2 {
		t.Fatalf("Load = %d, %d, %v; want 2, 2, nil", restored, dropped, err)
	}
	if got, want := s.Usage("a"), map[string]int{"s1": 2}; !maps.Equal(got, want) {
		t.Errorf("Usage(a) = %v; want %v", got, want)
	}
	if got := s.Seats("b"); got != 0 {
		t.Errorf("Seats(b) = %d; want 0", got)
	}
	// Everything expired: nothing restored, no error.
	clock.Advance(time.Hour)
	s = memory.New(memory.Options{Clock: clock.Now})
	if restored, dropped, err := s.Load(bytes.NewReader(data)); err != nil || restored != 0 || dropped != 4 {
		t.Errorf("Load an hour later = %d, %d, %v; want 0, 4, nil", restored, dropped, err)
	}
}

// TestStateClockWentBack checks a last-seen time in the future counts as now.
func TestStateClockWentBack(t *testing.T) {
	f := stateFixture(t)
	data := save(t, f.store)
	clock := storetest.NewClock(start.Add(-time.Hour))
	s := memory.New(memory.Options{Clock: clock.Now})
	if restored, _, err := s.Load(bytes.NewReader(data)); err != nil || restored != 4 {
		t.Fatalf("Load = %d, %v; want 4 restored", restored, err)
	}
	clock.Advance(idle - 1)
	if got := s.Seats("a"); got != 3 {
		t.Errorf("Seats(a) 1ns before idle = %d; want 3", got)
	}
	clock.Advance(1)
	if got := s.Seats("a"); got != 0 {
		t.Errorf("Seats(a) after idle = %d; want 0", got)
	}
}

func TestStateEmptyStore(t *testing.T) {
	data := save(t, memory.New(memory.Options{}))
	s := memory.New(memory.Options{})
	if restored, dropped, err := s.Load(bytes.NewReader(data)); err != nil || restored != 0 || dropped != 0 {
		t.Errorf("Load of an empty store's state = %d, %d, %v; want 0, 0, nil", restored, dropped, err)
	}
}

func TestStateBadInput(t *testing.T) {
	good := save(t, stateFixture(t).store)
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		return b
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"foreign", []byte("user,server\nalice,s1\n"), "not a stickyseat state file"},
		{"short foreign", []byte("{}"), "not a stickyseat state file"},
		{"wrong version", append([]byte("stickyseat-state 2\n"), good[19:]...), `version "2"`},
		{"magic only", good[:19], "truncated"},
		{"no checksum", good[:len(good)-4], "checksum"},
		{"garbage after", append(bytes.Clone(good), 0), "checksum"},
	}
	for i := 19; i < len(good); i++ {
		tests = append(tests, struct {
			name string
			data []byte
			want string
		}{"truncated at " + strconv.Itoa(i), good[:i], ""}, struct {
			name string
			data []byte
			want string
		}{"byte " + strconv.Itoa(i) + " flipped", flip(i), ""})
	}
	for _, tt := range tests {
		s := memory.New(memory.Options{})
		restored, dropped, err := s.Load(bytes.NewReader(tt.data))
		if !errors.Is(err, memory.ErrBadState) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Load = %d, %d, %v; want an ErrBadState error containing %q", tt.name, restored, dropped, err, tt.want)
		}
		if got := s.Seats("a"); got != 0 {
			t.Errorf("%s: Seats(a) after a failed Load = %d; want 0", tt.name, got)
		}
	}
}

func TestStateLoadIntoNonEmptyStore(t *testing.T) {
	data := save(t, stateFixture(t).store)
	f := newFixture(t)
	f.assign("z", "someone", up("s1", 1))
	if _, _, err := f.store.Load(bytes.NewReader(data)); !errors.Is(err, memory.ErrNotEmpty) {
		t.Errorf("Load into a store with a seat: %v; want ErrNotEmpty", err)
	}
	if got := f.store.Seats("a"); got != 0 {
		t.Errorf("Seats(a) after the refused Load = %d; want 0", got)
	}
	// A pool that exists but holds no seat (all expired) is filled in place.
	f.clock.Advance(idle)
	if _, _, err := f.store.Load(bytes.NewReader(data)); err != nil {
		t.Errorf("Load into a store whose seats expired: %v", err)
	}
}

func TestStateFile(t *testing.T) {
	f := stateFixture(t)
	path := filepath.Join(t.TempDir(), "seats.state")
	s := memory.New(memory.Options{Clock: f.clock.Now})
	if _, _, err := s.LoadFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v; want fs.ErrNotExist", err)
	}
	for range 2 { // the second save replaces the first
		if n, err := f.store.SaveFile(path); err != nil || n != 4 {
			t.Fatalf("SaveFile = %d, %v; want 4, nil", n, err)
		}
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v; want 0600 (it holds user keys)", info.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("directory after SaveFile holds %v (%v); want the state file alone", entries, err)
	}
	if restored, _, err := s.LoadFile(path); err != nil || restored != 4 {
		t.Errorf("LoadFile = %d, %v; want 4, nil", restored, err)
	}
	if _, err := f.store.SaveFile(filepath.Join(path, "not-a-dir", "x")); err == nil {
		t.Errorf("SaveFile under a file: nil error")
	}
}

// plantVictim writes a file the agent must never change and returns its path and content.
func plantVictim(t *testing.T) (string, []byte) {
	t.Helper()
	victim := filepath.Join(t.TempDir(), "victim")
	content := []byte("not the agent's to write\n")
	if err := os.WriteFile(victim, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return victim, content
}

func checkVictim(t *testing.T, victim string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(victim)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("victim after SaveFile = %q, %v; want it untouched (%q)", got, err, want)
	}
}

// checkStateFile asserts path is a regular owner-only file holding the fixture's 4 seats.
func checkStateFile(t *testing.T, path string, clock func() time.Time) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v; want a regular file, 0600 (it holds user keys)", info.Mode())
	}
	s := memory.New(memory.Options{Clock: clock})
	if restored, _, err := s.LoadFile(path); err != nil || restored != 4 {
		t.Errorf("LoadFile = %d, %v; want 4, nil", restored, err)
	}
}

// TestStateFilePlantedTemp: whatever another user planted where a predictable temporary
// file would go (a symlink to a victim, a world-readable file) neither redirects the write
// nor lends the state file its mode.
func TestStateFilePlantedTemp(t *testing.T) {
	t.Run("symlink", func(t *testing.T) {
		f := stateFixture(t)
		path := filepath.Join(t.TempDir(), "seats.state")
		victim, content := plantVictim(t)
		if err := os.Symlink(victim, path+".tmp"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.SaveFile(path); err != nil {
			t.Fatalf("SaveFile: %v", err)
		}
		checkVictim(t, victim, content)
		checkStateFile(t, path, f.clock.Now)
	})
	t.Run("world-readable file", func(t *testing.T) {
		f := stateFixture(t)
		path := filepath.Join(t.TempDir(), "seats.state")
		if err := os.WriteFile(path+".tmp", nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path+".tmp", 0o644); err != nil { // whatever the umask
			t.Fatal(err)
		}
		if _, err := f.store.SaveFile(path); err != nil {
			t.Fatalf("SaveFile: %v", err)
		}
		checkStateFile(t, path, f.clock.Now)
	})
}

// TestStateFileSymlinkAtPath: a symlink at the state file's own path is replaced by the
// state file; the link's target is left alone.
func TestStateFileSymlinkAtPath(t *testing.T) {
	f := stateFixture(t)
	path := filepath.Join(t.TempDir(), "seats.state")
	victim, content := plantVictim(t)
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.SaveFile(path); err != nil {
		t.Fatalf("SaveFile: %v", err)
	}
	checkVictim(t, victim, content)
	checkStateFile(t, path, f.clock.Now)
}

// TestStateFileFailedSaveLeavesNothing: a save that cannot complete removes its temporary
// file and leaves the previous state in place.
func TestStateFileFailedSaveLeavesNothing(t *testing.T) {
	f := stateFixture(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "seats.state")
	// A non-empty directory at path: the rename over it fails after the write.
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.SaveFile(path); err == nil {
		t.Fatal("SaveFile over a non-empty directory: nil error")
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "seats.state" {
		t.Errorf("directory after a failed SaveFile holds %v (%v); want no temporary file", entries, err)
	}
}

// TestRunStateSaves checks RunState writes the file while it runs, and stops with ctx.
func TestRunStateSaves(t *testing.T) {
	f := stateFixture(t)
	path := filepath.Join(t.TempDir(), "seats.state")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.store.RunState(ctx, path, time.Millisecond, zerolog.Nop()); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("RunState wrote no file in 10s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	s := memory.New(memory.Options{Clock: f.clock.Now})
	if restored, _, err := s.LoadFile(path); err != nil || restored != 4 {
		t.Errorf("LoadFile of RunState's file = %d, %v; want 4, nil", restored, err)
	}
}

// BenchmarkState saves and loads a pool of 1M seats (IPv4-shaped keys, three servers),
// reporting the file size; ns/op is one whole Save or Load.
func BenchmarkState(b *testing.B) {
	const n = 1_000_000
	clock := &benchClock{now: start}
	s := memory.New(memory.Options{Clock: clock.Now})
	fill(b, s, clock, benchKeys(n), benchServers(n), time.Hour)
	var buf bytes.Buffer
	if _, err := s.Save(&buf); err != nil {
		b.Fatal(err)
	}
	size := float64(buf.Len())
	b.Run("Save", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			if saved, err := s.Save(&buf); err != nil || saved != n {
				b.Fatalf("Save = %d, %v; want %d", saved, err, n)
			}
		}
		b.ReportMetric(size, "file-bytes")
		b.ReportMetric(size/n, "bytes/seat")
	})
	data := buf.Bytes()
	b.Run("Load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := memory.New(memory.Options{Clock: clock.Now})
			if restored, _, err := s.Load(bytes.NewReader(data)); err != nil || restored != n {
				b.Fatalf("Load = %d, %v; want %d", restored, err, n)
			}
		}
	})
}
