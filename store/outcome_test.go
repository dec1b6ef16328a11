package store

import "testing"

func TestOutcomeNames(t *testing.T) {
	for o, want := range map[Outcome]string{OutcomeHit: "hit", OutcomeNew: "new", OutcomeMoved: "moved", OutcomeFull: "full", OutcomeQueued: "queued"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q; want %q", o, got, want)
		}
		if got, ok := ParseOutcome(want); !ok || got != o {
			t.Errorf("ParseOutcome(%q) = %v, %v; want %v, true", want, got, ok, o)
		}
	}
	for _, name := range []string{"", "unknown", "need", "invalid", "error", "HIT"} {
		if o, ok := ParseOutcome(name); ok {
			t.Errorf("ParseOutcome(%q) = %v, true; want false", name, o)
		}
	}
	if s := Outcome(0).String(); s != "unknown" {
		t.Errorf("Outcome(0).String() = %q; want unknown", s)
	}
}
