// Package loadgen puts SPOP load on an agent the way HAProxy does — a HELLO per connection,
// then NOTIFY frames pipelined on several connections — and measures decisions per second,
// latency quantiles and the statuses answered. It is what `stickyseat bench` runs.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stickyseat/stickyseat/assign"
)

// ErrProtocol marks a run in which the agent broke the protocol or the contract: a frame
// that does not parse, an ACK for no request, a status outside the contract, a seated status
// without a server, a closed connection or an answer later than Options.Timeout.
var ErrProtocol = errors.New("protocol error")

// Options describe one run. The zero value of each field means its default; at least one of
// Duration and Requests bounds the run.
type Options struct {
	// Addr is the agent's SPOP address (host:port).
	Addr string
	// Connections is how many SPOP connections send at once. Default 4.
	Connections int
	// Pipeline is how many NOTIFY frames each connection keeps in flight. Default 20, HAProxy's
	// default max-waiting-frames.
	Pipeline int
	// Duration bounds the run's length.
	Duration time.Duration
	// Requests bounds the number of decisions asked for.
	Requests uint64
	// Rate, when positive, paces the load at this many decisions per second in total: each
	// connection sends the frames that are due, in one write, whenever it wakes up. Zero
	// sends as fast as answers return. Latency always counts from the write of a frame to
	// its ACK (a paced sender wakes up to 1 ms late on Linux; that is not the agent's time).
	// An agent slower than the rate fills the pipeline, and the rate achieved drops.
	Rate float64
	// Users is the number of distinct user keys. Default 1000.
	Users int
	// Dist picks the user of each request. Default Uniform.
	Dist Dist
	// ZipfS is the Zipf exponent, above 1. Default 1.1.
	ZipfS float64
	// NewRatio is the fraction of requests (0..1) carrying a user key never sent before.
	NewRatio float64
	// KeyPrefix starts every user key. Default "user-".
	KeyPrefix string
	// Pool, when set, is sent as the message's pool argument.
	Pool string
	// Timeout is the longest an answer may take (also bounds the HELLO and the final wait for
	// answers in flight). Default 2s.
	Timeout time.Duration
	// MaxFrameSize is announced in the HELLO. Default 16380, HAProxy's.
	MaxFrameSize uint32
	// WhenFull, when set, is what the agent's pool does with a user who finds no seat: with
	// assign.WhenFullQueue a full answer breaks the run, with assign.WhenFullReject a queued
	// one does, so that a benchmark of the line cannot silently measure refusals (or the
	// reverse). Nil accepts both.
	WhenFull *assign.WhenFull
}

func (o *Options) setDefaults() {
	if o.Connections <= 0 {
		o.Connections = 4
	}
	if o.Pipeline <= 0 {
		o.Pipeline = 20
	}
	if o.Users <= 0 {
		o.Users = 1000
	}
	if o.Dist == "" {
		o.Dist = Uniform
	}
	if o.ZipfS == 0 {
		o.ZipfS = 1.1
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "user-"
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = 16380
	}
}

// Validate checks options after defaults are applied.
func (o *Options) Validate() error {
	o.setDefaults()
	switch {
	case o.Addr == "":
		return errors.New("no agent address")
	case o.Duration <= 0 && o.Requests == 0:
		return errors.New("neither a duration nor a request count bounds the run")
	case o.NewRatio < 0 || o.NewRatio > 1:
		return fmt.Errorf("new ratio %g is outside 0..1", o.NewRatio)
	case o.Dist == Zipf && o.ZipfS <= 1:
		return fmt.Errorf("zipf exponent %g must be above 1", o.ZipfS)
	case o.Dist == Zipf && o.Users < 2:
		return errors.New("zipf needs at least 2 users")
	case o.Rate < 0:
		return fmt.Errorf("rate %g is negative", o.Rate)
	case o.MaxFrameSize < 256:
		return fmt.Errorf("max frame size %d is below 256", o.MaxFrameSize)
	}
	if _, err := ParseDist(string(o.Dist)); err != nil {
		return err
	}
	return nil
}

// Result is what a run measured.
type Result struct {
	// Options are the run's options, defaults filled in.
	Options Options
	// Sent is NOTIFY frames sent, Decisions the ACKs received for them.
	Sent, Decisions uint64
	// NewKeys is how many requests carried a never-sent user key (Options.NewRatio).
	NewKeys uint64
	// Elapsed runs from the first NOTIFY to the last ACK.
	Elapsed time.Duration
	// Statuses counts ACKs per txn.stickyseat.status value.
	Statuses map[string]uint64
	// Latency holds every decision's latency, from the write of its NOTIFY to its ACK.
	Latency *Histogram
	// ProtocolErrors counts errors of the kinds ErrProtocol describes.
	ProtocolErrors uint64
	// MaxPlace is the highest place in line an answer carried (0: no queued answer).
	MaxPlace int
}

// Rate is decisions per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Decisions) / r.Elapsed.Seconds()
}

// StatusNames lists the statuses of r in the contract's order, then any others.
func (r *Result) StatusNames() []string {
	var names []string
	for _, s := range assign.Statuses {
		if r.Statuses[s.String()] > 0 {
			names = append(names, s.String())
		}
	}
	return names
}

// Run connects Options.Connections times to the agent, says HELLO on each and sends NOTIFY
// frames until the duration passes, the request count is reached or ctx is cancelled; then
// it waits for the answers in flight and says DISCONNECT. The error wraps ErrProtocol when
// the agent misbehaved; the Result then still holds what was measured, except when a
// connection or its HELLO failed (nil Result).
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	res := &Result{Options: opts, Statuses: map[string]uint64{}, Latency: &Histogram{}}
	conns := make([]*conn, opts.Connections)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
	}()
	run := rand.Uint64()
	var seq, budget atomic.Uint64
	budget.Store(opts.Requests)
	for i := range conns {
		c, err := dial(ctx, &opts)
		if err != nil {
			return nil, fmt.Errorf("loadgen: connection %d: %w", i+1, err)
		}
		c.keys = newKeySource(&opts, run, i, &seq)
		c.budget = &budget
		conns[i] = c
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.Duration > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, opts.Duration)
		defer stop()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx, start, i)
		}()
	}
	wg.Wait()

	var errs []error
	for i, c := range conns {
		res.Sent += c.sent
		res.Decisions += c.answered
		res.NewKeys += c.newKeys
		res.ProtocolErrors += c.protocolErrors
		res.MaxPlace = max(res.MaxPlace, c.maxPlace)
		for j, n := range c.statuses {
			if n > 0 {
				res.Statuses[statusNames[j]] += n
			}
		}
		res.Latency.Merge(&c.hist)
		res.Elapsed = max(res.Elapsed, c.lastAnswer)
		if c.err != nil {
			errs = append(errs, fmt.Errorf("connection %d: %w", i+1, c.err))
		}
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("loadgen: %d protocol errors, first: %w", res.ProtocolErrors, errs[0])
	}
	return res, nil
}

// dial opens one connection and says HELLO.
func dial(ctx context.Context, o *Options) (*conn, error) {
	d := net.Dialer{Timeout: o.Timeout}
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	c := newConn(nc, o)
	if err := c.hello(); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}
