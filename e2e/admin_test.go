package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
	"github.com/stickyseat/stickyseat/internal/testbed"
)

// spopClient opens a HAProxy-like SPOP connection to an agent.
func spopClient(t *testing.T, addr string) *spoptest.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := spoptest.NewClient(conn)
	if _, err := c.Hello(false); err != nil {
		t.Fatal(err)
	}
	return c
}

var streamID uint64

// ask sends one stickyseat message and returns status and server.
func ask(t *testing.T, c *spoptest.Client, key string) (string, string) {
	t.Helper()
	streamID++
	acts, err := c.Notify(streamID, 1, spop.Message{Name: "stickyseat", Args: []spop.KV{{Name: "key", Value: spop.Str(key)}}})
	if err != nil {
		t.Fatal(err)
	}
	v := spoptest.Vars(acts)
	return v["status"], v["server"]
}

// startAgentWith starts the agent binary and returns it with its SPOP, metrics and admin
// addresses (the last two empty unless asked for with 127.0.0.1:0).
func startAgentWith(t *testing.T, args ...string) (*testbed.Process, string, string, string) {
	t.Helper()
	p, addr, err := testbed.StartAgent(agentBin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- agent ---\n%s", p.Output())
		}
	})
	var metricsAddr, adminAddr string
	deadline := time.Now().Add(5 * time.Second)
	for {
		metricsAddr = testbed.LogField(p.Output(), "metrics listening", "metrics_listen")
		adminAddr = testbed.LogField(p.Output(), "admin listening", "admin_listen")
		wantM, wantA := strings.Contains(strings.Join(args, " "), "--metrics-listen"), strings.Contains(strings.Join(args, " "), "--admin-listen")
		if (!wantM || metricsAddr != "") && (!wantA || adminAddr != "") {
			return p, addr, metricsAddr, adminAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log its HTTP addresses:\n%s", p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape returns the value of every sample of /metrics, by its line's name and labels.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsAfterDecisions(t *testing.T) {
	_, addr, metricsAddr, _ := startAgentWith(t, "--servers", "s1=2,s2=1", "--metrics-listen", "127.0.0.1:0")
	c := spopClient(t, addr)
	script := []struct{ key, status string }{
		{"u1", "new"}, {"u2", "new"}, {"u3", "new"}, {"u1", "hit"}, {"u1", "hit"}, {"u4", "full"}, {"", "invalid"},
	}
	for _, s := range script {
		if got, _ := ask(t, c, s.key); got != s.status {
			t.Fatalf("ask(%q) = %s; want %s", s.key, got, s.status)
		}
	}
	m := scrape(t, metricsAddr)
	want := map[string]float64{
		`stickyseat_decisions_total{pool="default",status="new"}`:        3,
		`stickyseat_decisions_total{pool="default",status="hit"}`:        2,
		`stickyseat_decisions_total{pool="default",status="full"}`:       1,
		`stickyseat_decisions_total{pool="default",status="invalid"}`:    1,
		`stickyseat_decision_duration_seconds_count`:                     7,
		`stickyseat_seats_used{pool="default",server="s1"}`:              2,
		`stickyseat_seats_used{pool="default",server="s2"}`:              1,
		`stickyseat_seats_quota{pool="default",server="s1"}`:             2,
		`stickyseat_server_state{pool="default",server="s2",state="up"}`: 1,
		`stickyseat_spop_frames_total`:                                   7,
		`stickyseat_spop_connections_total`:                              1,
		`stickyseat_spop_connections`:                                    1,
		`stickyseat_seats_scrape_ok`:                                     1,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v); want %v", k, got, ok, v)
		}
	}
	found := false
	for k := range m {
		found = found || strings.HasPrefix(k, `stickyseat_build_info{`)
	}
	if !found {
		t.Errorf("no stickyseat_build_info")
	}
}

