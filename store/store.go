// Package store defines the seat store contract that the memory and Redis stores implement
// and every consumer (the assigner, the admin API, the metrics) reads: one set of interfaces,
// one error contract, one contract suite (store/storetest) run on every backend.
package store

import (
	"context"
	"errors"
	"time"
)

// Store is everything a seat store implements. A new backend asserts
// `var _ store.Store = (*T)(nil)` and runs storetest.Run; consumers take the smallest of the
// interfaces below that does their job.
//
// Errors: a method fails only when the backend could not do the work (network, timeout,
// context done); "nothing there" is never an error (a zero count, no seat, false). An error
// means nothing changed for that call. Invalid arguments to Assign wrap ErrInvalidRequest.
type Store interface {
	Assigner
	Inspector
	Overrides
}

// Assigner makes seat decisions. Implementations decide one request atomically and are safe
// for concurrent use.
type Assigner interface {
	// Assign looks up or grants the seat of req.Key in req.Pool with the semantics of Request
	// and Outcome. An invalid request returns an error wrapping ErrInvalidRequest; a done
	// context returns its error.
	Assign(ctx context.Context, req Request) (Result, error)
	// NeverBlocks reports whether Assign finishes without waiting on I/O (the memory store):
	// callers then need not put a deadline on the decision.
	NeverBlocks() bool
}

// Inspector reads and frees seats for operators. The servers and idle arguments are the
// pool's, as the last Assign was given them: the Redis store needs them to find the seats,
// and every store answers for exactly those servers.
type Inspector interface {
	// LiveCounts returns the number of live seats on each listed server (servers holding none
	// are absent). It costs one command per server, never one per seat, so metrics may call it
	// on every scrape.
	LiveCounts(ctx context.Context, pool string, servers []string, idle time.Duration) (map[string]int, error)
	// LiveSeats returns up to limit live seats on the listed servers, most recently seen
	// first. A limit of zero or less returns none and costs nothing.
	LiveSeats(ctx context.Context, pool string, servers []string, idle time.Duration, limit int) ([]Seat, error)
	// LiveSeat returns one user's live seat; false when the user holds none.
	LiveSeat(ctx context.Context, pool, key string, idle time.Duration) (Seat, bool, error)
	// Evict frees the user's seat, and their place in the line, at once; the next request is
	// a newcomer's. It reports whether the user held either.
	Evict(ctx context.Context, pool, key string) (bool, error)
	// Line returns the pool's line with up to limit places from its head, lapsed places
	// removed first (timeout is the pool's Queue.Timeout). It costs O(limit) plus the
	// lapsed places, never O(places).
	Line(ctx context.Context, pool string, timeout time.Duration, limit int) (Line, error)
}

// Line is a pool's waiting line as operators see it.
type Line struct {
	// Length is the number of places held.
	Length int
	// Lapsed counts the places that lapsed in this pool since the store began.
	Lapsed uint64
	// Head lists the first places, head first.
	Head []Place
}

// Place is one user's place in a line.
type Place struct {
	Key      string
	Position int
	// Joined is when the user joined the line; LastSeen when they last asked.
	Joined, LastSeen time.Time
	// Lapses is when the place lapses if its user does not ask again.
	Lapses time.Time
}

// Overrides keep operators' run-time changes (drain, quota) where every agent sharing the
// seats reads them: in the process for the memory store, in Redis for the Redis store.
// A field is "pool/server"; a value is "state=drain,quota=5" (either part may be absent).
type Overrides interface {
	// Overrides returns every recorded change; the map is the caller's.
	Overrides(ctx context.Context) (map[string]string, error)
	// SetOverride records one server's change, or clears it when value is empty.
	SetOverride(ctx context.Context, field, value string) error
}

// Stats are the counters a store that talks to a server keeps (the Redis store), for metrics.
type Stats interface {
	// Errors counts decisions the server failed.
	Errors() uint64
	// RoundTrips counts decision commands sent to the server, alone or pipelined.
	RoundTrips() uint64
	// Pipelines counts the times commands were sent and their replies awaited, so
	// RoundTrips/Pipelines is the mean batch size.
	Pipelines() uint64
	// CacheHits counts decisions answered from memory without the server.
	CacheHits() uint64
}

// Server is one server on which a seat in a pool may be held.
type Server struct {
	// Name is the HAProxy server name; it is what the agent answers.
	Name string
	// Quota is the maximum number of distinct live seats on this server. A quota lowered
	// below the current use keeps existing seats (they expire normally) and grants none.
	Quota int
	// Accepting is true when the server takes new seats (state up). A listed server that is
	// not accepting (drain) keeps the seats it holds.
	Accepting bool
}

// Request asks for the seat of one user in one pool.
type Request struct {
	// Pool names the set of seats; pools are independent.
	Pool string
	// Key identifies the user. The caller bounds its length (see assign.MaxKeyLen).
	Key string
	// Servers lists, in configured order, every server on which a seat is valid. A seat held
	// on a server missing from this list is released, and the user is given a new one.
	// Ties between equally loaded servers go to the earlier one.
	Servers []Server
	// Idle is how long a seat lives after its last refresh. A seat refreshed at t is live
	// at every instant before t+Idle and expired from t+Idle on.
	Idle time.Duration
	// Queue, when its Max is positive, makes a user who finds no seat free for them wait in
	// the pool's line (OutcomeQueued) instead of being answered OutcomeFull. The zero value
	// keeps the line off: every such user is answered OutcomeFull.
	Queue Queue
}

