package agent

import (
	"net"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
)

// FuzzFrames drives arbitrary bytes at a live agent, before or after a valid HELLO, and
// checks that a well-behaved HAProxy connection opened afterwards is still answered.
func FuzzFrames(f *testing.F) {
	hello := spop.AppendHello(nil, 16380, false)
	notify := spop.AppendNotify(nil, 1, 1, msg(arg("key", spop.Str("alice")), arg("pool", spop.Str("web"))))
	f.Add(false, hello)
	f.Add(true, notify)
	f.Add(true, frameLen(0))
	f.Add(true, append(frameLen(5), 3, 0, 0, 0, 1))
	f.Add(false, append(append([]byte(nil), hello...), notify...))
	f.Add(true, spop.AppendDisconnect(nil, spop.TypeHAProxyDisconnect, 0, "normal"))
	f.Add(true, notify[:len(notify)-3])

	_, addr, _ := startAgent(f, &fakeDecider{}, Options{})
	f.Fuzz(func(t *testing.T, afterHello bool, data []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("agent stopped accepting: %v", err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if afterHello {
			if _, err := spoptest.NewClient(conn).Hello(false); err != nil {
				t.Fatalf("Hello: %v", err)
			}
		}
		conn.Write(data) // the agent may close first; only its survival matters
		conn.Close()

		good, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("agent stopped accepting after %q: %v", data, err)
		}
		defer good.Close()
		good.SetDeadline(time.Now().Add(5 * time.Second))
		c := spoptest.NewClient(good)
		if _, err := c.Hello(false); err != nil {
			t.Fatalf("Hello after %q: %v", data, err)
		}
		acts, err := c.Notify(7, 1, msg(arg("key", spop.Str("bob"))))
		if err != nil {
			t.Fatalf("Notify after %q: %v", data, err)
		}
		if got := spoptest.Vars(acts)[VarServer]; got != "srv-bob-" {
			t.Fatalf("server after %q = %q; want srv-bob-", data, got)
		}
	})
}
