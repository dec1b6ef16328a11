package memory

import (
	"context"
	"maps"
)

// Overrides returns the operators' run-time changes recorded in this process: field
// "pool/server", value "state=drain,quota=5". The map is the caller's.
func (s *Store) Overrides(context.Context) (map[string]string, error) {
	s.overridesMu.Lock()
	defer s.overridesMu.Unlock()
	return maps.Clone(s.overrides), nil
}

// SetOverride records one server's change, or clears it when value is empty. Changes live as
// long as the process: a memory store shares them with no other agent.
func (s *Store) SetOverride(_ context.Context, field, value string) error {
	s.overridesMu.Lock()
	defer s.overridesMu.Unlock()
	if value == "" {
		delete(s.overrides, field)
		return nil
	}
	if s.overrides == nil {
		s.overrides = make(map[string]string)
	}
	s.overrides[field] = value
	return nil
}
