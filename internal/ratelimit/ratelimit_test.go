package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	clock := time.Unix(1000, 0)
	l := New(time.Second)
	l.Now = func() time.Time { return clock }
	type step struct {
		advance    time.Duration
		ok         bool
		suppressed uint64
	}
	steps := []step{
		{0, true, 0}, // the first line goes through
		{0, false, 0},
		{500 * time.Millisecond, false, 0},
		{499 * time.Millisecond, false, 0},
		{time.Millisecond, true, 3}, // one interval after the last line let through
		{10 * time.Millisecond, false, 0},
		{5 * time.Second, true, 1},
		{5 * time.Second, true, 0},
	}
	for i, s := range steps {
		clock = clock.Add(s.advance)
		ok, n := l.Allow()
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d (+%s): Allow() = %v, %d; want %v, %d", i, s.advance, ok, n, s.ok, s.suppressed)
		}
	}
}
