// Package testbed starts the real parts of a stickyseat deployment on loopback — tiny
// backends, the agent binary, haproxy — for the end-to-end tests and `make demo`.
package testbed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stickyseat/stickyseat/internal/haproxybin"
)

// Backend is a tiny HTTP server that answers its own name, like the blog's Flask app.
type Backend struct {
	Name string
	Addr string
	srv  *http.Server
}

func (b *Backend) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, b.Name)
	})
	// /stream is a server-sent-events stream, like the blog's: the name, then a line every
	// 100ms until the client goes away.
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", b.Name)
		f, _ := w.(http.Flusher)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if f != nil {
				f.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				if _, err := io.WriteString(w, "data: still connected\n\n"); err != nil {
					return
				}
			}
		}
	})
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go b.srv.Serve(ln)
}

// Stop closes the backend: its port refuses connections, as a crashed server's would.
func (b *Backend) Stop() { b.srv.Close() }

// Restart listens again on the same address.
func (b *Backend) Restart() error {
	ln, err := net.Listen("tcp", b.Addr)
	if err != nil {
		return fmt.Errorf("restart backend %s: %w", b.Name, err)
	}
	b.serve(ln)
	return nil
}

// StartBackends starts one backend per name on 127.0.0.1 random ports.
func StartBackends(names ...string) ([]*Backend, error) {
	var out []*Backend
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			StopBackends(out)
			return nil, fmt.Errorf("backend %s: %w", name, err)
		}
		b := &Backend{Name: name, Addr: ln.Addr().String()}
		b.serve(ln)
		out = append(out, b)
	}
	return out, nil
}

// StopBackends closes the backends.
func StopBackends(bs []*Backend) {
	for _, b := range bs {
		b.srv.Close()
	}
}

// Process is a started child process whose combined output is kept for diagnosis.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs a command with its output captured.
func Start(name string, bin string, args ...string) (*Process, error) {
	p := &Process{Name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Output returns everything the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to d for the process to exit and returns its exit error.
func (p *Process) Wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("%s still running after %s", p.Name, d)
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after 5s.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	if ok, _ := p.Exited(); ok {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// WaitListening polls until addr accepts TCP connections, the process exits, or d passes.
func WaitListening(p *Process, addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if ok, err := p.Exited(); ok {
			return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", p.Name, err, addr, p.Output())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %s:\n%s", p.Name, addr, d, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartAgent runs `stickyseat serve` with args (which must not set --listen) on a random
// loopback port and returns the process and the address it listens on, read from its
// start-up log line.
func StartAgent(bin string, args ...string) (*Process, string, error) {
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)
	return StartListening("stickyseat", bin, args...)
}

// StartListening runs an SPOE agent (stickyseat or the benchmarks' stateless floor) whose
// arguments make it listen on port 0, and returns the address its JSON start-up line
// ("... agent started", field listen) reports.
func StartListening(name, bin string, args ...string) (*Process, string, error) {
	p, err := Start(name, bin, args...)
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if addr := agentAddr(p.Output()); addr != "" {
			return p, addr, nil
		}
		if ok, err := p.Exited(); ok {
			return nil, "", fmt.Errorf("%s exited (%v):\n%s", name, err, p.Output())
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, "", fmt.Errorf("%s did not log its address in 10s:\n%s", name, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitBound polls the kernel's socket table until a socket listens on addr (a 127.0.0.1
// address), without connecting to it.
func WaitBound(p *Process, addr string, d time.Duration) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	var n int
	if _, err := fmt.Sscan(port, &n); err != nil {
		return fmt.Errorf("port of %q: %w", addr, err)
	}
	// /proc/net/tcp lists "local_address" as hex IP:port, state 0A is LISTEN.
	want := fmt.Sprintf("0100007F:%04X 00000000:0000 0A", n)
	deadline := time.Now().Add(d)
	for {
		if ok, err := p.Exited(); ok {
			return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", p.Name, err, addr, p.Output())
		}
		table, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return fmt.Errorf("wait for %s: %w", addr, err)
		}
		if strings.Contains(string(table), want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %s:\n%s", p.Name, addr, d, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogField returns the field of the first JSON log line with the given message ("" when
// there is none yet), e.g. LogField(p.Output(), "admin listening", "admin_listen").
func LogField(out, message, field string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == message {
			v, _ := line[field].(string)
			return v
		}
	}
	return ""
}

// agentAddr finds the listen address in the agent's start-up log line.
func agentAddr(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			Listen  string `json:"listen"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasSuffix(line.Message, "agent started") {
			return line.Listen
		}
	}
	return ""
}

// FreePort returns a loopback address that was free a moment ago, for processes that
// cannot report the port they bound (haproxy).
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartHAProxy writes cfg into dir and runs haproxy in the foreground on it, waiting until
// waitAddr listens.
func StartHAProxy(bin, dir string, cfg []byte, waitAddr string) (*Process, error) {
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s -c rejects the config: %v\n%s\n%s", bin, err, out, cfg)
	}
	p, err := Start("haproxy", bin, "-f", path, "-db")
	if err != nil {
		return nil, err
	}
	// Not WaitListening: a probe connection would be a user to stickyseat (in tcp mode
	// the probe's source address takes a seat).
	if err := WaitBound(p, waitAddr, 10*time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// HAProxyBins lists the haproxy binaries to test: HAPROXY_BINS (space separated) or the
// haproxy on PATH (or /usr/sbin, where Debian puts it), as absolute paths. Missing ones are
// an error.
func HAProxyBins() ([]string, error) { return haproxybin.List() }

// BuildAgent compiles ./cmd/stickyseat from the module at root into dir.
func BuildAgent(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "stickyseat")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/stickyseat")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stickyseat: %v\n%s", err, out)
	}
	return bin, nil
}
