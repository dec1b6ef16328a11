package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Default ports used when a URL's host has none.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

// ErrInvalidURL is returned (wrapped) by ParseURL for a URL it cannot use.
var ErrInvalidURL = errors.New("invalid redis URL")

// ParseURL turns one connection URL into go-redis options, so that a single flag can select a
// standalone server, a Sentinel-managed master or a Cluster:
//
//	redis://[user:pass@]host[:port][/db]                 one server (rediss:// for TLS)
//	redis-sentinel://[user:pass@]host1[:port],host2[:port][/db]?master=NAME
//	                                                     sentinels; user:pass authenticate to the
//	                                                     master and replicas, sentinel_username and
//	                                                     sentinel_password to the sentinels
//	redis-cluster://[user:pass@]host1[:port],host2[:port] cluster seed nodes (no db)
//
// rediss-sentinel:// and rediss-cluster:// use TLS. Ports default to 6379 (26379 for sentinels).
// The only query parameters are master, sentinel_username and sentinel_password (sentinel
// schemes) and pool_size; anything else is rejected so that a typo is not silently ignored.
//
// The options enable ContextTimeoutEnabled, which the store needs for its per-call deadline,
// and, except for Sentinel, set a Dialer that keeps refused connections out of go-redis's
// dial breaker (see refusalDialer), so that a restarted Redis is used as soon as it listens.
// Errors never contain the password.
//
// go-redis's own ParseURL (redis://, rediss://, unix://) is not used even for the schemes it
// covers: it accepts what this one refuses, so a typo would start an agent on the wrong
// server instead of failing. Measured on v9.23: "redis://a:1,b:2" becomes the address
// "[a:1,b]:2", "redis://::1" becomes "[:]:1", ports 0 and 70000 pass, "redis://" means
// localhost:6379, a fragment is ignored and ?db= competes with the path. Its cluster parser
// takes hosts as ?addr= parameters, not the comma list above, and it has no Sentinel parser,
// so one strict parser serves every scheme. unix:// is refused: the agent has no use for it yet.
func ParseURL(u string) (*goredis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return nil, fmt.Errorf("%w: missing scheme (want redis://, rediss://, redis-sentinel:// or redis-cluster://)", ErrInvalidURL)
	}
	var sentinel, cluster, useTLS bool
	switch scheme {
	case "redis":
	case "rediss":
		useTLS = true
	case "redis-sentinel":
		sentinel = true
	case "rediss-sentinel":
		sentinel, useTLS = true, true
	case "redis-cluster":
		cluster = true
	case "rediss-cluster":
		cluster, useTLS = true, true
	default:
		return nil, fmt.Errorf("%w: unsupported scheme %q", ErrInvalidURL, scheme)
	}

	// url.Parse cannot read a comma-separated host list (IPv6 literals break it), so the
	// authority is split by hand and the rest parsed with a single placeholder host.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	userinfo, hostlist := "", authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo, hostlist = authority[:at+1], authority[at+1:]
	}
	parsed, err := url.Parse("redis://" + userinfo + "placeholder" + rest[end:])
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if parsed.Fragment != "" {
		return nil, fmt.Errorf("%w: unexpected fragment", ErrInvalidURL)
	}

	port := defaultPort
	if sentinel {
		port = defaultSentinelPort
	}
	addrs, err := parseHosts(hostlist, port)
	if err != nil {
		return nil, err
	}
	if len(addrs) > 1 && !sentinel && !cluster {
		return nil, fmt.Errorf("%w: %s:// takes one host; use redis-sentinel:// or redis-cluster:// for several", ErrInvalidURL, scheme)
	}

	opts := &goredis.UniversalOptions{
		Addrs:                 addrs,
		ClientName:            "stickyseat",
		ContextTimeoutEnabled: true,
		IsClusterMode:         cluster,
	}
	if parsed.User != nil {
		opts.Username = parsed.User.Username()
		opts.Password, _ = parsed.User.Password() // no password is the empty password
	}
	if useTLS {
		host, _, _ := net.SplitHostPort(addrs[0])
		opts.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}

	switch path := strings.Trim(parsed.Path, "/"); {
	case path == "":
	case cluster:
		return nil, fmt.Errorf("%w: redis cluster has no databases, remove path %q", ErrInvalidURL, parsed.Path)
	default:
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("%w: database %q is not a non-negative number", ErrInvalidURL, path)
		}
		opts.DB = db
	}

	query, err := url.ParseQuery(parsed.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if err := applyQuery(opts, query, sentinel); err != nil {
		return nil, err
	}
	if !sentinel {
		opts.Dialer = newRefusalDialer(func() *tls.Config { return opts.TLSConfig }).DialContext
	}
	return opts, nil
}

// parseHosts splits a comma-separated host list, adding the default port where missing.
func parseHosts(list, defPort string) ([]string, error) {
	if list == "" {
		return nil, fmt.Errorf("%w: missing host", ErrInvalidURL)
	}
	var addrs []string
	for _, h := range strings.Split(list, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: a bare name or IPv4 address, or a bracketed IPv6 literal.
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defPort
			if strings.Contains(host, ":") && !strings.HasPrefix(h, "[") {
				return nil, fmt.Errorf("%w: host %q: put IPv6 addresses in brackets", ErrInvalidURL, h)
			}
		}
		if host == "" {
			return nil, fmt.Errorf("%w: empty host in %q", ErrInvalidURL, list)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: host %q: invalid port %q", ErrInvalidURL, h, port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	return addrs, nil
}

// applyQuery reads the few supported query parameters and rejects the rest.
func applyQuery(opts *goredis.UniversalOptions, q url.Values, sentinel bool) error {
	for _, name := range slices.Sorted(maps.Keys(q)) { // sorted: the first error is deterministic
		values := q[name]
		if len(values) != 1 {
			return fmt.Errorf("%w: parameter %q given %d times", ErrInvalidURL, name, len(values))
		}
		v := values[0]
		switch {
		case name == "master" && sentinel:
			opts.MasterName = v
		case name == "sentinel_username" && sentinel:
			opts.SentinelUsername = v
		case name == "sentinel_password" && sentinel:
			opts.SentinelPassword = v
		case name == "pool_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("%w: pool_size %q is not a positive number", ErrInvalidURL, v)
			}
			opts.PoolSize = n
		default:
			return fmt.Errorf("%w: unsupported parameter %q", ErrInvalidURL, name)
		}
	}
	if sentinel && opts.MasterName == "" {
		return fmt.Errorf("%w: redis-sentinel:// needs ?master=NAME", ErrInvalidURL)
	}
	return nil
}
