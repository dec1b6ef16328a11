// Command httpbench is `make bench`: it measures stickyseat side by side with what it is
// compared against, in one run on loopback, and prints the tables the README shows.
//
// The HTTP part puts the same wrk load (bench/users.lua: many distinct x-user values)
// through one HAProxy per setup, all in front of the same three backends:
//
//	(a) round robin, no stickiness: the ceiling
//	(b) HAProxy's native stick on req.hdr(x-user) + leastconn
//	(c) SPOE to bench/stateless, a hash-only agent on the same SPOE library and stickyseat's
//	    own SPOP layer: the floor, what the SPOE round trip costs without seats
//	(d) SPOE to stickyseat with the memory store
//	(e) SPOE to stickyseat with Redis
//	(f) stickyseat, memory store, with the fast path (haproxy-config --fast-path, serve
//	    --haproxy-socket): HAProxy routes users it served within the window by itself
//
// and prints requests/s, p99, each row's ratio to (c) and to (b), and each agent's CPU
// seconds per 1k decisions (from /proc/<pid>/stat before and after). The SPOP part (spop.go)
// measures the agents alone through the load generator `stickyseat bench` uses.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stickyseat/stickyseat/haproxy"
	"github.com/stickyseat/stickyseat/internal/testbed"
	"github.com/stickyseat/stickyseat/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "httpbench: %v\n", err)
		os.Exit(1)
	}
}

// config is one httpbench run.
type config struct {
	agentBin, statelessBin string
	users                  []int
	duration, warmup       time.Duration
	conns, threads, rounds int
	script                 string
	redis                  bool
	http, spop             bool
	spopDuration           time.Duration
	growthSeats            int
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("httpbench", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.agentBin, "agent", "bin/stickyseat", "stickyseat binary")
	fs.StringVar(&cfg.statelessBin, "stateless", "", "bench/stateless binary (default: built from ./bench/stateless)")
	users := fs.String("users", "1000,100000", "distinct x-user values, one HTTP table per value")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "wrk duration per row and round")
	fs.DurationVar(&cfg.warmup, "warmup", 10*time.Second, "wrk run, not measured, just before each measurement, so that the stick tables (native and fast path) hold the users as in steady state: long enough for every user to come (users.lua starts each run at a random user; 100k users need about 5s at 20k requests/s)")
	fs.IntVar(&cfg.conns, "connections", 32, "wrk connections")
	fs.IntVar(&cfg.threads, "threads", 1, "wrk threads")
	fs.IntVar(&cfg.rounds, "rounds", 1, "rounds of every row, interleaved (a b c d e a b ...); the table shows each row's median")
	fs.StringVar(&cfg.script, "script", "bench/users.lua", "wrk Lua script")
	fs.BoolVar(&cfg.redis, "redis", true, "also run stickyseat with a Redis store (needs redis-server)")
	fs.BoolVar(&cfg.http, "http", true, "run the HTTP table (haproxy, wrk)")
	fs.BoolVar(&cfg.spop, "spop", false, "run the SPOP targets without HAProxy (spop.go)")
	fs.DurationVar(&cfg.spopDuration, "spop-duration", 5*time.Second, "duration of each SPOP measurement")
	fs.IntVar(&cfg.growthSeats, "growth-seats", 1000000, "live seats of the SPOP growth measurement (against 1000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, u := range strings.Split(*users, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(u))
		if err != nil || n <= 0 {
			return fmt.Errorf("--users: %q is not a positive number", u)
		}
		cfg.users = append(cfg.users, n)
	}
	if cfg.rounds <= 0 {
		return fmt.Errorf("--rounds: must be positive, got %d", cfg.rounds)
	}
	dir, err := os.MkdirTemp("", "stickyseat-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if cfg.statelessBin == "" {
		if cfg.statelessBin, err = buildStateless(ctx, dir); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "machine: %d CPUs, %s, %s; load average %s\n", runtime.NumCPU(), cpuModel(), runtime.Version(), loadAverage())
	if cfg.spop {
		if err := runSPOP(ctx, cfg, dir, out); err != nil {
			return err
		}
	}
	if !cfg.http {
		return nil
	}
	bins, err := testbed.HAProxyBins()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found (apt-get install wrk)")
	}
	version, _ := exec.Command(bins[0], "-v").Output()
	fmt.Fprintf(out, "\nHTTP through %s: wrk -t%d -c%d -d%s, %d round(s), median shown\n",
		firstLine(string(version)), cfg.threads, cfg.conns, cfg.duration, cfg.rounds)
	for i, u := range cfg.users {
		if err := runHTTP(ctx, cfg, bins[0], filepath.Join(dir, fmt.Sprintf("http%d", i)), u, out); err != nil {
			return err
		}
	}
	return nil
}

// setup is one row of the HTTP table.
type setup struct {
	id, name string
	frontend string
	agent    *agentProc // nil for (a) and (b)
}

