package admin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// recordingReloader keeps the last configuration it was given.
type recordingReloader struct{ last assign.Config }

func (r *recordingReloader) Reload(cfg assign.Config) error { r.last = cfg; return cfg.Validate() }

func cfg(quota1 int, extra ...assign.Server) assign.Config {
	servers := append([]assign.Server{{Name: "s1", Quota: quota1}, {Name: "s2", Quota: 2}}, extra...)
	return assign.Config{Pools: []assign.Pool{{Name: "web", Servers: servers, IdleTimeout: time.Hour}}}
}

func describe(c assign.Config) string {
	var parts []string
	for _, s := range c.Pools[0].Servers {
		parts = append(parts, s.Name+"="+s.State.String()+"/"+string(rune('0'+s.Quota)))
	}
	return strings.Join(parts, " ")
}

func TestChangesSurviveReloads(t *testing.T) {
	ctx := context.Background()
	r := &recordingReloader{}
	a := New(cfg(2), r, memory.New(memory.Options{}), &LocalOverrides{}, Options{})
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"drain s1", func() error { return a.SetState(ctx, "web", "s1", assign.StateDrain) }, "s1=drain/2 s2=up/2"},
		{"quota of s2", func() error { return a.SetQuota(ctx, "web", "s2", 5) }, "s1=drain/2 s2=up/5"},
		{"file reload adds s3 and changes s1's quota", func() error { return a.SetBase(ctx, cfg(3, assign.Server{Name: "s3", Quota: 1})) }, "s1=drain/3 s2=up/5 s3=up/1"},
		{"undrain s1", func() error { return a.SetState(ctx, "web", "s1", assign.StateUp) }, "s1=up/3 s2=up/5 s3=up/1"},
		{"quota 0 returns to the file's", func() error { return a.SetQuota(ctx, "web", "s2", 0) }, "s1=up/3 s2=up/2 s3=up/1"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := describe(r.last); got != s.want {
			t.Errorf("%s: applied %s; want %s", s.name, got, s.want)
		}
	}
	if err := a.SetState(ctx, "web", "s9", assign.StateDrain); !errors.Is(err, ErrNotFound) {
		t.Errorf("drain of an unknown server: %v; want ErrNotFound", err)
	}
	if err := a.SetQuota(ctx, "web", "s1", -1); err == nil {
		t.Errorf("negative quota accepted")
	}
}

// TestSyncPicksUpOtherAgentsChanges: a change written to the shared overrides by another
// agent is applied at the next Sync.
func TestSyncPicksUpOtherAgentsChanges(t *testing.T) {
	ctx := context.Background()
	shared := &LocalOverrides{}
	r1, r2 := &recordingReloader{}, &recordingReloader{}
	a1 := New(cfg(2), r1, memory.New(memory.Options{}), shared, Options{})
	a2 := New(cfg(2), r2, memory.New(memory.Options{}), shared, Options{})
	if err := a1.SetState(ctx, "web", "s2", assign.StateDrain); err != nil {
		t.Fatal(err)
	}
	if err := a2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := describe(r2.last); got != "s1=up/2 s2=drain/2" {
		t.Errorf("second agent after Sync: %s; want s2 drained", got)
	}
	r2.last = assign.Config{}
	if err := a2.Sync(ctx); err != nil || len(r2.last.Pools) != 0 {
		t.Errorf("Sync with nothing new reloaded anyway (%v)", err)
	}
}
