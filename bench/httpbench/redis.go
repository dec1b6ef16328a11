package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stickyseat/stickyseat/loadgen"
)

// redisCeiling compares new seats/s through stickyseat with what redis-benchmark gets
// running the same script with the same arguments on the same Redis (the script's own
// ceiling), and counts Redis round trips per decision on the hit path.
func redisCeiling(ctx context.Context, cfg config, dir string, out io.Writer) error {
	url, stopRedis, err := startRedis(filepath.Join(dir, "ceiling"))
	if err != nil {
		return err
	}
	defer stopRedis()
	addr := strings.TrimPrefix(url, "redis://")
	a, err := seatAgent(cfg, url)
	if err != nil {
		return err
	}
	defer a.stop()

	// The exact command the agent sends for a new seat, as Redis received it.
	mon, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer mon.Close()
	mon.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(mon)
	if _, err := mon.Write([]byte("MONITOR\r\n")); err != nil {
		return err
	}
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		return fmt.Errorf("redis MONITOR: %q %v", line, err)
	}
	if _, err := spopBench(ctx, cfg, a, "--requests", "1", "--new-ratio", "1", "--key-prefix", "probe-", "--connections", "1"); err != nil {
		return err
	}
	var cmd []string
	for cmd == nil {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("redis MONITOR: no script call seen: %w", err)
		}
		if tokens, err := monitorTokens(line); err == nil && len(tokens) > 0 && strings.HasPrefix(strings.ToUpper(tokens[0]), "EVAL") {
			cmd = tokens
		}
	}
	mon.Close()
	// The user key appears in KEYS[1] and as the set member: each gets its own random number.
	var user string
	for _, t := range cmd {
		if i := strings.Index(t, "probe-"); i >= 0 && user == "" {
			user = t[i:]
		}
	}
	if user == "" {
		return fmt.Errorf("no user key in the script call %q", cmd)
	}
	for i := range cmd {
		cmd[i] = strings.ReplaceAll(cmd[i], user, "rb-__rand_int__")
	}

	// Hit path: Redis calls per decision with the hit cache (--refresh-interval 1s, default).
	calls0, err := scriptCalls(addr)
	if err != nil {
		return err
	}
	hits, err := spopBench(ctx, cfg, a, "--users", "1000", "--prefill", "--connections", "4", "--pipeline", "20")
	if err != nil {
		return err
	}
	calls1, err := scriptCalls(addr)
	if err != nil {
		return err
	}

	// Interleaved rounds, medians: one sample each swings by half on a shared machine. Redis's
	// own CPU use shows whether Redis or the rest of the machine was the limit.
	clients := 20 // go-redis's default pool on 2 CPUs (10 per CPU): the agent's concurrency to Redis
	host, port, _ := net.SplitHostPort(addr)
	redisPID := pidOf("redis-server", addr)
	var agentRates, rbRates, agentBusy, rbBusy []float64
	var seats benchJSON
	for round := 0; round < cfg.rounds; round++ {
		cpu0, t0 := processCPU(redisPID), time.Now()
		seats, err = spopBench(ctx, cfg, a, "--new-ratio", "1", "--connections", "4", "--pipeline", "20")
		if err != nil {
			return err
		}
		agentRates = append(agentRates, seats.Rate)
		agentBusy = append(agentBusy, (processCPU(redisPID)-cpu0).Seconds()/time.Since(t0).Seconds())

		n := max(int(seats.Rate*cfg.spopDuration.Seconds()), 20000)
		args := append([]string{"-h", host, "-p", port, "-c", strconv.Itoa(clients), "-n", strconv.Itoa(n), "-r", "100000000", "--csv"}, cmd...)
		cpu0, t0 = processCPU(redisPID), time.Now()
		rb, err := exec.CommandContext(ctx, "redis-benchmark", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("redis-benchmark: %v\n%s", err, rb)
		}
		rbBusy = append(rbBusy, (processCPU(redisPID)-cpu0).Seconds()/time.Since(t0).Seconds())
		recs, err := csv.NewReader(strings.NewReader(string(rb))).ReadAll()
		if err != nil || len(recs) < 2 || len(recs[1]) < 2 {
			return fmt.Errorf("redis-benchmark output: %v\n%s", err, rb)
		}
		rps, err := strconv.ParseFloat(recs[1][1], 64)
		if err != nil {
			return fmt.Errorf("redis-benchmark rps %q: %w", recs[1][1], err)
		}
		rbRates = append(rbRates, rps)
	}
	agentRate, ceiling := medianOf(agentRates), medianOf(rbRates)
	fmt.Fprintf(out, "\nRedis: the assign script, new seats (stickyseat bench --new-ratio 1) against redis-benchmark -c %d -r 100000000 running the captured call; %d round(s) interleaved, median\n\n", clients, cfg.rounds)
	fmt.Fprintf(out, "| | new seats/s | redis-server CPU busy |\n|---|---|---|\n")
	fmt.Fprintf(out, "| stickyseat bench → agent → Redis | %.0f | %.0f %% |\n", agentRate, 100*medianOf(agentBusy))
	fmt.Fprintf(out, "| redis-benchmark → Redis (same script and arguments) | %.0f | %.0f %% |\n", ceiling, 100*medianOf(rbBusy))
	verdict(out, "Redis new seats/s ≥ 0.8 × redis-benchmark", agentRate/ceiling, 0.8, true)
	fmt.Fprintf(out, "hit path with the hit cache (1k users, --refresh-interval 1s): %d script calls for %d decisions = %.4f Redis round trips per decision\n",
		calls1-calls0, hits.Decisions, float64(calls1-calls0)/float64(hits.Decisions))
	return nil
}

// monitorTokens splits one MONITOR line (+<time> [db addr] "cmd" "arg" ...) into the
// command and its arguments.
func monitorTokens(line string) ([]string, error) {
	i := strings.IndexByte(line, ']')
	if i < 0 {
		return nil, errors.New("no ]")
	}
	s := line[i+1:]
	var out []string
	for {
		j := strings.IndexByte(s, '"')
		if j < 0 {
			return out, nil
		}
		s = s[j:]
		end := 1
		for ; end < len(s); end++ {
			if s[end] == '\\' {
				end++
				continue
			}
			if s[end] == '"' {
				break
			}
		}
		if end >= len(s) {
			return nil, errors.New("unterminated quote")
		}
		t, err := strconv.Unquote(s[:end+1])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
		s = s[end+1:]
	}
}

// scriptCalls returns how many EVALSHA and EVAL calls Redis has served.
func scriptCalls(addr string) (uint64, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("INFO commandstats\r\n")); err != nil {
		return 0, err
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("redis INFO: %q %v", head, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil {
		return 0, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, err
	}
	var total uint64
	for _, l := range strings.Split(string(body), "\r\n") {
		for _, p := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if rest, ok := strings.CutPrefix(l, p); ok {
				v, _, _ := strings.Cut(rest, ",")
				k, _ := strconv.ParseUint(v, 10, 64)
				total += k
			}
		}
	}
	return total, nil
}

func medianOf(v []float64) float64 {
	w := append([]float64(nil), v...)
	sort.Float64s(w)
	return w[len(w)/2]
}

// pidOf finds the process whose command line holds both name and addr (redis-server names
// its address in its process title); 0 when none.
func pidOf(name, addr string) int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), name) && strings.Contains(string(b), addr) {
			return pid
		}
	}
	return 0
}

// processCPU is loadgen.ProcessCPU, zero when the process is unknown.
func processCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := loadgen.ProcessCPU(pid)
	return d
}