// measure is one wrk run of one row.
type measure struct {
	rate     float64
	p99      time.Duration
	requests uint64
	non2xx   uint64
	cpuPer1k float64 // agent CPU seconds per 1k decisions; 0 without an agent
}

// globals is the start of every row's haproxy.cfg: no logging (it would cost each row a
// write per request), the same limits.
const globals = "global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 1m\n    timeout server 1m\n    timeout http-request 10s\n"

func runHTTP(ctx context.Context, cfg config, haproxyBin, dir string, users int, out io.Writer) error {
	names := []string{"s1", "s2", "s3"}
	backends, err := testbed.StartBackends(names...)
	if err != nil {
		return err
	}
	defer testbed.StopBackends(backends)
	// Everyone gets a seat: this measures the cost of deciding, not refusals.
	quota := users/len(names) + 1

	var rows []setup
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	startHAProxy := func(id string, cfgText string) (string, error) {
		d := filepath.Join(dir, id)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
		addr := strings.Fields(cfgText[strings.Index(cfgText, "bind ")+5:])[0]
		hp, err := testbed.StartHAProxy(haproxyBin, d, []byte(cfgText), addr)
		if err != nil {
			return "", err
		}
		stops = append(stops, hp.Stop)
		return addr, nil
	}
	plain := func(id, balance string, extra ...string) error {
		addr, err := testbed.FreePort()
		if err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString(globals)
		fmt.Fprintf(&b, "\nfrontend in\n    bind %s\n    default_backend servers\n\nbackend servers\n    balance %s\n", addr, balance)
		for _, l := range extra {
			fmt.Fprintf(&b, "    %s\n", l)
		}
		for _, be := range backends {
			fmt.Fprintf(&b, "    server %s %s\n", be.Name, be.Addr)
		}
		_, err = startHAProxy(id, b.String())
		if err != nil {
			return err
		}
		rows = append(rows, setup{id: id, frontend: addr})
		return nil
	}
	// spoe starts the HAProxy of an SPOE row; with socket set the row runs the fast path,
	// its runtime API at socket.
	spoe := func(id string, a *agentProc, socket string) error {
		addr, err := testbed.FreePort()
		if err != nil {
			return err
		}
		d := filepath.Join(dir, id)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		hc := haproxy.Config{Mode: "http", FrontendBind: addr, AgentAddr: a.addr, SPOEPath: filepath.Join(d, "stickyseat.spoe.conf"),
			NoHealthChecks: true, Pools: []haproxy.Pool{{Name: "default"}}, FastPath: socket != ""}
		for _, be := range backends {
			hc.Pools[0].Servers = append(hc.Pools[0].Servers, haproxy.Server{Name: be.Name, Addr: be.Addr})
		}
		_, spoeFile, err := haproxy.Render(hc)
		if err != nil {
			return err
		}
		main, err := haproxy.RenderStandalone(hc, haproxy.Globals{})
		if err != nil {
			return err
		}
		// The same global and defaults as (a) and (b).
		text := string(main)
		head := globals
		if socket != "" {
			head = strings.Replace(head, "global\n", "global\n    stats socket "+socket+" mode 600 level admin\n", 1)
		}
		text = head + text[strings.Index(text, "\nfrontend "):]
		if err := os.WriteFile(hc.SPOEPath, spoeFile, 0o644); err != nil {
			return err
		}
		if _, err := startHAProxy(id, text); err != nil {
			return err
		}
		rows = append(rows, setup{id: id, frontend: addr, agent: a})
		return nil
	}
	startAgent := func(name, bin string, args ...string) (*agentProc, error) {
		a, err := startAgentProc(name, bin, args...)
		if err != nil {
			return nil, err
		}
		stops = append(stops, a.stop)
		return a, nil
	}

	if err := plain("a", "roundrobin"); err != nil {
		return err
	}
	if err := plain("b", "leastconn", "stick-table type string len 64 size 1m expire 1h", "stick on req.hdr(x-user)"); err != nil {
		return err
	}
	st, err := startAgent("stateless", cfg.statelessBin, "--listen", "127.0.0.1:0", "--servers", strings.Join(names, ","))
	if err != nil {
		return err
	}
	if err := spoe("c", st, ""); err != nil {
		return err
	}
	seatArgs := []string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json",
		"--servers", strings.Join(names, ","), "--max-users", strconv.Itoa(quota), "--idle-timeout", "1h"}
	mem, err := startAgent("stickyseat memory", cfg.agentBin, seatArgs...)
	if err != nil {
		return err
	}
	if err := spoe("d", mem, ""); err != nil {
		return err
	}
	// The unix socket path must stay under 108 bytes: the temporary directory is short.
	socket := filepath.Join(dir, "f.sock")
	fast, err := startAgent("stickyseat fast path", cfg.agentBin, append(seatArgs, "--haproxy-socket", socket, "--keepalive-interval", "10s")...)
	if err != nil {
		return err
	}
	if err := spoe("f", fast, socket); err != nil {
		return err
	}
	if cfg.redis {
		r, stopRedis, err := startRedis(filepath.Join(dir, "redis"))
		if err != nil {
			return err
		}
		stops = append(stops, stopRedis)
		rd, err := startAgent("stickyseat redis", cfg.agentBin, append(seatArgs, "--redis", r)...)
		if err != nil {
			return err
		}
		if err := spoe("e", rd, ""); err != nil {
			return err
		}
	}

	results := make([][]measure, len(rows))
	for round := 0; round < cfg.rounds; round++ {
		for i, r := range rows {
			m, err := measureRow(ctx, cfg, r, users)
			if err != nil {
				return fmt.Errorf("row (%s): %w", r.id, err)
			}
			results[i] = append(results[i], m)
		}
	}
	med := make(map[string]measure, len(rows))
	for i, r := range rows {
		med[r.id] = median(results[i])
	}
	printHTTPTable(out, users, rows, med)
	return nil
}

