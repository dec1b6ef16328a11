package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/stickyseat/stickyseat/store"
	"github.com/stickyseat/stickyseat/store/memory"
	"github.com/stickyseat/stickyseat/store/redis"
)

func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "redis", Usage: "share seats through Redis: redis://[user:pass@]host:port/db, rediss://… (TLS), redis-sentinel://host1:port,host2:port/db?master=NAME, redis-cluster://host1:port,host2:port (default: the embedded memory store)", EnvVars: []string{"STICKYSEAT_REDIS"}},
		&cli.StringFlag{Name: "redis-password-file", Usage: "read the Redis password from this file (one line) instead of the URL, so it is in no argv; the env var " + redisPasswordEnv + " works too", EnvVars: []string{"STICKYSEAT_REDIS_PASSWORD_FILE"}},
		&cli.DurationFlag{Name: "redis-timeout", Value: 250 * time.Millisecond, Usage: "deadline of the Redis work of one decision; keep it below --decision-timeout", EnvVars: []string{"STICKYSEAT_REDIS_TIMEOUT"}},
		&cli.DurationFlag{Name: "refresh-interval", Value: time.Second, Usage: "answer a user refreshed in Redis less than this long ago from memory (0 disables)", EnvVars: []string{"STICKYSEAT_REFRESH_INTERVAL"}},
		&cli.StringFlag{Name: "key-prefix", Value: redis.DefaultKeyPrefix, Usage: "prefix of every Redis key, so deployments can share one Redis", EnvVars: []string{"STICKYSEAT_KEY_PREFIX"}},
		&cli.StringFlag{Name: "state-file", Usage: "memory store: save seats to this file every --state-interval and at shutdown, restore them at start (default: seats die with the agent)", EnvVars: []string{"STICKYSEAT_STATE_FILE"}},
		// A string, not a DurationFlag: its error for a value that is no duration at all says
		// what a duration looks like, as the tests pin.
		&cli.StringFlag{Name: "state-interval", Value: memory.DefaultStateInterval.String(), Usage: "how often --state-file is written; a kill -9 loses at most this much", EnvVars: []string{"STICKYSEAT_STATE_INTERVAL"}},
	}
}

// redisPasswordEnv holds the Redis password, for deployments that pass secrets through the
// environment. It has no flag on purpose: a flag's value is in argv, which every local user
// can read.
const redisPasswordEnv = "STICKYSEAT_REDIS_PASSWORD"

// storeConfig is the seat store the flags describe.
type storeConfig struct {
	RedisURL string // empty: memory
	// RedisPassword, when set, replaces the URL's (which must then have none).
	RedisPassword string
	Redis         redis.Options
	// StateFile, for the memory store, is where seats are saved and restored from (empty:
	// nowhere); they are saved every StateInterval and at shutdown.
	StateFile     string
	StateInterval time.Duration
}

func storeConfigFromFlags(c *cli.Context, decisionTimeout time.Duration) (storeConfig, error) {
	cfg := storeConfig{RedisURL: c.String("redis")}
	envPassword := os.Getenv(redisPasswordEnv)
	if file := c.String("redis-password-file"); file != "" {
		if envPassword != "" {
			return cfg, fmt.Errorf("--redis-password-file and %s: give the password once", redisPasswordEnv)
		}
		var err error
		if cfg.RedisPassword, err = readSecretFile("redis-password-file", file); err != nil {
			return cfg, err
		}
	} else {
		cfg.RedisPassword = envPassword
	}
	if cfg.RedisURL != "" {
		uo, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return cfg, fmt.Errorf("--redis: %w", err)
		}
		if uo.Password != "" && cfg.RedisPassword != "" {
			return cfg, fmt.Errorf("--redis: the URL holds a password and --redis-password-file or %s gives one too: give it once", redisPasswordEnv)
		}
	} else if cfg.RedisPassword != "" && c.IsSet("redis-password-file") {
		return cfg, fmt.Errorf("--redis-password-file: needs --redis")
	}
	// The Redis flags are checked even without --redis, so a typo never waits for the day
	// Redis is turned on.
	timeout, err := positiveDuration(c, "redis-timeout")
	if err != nil {
		return cfg, err
	}
	if timeout >= decisionTimeout {
		return cfg, fmt.Errorf("--redis-timeout: %s must be shorter than --decision-timeout %s", timeout, decisionTimeout)
	}
	refresh := c.Duration("refresh-interval")
	if refresh < 0 {
		return cfg, fmt.Errorf("--refresh-interval: %q is not a duration of 0 or more (e.g. 1s, 0 to disable)", refresh)
	}
	if refresh == 0 {
		refresh = -1 // the store's "disabled"
	}
	prefix := c.String("key-prefix")
	if prefix == "" || strings.ContainsAny(prefix, "{}") {
		return cfg, fmt.Errorf("--key-prefix: %q must be non-empty and hold no '{' or '}' (Redis Cluster hash tags)", prefix)
	}
	cfg.Redis = redis.Options{KeyPrefix: prefix, Timeout: timeout, RefreshInterval: refresh}
	if cfg.StateInterval, err = parseDuration(c.String("state-interval")); err != nil {
		return cfg, fmt.Errorf("--state-interval: %w", err)
	}
	cfg.StateFile = c.String("state-file")
	return cfg, checkStateFile(cfg)
}

// openedStore is the configured store.
type openedStore struct {
	store.Store
	stats store.Stats // nil for memory, which keeps no such counters
	kind  string
	close func()
}

// openStore builds the configured store.
func openStore(ctx context.Context, cfg storeConfig, log zerolog.Logger) (openedStore, error) {
	if cfg.RedisURL == "" {
		st := memory.New(memory.Options{})
		if cfg.StateFile != "" {
			restoreState(st, cfg.StateFile, log)
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { st.Run(ctx) })
		if cfg.StateFile != "" {
			wg.Go(func() {
				st.RunState(ctx, cfg.StateFile, cfg.StateInterval, log.With().Str("component", "state").Logger())
			})
		}
		return openedStore{Store: st, kind: "memory",
			close: func() {
				cancel()
				wg.Wait()
				if cfg.StateFile != "" {
					// serve closes the store after the agent answered its last request.
					saveState(st, cfg.StateFile, log)
				}
			}}, nil
	}
	uo, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return openedStore{}, fmt.Errorf("--redis: %w", err)
	}
	if cfg.RedisPassword != "" {
		uo.Password = cfg.RedisPassword
	}
	// go-redis logs every failed dial through a package-level logger; route it to Debug so
	// an outage is reported once per interval by the store, not once per connection attempt.
	goredis.SetLogger(redisLogger{log: log.With().Str("component", "go-redis").Logger()})
	client := goredis.NewUniversalClient(uo)
	opts := cfg.Redis
	opts.Logger = log
	st := redis.New(client, opts)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		// Start anyway: HAProxy may be up before Redis; until Redis answers, new users get
		// status=error (fail-closed) and the client keeps reconnecting.
		log.Warn().Err(err).Strs("redis", uo.Addrs).Msg("redis not reachable at start; answering status=error until it is")
	}
	return openedStore{Store: st, stats: st, kind: "redis", close: func() {
		// The store first answers the calls already made (its pipelines), then the client goes.
		if err := st.Close(); err != nil {
			log.Warn().Err(err).Msg("closing the redis store")
		}
		if err := client.Close(); err != nil {
			log.Debug().Err(err).Msg("closing the redis client")
		}
	}}, nil
}

type redisLogger struct{ log zerolog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug().Msgf(format, v...)
}
