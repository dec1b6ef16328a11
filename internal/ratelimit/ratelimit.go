package agent

import (
	"sync"
	"time"
)

// logLimiter lets through at most one log line per interval and counts the lines it held
// back, so that a flood of bad connections costs a line a second, not a line each.
type logLimiter struct {
	interval time.Duration
	now      func() time.Time // time.Now unless a test injects a clock

	mu         sync.Mutex
	next       time.Time // the earliest time the next line may be logged
	suppressed uint64    // lines held back since the last one let through
}

// newLogLimiter returns a limiter letting one line through per interval.
func newLogLimiter(interval time.Duration) *logLimiter {
	return &logLimiter{interval: interval, now: time.Now}
}

// allow reports whether a line may be logged now and, if so, how many lines were held
// back since the last one let through (the caller logs that count with its line).
func (l *logLimiter) allow() (ok bool, suppressed uint64) {
	now := l.now()
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