var rowNames = map[string]string{
	"a": "(a) round robin, no stickiness",
	"b": "(b) native stick on req.hdr(x-user) + leastconn",
	"c": "(c) stateless SPOA (hash only, same SPOP layer)",
	"d": "(d) stickyseat, memory store",
	"e": "(e) stickyseat, Redis store",
	"f": "(f) stickyseat, memory store, fast path",
}

func measureRow(ctx context.Context, cfg config, r setup, users int) (measure, error) {
	var cpu0 time.Duration
	var err error
	if cfg.warmup > 0 {
		warm := cfg
		warm.duration = cfg.warmup
		if _, err := wrk(ctx, warm, r.frontend, users); err != nil {
			return measure{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	if r.agent != nil {
		if cpu0, err = loadgen.ProcessCPU(r.agent.pid()); err != nil {
			return measure{}, err
		}
	}
	m, err := wrk(ctx, cfg, r.frontend, users)
	if err != nil {
		return m, err
	}
	if r.agent != nil && m.requests > 0 {
		cpu1, err := loadgen.ProcessCPU(r.agent.pid())
		if err != nil {
			return m, err
		}
		// Every request is one SPOE decision (http-request send-spoe-group), except on the
		// fast path, where most requests take none: its figure is per 1k requests.
		m.cpuPer1k = (cpu1 - cpu0).Seconds() / float64(m.requests) * 1000
	}
	return m, nil
}

// median picks, field by field, the median of the rounds.
func median(ms []measure) measure {
	pick := func(f func(measure) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = f(m)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return measure{
		rate:     pick(func(m measure) float64 { return m.rate }),
		p99:      time.Duration(pick(func(m measure) float64 { return float64(m.p99) })),
		requests: uint64(pick(func(m measure) float64 { return float64(m.requests) })),
		non2xx:   uint64(pick(func(m measure) float64 { return float64(m.non2xx) })),
		cpuPer1k: pick(func(m measure) float64 { return m.cpuPer1k }),
	}
}

func printHTTPTable(out io.Writer, users int, rows []setup, med map[string]measure) {
	fmt.Fprintf(out, "\n%d distinct x-user values (load average at the end: %s)\n\n", users, loadAverage())
	fmt.Fprintf(out, "| setup | requests/s | p99 | ÷ (c) | ÷ (b) | agent CPU s / 1k decisions | non-2xx |\n|---|---|---|---|---|---|---|\n")
	ratio := func(id, to string) string {
		base, ok := med[to]
		if !ok || base.rate == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", med[id].rate/base.rate)
	}
	for _, r := range rows {
		m := med[r.id]
		cpu := "–"
		if r.agent != nil {
			cpu = fmt.Sprintf("%.4f", m.cpuPer1k)
		}
		fmt.Fprintf(out, "| %s | %.0f | %s | %s | %s | %s | %d |\n", rowNames[r.id], m.rate, fmtDuration(m.p99), ratio(r.id, "c"), ratio(r.id, "b"), cpu, m.non2xx)
	}
	for _, t := range []struct {
		id   string
		want float64
	}{{"d", 0.95}, {"e", 0.85}} {
		if _, ok := med[t.id]; !ok || med["c"].rate == 0 {
			continue
		}
		got := med[t.id].rate / med["c"].rate
		verdict := "met"
		if got < t.want {
			verdict = "MISSED"
		}
		fmt.Fprintf(out, "target %s ≥ %.2f × (c) at %d users: %.2f, %s\n", rowNames[t.id][:3], t.want, users, got, verdict)
	}
	if f, b := med["f"], med["b"]; b.rate > 0 && f.rate > 0 {
		verdict := "met"
		if f.rate/b.rate < 0.9 {
			verdict = "MISSED"
		}
		fmt.Fprintf(out, "target (f) ≥ 0.90 × (b) at %d users: %.2f, %s; (f) ÷ (d) = %.2f\n", users, f.rate/b.rate, verdict, f.rate/med["d"].rate)
	}
}

func fmtDuration(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// cpuModel is the "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// loadAverage is the first three fields of /proc/loadavg: other work on the machine shows
// in the numbers, so the output says how busy it was.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
