// Package ratelimit keeps log lines about floods (refused connections, bad frames, refused
// requests) to one per interval, with the count of those held back.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter lets through at most one log line per interval and counts the lines it held
// back, so that a flood of bad connections or requests costs a line per interval, not a
// line each. It is safe for concurrent use.
type Limiter struct {
	interval time.Duration
	// Now is the clock, time.Now unless a test injects one; set it before first use.
	Now func() time.Time

	mu         sync.Mutex
	next       time.Time // the earliest time the next line may be logged
	suppressed uint64    // lines held back since the last one let through
}

// New returns a limiter letting one line through per interval.
func New(interval time.Duration) *Limiter {
	return &Limiter{interval: interval, Now: time.Now}
}

// Allow reports whether a line may be logged now and, if so, how many lines were held
// back since the last one let through (the caller logs that count with its line).
func (l *Limiter) Allow() (ok bool, suppressed uint64) {
	now := l.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	l.next = now.Add(l.interval)
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
