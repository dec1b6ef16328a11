package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestLongStreamKeepsSeat: a user whose only activity is one server-sent-events stream
// keeps the seat for three idle timeouts while a quiet user's seat expires; once the
// stream closes the normal idle timeout runs. HAProxy tracks open connections per key in
// a stick table that the agent reads over the runtime API.
func TestLongStreamKeepsSeat(t *testing.T) { forEachHAProxy(t, testLongStreamKeepsSeat) }

func testLongStreamKeepsSeat(t *testing.T, bin string) {
	const idle = time.Second
	s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "http", Servers: []string{"s1", "s2"},
		MaxUsers: 1, Idle: idle, KeepAlive: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	streamer := testbed.NewClient("streamer", "127.0.0.11", "streamer")
	quiet := testbed.NewClient("quiet", "127.0.0.12", "quiet")
	newcomer := testbed.NewClient("newcomer", "127.0.0.13", "newcomer")
	late := testbed.NewClient("late", "127.0.0.14", "late")

	server, closeStream, err := streamer.Stream(ctx, s.Frontend)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStream()
	if server != "s1" {
		t.Fatalf("streamer seated on %q; want s1", server)
	}
	if r, err := quiet.Get(ctx, s.Frontend); err != nil || r.Server != "s2" {
		t.Fatalf("quiet user: %s, %v; want s2", r, err)
	}
	opened := time.Now()

	// The quiet user's seat expires after idle; the newcomer then gets s2 — never s1, whose
	// user is still streaming — and keeps being refused s1 for three idle timeouts.
	for time.Since(opened) < 3*idle {
		r, err := newcomer.Get(ctx, s.Frontend)
		if err != nil {
			t.Fatal(err)
		}
		if r.Server == "s1" {
			t.Fatalf("newcomer got s1 %s after the stream opened; the streaming user holds it", time.Since(opened).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r, err := newcomer.Get(ctx, s.Frontend); err != nil || r.Server != "s2" {
		t.Fatalf("newcomer after the quiet user's seat expired: %s, %v; want s2", r, err)
	}

	// After the stream closes, its seat lives one idle timeout more, then frees.
	closeStream()
	closed := time.Now()
	for {
		// The newcomer stays active, so only s1 can free.
		if r, err := newcomer.Get(ctx, s.Frontend); err != nil || r.Server != "s2" {
			t.Fatalf("newcomer while active: %s, %v; want s2", r, err)
		}
		r, err := late.Get(ctx, s.Frontend)
		if err != nil {
			t.Fatal(err)
		}
		if r.Seated() && r.Server != "s1" {
			t.Fatalf("late user seated on %s; only s1 could free", r.Server)
		}
		if r.Server == "s1" {
			if waited := time.Since(closed); waited < idle-200*time.Millisecond {
				t.Errorf("s1 freed %s after the stream closed; want about the idle timeout %s", waited, idle)
			}
			break
		}
		if time.Since(closed) > idle+5*time.Second {
			t.Fatalf("s1 still held %s after the stream closed", time.Since(closed))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
