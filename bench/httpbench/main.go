// Command httpbench puts the same HTTP load (wrk, many distinct x-user values) through one
// HAProxy configured two ways — stickyseat in the path, and HAProxy's native
// `stick on req.hdr(x-user)` table — and prints requests/s and latency of both from one run.
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

	"github.com/stickyseat/stickyseat/haproxy"
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
	agent, agentAddr, err := testbed.StartAgent(*agentBin, "--servers", strings.Join(names, ","),
		"--max-users", fmt.Sprint(quota), "--idle-timeout", "1h")
	if err != nil {
		return err
	}
	defer agent.Stop()

	seatAddr, err := testbed.FreePort()
	if err != nil {
		return err
	}
	nativeAddr, err := testbed.FreePort()
	if err != nil {
		return err
	}
	pool := haproxy.Pool{Name: "default"}
	for _, b := range backends {
		pool.Servers = append(pool.Servers, haproxy.Server{Name: b.Name, Addr: b.Addr})
	}
	spoePath := filepath.Join(dir, "stickyseat.spoe.conf")
	hc := haproxy.Config{Mode: "http", FrontendBind: seatAddr, AgentAddr: agentAddr, SPOEPath: spoePath,
		Pools: []haproxy.Pool{pool}, NoHealthChecks: true}
	cfg, err := haproxy.RenderStandalone(hc, haproxy.Globals{})
	if err != nil {
		return err
	}
	_, spoe, err := haproxy.Render(hc)
	if err != nil {
		return err
	}
	if err := os.WriteFile(spoePath, spoe, 0o644); err != nil {
		return err
	}
	var native strings.Builder
	fmt.Fprintf(&native, "\nfrontend native_in\n    mode http\n    bind %s\n    default_backend native\n", nativeAddr)
	fmt.Fprintf(&native, "\nbackend native\n    mode http\n    balance leastconn\n    stick-table type string len 64 size 1m expire 1h\n    stick on req.hdr(x-user)\n")
	for _, b := range backends {
		fmt.Fprintf(&native, "    server %s %s\n", b.Name, b.Addr)
	}
	cfg = append(cfg, native.String()...)
	hp, err := testbed.StartHAProxy(bins[0], dir, cfg, seatAddr)
	if err != nil {
		return err
	}
	defer hp.Stop()

	version, _ := exec.Command(bins[0], "-v").Output()
	fmt.Fprintf(out, "httpbench: wrk -t%d -c%d -d%s, %d distinct x-user values, %d CPUs, %s\n",
		*threads, *conns, *duration, *users, runtime.NumCPU(), firstLine(string(version)))
	rows := []struct{ name, addr string }{
		{"native stick on req.hdr(x-user) + leastconn", nativeAddr},
		{"stickyseat (memory store)", seatAddr},
	}
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
	fmt.Fprintf(out, "stickyseat / native = %.2f\n", rates[1]/rates[0])
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
