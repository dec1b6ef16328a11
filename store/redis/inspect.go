package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
)

// redisNow is the time the seats are scored in: Redis TIME, or the test clock.
func (s *Store) redisNow(ctx context.Context) (time.Time, error) {
	if s.clock != nil {
		return s.clock(), nil
	}
	return s.client.Time(ctx).Result()
}

// LiveCounts returns the live seats on each of the given servers of the pool, counted in
// Redis as the script counts them (servers with none are absent).
func (s *Store) LiveCounts(ctx context.Context, pool string, servers []string, idle time.Duration) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	now, err := s.redisNow(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis counts in pool %q: %w", pool, err)
	}
	cut := "(" + strconv.FormatInt(now.Add(-idle).UnixMicro(), 10)
	pipe := s.client.Pipeline()
	cmds := make([]*goredis.IntCmd, len(servers))
	for i, srv := range servers {
		cmds[i] = pipe.ZCount(ctx, s.serverKey(pool, srv), cut, "+inf")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis counts in pool %q: %w", pool, err)
	}
	out := make(map[string]int, len(servers))
	for i, srv := range servers {
		if n := cmds[i].Val(); n > 0 {
			out[srv] = int(n)
		}
	}
	return out, nil
}

// LiveSeats returns up to limit live seats of the pool on the given servers, most recently
// seen first. Each server's set is read with a LIMIT of limit, so a call costs O(limit) per
// server; a limit of zero sends nothing (a ZRANGEBYSCORE without LIMIT would send every seat).
func (s *Store) LiveSeats(ctx context.Context, pool string, servers []string, idle time.Duration, limit int) ([]store.Seat, error) {
	if limit <= 0 || len(servers) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	now, err := s.redisNow(ctx)
	if err != nil {
		return nil, fmt.Errorf("redis seats in pool %q: %w", pool, err)
	}
	cut := "(" + strconv.FormatInt(now.Add(-idle).UnixMicro(), 10)
	pipe := s.client.Pipeline()
	cmds := make([]*goredis.ZSliceCmd, len(servers))
	for i, srv := range servers {
		cmds[i] = pipe.ZRevRangeByScoreWithScores(ctx, s.serverKey(pool, srv), &goredis.ZRangeBy{Min: cut, Max: "+inf", Count: int64(limit)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis seats in pool %q: %w", pool, err)
	}
	var out []store.Seat
	for i, srv := range servers {
		for _, z := range cmds[i].Val() {
			last := time.UnixMicro(int64(z.Score))
			key, _ := z.Member.(string)
			out = append(out, store.Seat{Key: key, Server: srv, LastSeen: last, Expires: last.Add(idle)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastSeen.After(out[j].LastSeen) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Evict frees the user's seat at once, for every agent; the next request is a newcomer's.
// It reports whether the user had a seat.
func (s *Store) Evict(ctx context.Context, pool, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	uk := s.userKey(pool, key)
	server, err := s.client.Get(ctx, uk).Result()
	if errors.Is(err, goredis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis evict in pool %q: %w", pool, err)
	}
	// Both keys carry the pool's hash tag: one slot, one transaction.
	_, err = s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.ZRem(ctx, s.serverKey(pool, server), key)
		p.Del(ctx, uk)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("redis evict in pool %q: %w", pool, err)
	}
	if s.cache != nil {
		s.cache.remove(pool, key)
	}
	return true, nil
}

// overridesKey holds operators' run-time changes (drain, quota), shared by every agent.
func (s *Store) overridesKey() string { return s.prefix + "overrides" }

// Overrides returns the operators' run-time changes: field "pool/server", value
// "state=drain,quota=5" (either part may be absent).
func (s *Store) Overrides(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	m, err := s.client.HGetAll(ctx, s.overridesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redis overrides: %w", err)
	}
	return m, nil
}

// SetOverride records (value non-empty) or clears one server's run-time change.
func (s *Store) SetOverride(ctx context.Context, field, value string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if strings.ContainsAny(field, "\x00") {
		return fmt.Errorf("redis override: bad field %q", field)
	}
	var err error
	if value == "" {
		err = s.client.HDel(ctx, s.overridesKey(), field).Err()
	} else {
		err = s.client.HSet(ctx, s.overridesKey(), field, value).Err()
	}
	if err != nil {
		return fmt.Errorf("redis override: %w", err)
	}
	return nil
}

// LiveSeat returns the user's live seat, if any.
func (s *Store) LiveSeat(ctx context.Context, pool, key string, idle time.Duration) (store.Seat, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	server, err := s.client.Get(ctx, s.userKey(pool, key)).Result()
	if errors.Is(err, goredis.Nil) {
		return store.Seat{}, false, nil
	}
	if err != nil {
		return store.Seat{}, false, fmt.Errorf("redis seat in pool %q: %w", pool, err)
	}
	score, err := s.client.ZScore(ctx, s.serverKey(pool, server), key).Result()
	if errors.Is(err, goredis.Nil) {
		return store.Seat{}, false, nil
	}
	if err != nil {
		return store.Seat{}, false, fmt.Errorf("redis seat in pool %q: %w", pool, err)
	}
	now, err := s.redisNow(ctx)
	if err != nil {
		return store.Seat{}, false, fmt.Errorf("redis seat in pool %q: %w", pool, err)
	}
	last := time.UnixMicro(int64(score))
	if !now.Before(last.Add(idle)) {
		return store.Seat{}, false, nil
	}
	return store.Seat{Key: key, Server: server, LastSeen: last, Expires: last.Add(idle)}, true, nil
}