// adminDo calls the admin API; token "" sends none.
func adminDo(t *testing.T, addr, token, method, path string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	u := "http://" + addr + path
	if method == http.MethodGet {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminNeedsTokenOffLoopback(t *testing.T) {
	p, _, err := testbed.StartAgent(agentBin, "--servers", "s1", "--admin-listen", "0.0.0.0:0")
	if err == nil {
		p.Stop()
		t.Fatal("agent started with --admin-listen 0.0.0.0:0 and no --admin-token")
	}
	if !strings.Contains(err.Error(), "--admin-listen: 0.0.0.0:0 is not a loopback address: set --admin-token") {
		t.Errorf("start error: %v; want the --admin-listen one-liner", err)
	}
	_, _, _, adminAddr := startAgentWith(t, "--servers", "s1", "--admin-listen", "127.0.0.1:0", "--admin-token", "sekrit-e2e-token-0042")
	for _, tok := range []string{"", "wrong"} {
		if code, _ := adminDo(t, adminAddr, tok, http.MethodGet, "/api/pools", nil); code != http.StatusUnauthorized {
			t.Errorf("GET /api/pools with token %q: HTTP %d; want 401", tok, code)
		}
		if code, _ := adminDo(t, adminAddr, tok, http.MethodPost, "/api/state", url.Values{"pool": {"default"}, "server": {"s1"}, "state": {"drain"}}); code != http.StatusUnauthorized {
			t.Errorf("POST /api/state with token %q: HTTP %d; want 401", tok, code)
		}
	}
	if code, body := adminDo(t, adminAddr, "sekrit-e2e-token-0042", http.MethodGet, "/api/pools", nil); code != http.StatusOK || !strings.Contains(body, `"name": "s1"`) {
		t.Errorf("GET /api/pools with the token: HTTP %d %s", code, body)
	}
}

// TestAdminActionsShared: two agents on one Redis; evict, drain and a quota change made
// through the first agent's API (and CLI) are seen by the second.
func TestAdminActionsShared(t *testing.T) {
	r := startRedis(t)
	common := []string{"--servers", "s1=2,s2=2", "--redis", r.URL(), "--refresh-interval", "0"}
	_, addrA, _, adminA := startAgentWith(t, append(common, "--admin-listen", "127.0.0.1:0")...)
	procB, addrB, _, _ := startAgentWith(t, common...)
	a, b := spopClient(t, addrA), spopClient(t, addrB)
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen by the second agent within 5s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if st, srv := ask(t, a, "u1"); st != "new" || srv != "s1" {
		t.Fatalf("u1 = %s %s; want new s1", st, srv)
	}
	// Drain s1 through agent A's CLI; agent B stops seating newcomers there.
	out, err := runCLI("admin", "drain", "--admin-addr", adminA, "--server", "s1")
	if err != nil {
		t.Fatalf("stickyseat admin drain: %v\n%s", err, out)
	}
	eventually("drain", func() bool {
		st, srv := ask(t, b, fmt.Sprintf("probe-%d", time.Now().UnixNano()))
		return st == "new" && srv == "s2"
	})
	if st, srv := ask(t, b, "u1"); st != "hit" || srv != "s1" {
		t.Errorf("u1 on the drained server through agent B = %s %s; want hit s1 (drain keeps seated users)", st, srv)
	}
	// Evict u1 through the API: agent B seats it anew (s1 drains, so on s2 or full).
	if code, body := adminDo(t, adminA, "", http.MethodPost, "/api/evict", url.Values{"pool": {"default"}, "key": {"u1"}}); code != http.StatusOK {
		t.Fatalf("evict: HTTP %d %s", code, body)
	}
	if st, srv := ask(t, b, "u1"); st == "hit" {
		t.Errorf("u1 after eviction through agent B = %s %s; want a new decision", st, srv)
	}
	// Undrain and raise s1's quota to 5: agent B fills s1 up to 5.
	for _, args := range [][]string{{"admin", "undrain", "--admin-addr", adminA, "--server", "s1"}, {"admin", "quota", "--admin-addr", adminA, "--server", "s1", "--quota", "5"}} {
		if out, err := runCLI(args...); err != nil {
			t.Fatalf("stickyseat %v: %v\n%s", args, err, out)
		}
	}
	eventually("quota", func() bool { return strings.Contains(procB.Output(), `"changes":"default/s1:quota=5;"`) })
	seatedOnS1 := 0
	for i := range 10 {
		if _, srv := ask(t, b, fmt.Sprintf("filler-%d", i)); srv == "s1" {
			seatedOnS1++
		}
	}
	code, body := adminDo(t, adminA, "", http.MethodGet, "/api/pools", url.Values{"seats": {"0"}})
	var pools []struct {
		Servers []struct {
			Name, State string
			Quota, Used int
		}
	}
	if err := json.Unmarshal([]byte(body), &pools); err != nil || code != http.StatusOK || len(pools) != 1 {
		t.Fatalf("GET /api/pools: HTTP %d %s (%v)", code, body, err)
	}
	s1 := pools[0].Servers[0]
	if s1.Name != "s1" || s1.State != "up" || s1.Quota != 5 || s1.Used != 5 {
		t.Errorf("after filling through agent B, s1 = %+v; want up, quota 5, used 5 (agent B seated %d on it)", s1, seatedOnS1)
	}
}

// runCLI runs the stickyseat binary with args and returns its output.
func runCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := execCommand(ctx, agentBin, args...)
	return out, err
}

// serverState returns a server's state in the default pool as GET /api/pools shows it.
func serverState(t *testing.T, adminAddr, token, server string) string {
	t.Helper()
	code, body := adminDo(t, adminAddr, token, http.MethodGet, "/api/pools", url.Values{"seats": {"0"}})
	var pools []struct {
		Servers []struct{ Name, State string }
	}
	if err := json.Unmarshal([]byte(body), &pools); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/pools: HTTP %d %s (%v)", code, body, err)
	}
	for _, p := range pools {
		for _, s := range p.Servers {
			if s.Name == server {
				return s.State
			}
		}
	}
	t.Fatalf("no server %q in %s", server, body)
	return ""
}

