// Package admin lets operators see and act on seats at run time: a JSON API, an HTML status
// page in the spirit of HAProxy's stats page, and run-time changes (drain, quota) that, with
// Redis, every agent applies.
package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/internal/ratelimit"
	"github.com/stickyseat/stickyseat/store"
)

// Reloader takes a new configuration (assign.Assigner).
type Reloader interface {
	Reload(cfg assign.Config) error
}

// Admin applies run-time changes on top of the configuration and serves the operators' API.
type Admin struct {
	store     store.Inspector
	overrides store.Overrides
	reloader  Reloader
	token     string
	// allowedHosts are the Host names accepted besides the listener's address and loopback.
	allowedHosts []string
	refusals     *ratelimit.Limiter
	sessions     *sessions
	logins       *loginGate
	log          zerolog.Logger
	now          func() time.Time

	mu      sync.Mutex
	base    assign.Config
	applied string // the overrides last applied, canonical form
	current assign.Config
}

// Options tune an Admin.
type Options struct {
	// Token, when set, is required on every API call and page: as Authorization: Bearer, or
	// as the session cookie the page's login form sets. It is never read from the URL.
	Token string
	// AllowedHosts are the Host header names (or host:port) the admin answers besides the
	// address it was reached on and loopback names; any other Host gets 421.
	AllowedHosts []string
	Logger       zerolog.Logger
	// Clock tells the time shown as "ago" and "in" on the page and the API; nil means
	// time.Now. Give it the store's clock so both agree.
	Clock func() time.Time
}

// New returns an Admin for the configuration base, already applied by the caller.
// Run-time changes are kept in ov, which every agent sharing the seats reads (the seat store
// itself: both stores implement store.Overrides).
func New(base assign.Config, r Reloader, st store.Inspector, ov store.Overrides, opts Options) *Admin {
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	return &Admin{store: st, overrides: ov, reloader: r, token: opts.Token, now: now,
		allowedHosts: opts.AllowedHosts, refusals: ratelimit.New(logInterval),
		sessions: newSessions(), logins: newLoginGate(),
		log: opts.Logger.With().Str("component", "admin").Logger(), base: base, current: base}
}

// SetBase replaces the configuration (a config file reload) and applies the run-time changes
// on top of it. cfg comes validated from its loader; the Reloader refuses an invalid one.
func (a *Admin) SetBase(ctx context.Context, cfg assign.Config) error {
	ov, err := a.overrides.Overrides(ctx)
	if err != nil {
		a.log.Warn().Err(err).Msg("cannot read run-time changes; applying the file alone")
		ov = nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applyLocked(cfg, ov)
}

// Sync applies the shared run-time changes if another agent (or this one) changed them.
func (a *Admin) Sync(ctx context.Context) error {
	ov, err := a.overrides.Overrides(ctx)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if canonical(ov) == a.applied {
		return nil
	}
	return a.applyLocked(a.base, ov)
}

// Run calls Sync every interval until ctx ends, logging failures when they start.
func (a *Admin) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.Sync(ctx)
		if err != nil && !failing {
			a.log.Warn().Err(err).Msg("cannot read run-time changes; keeping the last ones")
		}
		failing = err != nil
	}
}

// Current is the configuration in force (file plus run-time changes).
func (a *Admin) Current() assign.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

func (a *Admin) applyLocked(base assign.Config, ov map[string]string) error {
	cfg, ignored := merge(base, ov)
	for field, err := range ignored {
		a.log.Warn().Str("field", field).Str("change", ov[field]).Err(err).Msg("ignoring a run-time change")
	}
	if err := a.reloader.Reload(cfg); err != nil {
		return err
	}
	before := a.applied
	a.base, a.current, a.applied = base, cfg, canonical(ov)
	switch {
	case a.applied == before:
		// A config reload with the same run-time changes: nothing of theirs to report.
	case a.applied == "":
		a.log.Info().Str("changes", "none").Msg("run-time changes cleared: the configuration alone applies")
	default:
		a.log.Info().Str("changes", a.applied).Msg("run-time changes applied")
	}
	return nil
}

// SetState drains (StateDrain) or undrains (StateUp) a server at run time.
func (a *Admin) SetState(ctx context.Context, pool, server string, st assign.State) error {
	return a.change(ctx, pool, server, func(o *override) { o.state = &st })
}

// SetQuota changes a server's quota at run time; 0 returns to the configured one.
func (a *Admin) SetQuota(ctx context.Context, pool, server string, quota int) error {
	if quota < 0 {
		return fmt.Errorf("quota must not be negative, got %d", quota)
	}
	return a.change(ctx, pool, server, func(o *override) { o.quota = quota })
}

type override struct {
	state *assign.State
	quota int
}

