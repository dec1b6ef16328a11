package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// agentProc is an SPOE agent process (stickyseat serve or the stateless floor) whose pid
// the CPU column reads.
type agentProc struct {
	name string
	addr string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAgentProc runs bin with args (which make it listen on 127.0.0.1:0 and log its JSON
// start-up line) and waits for the address it reports.
func startAgentProc(name, bin string, args ...string) (*agentProc, error) {
	p := &agentProc{name: name, cmd: exec.Command(bin, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.addr == "" {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		for sc.Scan() {
			var line struct {
				Message string `json:"message"`
				Listen  string `json:"listen"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasSuffix(line.Message, "agent started") {
				p.addr = line.Listen
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before listening:\n%s", name, p.out.String())
		default:
		}
		if p.addr == "" && time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not report its address in 10s:\n%s", name, p.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p, nil
}

func (p *agentProc) pid() int { return p.cmd.Process.Pid }

// stop ends the process: SIGTERM, then SIGKILL after 5s.
func (p *agentProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// buildStateless compiles ./bench/stateless into dir.
func buildStateless(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "stateless")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/stateless").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./bench/stateless: %v\n%s", err, out)
	}
	return bin, nil
}
