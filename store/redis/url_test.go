package redis

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// parsed is the part of goredis.UniversalOptions that ParseURL sets.
type parsed struct {
	Addrs                              []string
	Username, Password                 string
	SentinelUsername, SentinelPassword string
	DB                                 int
	Master                             string
	Cluster, TLS                       bool
	TLSServerName                      string
	PoolSize                           int
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want parsed
	}{
		{"redis://localhost", parsed{Addrs: []string{"localhost:6379"}}},
		{"redis://10.0.0.5:6380/2", parsed{Addrs: []string{"10.0.0.5:6380"}, DB: 2}},
		{"redis://:s3cret@r1:6379/", parsed{Addrs: []string{"r1:6379"}, Password: "s3cret"}},
		{"redis://agent:p%40ss@r1:6379/0", parsed{Addrs: []string{"r1:6379"}, Username: "agent", Password: "p@ss"}},
		{"redis://[::1]:7000", parsed{Addrs: []string{"[::1]:7000"}}},
		{"redis://[::1]", parsed{Addrs: []string{"[::1]:6379"}}},
		{"rediss://cache.example.com:6380?pool_size=20",
			parsed{Addrs: []string{"cache.example.com:6380"}, TLS: true, TLSServerName: "cache.example.com", PoolSize: 20}},
		{"redis-sentinel://s1:26379,s2,[::1]:26380/1?master=mymaster",
			parsed{Addrs: []string{"s1:26379", "s2:26379", "[::1]:26380"}, DB: 1, Master: "mymaster"}},
		{"redis-sentinel://u:p@s1?master=m&sentinel_username=su&sentinel_password=sp",
			parsed{Addrs: []string{"s1:26379"}, Username: "u", Password: "p", SentinelUsername: "su", SentinelPassword: "sp", Master: "m"}},
		{"rediss-sentinel://s1?master=m", parsed{Addrs: []string{"s1:26379"}, Master: "m", TLS: true, TLSServerName: "s1"}},
		{"redis-cluster://n1:7000,n2:7001,n3:7002",
			parsed{Addrs: []string{"n1:7000", "n2:7001", "n3:7002"}, Cluster: true}},
		{"redis-cluster://n1", parsed{Addrs: []string{"n1:6379"}, Cluster: true}},
		{"rediss-cluster://u:p@n1:7000,n2:7001/",
			parsed{Addrs: []string{"n1:7000", "n2:7001"}, Username: "u", Password: "p", Cluster: true, TLS: true, TLSServerName: "n1"}},
	}
	for _, tt := range tests {
		opts, err := ParseURL(tt.url)
		if err != nil {
			t.Errorf("ParseURL(%q) error: %v", tt.url, err)
			continue
		}
		got := parsed{Addrs: opts.Addrs, Username: opts.Username, Password: opts.Password,
			SentinelUsername: opts.SentinelUsername, SentinelPassword: opts.SentinelPassword,
			DB: opts.DB, Master: opts.MasterName, Cluster: opts.IsClusterMode, TLS: opts.TLSConfig != nil,
			PoolSize: opts.PoolSize}
		if opts.TLSConfig != nil {
			got.TLSServerName = opts.TLSConfig.ServerName
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURL(%q) =\n %+v; want\n %+v", tt.url, got, tt.want)
		}
		if !opts.ContextTimeoutEnabled {
			t.Errorf("ParseURL(%q): ContextTimeoutEnabled is off; the store's deadline would not apply", tt.url)
		}
		// Sentinel keeps go-redis's dialer (it asks a Sentinel before each dial); the others
		// get the one that keeps refusals out of the dial breaker.
		if sentinel := tt.want.Master != ""; (opts.Dialer == nil) != sentinel {
			t.Errorf("ParseURL(%q): Dialer set = %v; want %v", tt.url, opts.Dialer != nil, !sentinel)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"", "invalid redis URL: missing scheme (want redis://, rediss://, redis-sentinel:// or redis-cluster://)"},
		{"localhost:6379", "invalid redis URL: missing scheme (want redis://, rediss://, redis-sentinel:// or redis-cluster://)"},
		{"http://localhost", `invalid redis URL: unsupported scheme "http"`},
		{"unix:///tmp/redis.sock", `invalid redis URL: unsupported scheme "unix"`},
		{"redis://", "invalid redis URL: missing host"},
		{"redis:///0", "invalid redis URL: missing host"},
		{"redis://a:1,b:2", "invalid redis URL: redis:// takes one host; use redis-sentinel:// or redis-cluster:// for several"},
		{"redis-cluster://a:1,,b:2", `invalid redis URL: empty host in "a:1,,b:2"`},
		{"redis://h:0", `invalid redis URL: host "h:0": invalid port "0"`},
		{"redis://h:70000", `invalid redis URL: host "h:70000": invalid port "70000"`},
		{"redis://h:x", `invalid redis URL: host "h:x": invalid port "x"`},
		{"redis://::1", `invalid redis URL: host "::1": put IPv6 addresses in brackets`},
		{"redis://h/x", `invalid redis URL: database "x" is not a non-negative number`},
		{"redis://h/-1", `invalid redis URL: database "-1" is not a non-negative number`},
		{"redis://h/1/2", `invalid redis URL: database "1/2" is not a non-negative number`},
		{"redis-cluster://h/0", `invalid redis URL: redis cluster has no databases, remove path "/0"`},
		{"redis-sentinel://s1", "invalid redis URL: redis-sentinel:// needs ?master=NAME"},
		{"redis://h?master=m", `invalid redis URL: unsupported parameter "master"`},
		{"redis://h?db=1", `invalid redis URL: unsupported parameter "db"`},
		{"redis://h?pool_size=0", `invalid redis URL: pool_size "0" is not a positive number`},
		{"redis://h?pool_size=1&pool_size=2", `invalid redis URL: parameter "pool_size" given 2 times`},
		{"redis://h?b=1&a=1", `invalid redis URL: unsupported parameter "a"`},
		{"redis://h#frag", "invalid redis URL: unexpected fragment"},
		{"redis://h?%zz", `invalid redis URL: invalid URL escape "%zz"`},
		{"redis://user:pa%zzss@h", `invalid redis URL: invalid URL escape "%zz"`},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.url)
		if err == nil {
			t.Errorf("ParseURL(%q) = nil error; want %q", tt.url, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("ParseURL(%q) error = %q; want %q", tt.url, got, tt.want)
		}
		if !errors.Is(err, ErrInvalidURL) {
			t.Errorf("ParseURL(%q) error %q does not wrap ErrInvalidURL", tt.url, err)
		}
		if strings.Contains(err.Error(), "pa%zzss") || strings.Contains(err.Error(), "pa%") {
			t.Errorf("ParseURL(%q) error %q leaks the password", tt.url, err)
		}
	}
}