// adminRaw sends one admin request with the given Host and extra headers.
func adminRaw(t *testing.T, adminAddr, method, path, host string, form url.Values, headers ...string) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, "http://"+adminAddr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminRefusesRebindingAndCrossSite: against the agent's own admin listener, a foreign
// Host (a DNS-rebound name) gets 421 and reads no user, a cross-site change gets 403 and
// changes nothing, a name given with --admin-allowed-host is served, and a change is logged
// with the client's address.
func TestAdminRefusesRebindingAndCrossSite(t *testing.T) {
	p, addr, _, adminAddr := startAgentWith(t, "--servers", "s1=2,s2=2", "--admin-listen", "127.0.0.1:0", "--admin-allowed-host", "seats.example")
	c := spopClient(t, addr)
	if st, _ := ask(t, c, "secret-user"); st != "new" {
		t.Fatalf("secret-user: %s; want new", st)
	}
	_, port, _ := net.SplitHostPort(adminAddr)
	for _, host := range []string{"evil.example:" + port, "evil.example"} {
		if code, body := adminRaw(t, adminAddr, http.MethodGet, "/api/pools", host, nil); code != http.StatusMisdirectedRequest || strings.Contains(body, "secret-user") {
			t.Errorf("GET /api/pools with Host %s: HTTP %d %.100s; want 421 and no user", host, code, body)
		}
		if code, _ := adminRaw(t, adminAddr, http.MethodPost, "/api/evict", host, url.Values{"pool": {"default"}, "key": {"secret-user"}}); code != http.StatusMisdirectedRequest {
			t.Errorf("POST /api/evict with Host %s: HTTP %d; want 421", host, code)
		}
	}
	if code, body := adminRaw(t, adminAddr, http.MethodGet, "/api/pools", "seats.example:"+port, nil); code != http.StatusOK || !strings.Contains(body, "secret-user") {
		t.Errorf("GET /api/pools with the allowed Host seats.example: HTTP %d; want 200 with the seat", code)
	}
	drain := url.Values{"pool": {"default"}, "server": {"s1"}, "state": {"drain"}}
	for _, h := range [][]string{
		{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"},
		{"Origin", "http://127.0.0.1:1", "Sec-Fetch-Site", "same-site"},
		{"Origin", "http://evil.example"},
	} {
		if code, _ := adminRaw(t, adminAddr, http.MethodPost, "/api/state", "", drain, h...); code != http.StatusForbidden {
			t.Errorf("POST /api/state with %q: HTTP %d; want 403", h, code)
		}
	}
	if st := serverState(t, adminAddr, "", "s1"); st != "up" {
		t.Fatalf("s1 after refused requests: %s; want up", st)
	}
	if st, srv := ask(t, c, "secret-user"); st != "hit" {
		t.Errorf("secret-user after a refused evict: %s %s; want hit", st, srv)
	}
	if code, body := adminRaw(t, adminAddr, http.MethodPost, "/api/state", "", drain, "Origin", "http://"+adminAddr, "Sec-Fetch-Site", "same-origin"); code != http.StatusOK {
		t.Fatalf("POST /api/state from the page's origin: HTTP %d %s", code, body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		line := logLine(p.Output(), "admin change")
		if line != nil {
			if r, _ := line["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") || line["server"] != "s1" || line["state"] != "drain" {
				t.Errorf("admin change log line %v; want remote 127.0.0.1:port, server s1, state drain", line)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin change log line:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminTokenFileNeverInURL: the agent and the admin CLI read the token from a file (in
// no argv); a token in the URL is refused.
func TestAdminTokenFileNeverInURL(t *testing.T) {
	const token = "e2e-file-token-71"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _, _, adminAddr := startAgentWith(t, "--servers", "s1,s2", "--admin-listen", "127.0.0.1:0", "--admin-token-file", file)
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid())); err == nil && strings.Contains(string(cmdline), token) {
		t.Errorf("the agent's argv holds the token")
	}
	if out, err := runCLI("admin", "drain", "--admin-addr", adminAddr, "--admin-token-file", file, "--server", "s2"); err != nil {
		t.Fatalf("stickyseat admin drain --admin-token-file: %v\n%s", err, out)
	}
	if st := serverState(t, adminAddr, token, "s2"); st != "drain" {
		t.Errorf("s2 after the CLI's drain: %s; want drain", st)
	}
	for _, path := range []string{"/?token=" + token, "/api/pools?token=" + token} {
		if code, _ := adminRaw(t, adminAddr, http.MethodGet, path, "", nil); code != http.StatusBadRequest {
			t.Errorf("GET %s: HTTP %d; want 400", path, code)
		}
	}
	if strings.Contains(p.Output(), token) {
		t.Errorf("the agent logged the token:\n%s", p.Output())
	}
}

// TestRedisPasswordOutsideArgv: a Redis with requirepass is used with the password from
// --redis-password-file or STICKYSEAT_REDIS_PASSWORD, none of it in the agent's argv;
// without it every decision is an error.
func TestRedisPasswordOutsideArgv(t *testing.T) {
	const password = "redis-pw-9f3a"
	r := startRedis(t, "--requirepass", password)
	file := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--servers", "s1=5", "--redis", r.URL(), "--refresh-interval", "0"}
	_, addr, _, _ := startAgentWith(t, common...)
	if st, _ := ask(t, spopClient(t, addr), "u0"); st != "error" {
		t.Fatalf("without the password: %s; want error (the test's Redis must require it)", st)
	}
	p, addr, _, _ := startAgentWith(t, append(common, "--redis-password-file", file)...)
	if st, srv := ask(t, spopClient(t, addr), "u1"); st != "new" || srv != "s1" {
		t.Errorf("with --redis-password-file: %s %s; want new s1", st, srv)
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid())); err != nil || strings.Contains(string(cmdline), password) {
		t.Errorf("the agent's argv holds the password (or is unreadable: %v)", err)
	}
	t.Setenv("STICKYSEAT_REDIS_PASSWORD", password)
	_, addr, _, _ = startAgentWith(t, common...)
	if st, srv := ask(t, spopClient(t, addr), "u1"); st != "hit" || srv != "s1" {
		t.Errorf("with STICKYSEAT_REDIS_PASSWORD: %s %s; want hit s1 (the seat the other agent took)", st, srv)
	}
}

// TestReloadWithoutChangesSaysSo: a SIGHUP that brings nothing new logs "no changes", never
// an empty change list.
func TestReloadWithoutChangesSaysSo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stickyseat.yaml")
	if err := os.WriteFile(path, []byte("pools:\n  - name: web\n    servers:\n      - {name: s1, quota: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _, _, _ := startAgentWith(t, "--config", path)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), "configuration reloaded: no changes") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload line 10s after SIGHUP:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(p.Output(), `"changes":""`) {
		t.Errorf("a log line says empty changes:\n%s", p.Output())
	}
}
