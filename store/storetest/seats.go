package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/stickyseat/stickyseat/store"
)

// invalidRequest checks that requests the store cannot act on fail with ErrInvalidRequest
// and take no seat.
func (s *suite) invalidRequest(t *testing.T) {
	e := s.env(t)
	one := servers(up("s1", 1))
	valid := store.Request{Pool: e.pool(""), Key: "u1", Servers: one, Idle: idle}
	tests := []struct {
		name   string
		modify func(r *store.Request)
	}{
		{"empty pool", func(r *store.Request) { r.Pool = "" }},
		{"empty key", func(r *store.Request) { r.Key = "" }},
		{"nil servers", func(r *store.Request) { r.Servers = nil }},
		{"empty servers", func(r *store.Request) { r.Servers = []store.Server{} }},
		{"zero idle", func(r *store.Request) { r.Idle = 0 }},
		{"negative idle", func(r *store.Request) { r.Idle = -idle }},
		{"server without name", func(r *store.Request) { r.Servers = servers(up("", 1)) }},
		{"negative quota", func(r *store.Request) { r.Servers = servers(up("s1", -1)) }},
		{"bad server after a good one", func(r *store.Request) { r.Servers = servers(up("s1", 1), up("", 1)) }},
	}
	for _, tt := range tests {
		req := valid
		tt.modify(&req)
		got, err := e.store.Assign(context.Background(), req)
		if !errors.Is(err, store.ErrInvalidRequest) {
			t.Errorf("%s: Assign(%+v) = %+v, %v; want error wrapping %v", tt.name, req, got, err, store.ErrInvalidRequest)
		}
	}
	// None of the requests above may have taken the only slot.
	if got, want := e.assign("", "u2", one), granted("s1"); got != want {
		t.Errorf("Assign(u2) after invalid requests = %+v; want %+v", got, want)
	}
}

func (s *suite) newSeat(t *testing.T) {
	two := servers(up("s1", 2))
	s.play(t, []scenario{
		{"first request is granted, the next one hits", []step{
			{key: "u1", servers: two, want: granted("s1")},
			{key: "u1", servers: two, want: hit("s1")},
			{key: "u1", servers: two, want: hit("s1")},
		}},
		{"second user gets the second slot", []step{
			{key: "u1", servers: two, want: granted("s1")},
			{key: "u2", servers: two, want: granted("s1")},
			{key: "u3", servers: two, want: full()},
		}},
	})
}

func (s *suite) hitRefreshes(t *testing.T) {
	one := servers(up("s1", 1))
	s.play(t, []scenario{
		{"refreshed seat outlives its first expiry", []step{
			{key: "u1", servers: one, want: granted("s1")},
			{after: idle * 6 / 10, key: "u1", servers: one, want: hit("s1")},
			// 12s after the grant: expired unless the hit at 6s refreshed it.
			{after: idle * 6 / 10, key: "u1", servers: one, want: hit("s1")},
			{key: "u2", servers: one, want: full()},
			// The hit at 12s is the last refresh: live until 22s, exclusive.
			{after: idle - 1, key: "u2", servers: one, want: full()},
			{after: 1, key: "u2", servers: one, want: granted("s1")},
			{key: "u1", servers: one, want: full()},
		}},
	})
}

func (s *suite) expiryBoundary(t *testing.T) {
	one := servers(up("s1", 1))
	two := servers(up("s1", 2))
	s.play(t, []scenario{
		{"live one nanosecond before", []step{
			{key: "u1", servers: one, want: granted("s1")},
			{after: idle - 1, key: "u2", servers: one, want: full()},
			{key: "u1", servers: one, want: hit("s1")},
		}},
		{"slot free at the boundary for another user", []step{
			{key: "u1", servers: one, want: granted("s1")},
			{after: idle, key: "u2", servers: one, want: granted("s1")},
			{key: "u1", servers: one, want: full()},
		}},
		{"user comes back at the boundary to a new seat", []step{
			{key: "u1", servers: one, want: granted("s1")},
			{after: idle, key: "u1", servers: one, want: granted("s1")},
			{key: "u1", servers: one, want: hit("s1")},
		}},
		{"seats expire one by one", []step{
			{key: "u1", servers: two, want: granted("s1")},
			{after: 3 * idle / 10, key: "u2", servers: two, want: granted("s1")},
			{after: 7*idle/10 - 1, key: "u3", servers: two, want: full()},
			{after: 1, key: "u3", servers: two, want: granted("s1")},
			{key: "u4", servers: two, want: full()},
			{after: 3*idle/10 - 1, key: "u4", servers: two, want: full()},
			{after: 1, key: "u4", servers: two, want: granted("s1")},
			{key: "u2", servers: two, want: full()},
			{key: "u3", servers: two, want: hit("s1")},
		}},
	})
}

