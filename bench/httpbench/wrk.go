package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

var (
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reRate     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP99      = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)\b`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	reErrors   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrk runs the Lua script's load against addr once.
func wrk(ctx context.Context, cfg config, addr string, users int) (measure, error) {
	cmd := exec.CommandContext(ctx, "wrk", fmt.Sprintf("-t%d", cfg.threads), fmt.Sprintf("-c%d", cfg.conns),
		fmt.Sprintf("-d%ds", int(cfg.duration.Seconds())), "--latency", "-s", cfg.script, "http://"+addr+"/")
	cmd.Env = append(os.Environ(), fmt.Sprintf("USERS=%d", users))
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return measure{}, fmt.Errorf("wrk: %v\n%s", err, outb)
	}
	s := string(outb)
	var m measure
	rate := reRate.FindStringSubmatch(s)
	req := reRequests.FindStringSubmatch(s)
	p99 := reP99.FindStringSubmatch(s)
	if rate == nil || req == nil || p99 == nil {
		return m, fmt.Errorf("unexpected wrk output:\n%s", s)
	}
	m.rate, _ = strconv.ParseFloat(rate[1], 64)
	m.requests, _ = strconv.ParseUint(req[1], 10, 64)
	d, err := time.ParseDuration(p99[1] + p99[2])
	if err != nil {
		return m, fmt.Errorf("wrk p99 %q: %w", p99[0], err)
	}
	m.p99 = d
	if n := reNon2xx.FindStringSubmatch(s); n != nil {
		m.non2xx, _ = strconv.ParseUint(n[1], 10, 64)
	}
	if e := reErrors.FindStringSubmatch(s); e != nil {
		return m, fmt.Errorf("wrk socket errors (%s):\n%s", e[0], s)
	}
	return m, nil
}

// startRedis starts a redis-server without persistence and returns its URL.
func startRedis(dir string) (string, func(), error) {
	bin, err := testbed.RedisBin()
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	r, err := testbed.StartRedis(bin, dir)
	if err != nil {
		return "", nil, err
	}
	return r.URL(), r.Stop, nil
}
