package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/admin"
	"github.com/stickyseat/stickyseat/agent"
	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/internal/testbed"
	"github.com/stickyseat/stickyseat/metrics"
	"github.com/stickyseat/stickyseat/store/memory"
)

func TestMetricsMuxProfiles(t *testing.T) {
	m := metrics.New(metrics.Sources{Version: "test", Agent: func() agent.Stats { return agent.Stats{} }})
	for _, profiles := range []bool{false, true} {
		srv := httptest.NewServer(metricsMux(m, profiles, zerolog.Nop()))
		get := func(path string) (int, string) {
			t.Helper()
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, string(body)
		}
		if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "stickyseat_build_info") {
			t.Errorf("profiles=%v: GET /metrics = %d; want 200 with stickyseat_build_info", profiles, code)
		}
		code, body := get("/debug/pprof/goroutine?debug=1")
		switch {
		case profiles && (code != http.StatusOK || !strings.Contains(body, "goroutine profile")):
			t.Errorf("--pprof: GET /debug/pprof/goroutine = %d %.60q; want 200 and a goroutine profile", code, body)
		case !profiles && code != http.StatusNotFound:
			t.Errorf("without --pprof: GET /debug/pprof/goroutine = %d; want 404", code)
		}
		srv.Close()
	}
}

// get does one GET with the given Host header ("" keeps the URL's).
func get(t *testing.T, u, host string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPProfOnlyOnLoopback: --pprof on a metrics address other hosts can reach is refused at
// start, and on loopback the profiles (the command line among them) answer no request whose
// Host is a foreign name (a web page that rebound its DNS name to 127.0.0.1); the admin
// token is read from --admin-token-file.
func TestPProfOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:9100", "metrics.example:9100"} {
		// Bounded: without the refusal the agent would serve until the context ends.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := run(ctx, []string{"stickyseat", "serve", "--listen", "127.0.0.1:0", "--servers", "s1", "--metrics-listen", addr, "--pprof"}, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "--pprof: --metrics-listen "+addr+" is not a loopback address") {
			t.Errorf("--pprof with --metrics-listen %s: %v; want the loopback-only refusal", addr, err)
		}
	}

	const token = "file-token-8c1e-5d07"
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	metricsAddr, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"stickyseat", "serve", "--listen", "127.0.0.1:0", "--servers", "s1", "--log-format", "json",
			"--metrics-listen", metricsAddr, "--pprof", "--admin-listen", adminAddr, "--admin-token-file", tokenFile}, io.Discard, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	_, port, _ := net.SplitHostPort(metricsAddr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics not listening 10s after start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, host := range []string{"evil.example:" + port, "127.0.0.1.nip.example:" + port} {
		if code, body := get(t, "http://"+metricsAddr+"/debug/pprof/cmdline", host); code != http.StatusMisdirectedRequest || strings.Contains(body, "-test.") {
			t.Errorf("GET /debug/pprof/cmdline with Host %s: HTTP %d %.100q; want 421 and no command line", host, code, body)
		}
	}
	code, body := get(t, "http://"+metricsAddr+"/debug/pprof/cmdline", "")
	if code != http.StatusOK || !strings.Contains(body, "-test.") {
		t.Errorf("GET /debug/pprof/cmdline on loopback: HTTP %d %.200q; want 200 and the command line", code, body)
	}
	if code, _ := get(t, "http://"+metricsAddr+"/metrics", "metrics.example:"+port); code != http.StatusOK {
		t.Errorf("GET /metrics with a DNS name as Host: HTTP %d; want 200 (scrapers use names)", code)
	}
	// The token from the file is the one the admin API requires.
	if code, _ := get(t, "http://"+adminAddr+"/api/pools", "", "Authorization", "Bearer "+token); code != http.StatusOK {
		t.Errorf("admin API with the token from --admin-token-file: HTTP %d; want 200", code)
	}
	if code, _ := get(t, "http://"+adminAddr+"/api/pools", ""); code != http.StatusUnauthorized {
		t.Errorf("admin API without a token: HTTP %d; want 401", code)
	}
}

