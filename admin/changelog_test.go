package admin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// TestEvictLogsKeyAtDebugOnly: an eviction is logged at info without the user's key (keys
// are personal data, logged at debug only); at debug the key is there.
func TestEvictLogsKeyAtDebugOnly(t *testing.T) {
	const key = "user-key-7f3a"
	for _, level := range []zerolog.Level{zerolog.InfoLevel, zerolog.DebugLevel} {
		var logs bytes.Buffer
		st := memory.New(memory.Options{})
		as, err := assign.New(cfg(2), st, assign.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d := as.Decide(context.Background(), assign.Request{Key: key}); d.Server == "" {
			t.Fatalf("Decide(%q) = %+v; want a seat", key, d)
		}
		a := New(cfg(2), as, st, st, Options{Logger: zerolog.New(&syncWriter{w: &logs}).Level(level)})
		srv := httptest.NewServer(a.Handler())
		resp, body := do(t, nil, http.MethodPost, srv.URL+"/api/evict", "", url.Values{"pool": {"web"}, "key": {key}})
		srv.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("evict: HTTP %d %s; want 200", resp.StatusCode, body)
		}
		out := logs.String()
		if !strings.Contains(out, `"change":"evict"`) {
			t.Errorf("level %s: no admin change line for the eviction:\n%s", level, out)
		}
		if got := strings.Contains(out, key); got != (level == zerolog.DebugLevel) {
			t.Errorf("level %s: key in the log = %v; want %v:\n%s", level, got, level == zerolog.DebugLevel, out)
		}
	}
}

// TestRefusedChangeIs409: a change the configuration cannot take (a quota past MaxSeats)
// answers 409 Conflict, not 503 (which says "retry later").
func TestRefusedChangeIs409(t *testing.T) {
	base := cfg(2)
	base.MaxSeats = 10
	st := memory.New(memory.Options{})
	a := New(base, &recordingReloader{}, st, st, Options{})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, body := do(t, nil, http.MethodPost, srv.URL+"/api/quota", "", url.Values{"pool": {"web"}, "server": {"s1"}, "quota": {"100000"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "--max-seats") {
		t.Errorf("quota past MaxSeats: HTTP %d %s; want 409 naming --max-seats", resp.StatusCode, body)
	}
}
