package testbed

import (
	"fmt"
	"net"
	"os/exec"
	"time"
)

// Redis is a redis-server without persistence on a loopback port.
type Redis struct {
	Addr  string
	dir   string
	bin   string
	extra []string
	proc  *Process
}

// RedisBin returns the redis-server binary, or an error saying how to install it.
func RedisBin() (string, error) {
	for _, p := range []string{"redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin, nil
		}
	}
	return "", fmt.Errorf("redis-server not found (install it: apt-get install redis-server)")
}

// StartRedis starts redis-server on a free loopback port, its files in dir, without
// persistence unless extra says otherwise (e.g. "--appendonly", "yes").
func StartRedis(bin, dir string, extra ...string) (*Redis, error) {
	addr, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Addr: addr, dir: dir, bin: bin, extra: extra}
	return r, r.Start()
}

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// Start (re)starts the server on its port and waits until it listens.
func (r *Redis) Start() error {
	_, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return err
	}
	args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir}, r.extra...)
	p, err := Start("redis-server", r.bin, args...)
	if err != nil {
		return err
	}
	if err := WaitListening(p, r.Addr, 10*time.Second); err != nil {
		p.Stop()
		return err
	}
	r.proc = p
	return nil
}

// Stop stops the server (its seats are lost: no persistence).
func (r *Redis) Stop() { r.proc.Stop() }

// Kill ends the server with SIGKILL, as a crash would: what it had not written to disk is
// lost even with persistence on.
func (r *Redis) Kill() error { return r.proc.Kill() }

// Output is what the server logged.
func (r *Redis) Output() string {
	if r.proc == nil {
		return ""
	}
	return r.proc.Output()
}