// TestSecretFiles: a token or password file is read without its trailing line break; an
// empty or multi-line file, or a secret given twice, is refused.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := readSecretFile("f", write("ok", "s3cret\r\n")); err != nil || s != "s3cret" {
		t.Errorf("secret file with CRLF: %q %v; want s3cret", s, err)
	}
	for name, content := range map[string]string{"empty": "\n", "lines": "a\nb\n"} {
		if _, err := readSecretFile("f", write(name, content)); err == nil {
			t.Errorf("%s secret file accepted", name)
		}
	}
	if _, err := readSecretFile("f", filepath.Join(dir, "missing")); err == nil {
		t.Errorf("missing secret file accepted")
	}
	err := run(context.Background(), []string{"stickyseat", "serve", "--servers", "s1", "--admin-token", "x", "--admin-token-file", write("tok", "y")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--admin-token and --admin-token-file: give the secret once") {
		t.Errorf("--admin-token with --admin-token-file: %v; want refused", err)
	}
	err = run(context.Background(), []string{"stickyseat", "serve", "--servers", "s1", "--redis", "redis://:pw@127.0.0.1:1", "--redis-password-file", write("pw", "pw2")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "give it once") {
		t.Errorf("a URL password and --redis-password-file: %v; want refused", err)
	}
	t.Setenv(redisPasswordEnv, "from-env")
	err = run(context.Background(), []string{"stickyseat", "serve", "--servers", "s1", "--redis", "redis://127.0.0.1:1", "--redis-password-file", write("pw3", "pw3")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "give the password once") {
		t.Errorf("%s and --redis-password-file: %v; want refused", redisPasswordEnv, err)
	}
}

// TestAdminTokenChecks: serve refuses an admin token shorter than 16 characters; an
// error about a secret given twice names the environment variable the operator set, not
// the flag they did not pass; a secret file other users can read is warned about.
func TestAdminTokenChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // whatever the umask
			t.Fatal(err)
		}
		return p
	}
	serve := func(args ...string) (string, error) {
		var logs bytes.Buffer
		// --pprof without --metrics-listen ends serve right after the token is checked.
		err := run(context.Background(), append([]string{"stickyseat", "serve", "--servers", "s1", "--pprof"}, args...), io.Discard, &logs)
		return logs.String(), err
	}
	for _, args := range [][]string{{"--admin-token", "short-token-15ch"[:15]}, {"--admin-token-file", write("short", "tiny\n", 0o600)}} {
		if _, err := serve(args...); err == nil || !strings.Contains(err.Error(), "the admin token has ") || !strings.Contains(err.Error(), "use at least 16") || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("serve %q: %v; want the short token refused, naming %s", args, err, args[0])
		}
	}
	if _, err := serve("--admin-token", "sixteen-chars-ok"); err == nil || !strings.Contains(err.Error(), "--pprof: needs --metrics-listen") {
		t.Errorf("serve with a 16-character token: %v; want it taken (then --pprof refused)", err)
	}

	t.Setenv("STICKYSEAT_ADMIN_TOKEN", "a-token-from-the-environment")
	_, err := serve("--admin-token-file", write("tok", "a-token-from-a-file-1234", 0o600))
	if err == nil || !strings.Contains(err.Error(), "STICKYSEAT_ADMIN_TOKEN and --admin-token-file: give the secret once") {
		t.Errorf("STICKYSEAT_ADMIN_TOKEN with --admin-token-file: %v; want an error naming the env var", err)
	}
	os.Unsetenv("STICKYSEAT_ADMIN_TOKEN")

	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o600, false}, {0o400, false}, {0o640, true}, {0o644, true}} {
		file := write("tok-"+tc.mode.String(), "a-token-from-a-file-1234", tc.mode)
		pw := write("pw-"+tc.mode.String(), "pw", tc.mode)
		logs, _ := serve("--admin-token-file", file, "--redis", "redis://127.0.0.1:1", "--redis-password-file", pw)
		for _, f := range []string{file, pw} {
			if got := strings.Contains(logs, "secret file readable by other users") && strings.Contains(logs, f); got != tc.warn {
				t.Errorf("secret file of mode %04o: warned = %v; want %v\n%s", tc.mode, got, tc.warn, logs)
			}
		}
	}
}

// TestAdminCLITokenFile: the admin command reads its token from --admin-token-file and
// sends it as a bearer token to a real admin listener.
func TestAdminCLITokenFile(t *testing.T) {
	const token = "cli-token-5d2"
	base := assign.Config{Pools: []assign.Pool{{Name: "default", Servers: []assign.Server{{Name: "s1", Quota: 1}}, IdleTimeout: time.Hour}}}
	a := admin.New(base, nopReloader{}, memory.New(memory.Options{}), memory.New(memory.Options{}), admin.Options{Token: token})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"stickyseat", "admin", "drain", "--admin-addr", addr, "--admin-token-file", good, "--server", "s1"}, &out, io.Discard); err != nil {
		t.Fatalf("admin drain with --admin-token-file: %v", err)
	}
	if got := a.Current().Pools[0].Servers[0].State; got != assign.StateDrain {
		t.Errorf("s1 after admin drain: %s; want drain", got)
	}
	if err := run(context.Background(), []string{"stickyseat", "admin", "pools", "--admin-addr", addr, "--admin-token-file", bad}, &out, io.Discard); err == nil || !strings.Contains(err.Error(), "missing or wrong admin token") {
		t.Errorf("admin pools with a wrong token file: %v; want refused", err)
	}
}

type nopReloader struct{}

func (nopReloader) Reload(cfg assign.Config) error { return cfg.Validate() }

// TestHTTPListenerIsBounded: the metrics and admin listeners serve at most httpMaxConns
// connections at once, so an idle flood there cannot take the process's file descriptors;
// the next connection is served once one of them closes.
func TestHTTPListenerIsBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	run, err := listenHTTP(ctx, zerolog.New(&logs), "127.0.0.1:0", "metrics", h)
	if err != nil {
		t.Fatal(err)
	}
	addr := testbed.LogField(logs.String(), "metrics listening", "metrics_listen")
	ran := make(chan struct{})
	go func() { run(); close(ran) }()
	defer func() { cancel(); <-ran }()

	var idle []net.Conn
	for range httpMaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	client.Timeout = 500 * time.Millisecond
	if resp, err := client.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("a request beyond %d idle connections was served; want it held until one closes", httpMaxConns)
	}
	idle[0].Close()
	client.Timeout = 5 * time.Second
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("a request after an idle connection closed: %v; want it served", err)
	}
	resp.Body.Close()
}
