package main

import (
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// watchInterval is how often --watch-config looks at the file.
const watchInterval = time.Second

// reloadLoop re-reads the pools on SIGHUP and, with --watch-config, when the file changes,
// until the command's context ends. A bad file is refused with a log line; the running
// configuration stays. hup comes from notifyReload; current is the configuration in force
// at start.
func reloadLoop(c *cli.Context, log zerolog.Logger, hup <-chan os.Signal, current pools, apply func(pools) error) {
	var tick <-chan time.Time
	path := c.String("config")
	last := fileStamp(path)
	if c.Bool("watch-config") {
		t := time.NewTicker(watchInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		why := ""
		select {
		case <-c.Context.Done():
			return
		case <-hup:
			why = "SIGHUP"
		case <-tick:
			now := fileStamp(path)
			if now == last {
				continue
			}
			last, why = now, "file changed"
		}
		if path == "" {
			log.Warn().Str("trigger", why).Msg("reload: nothing to reload without --config")
			continue
		}
		p, err := loadPools(c)
		if err == nil {
			err = apply(p)
		}
		if err != nil {
			log.Error().Str("trigger", why).Err(err).Msg("reload refused; the running configuration stays")
			continue
		}
		if samePools(current, p) {
			log.Info().Str("trigger", why).Str("config", p.Source).Str("changes", "none").Msg("configuration reloaded: no changes")
			continue
		}
		current = p
		log.Info().Str("trigger", why).Str("config", p.Source).Strs("pools", poolSummaries(p)).Msg("configuration reloaded")
	}
}

// samePools reports whether a reload brought nothing new: the same pools, key rules and
// HAProxy view (a rewrite that only touched comments or layout).
func samePools(a, b pools) bool {
	return reflect.DeepEqual(a.Policy, b.Policy) && reflect.DeepEqual(a.KeyRules, b.KeyRules) && reflect.DeepEqual(a.HAProxy, b.HAProxy)
}

// notifyReload starts catching SIGHUP, whose default action would end the process; one
// signal waits in the channel until reloadLoop reads it.
func notifyReload() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// fileStamp changes when the file is rewritten or replaced.
func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size())
}

// poolSummaries describe the pools in one short string each, for lifecycle log lines.
func poolSummaries(p pools) []string {
	var out []string
	for _, pool := range p.Policy.Pools {
		servers := make([]string, len(pool.Servers))
		for i, s := range pool.Servers {
			servers[i] = fmt.Sprintf("%s=%d/%s", s.Name, s.Quota, s.State)
		}
		out = append(out, fmt.Sprintf("%s: %s idle %s grace %s %s", pool.Name, strings.Join(servers, ","), pool.IdleTimeout, pool.DownGrace, pool.DownPolicy))
	}
	return out
}
