package assign

import "github.com/stickyseat/stickyseat/store"

// Status is what HAProxy reads in txn.stickyseat.status.
type Status uint8

// Statuses, as HAProxy's rules read them (values of txn.stickyseat.status).
const (
	StatusHit     Status = iota + 1 // known user, seat refreshed
	StatusNew                       // seat granted
	StatusMoved                     // old server gone or down, new seat granted
	StatusFull                      // every server full
	StatusInvalid                   // no usable key
	StatusError                     // store failed
	StatusQueued                    // no seat free: waiting in the pool's line
)

// Statuses lists every status, in order, for counters and documentation.
var Statuses = []Status{StatusHit, StatusNew, StatusMoved, StatusFull, StatusInvalid, StatusError, StatusQueued}

// outcomes are the store's outcomes that the statuses answer; their names are the statuses'.
var outcomes = [...]store.Outcome{StatusHit: store.OutcomeHit, StatusNew: store.OutcomeNew, StatusMoved: store.OutcomeMoved, StatusFull: store.OutcomeFull, StatusQueued: store.OutcomeQueued}

// String returns the value the agent sets in txn.stickyseat.status: a store outcome's name,
// or invalid and error, the two statuses the agent answers without the store.
func (s Status) String() string {
	if int(s) < len(outcomes) && outcomes[s] != 0 {
		return outcomes[s].String()
	}
	if s == StatusInvalid {
		return "invalid"
	}
	return "error"
}

// Seated reports whether the status comes with a server.
func (s Status) Seated() bool { return s == StatusHit || s == StatusNew || s == StatusMoved }
