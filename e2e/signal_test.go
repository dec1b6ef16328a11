package e2e

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
	"github.com/stickyseat/stickyseat/internal/testbed"
)

// TestAgentExitsCleanlyOnSignal answers over real SPOP, then checks SIGTERM and SIGINT
// each make the binary exit 0.
func TestAgentExitsCleanlyOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p, addr, err := testbed.StartAgent(agentBin, "--servers", "s1,s2")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			c := spoptest.NewClient(conn)
			if _, err := c.Hello(false); err != nil {
				t.Fatal(err)
			}
			acts, err := c.Notify(1, 1, spop.Message{Name: "stickyseat", Args: []spop.KV{{Name: "key", Value: spop.Str("alice")}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := spoptest.Vars(acts); got["status"] != "new" || got["server"] != "s1" {
				t.Errorf("first user got %v; want status new on s1", got)
			}
			if err := p.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(10 * time.Second); err != nil {
				t.Errorf("agent after %s: %v; want exit status 0\n%s", sig, err, p.Output())
			}
		})
	}
}
