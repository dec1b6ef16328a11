// Command stateless is the floor any SPOE agent can reach here: built with the same SPOE
// library as stickyseat (negasus/haproxy-spoe-go v1.0.7), it answers the stickyseat message
// by hashing the key to a server, with no state, no quota and no store. The benchmarks
// compare stickyseat with it (row (c) of `make bench`).
//
// --io agent (the default) serves it through stickyseat's own SPOP layer (package agent: the
// frame guard and its write combining) with a hash-only decider, so that the comparison
// isolates what seats cost; --io library serves it with the library's plain server, the
// floor of an agent written the straightforward way; --io bare serves it with no library at
// all (bare.go), the floor of this machine and load tool.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/negasus/haproxy-spoe-go/action"
	spoe "github.com/negasus/haproxy-spoe-go/agent"
	"github.com/negasus/haproxy-spoe-go/logger"
	"github.com/negasus/haproxy-spoe-go/request"
	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "stateless: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("stateless", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:12346", "SPOP address")
	servers := fs.String("servers", "s1,s2,s3", "server names the keys are hashed to")
	io := fs.String("io", "agent", "SPOP layer: agent (stickyseat's, with its write combining), library (the library's plain server) or bare (no library: the machine's floor)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	names := strings.Split(*servers, ",")
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("--servers: empty server name in %q", *servers)
		}
	}
	if *io != "agent" && *io != "library" && *io != "bare" {
		return fmt.Errorf("--io: %q is none of agent, library, bare", *io)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	// The same start-up line as stickyseat serve --log-format json, so the same tools find
	// the address.
	line, _ := json.Marshal(map[string]string{"message": "stateless agent started", "listen": ln.Addr().String()})
	fmt.Fprintf(out, "%s\n", line)
	return serve(ctx, ln, names, *io)
}

// serve answers on ln until ctx is cancelled, through the named SPOP layer.
func serve(ctx context.Context, ln net.Listener, servers []string, io string) error {
	switch io {
	case "agent":
		return agent.New(hashDecider(servers), agent.Options{Logger: zerolog.Nop()}).Serve(ctx, ln)
	case "bare":
		return serveBare(ctx, ln, servers)
	}
	return serveLibrary(ctx, ln, servers)
}

// hashDecider seats every key on the server it hashes to: the decision without state.
type hashDecider []string

// NeverBlocks: like the memory store, it never waits, so it gets no deadline context.
func (h hashDecider) NeverBlocks() bool { return true }

func (h hashDecider) Decide(_ context.Context, req assign.Request) assign.Decision {
	if req.Key == "" {
		return assign.Decision{Status: assign.StatusInvalid, Err: assign.ErrNoKey}
	}
	return assign.Decision{Status: assign.StatusHit, Server: h[fnv1a(req.Key)%uint64(len(h))]}
}

func fnv1a[T string | []byte](k T) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(k); i++ {
		h = (h ^ uint64(k[i])) * 1099511628211
	}
	return h
}

// serveLibrary answers on ln with the library's plain server until ctx is cancelled.
// Connections in progress are not waited for: this agent holds nothing worth finishing.
func serveLibrary(ctx context.Context, ln net.Listener, servers []string) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	err := spoe.New(handler(servers), logger.NewNop()).Serve(ln)
	if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// handler answers every "stickyseat" message with status=hit and the server its key
// hashes to (FNV-1a), as strings (the library panics on some ints); no key is invalid.
func handler(servers []string) func(*request.Request) {
	return func(req *request.Request) {
		m, err := req.Messages.GetByName(agent.MessageName)
		if err != nil {
			return
		}
		v, ok := m.KV.Get(agent.ArgKey)
		if !ok {
			req.Actions.SetVar(action.ScopeTransaction, agent.VarStatus, assign.StatusInvalid.String())
			return
		}
		var h uint64
		switch k := v.(type) {
		case string:
			h = fnv1a(k)
		case []byte:
			h = fnv1a(k)
		case net.IP:
			h = fnv1a([]byte(k))
		default:
			req.Actions.SetVar(action.ScopeTransaction, agent.VarStatus, assign.StatusInvalid.String())
			return
		}
		req.Actions.SetVar(action.ScopeTransaction, agent.VarStatus, assign.StatusHit.String())
		req.Actions.SetVar(action.ScopeTransaction, agent.VarServer, servers[h%uint64(len(servers))])
	}
}
