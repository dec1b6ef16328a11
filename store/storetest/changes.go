package storetest

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/stickyseat/stickyseat/store"
)

func (s *suite) removedServer(t *testing.T) {
	both := servers(up("s1", 1), up("s2", 1))
	only1 := servers(up("s1", 1))
	only2 := servers(up("s2", 1))
	s.play(t, []scenario{
		{"user moved, old slot freed", []step{
			{key: "u1", servers: both, want: granted("s1")},
			{key: "u1", servers: only2, want: moved("s2", "s1")},
			{key: "u1", servers: only2, want: hit("s2")},
			// s1 is free again: a leaked seat would make this full.
			{key: "u2", servers: both, want: granted("s1")},
			{key: "u1", servers: both, want: hit("s2")},
		}},
		{"no room elsewhere: full, old seat released all the same", []step{
			{key: "u1", servers: only1, want: granted("s1")},
			{key: "u2", servers: only2, want: granted("s2")},
			{key: "u1", servers: only2, want: fullReleasing("s1")},
			{key: "u1", servers: only2, want: full()},
			{key: "u3", servers: only1, want: granted("s1")},
		}},
		{"seat on an unlisted server still counts", []step{
			{key: "u1", servers: only1, want: granted("s1")},
			{key: "u2", servers: only2, want: granted("s2")},
			{key: "u3", servers: only1, want: full()},
			{key: "u1", servers: only1, want: hit("s1")},
		}},
		{"expired seat on a removed server is not a move", []step{
			{key: "u1", servers: only1, want: granted("s1")},
			{after: idle, key: "u1", servers: only2, want: granted("s2")},
			{key: "u2", servers: only1, want: granted("s1")},
		}},
		{"moved user comes back to a relisted server", []step{
			{key: "u1", servers: both, want: granted("s1")},
			{key: "u1", servers: only2, want: moved("s2", "s1")},
			{key: "u2", servers: both, want: granted("s1")},
			{key: "u1", servers: both, want: hit("s2")},
			{key: "u3", servers: both, want: full()},
		}},
	})
}

func (s *suite) draining(t *testing.T) {
	both := servers(up("s1", 2), up("s2", 2))
	drain1 := servers(draining("s1", 2), up("s2", 2))
	s.play(t, []scenario{
		{"draining server keeps its users and takes no new ones", []step{
			{key: "u1", servers: both, want: granted("s1")},
			{key: "u2", servers: both, want: granted("s2")},
			{key: "u1", servers: drain1, want: hit("s1")},
			// s1 and s2 are tied at 1/2; only draining keeps u3 off s1.
			{key: "u3", servers: drain1, want: granted("s2")},
			{key: "u4", servers: drain1, want: full()},
			{key: "u1", servers: drain1, want: hit("s1")},
			{key: "u4", servers: both, want: granted("s1")},
		}},
		{"a seat on a draining server still expires", []step{
			{key: "u1", servers: both, want: granted("s1")},
			{after: idle, key: "u1", servers: drain1, want: granted("s2")},
		}},
	})
}

func (s *suite) loweredQuota(t *testing.T) {
	three := servers(up("s1", 3))
	lowered := servers(up("s1", 1))
	s.play(t, []scenario{
		{"existing seats kept, none granted above the quota", []step{
			{key: "u1", servers: three, want: granted("s1")},
			{key: "u2", servers: three, want: granted("s1")},
			{key: "u3", servers: three, want: granted("s1")},
			{key: "u1", servers: lowered, want: hit("s1")},
			{key: "u2", servers: lowered, want: hit("s1")},
			{key: "u3", servers: lowered, want: hit("s1")},
			{key: "u4", servers: lowered, want: full()},
			{key: "u3", servers: servers(up("s1", 0)), want: hit("s1")},
		}},
		{"room again only below the lowered quota", []step{
			{key: "u1", servers: three, want: granted("s1")},
			{after: idle / 2, key: "u2", servers: three, want: granted("s1")},
			{key: "u3", servers: three, want: granted("s1")},
			{after: idle / 2, key: "u4", servers: lowered, want: full()},
			{after: idle / 2, key: "u4", servers: lowered, want: granted("s1")},
		}},
	})
}

func (s *suite) poolsIndependent(t *testing.T) {
	one := servers(up("s1", 1))
	s.play(t, []scenario{
		{"same servers, separate quotas", []step{
			{pool: "a", key: "u1", servers: one, want: granted("s1")},
			{pool: "b", key: "u2", servers: one, want: granted("s1")},
			{pool: "b", key: "u1", servers: one, want: full()},
			{pool: "a", key: "u1", servers: one, want: hit("s1")},
			{pool: "a", key: "u2", servers: one, want: full()},
		}},
		{"same key, separate seats", []step{
			{pool: "a", key: "u1", servers: servers(up("s1", 1), up("s2", 1)), want: granted("s1")},
			{pool: "b", key: "u1", servers: servers(up("s2", 1), up("s1", 1)), want: granted("s2")},
			{pool: "b", key: "u1", servers: servers(up("s1", 1)), want: moved("s1", "s2")},
			{pool: "a", key: "u1", servers: servers(up("s1", 1)), want: hit("s1")},
		}},
		{"expiry per pool", []step{
			{pool: "a", key: "u1", servers: one, want: granted("s1")},
			{after: idle / 2, pool: "b", key: "u1", servers: one, want: granted("s1")},
			{after: idle / 2, pool: "a", key: "u2", servers: one, want: granted("s1")},
			{pool: "b", key: "u2", servers: one, want: full()},
		}},
	})
}

// distinctKeys checks that the store compares keys byte for byte: no normalization, no
// truncation, no trimming, no text encoding that could merge two keys.
func (s *suite) distinctKeys(t *testing.T) {
	long := strings.Repeat("k", 1000)
	keys := []string{
		"a", "A", "a ", " a", "a\x00", "\x00a", "\x00", "\x00\x00",
		"\xff", "\xfe", "\xff\xfe", "é", "e\u0301", "ß", "ss", "日本",
		"a\nb", "a\r\nb", "{a}", "a:b", "a*", "a%", `a\`, "'a'",
		long + "1", long + "2",
	}
	list := servers(up("s1", len(keys)))
	var steps []step
	for _, k := range keys {
		steps = append(steps, step{key: k, servers: list, want: granted("s1")})
	}
	for _, k := range keys {
		steps = append(steps, step{key: k, servers: list, want: hit("s1")})
	}
	steps = append(steps, step{key: "another", servers: list, want: full()})
	s.play(t, []scenario{{"bytes, not text", steps}})
}

// evenDistribution checks where many new users land.
func (s *suite) evenDistribution(t *testing.T) {
	tests := []struct {
		name    string
		servers []store.Server
		users   int
		want    map[string]int
	}{
		{"equal quotas", servers(up("s1", 100), up("s2", 100), up("s3", 100)), 150,
			map[string]int{"s1": 50, "s2": 50, "s3": 50}},
		{"quotas 4, 2, 2", servers(up("s1", 100), up("s2", 50), up("s3", 50)), 100,
			map[string]int{"s1": 50, "s2": 25, "s3": 25}},
		{"filled up", servers(up("s1", 7), up("s2", 11), up("s3", 13)), 40,
			map[string]int{"s1": 7, "s2": 11, "s3": 13, "": 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := s.env(t)
			got := make(map[string]int)
			for i := range tt.users {
				res := e.assign("", fmt.Sprintf("user-%d", i), tt.servers)
				got[res.Server]++
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("servers of %d new users = %v; want %v", tt.users, got, tt.want)
			}
		})
	}
}
