package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
)

// gcLimit bounds how many expired seats one call removes from each server set it touches, so
// that no call does unbounded work. Expired seats left behind only take memory: live seats are
// counted with ZCOUNT key (cut +inf. See collect in assignScript.
const gcLimit = 64

// maxQuota caps quotas so that the script's cross-multiplied load comparison stays exact in
// Lua's doubles (products below 2^53). Beyond 2^26 distinct users per server the cap is as
// good as unlimited; only tie-breaking between two such servers could differ from the memory
// store.
const maxQuota = 1 << 26

// maxNeedRetries bounds the calls made when the user's seat sits on an unlisted server whose
// key must be declared in KEYS (see assignScript); a second retry only happens when another
// agent moved the same user between two calls.
const maxNeedRetries = 3

// assignScript makes the whole look-up-or-assign decision atomically.
//
// KEYS[1] is the user key, KEYS[2..n+1] the listed servers' sets in configured order; with the
// line on, KEYS[n+2..n+5] the pool's line (see lineKeys); last, optionally, the set of the
// unlisted server named by ARGV[6].
// ARGV: 1 now in µs or "" to read Redis TIME, 2 idle in µs, 3 the user (set member), 4 n,
// 5 garbage-collection limit, 6 the unlisted server whose set is the last key or "", 7 the TTL
// in ms of the keys ("0": no TTL), 8 the line's timeout in µs ("0": no line), 9 the line's
// size limit, then for each listed server: name, quota, "1" if accepting.
// This is the one description of the layout; command.go builds it, naming the positions
// (argNow...argServers).
//
// A seat refreshed at t has score t and is live while now < t+idle, i.e. score > now-idle.
// Numbers cross into Redis commands through fmt() because Lua's default %.14g would round
// microsecond timestamps; they are whole microseconds, so fmt formats them as integers (%d
// casts to a C long in Redis's Lua 5.1: exact, and cheaper than formatting a double).
//
// When the user's seat is on a server that is not listed, its set is not in KEYS (Cluster
// requires every key to be declared), so the script answers {"need", server} without writing
// anything and the caller runs it again with that key added.
//
// Replies: {status, server, previous, position, wait µs, waited µs}, status the name of a
// store.Outcome (its String) or "need" (then server is the unlisted one).
// lapseLua removes the places of the line (local names line, asked, joined, meta) whose user
// has not asked for qtimeout µs: a place asked for at t lapses at t+qtimeout exactly. It removes
// at most store.LapseLimit places per call (the LIMIT below), so that a mass lapse (a whole
// line of users gone at once) costs every call a bounded time instead of one call blocking
// Redis for every agent; the rest go with the next calls.
var lapseLua = `
  local lapsed = redis.call('ZRANGEBYSCORE', asked, '-inf', fmt(now - qtimeout), 'LIMIT', 0, ` + strconv.Itoa(store.LapseLimit) + `)
  if #lapsed > 0 then
    for _, m in ipairs(lapsed) do
      redis.call('ZREM', line, m)
      redis.call('ZREM', asked, m)
      redis.call('HDEL', joined, m)
    end
    redis.call('HINCRBY', meta, 'lapsed', #lapsed)
  end
`

var assignScript = `
local function fmt(x) return string.format('%d', x) end

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local idle = tonumber(ARGV[2])
local member = ARGV[3]
local n = tonumber(ARGV[4])
local gclimit = tonumber(ARGV[5])
local extra = ARGV[6]
local ttl = ARGV[7]
local cut = now - idle
local nowS, cutS = fmt(now), fmt(cut)

local qtimeout = tonumber(ARGV[8])
local function name(i) return ARGV[7 + 3 * i] end
local function quota(i) return tonumber(ARGV[8 + 3 * i]) end
local function accepting(i) return ARGV[9 + 3 * i] == '1' end
local function reply(status, server, previous) return {status, server, previous, '0', '0', '0'} end

-- Remove at most gclimit expired seats: they are the lowest scores, so ranks 0..k-1.
local function collect(key)
  local expired = redis.call('ZCOUNT', key, '-inf', cutS)
  if expired > 0 then
    redis.call('ZREMRANGEBYRANK', key, 0, math.min(expired, gclimit) - 1)
  end
end

-- seat refreshes the user's seat on server i; same is true when the user key already names
-- that server, so that only its TTL needs refreshing (no new value for Redis to allocate).
local function seat(i, same)
  local key = KEYS[1 + i]
  redis.call('ZADD', key, nowS, member)
  if ttl ~= '0' then
    redis.call('PEXPIRE', key, ttl)
    if same then
      redis.call('PEXPIRE', KEYS[1], ttl)
    else
      redis.call('SET', KEYS[1], name(i), 'PX', ttl)
    end
  elseif not same then
    redis.call('SET', KEYS[1], name(i))
  end
end

local released = ''
local prev = redis.call('GET', KEYS[1])
if prev then
  local listed = nil
  for i = 1, n do
    if name(i) == prev then listed = i; break end
  end
  if listed then
    local key = KEYS[1 + listed]
    local score = redis.call('ZSCORE', key, member)
    if score and tonumber(score) > cut then
      seat(listed, true)
      collect(key)
      return reply('hit', prev, '')
    end
    redis.call('ZREM', key, member)
  elseif extra ~= prev then
    return reply('need', prev, '')
  else
    local key = KEYS[#KEYS]
    local score = redis.call('ZSCORE', key, member)
    if score and tonumber(score) > cut then released = prev end
    redis.call('ZREM', key, member)
  end
end

local best, bestUsed, bestQuota, free = nil, 0, 0, 0
for i = 1, n do
  local key = KEYS[1 + i]
  collect(key)
  if accepting(i) then
    local q = quota(i)
    local used = redis.call('ZCOUNT', key, '(' .. cutS, '+inf')
    if used < q then
      free = free + q - used
      if best == nil or used * bestQuota < bestUsed * q then
        best, bestUsed, bestQuota = i, used, q
      end
    end
  end
end

local waited = 0
if qtimeout > 0 then
  local line, asked, joined, meta = KEYS[n + 2], KEYS[n + 3], KEYS[n + 4], KEYS[n + 5]
` + lapseLua + `
  local len = redis.call('ZCARD', line)
  local rank = redis.call('ZRANK', line, member)
  local admit
  if rank then admit = free >= rank + 1 else admit = free > len end
  if not admit then
    redis.call('DEL', KEYS[1])
    if not rank then
      if len >= tonumber(ARGV[9]) then return reply('full', '', released) end
      redis.call('ZADD', line, redis.call('HINCRBY', meta, 'ticket', 1), member)
      redis.call('HSET', joined, member, nowS)
      rank = len
    end
    redis.call('ZADD', asked, nowS, member)
    if ttl ~= '0' then
      local qttl = fmt(math.floor(qtimeout / 1000) + 1)
      for _, k in ipairs({line, asked, joined, meta}) do redis.call('PEXPIRE', k, qttl) end
    end
    local interval = tonumber(redis.call('HGET', meta, 'interval') or '0')
    return {'queued', '', released, fmt(rank + 1), fmt(interval * (rank + 1)), '0'}
  end
  if rank then
    waited = now - tonumber(redis.call('HGET', joined, member))
    redis.call('ZREM', line, member)
    redis.call('ZREM', asked, member)
    redis.call('HDEL', joined, member)
    local last = redis.call('HGET', meta, 'last')
    if last then
      local gap = now - tonumber(last)
      local interval = tonumber(redis.call('HGET', meta, 'interval') or '0')
      if interval == 0 then interval = gap else interval = math.floor((7 * interval + 3 * gap) / 10) end
      redis.call('HSET', meta, 'interval', fmt(interval))
    end
    redis.call('HSET', meta, 'last', nowS)
  end
end

if best == nil then
  redis.call('DEL', KEYS[1])
  return reply('full', '', released)
end
seat(best)
if released ~= '' then return {'moved', name(best), released, '0', '0', fmt(waited)} end
return {'new', name(best), '', '0', '0', fmt(waited)}
`

