// Package haproxy generates the HAProxy side of stickyseat: the haproxy.cfg sections and the
// SPOE file, in the one form that works on HAProxy 2.6 through 3.4.
package haproxy

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/stickyseat/stickyseat/assign"
)

// Modes of the generated frontend and backends.
const (
	ModeTCP  = "tcp"
	ModeHTTP = "http"
)

// Names fixed by the contract with the agent (it answers only this message and sets only
// these variables) and documented for users in the README.
const (
	// Engine is the SPOE engine, agent, message, group and variable prefix name.
	Engine = "stickyseat"
	// Frontend is the name of the generated frontend.
	Frontend = "stickyseat_in"
	// AgentBackend is the name of the generated backend holding `stickyseat serve`.
	AgentBackend = "stickyseat_agent"
	// BackendPrefix is prepended to a pool's name to name its backend by default.
	BackendPrefix = "stickyseat_"
)

// Defaults applied to zero-valued fields.
const (
	DefaultSPOEPath          = "/etc/haproxy/stickyseat.spoe.conf"
	DefaultProcessingTimeout = time.Second
	DefaultRetryAfter        = 30 * time.Second
	DefaultQueueRetryAfter   = 5 * time.Second
	DefaultKeyTCP            = "src"
	DefaultKeyHTTP           = "req.hdr(x-user)"
	DefaultFastPathWindow    = 10 * time.Second
)

// Config describes the HAProxy side of one stickyseat deployment. Zero-valued optional fields
// take the documented defaults.
//
// All pools share the single SPOE message "stickyseat" (the agent knows no other), so the
// message-level settings, Key, SendPool and SendBody, are set once here rather than per pool.
// With several pools the pool argument is always sent, as pool=var(txn.stickyseat_pool): each
// pool's backend sets that variable to its pool name just before sending the message. A
// single pool sends the contract's literal pool=str(NAME) when SendPool is set.
type Config struct {
	// Mode is "tcp" or "http" (required).
	Mode string
	// FrontendBind is the host:port the frontend "stickyseat_in" listens on (required). The host
	// may be empty or "*" for every address.
	FrontendBind string
	// AgentAddr is the host:port of `stickyseat serve` (required).
	AgentAddr string
	// SPOEPath is the path HAProxy reads the SPOE file from, as written on the
	// `filter spoe ... config` line. A relative path is resolved against HAProxy's working
	// directory, not the directory of haproxy.cfg. Default DefaultSPOEPath.
	SPOEPath string
	// Key is the sample expression sent as key=, e.g. "src", "req.hdr(x-user)", "req.cook(sid)".
	// Default "src" in tcp mode, "req.hdr(x-user)" in http mode; with SendBody and no Key the
	// message carries no key argument and the agent takes the key from the body.
	Key string
	// SendPool adds the pool argument to the message. Always on with several pools.
	SendPool bool
	// SendBody adds body=req.body to the message, for agent-side key extraction, and makes
	// HAProxy wait for the request body. http mode only.
	SendBody bool
	// SendSrc adds src=src to the message, for the agent's src key fallback.
	SendSrc bool
	// TrackConnections adds a stick table to each pool's backend counting every user's open
	// connections by key, for the agent's --haproxy-socket (long streams keep their seat).
	// It needs a Key HAProxy can fetch.
	TrackConnections bool
	// FastPath lets HAProxy route a user it sent to a server within FastPathWindow to that
	// server again without asking the agent: each pool's backend keeps a stick table of
	// user key → server (the same table as TrackConnections'), filled only from the agent's
	// answers, so only the agent grants seats. The agent's --haproxy-socket keeps it in step
	// with the seats. It needs a Key HAProxy can fetch.
	FastPath bool
	// FastPathWindow is how long after a user's last request HAProxy still routes them by
	// itself (the table's expire). Default DefaultFastPathWindow; whole milliseconds.
	FastPathWindow time.Duration
	// Pools get one backend each (at least one). The frontend's default_backend is the first;
	// route to the others with use_backend rules of your own.
	Pools []Pool
	// ProcessingTimeout is the SPOE "timeout processing": how long a request waits for the
	// agent's answer before it is refused. The agent's own deadline must be shorter.
	// Default 1s; whole milliseconds.
	ProcessingTimeout time.Duration
	// RetryAfter is the Retry-After sent with the http 503 when every server is full. Default
	// 30s; rounded up to whole seconds.
	RetryAfter time.Duration
	// QueueRetryAfter is how soon a user waiting in a pool's line is told to ask again (http
	// Retry-After, and the refresh of the page showing their place). It must be at most half
	// of every line's QueueTimeout, or places lapse between two tries. Default 5s, or a third
	// of the shortest QueueTimeout when that is shorter; whole seconds, at least 1s.
	QueueRetryAfter time.Duration
	// NoHealthChecks leaves "check" off the servers. Checks are on by default: stickyseat
	// relies on HAProxy marking a dead server DOWN, after which no one is sent there (weight 0
	// leaves no fallback) instead of each connection failing against it.
	NoHealthChecks bool
}

