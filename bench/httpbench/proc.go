package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// agentProc is an SPOE agent process (stickyseat serve or the stateless floor) whose pid
// the CPU column reads.
type agentProc struct {
	*testbed.Process
	name, addr string
}

// startAgentProc runs bin with args (which make it listen on 127.0.0.1:0 and log its JSON
// start-up line) and waits for the address it reports.
func startAgentProc(name, bin string, args ...string) (*agentProc, error) {
	p, addr, err := testbed.StartListening(name, bin, args...)
	if err != nil {
		return nil, err
	}
	return &agentProc{Process: p, name: name, addr: addr}, nil
}

func (p *agentProc) pid() int { return p.Pid() }

func (p *agentProc) stop() { p.Stop() }

// buildStateless compiles ./bench/stateless into dir.
func buildStateless(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "stateless")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/stateless").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./bench/stateless: %v\n%s", err, out)
	}
	return bin, nil
}