var assignLua = goredis.NewScript(assignScript)

// serverKey is the sorted set of one server's seats, user keys scored by last refresh in µs.
func (s *Store) serverKey(pool, server string) string {
	return s.prefix + "{" + pool + "}:srv:" + server
}

// lineKeyNames name the keys of a pool's line: the places scored by ticket (join order), the
// places scored by last request in µs (lapses), the join time of each place, and the line's
// counters (ticket, lapsed, last, interval).
var lineKeyNames = [...]string{"line", "asked", "joined", "meta"}

// lineKeys returns the keys of the pool's line, in lineKeyNames order.
func (s *Store) lineKeys(pool string) []string {
	out := make([]string, len(lineKeyNames))
	for i, name := range lineKeyNames {
		out[i] = s.prefix + "{" + pool + "}:" + name
	}
	return out
}

// userKey holds the name of the server on which the user sits.
func (s *Store) userKey(pool, key string) string {
	return s.prefix + "{" + pool + "}:user:" + key
}

// decide runs the script (batched with concurrent calls, reloaded on NOSCRIPT: see batcher)
// and runs it again when the user's seat sits on an unlisted server whose key has to be
// declared. It returns by deadline.
func (s *Store) decide(ctx context.Context, deadline time.Time, req store.Request) (store.Result, error) {
	b := s.batch.get(req.Pool)
	if b == nil {
		return store.Result{}, errClosed
	}
	base := s.command(s.template(b, req), req)
	cmd := base
	for range maxNeedRetries {
		reply, err := b.call(ctx, deadline, cmd)
		if err != nil {
			return store.Result{}, err
		}
		status, res, err := parseReply(reply)
		if err != nil {
			return store.Result{}, err
		}
		if status == "need" {
			cmd = s.withUnlisted(base, req.Pool, res.Server)
			continue
		}
		var ok bool
		if res.Outcome, ok = store.ParseOutcome(status); !ok {
			return store.Result{}, fmt.Errorf("unexpected script status %q", status)
		}
		return res, nil
	}
	return store.Result{}, errors.New("seat kept moving between unlisted servers, giving up")
}

// parseReply reads the script's reply: status, server, previous, then the position, wait and
// waited as decimal integers (µs for the durations).
func parseReply(reply any) (string, store.Result, error) {
	fields, ok := reply.([]any)
	if !ok || len(fields) != 6 {
		return "", store.Result{}, fmt.Errorf("unexpected script reply %v", reply)
	}
	var out [6]string
	for i, f := range fields {
		if out[i], ok = f.(string); !ok {
			return "", store.Result{}, fmt.Errorf("unexpected script reply %v", reply)
		}
	}
	var nums [3]int64
	for i := range nums {
		n, err := strconv.ParseInt(out[3+i], 10, 64)
		if err != nil {
			return "", store.Result{}, fmt.Errorf("unexpected script reply %v", reply)
		}
		nums[i] = n
	}
	return out[0], store.Result{Server: out[1], Previous: out[2], Position: int(nums[0]),
		Wait: time.Duration(nums[1]) * time.Microsecond, Waited: time.Duration(nums[2]) * time.Microsecond}, nil
}

// ceilDiv returns d in whole units, rounded up, so that a seat never lives shorter than asked.
func ceilDiv(d, unit time.Duration) int64 {
	n := int64(d / unit)
	if d%unit != 0 {
		n++
	}
	return n
}
