// Command httpbench puts the same HTTP load (wrk, many distinct x-user values) through HAProxy
// configured three ways — HAProxy's native `stick on req.hdr(x-user)` table, stickyseat with
// the memory store, stickyseat with Redis — and prints requests/s and latency of each from one
// run. Each setup has its own haproxy process in front of the same three backends.
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
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "httpbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("httpbench", flag.ContinueOnError)
	agentBin := fs.String("agent", "bin/stickyseat", "stickyseat binary")
	users := fs.Int("users", 1000, "distinct x-user values")
	duration := fs.Duration("duration", 10*time.Second, "wrk duration per row")
	conns := fs.Int("connections", 32, "wrk connections")
	threads := fs.Int("threads", 1, "wrk threads")
	script := fs.String("script", "bench/users.lua", "wrk Lua script")
	withRedis := fs.Bool("redis", true, "also run stickyseat with a Redis store (needs redis-server)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bins, err := testbed.HAProxyBins()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found (apt-get install wrk)")
	}
	dir, err := os.MkdirTemp("", "stickyseat-httpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	names := []string{"s1", "s2", "s3"}
	backends, err := testbed.StartBackends(names...)
	if err != nil {
		return err
	}
	defer testbed.StopBackends(backends)
	quota := *users/len(names) + 1 // everyone gets a seat: this measures the cost, not refusals

	type row struct{ name, addr string }
	var rows []row

	// (a) HAProxy's native stickiness: the floor of what stickiness costs in HAProxy itself.
	nativeAddr, err := testbed.FreePort()
	if err != nil {
		return err
	}
	var native strings.Builder
	fmt.Fprintf(&native, "global\n    maxconn 4096\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 1m\n    timeout server 1m\n")
	fmt.Fprintf(&native, "\nfrontend native_in\n    bind %s\n    default_backend native\n", nativeAddr)
	fmt.Fprintf(&native, "\nbackend native\n    balance leastconn\n    stick-table type string len 64 size 1m expire 1h\n    stick on req.hdr(x-user)\n")
	for _, b := range backends {
		fmt.Fprintf(&native, "    server %s %s\n", b.Name, b.Addr)
	}
	ndir := filepath.Join(dir, "native")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return err
	}
	hp, err := testbed.StartHAProxy(bins[0], ndir, []byte(native.String()), nativeAddr)
	if err != nil {
		return err
	}
	defer hp.Stop()
	rows = append(rows, row{"native stick on req.hdr(x-user) + leastconn", nativeAddr})

	// (b) stickyseat with the memory store, (c) with Redis when redis-server is installed.
	stores := []struct{ name, redis string }{{"stickyseat, memory store", ""}}
	if *withRedis {
		bin, err := testbed.RedisBin()
		if err != nil {
			return err
		}
		rdir := filepath.Join(dir, "redis")
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return err
		}
		r, err := testbed.StartRedis(bin, rdir)
		if err != nil {
			return err
		}
		defer r.Stop()
		stores = append(stores, struct{ name, redis string }{"stickyseat, redis store", r.URL()})
	}
	for i, st := range stores {
		sdir := filepath.Join(dir, fmt.Sprintf("seat%d", i))
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return err
		}
		stack, err := testbed.StartStack(testbed.StackOptions{AgentBin: *agentBin, HAProxyBin: bins[0], Dir: sdir,
			Mode: "http", Backends: backends, MaxUsers: quota, Idle: time.Hour, Redis: st.redis})
		if err != nil {
			return err
		}
		defer stack.Close()
		rows = append(rows, row{st.name, stack.Frontend})
	}

	version, _ := exec.Command(bins[0], "-v").Output()
	fmt.Fprintf(out, "httpbench: wrk -t%d -c%d -d%s, %d distinct x-user values, %d CPUs, %s\n",
		*threads, *conns, *duration, *users, runtime.NumCPU(), firstLine(string(version)))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "setup\trequests/s\tp50\tp99\tnon-2xx\t")
	var rates []float64
	for _, r := range rows {
		res, err := wrk(ctx, *script, r.addr, *users, *threads, *conns, *duration)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		rates = append(rates, res.rate)
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%d\t\n", r.name, res.rate, res.p50, res.p99, res.non2xx)
	}
	tw.Flush()
	for i := 1; i < len(rows); i++ {
		fmt.Fprintf(out, "%s / native = %.2f\n", rows[i].name, rates[i]/rates[0])
	}
	return nil
}

type wrkResult struct {
	rate     float64
	p50, p99 string
	non2xx   int
}

var (
	reRate   = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP50    = regexp.MustCompile(`\s50%\s+(\S+)`)
	reP99    = regexp.MustCompile(`\s99%\s+(\S+)`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
)

func wrk(ctx context.Context, script, addr string, users, threads, conns int, d time.Duration) (wrkResult, error) {
	cmd := exec.CommandContext(ctx, "wrk", fmt.Sprintf("-t%d", threads), fmt.Sprintf("-c%d", conns),
		fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency", "-s", script, "http://"+addr+"/")
	cmd.Env = append(os.Environ(), fmt.Sprintf("USERS=%d", users))
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, outb)
	}
	s := string(outb)
	var r wrkResult
	m := reRate.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", s)
	}
	fmt.Sscan(m[1], &r.rate)
	if m := reP50.FindStringSubmatch(s); m != nil {
		r.p50 = m[1]
	}
	if m := reP99.FindStringSubmatch(s); m != nil {
		r.p99 = m[1]
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		fmt.Sscan(m[1], &r.non2xx)
	}
	return r, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
