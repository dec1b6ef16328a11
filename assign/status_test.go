package assign

import "testing"

// TestStatusNames pins the values HAProxy rules read in txn.stickyseat.status.
func TestStatusNames(t *testing.T) {
	want := map[Status]string{StatusHit: "hit", StatusNew: "new", StatusMoved: "moved", StatusFull: "full",
		StatusInvalid: "invalid", StatusError: "error", StatusQueued: "queued", 0: "error", 99: "error"}
	for s, name := range want {
		if got := s.String(); got != name {
			t.Errorf("Status(%d).String() = %q; want %q", s, got, name)
		}
	}
	if len(Statuses) != 7 {
		t.Errorf("Statuses has %d statuses; want 7", len(Statuses))
	}
}
