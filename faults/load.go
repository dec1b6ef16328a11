package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Load is steady traffic from many users against several HAProxy nodes: each user has its
// own source address in 127.0.0.0/8 and an x-user header, sends one request at a time, each
// on a new connection, and alternates between the nodes.
type Load struct {
	Frontends []string
	Users     int
	Workers   int
	// Rate is the total requests per second the workers aim at.
	Rate int
	// Timeout bounds one request (dial, send, answer).
	Timeout time.Duration
	// Jitter moves each request by up to this fraction of a worker's interval, either way, so
	// users ask in a shifting order, as real ones do (0: a fixed order).
	Jitter float64

	mu      sync.Mutex
	replies []Reply
}

// userName and userSource name user i (from 0) and give it its source address.
func userName(i int) string { return fmt.Sprintf("user-%d", i) }

func userSource(i int) net.IP { return net.IPv4(127, 100, byte(i/250), byte(i%250+1)) }

// Run sends requests until ctx ends, then returns once every request in flight is answered
// or has timed out.
func (l *Load) Run(ctx context.Context) {
	var wg sync.WaitGroup
	// Each worker owns users w, w+Workers, ... and visits them in turn, so a user never has
	// two requests in flight and its answers are ordered.
	interval := time.Duration(float64(time.Second) * float64(l.Workers) / float64(l.Rate))
	for w := 0; w < l.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var own []int
			for u := w; u < l.Users; u += l.Workers {
				own = append(own, u)
			}
			if len(own) == 0 {
				return
			}
			visits := make([]int, len(own))
			// Stagger the workers so the rate is even.
			next := time.Now().Add(time.Duration(w) * interval / time.Duration(l.Workers))
			for k := 0; ; k = (k + 1) % len(own) {
				at := next
				if l.Jitter > 0 {
					at = at.Add(time.Duration((rand.Float64()*2 - 1) * l.Jitter * float64(interval)))
				}
				if wait := time.Until(at); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
				if ctx.Err() != nil {
					return
				}
				next = next.Add(interval)
				if time.Until(next) < -time.Second {
					next = time.Now() // behind by more than a second: do not burst to catch up
				}
				u := own[k]
				node := (u + visits[k]) % len(l.Frontends)
				visits[k]++
				r := l.request(u, node)
				l.mu.Lock()
				l.replies = append(l.replies, r)
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// Replies returns what every request got, in the order answered.
func (l *Load) Replies() []Reply {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Reply(nil), l.replies...)
}

// Count returns how many requests were answered so far.
func (l *Load) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.replies)
}

// request sends one GET on a new connection from the user's address and classifies the
// answer. It does not use net/http's client so that what happened on the wire is reported
// as it is: 200 with the backend's name, HAProxy's 503 for `full`, any other status, or a
// failure.
func (l *Load) request(u, node int) Reply {
	r := Reply{User: userName(u), Node: node, Sent: time.Now()}
	fail := func(err error) Reply {
		r.Kind, r.Detail = Failed, err.Error()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			r.Detail = "timeout"
		}
		r.Answered = time.Now()
		return r
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: userSource(u)}, Timeout: l.Timeout}
	c, err := d.Dial("tcp", l.Frontends[node])
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	if err := c.SetDeadline(r.Sent.Add(l.Timeout)); err != nil {
		return fail(err)
	}
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: stickyseat\r\nX-User: %s\r\nConnection: close\r\n\r\n", r.User); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fail(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil {
		return fail(err)
	}
	text := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusOK:
		r.Kind, r.Server = Seated, text
	case resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(text, "every server is full"):
		r.Kind = Full
	default:
		first, _, _ := strings.Cut(text, "\n")
		r.Kind, r.Detail = Refused, fmt.Sprintf("%d %s", resp.StatusCode, first)
	}
	r.Answered = time.Now()
	return r
}
