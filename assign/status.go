package assign

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

// String returns the value the agent sets in txn.stickyseat.status.
func (s Status) String() string {
	switch s {
	case StatusHit:
		return "hit"
	case StatusNew:
		return "new"
	case StatusMoved:
		return "moved"
	case StatusFull:
		return "full"
	case StatusInvalid:
		return "invalid"
	case StatusError:
		return "error"
	case StatusQueued:
		return "queued"
	}
	return "error"
}

// Seated reports whether the status comes with a server.
func (s Status) Seated() bool { return s == StatusHit || s == StatusNew || s == StatusMoved }