// Pool is one set of servers sharing seats, served by one HAProxy backend.
type Pool struct {
	// Name is the pool name the agent knows (required).
	Name string
	// Backend names the HAProxy backend. Default "stickyseat_" + Name.
	Backend string
	// Servers in the pool (at least one). Their names are what the agent answers.
	Servers []Server
	// Queue: the pool's users who find no free seat wait in its line (the agent's
	// when-full: queue). In http mode they get a 503 showing their place; in tcp mode their
	// connection is refused as when full, and their retries keep the place.
	Queue bool
	// QueueTimeout is the agent's queue timeout for this pool (a place lapses this long after
	// its user's last try), when known: it bounds QueueRetryAfter.
	QueueTimeout time.Duration
}

// Server is one HAProxy server.
type Server struct {
	// Name is the HAProxy server name, identical to the name the agent is configured with.
	Name string
	// Addr is its host:port.
	Addr string
}

// Validate reports every problem in c, each naming its field.
func (c Config) Validate() error {
	explicitBackend := make([]bool, len(c.Pools))
	for i, p := range c.Pools {
		explicitBackend[i] = p.Backend != ""
	}
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Mode != ModeTCP && c.Mode != ModeHTTP {
		bad("Mode %q: want %q or %q", c.Mode, ModeTCP, ModeHTTP)
	}
	if err := checkAddr(c.FrontendBind, true); err != nil {
		bad("FrontendBind %q: %w", c.FrontendBind, err)
	}
	if err := checkAddr(c.AgentAddr, false); err != nil {
		bad("AgentAddr %q: %w", c.AgentAddr, err)
	}
	if strings.ContainsFunc(c.SPOEPath, isSpaceOrControl) || strings.ContainsAny(c.SPOEPath, `#"'\`) {
		bad("SPOEPath %q: must not contain spaces, control characters, quotes, '#' or '\\'", c.SPOEPath)
	}
	if err := checkSample(c.Key); err != nil {
		bad("Key %q: %w", c.Key, err)
	}
	if c.TrackConnections && c.Key == "" {
		bad("TrackConnections: needs a Key HAProxy can fetch (a key taken from the body cannot be tracked)")
	}
	if c.FastPath && c.Key == "" {
		bad("FastPath: needs a Key HAProxy can fetch (a key the agent takes from the body cannot be looked up by HAProxy)")
	}
	if c.FastPathWindow < time.Millisecond {
		bad("FastPathWindow %v: want at least 1ms", c.FastPathWindow)
	}
	if c.SendBody && c.Mode == ModeTCP {
		bad("SendBody: http mode only (req.body needs HTTP parsing)")
	}
	if c.ProcessingTimeout < time.Millisecond {
		bad("ProcessingTimeout %v: want at least 1ms", c.ProcessingTimeout)
	}
	if c.RetryAfter < 0 {
		bad("RetryAfter %v: must not be negative", c.RetryAfter)
	}
	if c.QueueRetryAfter < 0 {
		bad("QueueRetryAfter %v: must not be negative", c.QueueRetryAfter)
	}
	for _, p := range c.Pools {
		if retry := ceilSecond(c.QueueRetryAfter); p.Queue && p.QueueTimeout > 0 && 2*retry > p.QueueTimeout {
			bad("QueueRetryAfter %v: pool %q's places lapse %v after a try, so users must be told to try again within half of that (raise its queue timeout to at least %v)",
				retry, p.Name, p.QueueTimeout, 2*retry)
		}
	}
	if len(c.Pools) == 0 {
		bad("Pools: want at least one pool")
	}

	proxies := map[string]string{Frontend: "the frontend", AgentBackend: "the agent backend"}
	pools := map[string]int{}
	for i, p := range c.Pools {
		nameErr := checkName(p.Name)
		if nameErr != nil {
			bad("Pools[%d].Name %q: %w", i, p.Name, nameErr)
		} else if j, dup := pools[p.Name]; dup {
			bad("Pools[%d].Name %q: already used by Pools[%d]", i, p.Name, j)
		} else {
			pools[p.Name] = i
		}
		backendErr := checkName(p.Backend)
		switch other, dup := proxies[p.Backend]; {
		case nameErr != nil && !explicitBackend[i]:
			// The default backend name derives from the bad pool name: one error is enough.
		case backendErr != nil:
			bad("Pools[%d].Backend %q: %w", i, p.Backend, backendErr)
		case dup:
			bad("Pools[%d].Backend %q: already used by %s", i, p.Backend, other)
		default:
			proxies[p.Backend] = fmt.Sprintf("Pools[%d]", i)
		}
		if len(p.Servers) == 0 {
			bad("Pools[%d].Servers: want at least one server", i)
		}
		servers := map[string]int{}
		for j, s := range p.Servers {
			if err := checkName(s.Name); err != nil {
				bad("Pools[%d].Servers[%d].Name %q: %w", i, j, s.Name, err)
			} else if k, dup := servers[s.Name]; dup {
				bad("Pools[%d].Servers[%d].Name %q: already used by Pools[%d].Servers[%d]", i, j, s.Name, i, k)
			} else {
				servers[s.Name] = j
			}
			if err := checkAddr(s.Addr, false); err != nil {
				bad("Pools[%d].Servers[%d].Addr %q: %w", i, j, s.Addr, err)
			}
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns c with the documented defaults filled in.
func (c Config) withDefaults() Config {
	if c.SPOEPath == "" {
		c.SPOEPath = DefaultSPOEPath
	}
	if c.Key == "" && !c.SendBody {
		c.Key = DefaultKeyTCP
		if c.Mode == ModeHTTP {
			c.Key = DefaultKeyHTTP
		}
	}
	if c.ProcessingTimeout == 0 {
		c.ProcessingTimeout = DefaultProcessingTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.QueueRetryAfter == 0 {
		c.QueueRetryAfter = DefaultQueueRetryAfter
		for _, p := range c.Pools {
			if p.Queue && p.QueueTimeout > 0 {
				c.QueueRetryAfter = min(c.QueueRetryAfter, max(time.Second, p.QueueTimeout/3))
			}
		}
	}
	if c.FastPathWindow == 0 {
		c.FastPathWindow = DefaultFastPathWindow
	}
	if len(c.Pools) > 1 {
		c.SendPool = true
	}
	pools := make([]Pool, len(c.Pools))
	for i, p := range c.Pools {
		if p.Backend == "" && p.Name != "" {
			p.Backend = BackendPrefix + p.Name
		}
		pools[i] = p
	}
	c.Pools = pools
	return c
}

// ceilSecond rounds d up to whole seconds, as Retry-After and the page's refresh are written.
func ceilSecond(d time.Duration) time.Duration {
	return (d + time.Second - 1) / time.Second * time.Second
}

// checkName accepts the names that are safe everywhere the config writes them: HAProxy proxy
// and server names, and inside str(...) and var values. The rule is the agent's own, so a
// pool the agent accepts is one this package can write.
func checkName(name string) error { return assign.ValidName(name) }

// checkAddr accepts host:port with a port in 1..65535. anyHost allows an empty host or "*".
func checkAddr(addr string, anyHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1 to 65535", port)
	}
	if host == "" || host == "*" {
		if anyHost {
			return nil
		}
		return errors.New("host must not be empty")
	}
	if strings.ContainsFunc(host, isSpaceOrControl) || strings.ContainsAny(host, `#"'\@`) {
		return fmt.Errorf("host %q: unexpected character", host)
	}
	return nil
}

// checkSample rejects what would break out of the one word a sample expression is on an
// "args" line.
// Single quotes are allowed in pairs, as converters need them (json_query('$.id')): HAProxy
// reads their content literally.
func checkSample(expr string) error {
	if strings.ContainsFunc(expr, isSpaceOrControl) || strings.ContainsAny(expr, `#"\`) || strings.Count(expr, "'")%2 != 0 {
		return errors.New("must be one word: no spaces, control characters, double or unpaired single quotes, '#' or '\\'")
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }
