// Package store defines the seat store contract shared by the memory and Redis implementations.
package store

import (
	"errors"
	"time"
)

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
}

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
	// OutcomeFull: the user holds no seat and no accepting server has room. A seat on a server
	// no longer listed is released all the same.
	OutcomeFull
)

// String returns the status name HAProxy sees for the outcome.
func (o Outcome) String() string {
	switch o {
	case OutcomeHit:
		return "hit"
	case OutcomeNew:
		return "new"
	case OutcomeMoved:
		return "moved"
	case OutcomeFull:
		return "full"
	}
	return "unknown"
}

// Result is the decision of the store for one request.
type Result struct {
	// Outcome is what happened.
	Outcome Outcome
	// Server holds the user's seat; empty when Outcome is OutcomeFull.
	Server string
	// Previous is the server of the seat that was released (OutcomeMoved, or OutcomeFull
	// after a release); empty otherwise.
	Previous string
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
