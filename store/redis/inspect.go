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

// Evict frees the user's seat, and their place in the pool's line, at once, for every
// agent; the next request is a newcomer's. It reports whether the user held either.
func (s *Store) Evict(ctx context.Context, pool, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	uk := s.userKey(pool, key)
	server, err := s.client.Get(ctx, uk).Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return false, fmt.Errorf("redis evict in pool %q: %w", pool, err)
	}
	lk := s.lineKeys(pool)
	var inLine *goredis.IntCmd
	// Every key carries the pool's hash tag: one slot, one transaction.
	_, err = s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		if server != "" {
			p.ZRem(ctx, s.serverKey(pool, server), key)
			p.Del(ctx, uk)
		}
		inLine = p.ZRem(ctx, lk[0], key)
		p.ZRem(ctx, lk[1], key)
		p.HDel(ctx, lk[2], key)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("redis evict in pool %q: %w", pool, err)
	}
	if s.cache != nil {
		s.cache.remove(pool, key)
	}
	return server != "" || inLine.Val() > 0, nil
}

// lineScript reads a pool's line after removing its lapsed places. KEYS: lineKeys. ARGV: 1 now
// in µs or "" for Redis TIME, 2 the timeout in µs, 3 the most places to list. Reply: length,
// lapsed count, then for each listed place: key, joined µs, last request µs.
var lineScript = goredis.NewScript(`
local function fmt(x) return string.format('%d', x) end
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local qtimeout = tonumber(ARGV[2])
local line, asked, joined, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if qtimeout > 0 then
` + lapseLua + `
end
local out = {redis.call('ZCARD', line), tonumber(redis.call('HGET', meta, 'lapsed') or '0')}
local limit = tonumber(ARGV[3])
if limit > 0 then
  for _, m in ipairs(redis.call('ZRANGE', line, 0, limit - 1)) do
    table.insert(out, m)
    table.insert(out, redis.call('HGET', joined, m) or '0')
    table.insert(out, redis.call('ZSCORE', asked, m) or '0')
  end
end
return out
`)

// Line returns the pool's line with up to limit places from its head, lapsed places removed.
func (s *Store) Line(ctx context.Context, pool string, timeout time.Duration, limit int) (store.Line, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	now := ""
	if s.clock != nil {
		now = strconv.FormatInt(s.clock().UnixMicro(), 10)
	}
	reply, err := lineScript.Run(ctx, s.client, s.lineKeys(pool), now, ceilDiv(timeout, time.Microsecond), max(limit, 0)).Slice()
	if err != nil {
		return store.Line{}, fmt.Errorf("redis line of pool %q: %w", pool, err)
	}
	bad := fmt.Errorf("redis line of pool %q: unexpected reply %v", pool, reply)
	if len(reply) < 2 || (len(reply)-2)%3 != 0 {
		return store.Line{}, bad
	}
	length, ok1 := reply[0].(int64)
	lapsed, ok2 := reply[1].(int64)
	if !ok1 || !ok2 {
		return store.Line{}, bad
	}
	out := store.Line{Length: int(length), Lapsed: uint64(lapsed)}
	for i := 2; i+2 < len(reply); i += 3 {
		key, _ := reply[i].(string)
		joined, err1 := strconv.ParseFloat(fmt.Sprint(reply[i+1]), 64)
		asked, err2 := strconv.ParseFloat(fmt.Sprint(reply[i+2]), 64)
		if err1 != nil || err2 != nil {
			return store.Line{}, bad
		}
		last := time.UnixMicro(int64(asked))
		out.Head = append(out.Head, store.Place{Key: key, Position: len(out.Head) + 1,
			Joined: time.UnixMicro(int64(joined)), LastSeen: last, Lapses: last.Add(timeout)})
	}
	return out, nil
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