// Lists reports whether server is one of r.Servers: a seat elsewhere is no longer valid.
func (r Request) Lists(server string) bool {
	for _, s := range r.Servers {
		if s.Name == server {
			return true
		}
	}
	return false
}

// Queue is a pool's waiting line: one first-come-first-served line per pool, shared by every
// agent using the store.
//
// Admission: a user at place p (1 is the head) is seated when the pool has at least p free
// seats (the sum over accepting servers of quota minus live seats, never below zero), so a
// freed seat goes to the head whoever asks first; a user not in line is seated only when the
// free seats outnumber the places. Anyone else joins the back, unless the line already holds
// Max places (OutcomeFull). A place lapses Timeout after its user's last request: a place
// asked for at t is held at every instant before t+Timeout.
type Queue struct {
	Timeout time.Duration
	Max     int
}

// LapseLimit is the most lapsed places a store removes per call (a request or an inspection).
// After a mass lapse of more places than that, the rest are removed by the next calls; until
// then they still count ahead of the live places behind them, so positions are overstated and
// seats wait for the backlog to clear, but no one is ever seated ahead of an earlier live place.
const LapseLimit = 256

// On reports whether the line is in use.
func (q Queue) On() bool { return q.Max > 0 }

// Outcome says what the store did with a request.
type Outcome uint8

// Outcomes of Assign.
const (
	// OutcomeHit: the user held a live seat on a listed server; it was refreshed.
	OutcomeHit Outcome = iota + 1
	// OutcomeNew: the user had no live seat and was granted one.
	OutcomeNew
	// OutcomeMoved: the user's live seat was on a server no longer listed; it was released
	// and a seat on another server was granted.
	OutcomeMoved
	// OutcomeFull: the user holds no seat and no accepting server has room (with the line on:
	// the line is full too). A seat on a server no longer listed is released all the same.
	OutcomeFull
	// OutcomeQueued: the user holds no seat and waits at Result.Position in the pool's line.
	// A seat on a server no longer listed is released all the same.
	OutcomeQueued
)

// outcomeNames is the one spelling of the outcomes: the status HAProxy reads for each
// (assign.Status takes them from here) and the status the Redis script replies.
var outcomeNames = [...]string{OutcomeHit: "hit", OutcomeNew: "new", OutcomeMoved: "moved", OutcomeFull: "full", OutcomeQueued: "queued"}

// String returns the status name HAProxy sees for the outcome ("unknown" for none).
func (o Outcome) String() string {
	if o > 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// ParseOutcome returns the outcome String names, and false for any other name.
func ParseOutcome(name string) (Outcome, bool) {
	for o, n := range outcomeNames {
		if o > 0 && n == name {
			return Outcome(o), true
		}
	}
	return 0, false
}

// Result is the decision of the store for one request.
type Result struct {
	// Outcome is what happened.
	Outcome Outcome
	// Server holds the user's seat; empty when Outcome is OutcomeFull.
	Server string
	// Previous is the server of the seat that was released (OutcomeMoved, or OutcomeFull or
	// OutcomeQueued after a release); empty otherwise.
	Previous string
	// Position is the user's place in the line when Outcome is OutcomeQueued (1 is next).
	Position int
	// Wait estimates, for OutcomeQueued, how long until the user is seated: Position times
	// the recent interval between seats given from the line. Zero when there is no estimate
	// yet (fewer than two users seated from the line).
	Wait time.Duration
	// Waited is, for a user seated from the line (OutcomeNew or OutcomeMoved), how long
	// since they joined it; zero otherwise.
	Waited time.Duration
}

// ErrInvalidRequest is returned (wrapped) for a request the store cannot act on: empty pool
// or key, no servers, a negative quota, a non-positive idle time. (Quota 0 is valid: the server
// keeps the seats it holds and takes no new ones.)
var ErrInvalidRequest = errors.New("invalid store request")

// Validate checks the request against the contract.
func (r Request) Validate() error {
	switch {
	case r.Pool == "":
		return errors.Join(ErrInvalidRequest, errors.New("empty pool"))
	case r.Key == "":
		return errors.Join(ErrInvalidRequest, errors.New("empty key"))
	case len(r.Servers) == 0:
		return errors.Join(ErrInvalidRequest, errors.New("no servers"))
	case r.Idle <= 0:
		return errors.Join(ErrInvalidRequest, errors.New("idle time must be positive"))
	}
	if r.Queue.Max < 0 || r.Queue.On() && r.Queue.Timeout <= 0 {
		return errors.Join(ErrInvalidRequest, errors.New("a line needs a positive timeout and a non-negative size"))
	}
	for _, s := range r.Servers {
		if s.Name == "" || s.Quota < 0 {
			return errors.Join(ErrInvalidRequest, errors.New("server with empty name or negative quota"))
		}
	}
	return nil
}

// Seat is one live seat, as operators see it.
type Seat struct {
	Key      string
	Server   string
	LastSeen time.Time
	// Expires is when the seat frees if its user does not come back.
	Expires time.Time
}
