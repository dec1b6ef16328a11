package redis

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a test waits for a redis-server process to answer.
const startTimeout = 10 * time.Second

// redisServer is one redis-server process on a loopback port, stopped in t.Cleanup.
type redisServer struct {
	tb    testing.TB
	bin   string
	port  int
	first []string // before --port: a configuration file, --sentinel
	args  []string
	dir   string
	log   *syncBuffer
	cmd   *exec.Cmd
	done  chan struct{}
}

// Addr is the server's host:port.
func (r *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the server's redis:// URL.
func (r *redisServer) URL() string { return "redis://" + r.Addr() }

// redisBinary returns the path of redis-server, or skips the test (fails it when CI=true).
func redisBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis-server not found and CI=true: %v", err)
		}
		tb.Skipf("redis-server not found: %v", err)
	}
	return bin
}

// startRedis starts a redis-server without persistence on a free loopback port, with extra
// configuration arguments (pairs like "--maxmemory", "10mb"), and waits until it answers PING.
func startRedis(tb testing.TB, extra ...string) *redisServer {
	tb.Helper()
	return startRedisWith(tb, nil, extra...)
}

// startRedisWith is startRedis with arguments that must come first (a configuration file).
func startRedisWith(tb testing.TB, first []string, extra ...string) *redisServer {
	tb.Helper()
	r := &redisServer{tb: tb, bin: redisBinary(tb), port: freePort(tb), first: first, dir: tb.TempDir(), log: &syncBuffer{}}
	r.args = append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", ""}, extra...)
	tb.Cleanup(func() {
		r.Stop()
		if tb.Failed() {
			tb.Logf("redis-server %s log:\n%s", r.Addr(), r.log.String())
		}
	})
	r.Start()
	return r
}

// Start (re)starts the process on the same port and waits for PING.
func (r *redisServer) Start() {
	r.tb.Helper()
	args := slices.Concat(r.first, []string{"--port", strconv.Itoa(r.port)}, r.args)
	r.startProcess(args...)
	waitPing(r.tb, r.Addr(), r.done, r.log)
}

func (r *redisServer) startProcess(args ...string) {
	r.tb.Helper()
	r.cmd = exec.Command(r.bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.tb.Fatalf("start %s: %v", r.bin, err)
	}
	done := make(chan struct{})
	r.done = done
	cmd := r.cmd
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(r.log, "--- process exited: %v\n", err)
		close(done)
	}()
}

// Stop kills the process and waits for it to exit.
func (r *redisServer) Stop() {
	if r.cmd == nil {
		return
	}
	if err := r.cmd.Process.Kill(); err != nil {
		fmt.Fprintf(r.log, "--- kill: %v\n", err)
	}
	<-r.done
	r.cmd = nil
}

// Client returns a plain client to the server, closed in t.Cleanup.
func (r *redisServer) Client() *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true})
	r.tb.Cleanup(func() { c.Close() })
	return c
}

// waitPing polls PING until the server answers, its process exits (done closes) or
// startTimeout passes.
func waitPing(tb testing.TB, addr string, done <-chan struct{}, log *syncBuffer) {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	var err error
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case <-done:
			tb.Fatalf("redis-server for %s exited before answering PING; log:\n%s", addr, log.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err = c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
	}
	tb.Fatalf("redis at %s did not answer PING within %v: %v", addr, startTimeout, err)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts three masters, joins them with redis-cli --cluster create, and waits
// until every node reports cluster_state:ok. It returns the nodes' addresses.
func startCluster(t *testing.T) []string {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		redisBinary(t) // skips, or fails under CI=true, when redis-server is missing too
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-cli not found and CI=true: %v", err)
		}
		t.Skipf("redis-cli not found: %v", err)
	}
	var addrs []string
	for range 3 {
		dir := t.TempDir()
		r := startRedis(t, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(freePort(t)),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "5000")
		addrs = append(addrs, r.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, addr := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		waitFor(t, 20*time.Second, "cluster_state:ok on "+addr, func() error {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("cluster info: %s", firstLine(info))
			}
			return nil
		})
		c.Close()
	}
	return addrs
}

// waitFor polls cond every 20ms until it returns nil, failing the test after timeout with
// the last error.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	var err error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = cond(); err == nil {
			return
		}
	}
	tb.Fatalf("%s: not reached within %v: %v", what, timeout, err)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
