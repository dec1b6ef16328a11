package redis

import (
	"context"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickyseat/stickyseat/store"
)

// A script call is sent as a Redis command built here: EVALSHA, the script's SHA1, the number
// of keys, KEYS, then ARGV. assignScript's doc comment is the one description of what KEYS
// and ARGV hold; the constants below only name ARGV's positions for the Go side.
const (
	cmdNumKeys  = 2
	cmdFirstKey = 3
)

// Positions in ARGV (1-based, as in Lua).
const (
	argNow = 1 + iota
	argIdle
	argUser
	argServerCount
	argGCLimit
	argUnlisted
	argTTL
	argQueueTimeout
	argQueueMax
	argServers // then name, quota, accepting for each listed server
)

// callTemplate is the command of a pool's script call with the parts that depend on the user
// left empty: its servers and idle time are formatted once, since most decisions of a pool
// repeat them. A request uses it when it matches.
type callTemplate struct {
	pool    string
	idle    time.Duration
	queue   store.Queue
	servers []store.Server // a copy of the request's
	keys    int            // the number of keys cmd declares
	cmd     []any
}

func (t *callTemplate) matches(req store.Request) bool {
	return t != nil && t.pool == req.Pool && t.idle == req.Idle && t.queue == req.Queue && slices.Equal(t.servers, req.Servers)
}

// argv is the position of ARGV[i] in a command with keys keys.
func argv(keys, i int) int { return cmdFirstKey + keys + i - 1 }

// template returns the command template of req, from b or made anew (and kept in b).
func (s *Store) template(b *batcher, req store.Request) *callTemplate {
	if t := b.template.Load(); t.matches(req) {
		return t
	}
	n := len(req.Servers)
	keys := n + 1
	if req.Queue.On() {
		keys += len(lineKeyNames)
	}
	cmd := make([]any, argv(keys, argServers), argv(keys, argServers+3*n))
	cmd[0], cmd[1], cmd[cmdNumKeys] = "evalsha", assignLua.Hash(), strconv.Itoa(keys)
	cmd[cmdFirstKey] = "" // the user's key
	for i, srv := range req.Servers {
		cmd[cmdFirstKey+1+i] = s.serverKey(req.Pool, srv.Name)
	}
	cmd[argv(keys, argQueueTimeout)], cmd[argv(keys, argQueueMax)] = "0", "0"
	if req.Queue.On() {
		for i, k := range s.lineKeys(req.Pool) {
			cmd[cmdFirstKey+1+n+i] = k
		}
		cmd[argv(keys, argQueueTimeout)] = strconv.FormatInt(ceilDiv(req.Queue.Timeout, time.Microsecond), 10)
		cmd[argv(keys, argQueueMax)] = strconv.Itoa(req.Queue.Max)
	}
	cmd[argv(keys, argNow)] = "" // Redis TIME, or the test clock
	cmd[argv(keys, argIdle)] = strconv.FormatInt(ceilDiv(req.Idle, time.Microsecond), 10)
	cmd[argv(keys, argUser)] = "" // set per call
	cmd[argv(keys, argServerCount)] = strconv.Itoa(n)
	cmd[argv(keys, argGCLimit)] = strconv.Itoa(gcLimit)
	cmd[argv(keys, argUnlisted)] = "" // set by withUnlisted
	// The TTLs are a safety net measured on Redis's own clock; under a test clock they would
	// disagree with the scores, so they are left out (the scores alone decide liveness).
	cmd[argv(keys, argTTL)] = "0"
	if s.clock == nil {
		cmd[argv(keys, argTTL)] = strconv.FormatInt(ceilDiv(req.Idle, time.Millisecond)+1, 10)
	}
	for _, srv := range req.Servers {
		accepting := "0"
		if srv.Accepting {
			accepting = "1"
		}
		cmd = append(cmd, srv.Name, strconv.Itoa(min(srv.Quota, maxQuota)), accepting)
	}
	t := &callTemplate{pool: req.Pool, idle: req.Idle, queue: req.Queue, servers: slices.Clone(req.Servers), keys: keys, cmd: cmd}
	b.template.Store(t)
	return t
}

// command returns the command of req's script call, from its template.
func (s *Store) command(t *callTemplate, req store.Request) []any {
	cmd := slices.Clone(t.cmd)
	keys := t.keys
	cmd[cmdFirstKey] = s.userKey(req.Pool, req.Key)
	cmd[argv(keys, argUser)] = req.Key
	if s.clock != nil {
		cmd[argv(keys, argNow)] = strconv.FormatInt(s.clock().UnixMicro(), 10)
	}
	return cmd
}

// withUnlisted returns a copy of cmd, a command without an unlisted server, that declares the
// set of the unlisted server as its last key and names the server in ARGV.
func (s *Store) withUnlisted(cmd []any, pool, server string) []any {
	keys, _ := strconv.Atoi(cmd[cmdNumKeys].(string))
	out := make([]any, 0, len(cmd)+1)
	out = append(out, cmd[:cmdFirstKey+keys]...)
	out = append(out, s.serverKey(pool, server))
	out = append(out, cmd[cmdFirstKey+keys:]...)
	out[cmdNumKeys] = strconv.Itoa(keys + 1)
	out[argv(keys+1, argUnlisted)] = server
	return out
}

// newCmd makes cmd a go-redis command, routed by its first key in a Cluster.
func newCmd(ctx context.Context, cmd []any) *goredis.Cmd {
	c := goredis.NewCmd(ctx, cmd...)
	c.SetFirstKeyPos(cmdFirstKey)
	return c
}

// evalCommand returns cmd as EVAL, which sends the script itself (and loads it).
func evalCommand(cmd []any) []any {
	cmd = slices.Clone(cmd)
	cmd[0], cmd[1] = "eval", assignScript
	return cmd
}