// ErrNotFound is returned for an unknown pool or server.
var ErrNotFound = errors.New("not found")

func (a *Admin) change(ctx context.Context, pool, server string, edit func(*override)) error {
	a.mu.Lock()
	base := a.base
	a.mu.Unlock()
	var configured *assign.Server
	for i := range base.Pools {
		if base.Pools[i].Name == pool {
			for j := range base.Pools[i].Servers {
				if base.Pools[i].Servers[j].Name == server {
					configured = &base.Pools[i].Servers[j]
				}
			}
		}
	}
	if configured == nil {
		return fmt.Errorf("server %q of pool %q: %w", server, pool, ErrNotFound)
	}
	all, err := a.overrides.Overrides(ctx)
	if err != nil {
		return err
	}
	field := pool + "/" + server
	st, quota, _ := parseOverride(all[field])
	o := override{state: st, quota: quota}
	edit(&o)
	if o.state != nil && *o.state == configured.State {
		o.state = nil // back to the file's state
	}
	if o.quota == configured.Quota {
		o.quota = 0
	}
	// Refuse here a change that would make the configuration invalid: once in the shared
	// store every agent would read it.
	others := make(map[string]string, len(all))
	for f, v := range all {
		if f != field {
			others[f] = v
		}
	}
	cfg, _ := merge(base, others)
	if err := applyOverride(&cfg, field, formatOverride(o)); err != nil {
		return fmt.Errorf("server %q of pool %q: %w", server, pool, err)
	}
	if err := a.overrides.SetOverride(ctx, field, formatOverride(o)); err != nil {
		return err
	}
	return a.Sync(ctx)
}

// ErrInvalidChange is returned for a run-time change the configuration cannot take, such as
// a quota that lifts a pool past its seat limit.
var ErrInvalidChange = errors.New("change refused")

// merge returns base with the run-time changes ov applied in field order. A change that is
// malformed or would make the configuration invalid is left out and returned in ignored, so
// one bad change in the shared store cannot stop an agent applying the others or a reload.
func merge(base assign.Config, ov map[string]string) (cfg assign.Config, ignored map[string]error) {
	cfg = base.Clone()
	fields := make([]string, 0, len(ov))
	for f := range ov {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		if err := applyOverride(&cfg, f, ov[f]); err != nil {
			if ignored == nil {
				ignored = map[string]error{}
			}
			ignored[f] = err
		}
	}
	return cfg, ignored
}

// applyOverride applies the change value to the server field names ("pool/server") in cfg
// and validates the result; on error cfg is left as it was. A change for a server cfg does
// not have (the file no longer lists it) changes nothing.
func applyOverride(cfg *assign.Config, field, value string) error {
	pool, server, _ := strings.Cut(field, "/")
	s := findServer(cfg, pool, server)
	if s == nil {
		return nil
	}
	st, quota, err := parseOverride(value)
	if err != nil {
		return fmt.Errorf("%w: malformed: %w", ErrInvalidChange, err)
	}
	was := *s
	if st != nil {
		s.State = *st
	}
	if quota > 0 {
		s.Quota = quota
	}
	if *s == was {
		return nil
	}
	if err := cfg.Validate(); err != nil {
		*s = was
		return fmt.Errorf("%w: %w", ErrInvalidChange, err)
	}
	return nil
}

func parseOverride(v string) (*assign.State, int, error) {
	var st *assign.State
	quota := 0
	for _, part := range strings.Split(v, ",") {
		if part == "" {
			continue
		}
		k, val, _ := strings.Cut(part, "=")
		switch k {
		case "state":
			s, err := assign.ParseState(val)
			if err != nil {
				return nil, 0, err
			}
			st = &s
		case "quota":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return nil, 0, fmt.Errorf("bad quota %q", val)
			}
			quota = n
		default:
			return nil, 0, fmt.Errorf("unknown change %q", k)
		}
	}
	return st, quota, nil
}

func formatOverride(o override) string {
	var parts []string
	if o.state != nil {
		parts = append(parts, "state="+o.state.String())
	}
	if o.quota > 0 {
		parts = append(parts, "quota="+strconv.Itoa(o.quota))
	}
	return strings.Join(parts, ",")
}

func canonical(ov map[string]string) string {
	keys := make([]string, 0, len(ov))
	for k := range ov {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s:%s;", k, ov[k])
	}
	return b.String()
}

func findServer(c *assign.Config, pool, server string) *assign.Server {
	for i := range c.Pools {
		if c.Pools[i].Name != pool {
			continue
		}
		for j := range c.Pools[i].Servers {
			if c.Pools[i].Servers[j].Name == server {
				return &c.Pools[i].Servers[j]
			}
		}
	}
	return nil
}
