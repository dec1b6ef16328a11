package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// logLine returns the first JSON log line with the given message, or nil.
func logLine(out, message string) map[string]any {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["message"] == message {
			return line
		}
	}
	return nil
}

// takeSeats asks for each key once and returns the server each got; every one must be new.
func takeSeats(t *testing.T, addr string, keys ...string) map[string]string {
	t.Helper()
	c := spopClient(t, addr)
	servers := map[string]string{}
	for _, key := range keys {
		status, server := ask(t, c, key)
		if status != "new" {
			t.Fatalf("ask(%q) = %s on %q; want new", key, status, server)
		}
		servers[key] = server
	}
	return servers
}

// checkRestored asks for every seated user (hit on the same server) and then for
// newcomers, who find every server at quota (full).
func checkRestored(t *testing.T, addr string, seats map[string]string, newcomers ...string) {
	t.Helper()
	c := spopClient(t, addr)
	for key, want := range seats {
		if status, server := ask(t, c, key); status != "hit" || server != want {
			t.Errorf("after restart ask(%q) = %s on %q; want hit on %q", key, status, server, want)
		}
	}
	for _, key := range newcomers {
		if status, server := ask(t, c, key); status != "full" {
			t.Errorf("after restart newcomer ask(%q) = %s on %q; want full (quotas still taken)", key, status, server)
		}
	}
}

// TestStateSurvivesRestart takes every seat, stops the agent with SIGTERM and starts it
// again on the same --state-file: the same users are hits on the same servers and
// newcomers still find the servers at quota.
func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seats.state")
	args := []string{"--servers", "s1=2,s2=2", "--state-file", path}
	p, addr, _, _ := startAgentWith(t, args...)
	if line := logLine(p.Output(), "no state file yet; starting with no seats"); line == nil {
		t.Errorf("first start did not log the missing state file:\n%s", p.Output())
	}
	seats := takeSeats(t, addr, "alice", "bob", "carol", "dave")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(10 * time.Second); err != nil {
		t.Fatalf("agent after SIGTERM: %v; want exit 0\n%s", err, p.Output())
	}
	if line := logLine(p.Output(), "seats saved"); line == nil || line["seats"] != 4.0 {
		t.Errorf("shutdown log line %v; want seats saved with seats=4\n%s", line, p.Output())
	}

	p2, addr2, _, _ := startAgentWith(t, args...)
	if line := logLine(p2.Output(), "seats restored"); line == nil || line["restored"] != 4.0 || line["expired"] != 0.0 {
		t.Errorf("restart log line %v; want seats restored with restored=4 expired=0\n%s", line, p2.Output())
	}
	checkRestored(t, addr2, seats, "eve", "frank")
}

// TestStateSurvivesKill takes seats, waits until a save that began after them is on disk
// (the file's mtime changed twice), kills the agent with SIGKILL and restarts it: the seats
// are back.
func TestStateSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seats.state")
	args := []string{"--servers", "s1=1,s2=1", "--state-file", path, "--state-interval", "100ms"}
	p, addr, _, _ := startAgentWith(t, args...)
	seats := takeSeats(t, addr, "alice", "bob")
	// The first save whose file is newer than the seats may have copied the store before
	// them; the one after it cannot have. An interval with no request saves nothing, so a
	// hit before each wait makes sure there is a next save.
	c := spopClient(t, addr)
	since := time.Now()
	for range 2 {
		if status, _ := ask(t, c, "alice"); status != "hit" {
			t.Fatalf("ask(alice) = %s; want hit", status)
		}
		since = waitModified(t, path, since)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	p2, addr2, _, _ := startAgentWith(t, args...)
	if line := logLine(p2.Output(), "seats restored"); line == nil || line["restored"] != 2.0 {
		t.Errorf("restart log line %v; want seats restored with restored=2\n%s", line, p2.Output())
	}
	checkRestored(t, addr2, seats, "carol")
}

// waitModified polls until path's modification time is after since and returns it.
func waitModified(t *testing.T, path string, since time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if info, err := os.Stat(path); err == nil && info.ModTime().After(since) {
			return info.ModTime()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written after %s within 10s", path, since.Format(time.RFC3339Nano))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStateCorruptFileSetAside starts the agent on a file that is not a state: it starts
// with no seats, says so in one line and moves the file to <path>.bad-<unix time>.
func TestStateCorruptFileSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seats.state")
	garbage := []byte("stickyseat-state 1\n\x00\x01 not what was written")
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	p, addr, _, _ := startAgentWith(t, "--servers", "s1=1", "--state-file", path)
	line := logLine(p.Output(), "cannot restore seats; file set aside, starting with no seats")
	if msg, _ := line["error"].(string); !strings.Contains(msg, "bad state file") {
		t.Fatalf("no set-aside log line naming a bad state file:\n%s", p.Output())
	}
	aside, _ := line["set_aside"].(string)
	if !strings.HasPrefix(aside, path+".bad-") {
		t.Errorf("set_aside = %q; want %s.bad-<unix time>", aside, path)
	}
	if got, err := os.ReadFile(aside); err != nil || string(got) != string(garbage) {
		t.Errorf("set-aside file holds %q (%v); want the original bytes", got, err)
	}
	takeSeats(t, addr, "alice")
	p.Stop()
	if logLine(p.Output(), "seats saved") == nil {
		t.Errorf("agent did not save its seats over the set-aside file:\n%s", p.Output())
	}
}