func (s *suite) full(t *testing.T) {
	pair := servers(up("s1", 1), up("s2", 1))
	s.play(t, []scenario{
		{"every server at quota", []step{
			{key: "u1", servers: pair, want: granted("s1")},
			{key: "u2", servers: pair, want: granted("s2")},
			{key: "u3", servers: pair, want: full()},
			{key: "u3", servers: pair, want: full()},
			{key: "u1", servers: pair, want: hit("s1")},
			{key: "u2", servers: pair, want: hit("s2")},
		}},
		{"quota zero grants nothing", []step{
			{key: "u1", servers: servers(up("s1", 0)), want: full()},
			{key: "u1", servers: servers(up("s1", 0), up("s2", 1)), want: granted("s2")},
		}},
		{"no accepting server", []step{
			{key: "u1", servers: servers(draining("s1", 5), draining("s2", 5)), want: full()},
		}},
		{"a full answer holds no seat", []step{
			{key: "u1", servers: servers(up("s1", 0)), want: full()},
			{key: "u2", servers: servers(up("s1", 1)), want: granted("s1")},
		}},
	})
}

func (s *suite) leastUsedPerQuota(t *testing.T) {
	s.play(t, []scenario{
		{"quotas 4, 2, 2", grants(servers(up("s1", 4), up("s2", 2), up("s3", 2)),
			"s1", "s2", "s3", "s1", "s1", "s2", "s3", "s1", "")},
		{"quotas 3, 1", grants(servers(up("s1", 3), up("s2", 1)),
			"s1", "s2", "s1", "s1", "")},
		// 1/3 < 1/2 but 2/3 > 1/2: only an exact ratio comparison gets this order.
		{"quotas 3, 2", grants(servers(up("s1", 3), up("s2", 2)),
			"s1", "s2", "s1", "s2", "s1", "")},
		{"larger quota later in the list", grants(servers(up("s1", 1), up("s2", 3)),
			"s1", "s2", "s2", "s2", "")},
	})
}

// grants scripts distinct new users u1, u2, ... against the same servers, each expected to
// be granted the given server, or to be told full for "".
func grants(list []store.Server, want ...string) []step {
	steps := make([]step, len(want))
	for i, server := range want {
		steps[i] = step{key: "u" + string(rune('a'+i)), servers: list, want: granted(server)}
		if server == "" {
			steps[i].want = full()
		}
	}
	return steps
}

func (s *suite) tiesGoToConfiguredOrder(t *testing.T) {
	ab := servers(up("a", 2), up("b", 2))
	ba := servers(up("b", 2), up("a", 2))
	s.play(t, []scenario{
		{"configured order, not name order", grants(servers(up("s3", 1), up("s1", 1), up("s2", 1)),
			"s3", "s1", "s2", "")},
		{"equal ratios with different quotas", grants(servers(up("s2", 2), up("s1", 4)),
			"s2", "s1", "s1", "s2", "s1", "s1", "")},
		{"each request's own order", []step{
			{key: "u1", servers: ab, want: granted("a")},
			{key: "u2", servers: ba, want: granted("b")},
			{key: "u3", servers: ba, want: granted("b")},
			{key: "u4", servers: ab, want: granted("a")},
			{key: "u5", servers: ab, want: full()},
		}},
	})
}
