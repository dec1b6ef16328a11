package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/store/memory"
)

// recordingReloader keeps the last configuration it was given.
type recordingReloader struct{ last assign.Config }

func (r *recordingReloader) Reload(cfg assign.Config) error { r.last = cfg; return cfg.Validate() }

func cfg(quota1 int, extra ...assign.Server) assign.Config {
	servers := append([]assign.Server{{Name: "s1", Quota: quota1}, {Name: "s2", Quota: 2}}, extra...)
	return assign.Config{Pools: []assign.Pool{{Name: "web", Servers: servers, IdleTimeout: time.Hour}}}
}

func describe(c assign.Config) string {
	var parts []string
	for _, s := range c.Pools[0].Servers {
		parts = append(parts, s.Name+"="+s.State.String()+"/"+string(rune('0'+s.Quota)))
	}
	return strings.Join(parts, " ")
}

func TestChangesSurviveReloads(t *testing.T) {
	ctx := context.Background()
	r := &recordingReloader{}
	a := New(cfg(2), r, memory.New(memory.Options{}), memory.New(memory.Options{}), Options{})
	steps := []struct {
		name string
		do   func() error
		want string
	}{
		{"drain s1", func() error { return a.SetState(ctx, "web", "s1", assign.StateDrain) }, "s1=drain/2 s2=up/2"},
		{"quota of s2", func() error { return a.SetQuota(ctx, "web", "s2", 5) }, "s1=drain/2 s2=up/5"},
		{"file reload adds s3 and changes s1's quota", func() error { return a.SetBase(ctx, cfg(3, assign.Server{Name: "s3", Quota: 1})) }, "s1=drain/3 s2=up/5 s3=up/1"},
		{"undrain s1", func() error { return a.SetState(ctx, "web", "s1", assign.StateUp) }, "s1=up/3 s2=up/5 s3=up/1"},
		{"quota 0 returns to the file's", func() error { return a.SetQuota(ctx, "web", "s2", 0) }, "s1=up/3 s2=up/2 s3=up/1"},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := describe(r.last); got != s.want {
			t.Errorf("%s: applied %s; want %s", s.name, got, s.want)
		}
	}
	if err := a.SetState(ctx, "web", "s9", assign.StateDrain); !errors.Is(err, ErrNotFound) {
		t.Errorf("drain of an unknown server: %v; want ErrNotFound", err)
	}
	if err := a.SetQuota(ctx, "web", "s1", -1); err == nil {
		t.Errorf("negative quota accepted")
	}
}

// TestSyncPicksUpOtherAgentsChanges: a change written to the shared overrides by another
// agent is applied at the next Sync.
func TestSyncPicksUpOtherAgentsChanges(t *testing.T) {
	ctx := context.Background()
	shared := memory.New(memory.Options{})
	r1, r2 := &recordingReloader{}, &recordingReloader{}
	a1 := New(cfg(2), r1, memory.New(memory.Options{}), shared, Options{})
	a2 := New(cfg(2), r2, memory.New(memory.Options{}), shared, Options{})
	if err := a1.SetState(ctx, "web", "s2", assign.StateDrain); err != nil {
		t.Fatal(err)
	}
	if err := a2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := describe(r2.last); got != "s1=up/2 s2=drain/2" {
		t.Errorf("second agent after Sync: %s; want s2 drained", got)
	}
	r2.last = assign.Config{}
	if err := a2.Sync(ctx); err != nil || len(r2.last.Pools) != 0 {
		t.Errorf("Sync with nothing new reloaded anyway (%v)", err)
	}
}

// newServer serves an Admin over a real loopback listener; it returns the server, the
// admin's reloader (the configuration in force) and its log.
func newServer(t *testing.T, opts Options) (*httptest.Server, *recordingReloader, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	opts.Logger = zerolog.New(&syncWriter{w: &logs})
	r := &recordingReloader{last: cfg(2)}
	a := New(cfg(2), r, memory.New(memory.Options{}), memory.New(memory.Options{}), opts)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv, r, &logs
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// do sends one request; host overrides the Host header, headers are added as given.
func do(t *testing.T, c *http.Client, method, u, host string, form url.Values, headers ...string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
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
	if c == nil {
		c = &http.Client{}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var drainS1 = url.Values{"pool": {"web"}, "server": {"s1"}, "state": {"drain"}}

// TestForeignHostRefused: a request whose Host is not the listener's address, a loopback
// name or an allowed host (a DNS-rebound name) gets 421 and reads or changes nothing.
func TestForeignHostRefused(t *testing.T) {
	srv, r, _ := newServer(t, Options{AllowedHosts: []string{"Admin.Example", "pinned.example:8443"}})
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1.evil.example", "pinned.example", "10.1.2.3:" + port, "localhost.evil.example"} {
		if resp, body := do(t, nil, http.MethodGet, srv.URL+"/api/pools", host, nil); resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(body, "s1") {
			t.Errorf("GET /api/pools with Host %q: HTTP %d %.80s; want 421 and no pool", host, resp.StatusCode, body)
		}
		if resp, _ := do(t, nil, http.MethodPost, srv.URL+"/api/state", host, drainS1); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("POST /api/state with Host %q: HTTP %d; want 421", host, resp.StatusCode)
		}
		if resp, _ := do(t, nil, http.MethodGet, srv.URL+"/", host, nil); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("GET / with Host %q: HTTP %d; want 421", host, resp.StatusCode)
		}
	}
	if got := describe(r.last); got != "s1=up/2 s2=up/2" {
		t.Errorf("after refused requests: %s; want nothing changed", got)
	}
	for _, host := range []string{"", "localhost:" + port, "LOCALHOST", "127.0.0.2:" + port, "[::1]:" + port, "admin.example:" + port, "pinned.example:8443"} {
		if resp, body := do(t, nil, http.MethodGet, srv.URL+"/api/pools?seats=1", host, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"s1"`) {
			t.Errorf("GET /api/pools with Host %q: HTTP %d %.80s; want 200", host, resp.StatusCode, body)
		}
	}
}

// TestCrossSiteChangeRefused: a change a browser says comes from another site or origin is
// refused with 403 and changes nothing; one from the page itself, or from a client that is
// not a browser, is applied.
func TestCrossSiteChangeRefused(t *testing.T) {
	srv, r, _ := newServer(t, Options{})
	self := "http://" + srv.Listener.Addr().String()
	refused := [][]string{
		{"Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"},
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site", "Origin", "http://127.0.0.1:1"},
		{"Sec-Fetch-Site", "same-site"},
		{"Origin", "http://127.0.0.1:1", "Sec-Fetch-Site", "same-origin"},
	}
	for _, path := range []string{"/api/state", "/api/evict", "/api/quota", "/login"} {
		form := url.Values{"pool": {"web"}, "server": {"s1"}, "state": {"drain"}, "quota": {"1"}, "key": {"k"}, "redirect": {"1"}}
		for _, h := range refused {
			if resp, _ := do(t, nil, http.MethodPost, srv.URL+path, "", form, h...); resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s with %q: HTTP %d; want 403", path, h, resp.StatusCode)
			}
		}
	}
	if got := describe(r.last); got != "s1=up/2 s2=up/2" {
		t.Fatalf("after cross-site requests: %s; want nothing changed", got)
	}
	if resp, body := do(t, nil, http.MethodPost, srv.URL+"/api/state", "", drainS1, "Origin", self, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /api/state from the page's own origin: HTTP %d %s; want 200", resp.StatusCode, body)
	}
	if resp, body := do(t, nil, http.MethodPost, srv.URL+"/api/quota", "", url.Values{"pool": {"web"}, "server": {"s2"}, "quota": {"3"}}); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /api/quota from a non-browser client: HTTP %d %s; want 200", resp.StatusCode, body)
	}
	if got := describe(r.last); got != "s1=drain/2 s2=up/3" {
		t.Errorf("after same-origin requests: %s; want s1 drained, s2 quota 3", got)
	}
}

// TestTokenNeverFromURL: with a token, the URL's token is refused (it would land in
// histories and logs); the page offers a login form that sets an HttpOnly SameSite=Strict
// cookie holding no token; a change made with the cookie needs the page's CSRF field;
// Authorization: Bearer works for the API.
func TestTokenNeverFromURL(t *testing.T) {
	const token = "sekrit-token"
	srv, r, logs := newServer(t, Options{Token: token})
	for _, u := range []string{"/?token=" + token, "/api/pools?token=" + token, "/api/state?token=" + token + "&pool=web&server=s1&state=drain"} {
		method := http.MethodGet
		if strings.HasPrefix(u, "/api/state") {
			method = http.MethodPost
		}
		if resp, _ := do(t, nil, method, srv.URL+u, "", nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: HTTP %d; want 400", method, u, resp.StatusCode)
		}
	}
	if resp, _ := do(t, nil, http.MethodPost, srv.URL+"/api/state", "", url.Values{"pool": {"web"}, "server": {"s1"}, "state": {"drain"}, "token": {token}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /api/state with the token as a form field: HTTP %d; want 401", resp.StatusCode)
	}
	resp, body := do(t, nil, http.MethodGet, srv.URL+"/", "", nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `action="/login"`) || strings.Contains(body, "s1") {
		t.Errorf("GET / without the token: HTTP %d, want 401 and the login form only:\n%s", resp.StatusCode, body)
	}
	if resp, _ := do(t, nil, http.MethodPost, srv.URL+"/login", "", url.Values{"token": {"wrong"}}); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("login with a wrong token: HTTP %d, cookies %v; want 401 and none", resp.StatusCode, resp.Cookies())
	}
	resp, _ = do(t, nil, http.MethodPost, srv.URL+"/login", "", url.Values{"token": {token}}, "Origin", srv.URL, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || len(resp.Cookies()) != 1 {
		t.Fatalf("login: HTTP %d to %q, cookies %v; want 303 to / and a cookie", resp.StatusCode, resp.Header.Get("Location"), resp.Cookies())
	}
	ck := resp.Cookies()[0]
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || strings.Contains(ck.Value, token) || ck.Value == "" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not holding the token", ck)
	}
	cookie := ck.Name + "=" + ck.Value
	resp, body = do(t, nil, http.MethodGet, srv.URL+"/", "", nil, "Cookie", cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="csrf"`) || strings.Contains(body, token) {
		t.Fatalf("GET / with the cookie: HTTP %d; want the page with csrf fields and no token:\n%s", resp.StatusCode, body)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)[1]
	if resp, _ := do(t, nil, http.MethodPost, srv.URL+"/api/state", "", drainS1, "Cookie", cookie); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /api/state with the cookie and no csrf field: HTTP %d; want 403", resp.StatusCode)
	}
	if got := describe(r.last); got != "s1=up/2 s2=up/2" {
		t.Fatalf("after refused requests: %s; want nothing changed", got)
	}
	form := url.Values{"pool": {"web"}, "server": {"s1"}, "state": {"drain"}, "redirect": {"1"}, "csrf": {csrf}}
	if resp, _ := do(t, nil, http.MethodPost, srv.URL+"/api/state", "", form, "Cookie", cookie, "Origin", srv.URL, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("the page's drain form: HTTP %d to %q; want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := do(t, nil, http.MethodPost, srv.URL+"/api/quota", "", url.Values{"pool": {"web"}, "server": {"s2"}, "quota": {"4"}}, "Authorization", "Bearer "+token); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /api/quota with the bearer token: HTTP %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, nil, http.MethodGet, srv.URL+"/api/pools", "", nil, "Authorization", "Bearer wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/pools with a wrong bearer token: HTTP %d; want 401", resp.StatusCode)
	}
	if got := describe(r.last); got != "s1=drain/2 s2=up/4" {
		t.Errorf("after the page's drain and the API's quota: %s", got)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the log holds the token:\n%s", logs)
	}
}

// TestChangesLoggedWithClient: every change is logged with the client's address, and a
// reload that brings no run-time change logs no empty change.
func TestChangesLoggedWithClient(t *testing.T) {
	srv, _, logs := newServer(t, Options{})
	if resp, body := do(t, nil, http.MethodPost, srv.URL+"/api/state", "", drainS1); resp.StatusCode != http.StatusOK {
		t.Fatalf("drain: HTTP %d %s", resp.StatusCode, body)
	}
	var line struct{ Remote, Change, Pool, Server, State, Message string }
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"message":"admin change"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !strings.HasPrefix(line.Remote, "127.0.0.1:") || line.Change != "state" || line.Pool != "web" || line.Server != "s1" || line.State != "drain" {
		t.Errorf("admin change log line %+v; want remote 127.0.0.1:port, change state, pool web, server s1, state drain\n%s", line, logs)
	}
	if strings.Contains(logs.String(), `"changes":""`) {
		t.Errorf("a log line says empty changes:\n%s", logs)
	}
}

// TestReloadWithoutChangesLogsNoEmptyChange: a config reload with no run-time change in
// force logs nothing about run-time changes; clearing the last one says so in words.
func TestReloadWithoutChangesLogsNoEmptyChange(t *testing.T) {
	var logs bytes.Buffer
	ctx := context.Background()
	a := New(cfg(2), &recordingReloader{}, memory.New(memory.Options{}), memory.New(memory.Options{}), Options{Logger: zerolog.New(&logs)})
	if err := a.SetBase(ctx, cfg(3)); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("a reload with no run-time change logged:\n%s", logs.String())
	}
	if err := a.SetState(ctx, "web", "s1", assign.StateDrain); err != nil {
		t.Fatal(err)
	}
	if err := a.SetState(ctx, "web", "s1", assign.StateUp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"changes":"none"`) || strings.Contains(logs.String(), `"changes":""`) {
		t.Errorf("clearing the last change: want changes none, never empty:\n%s", logs.String())
	}
}

// TestChangePastMaxSeatsRefused: a quota that would lift a pool past MaxSeats is refused
// before it reaches the shared overrides, and the configuration in force keeps its limit.
func TestChangePastMaxSeatsRefused(t *testing.T) {
	ctx := context.Background()
	shared := memory.New(memory.Options{})
	r := &recordingReloader{}
	base := cfg(2)
	base.MaxSeats = 10
	a := New(base, r, memory.New(memory.Options{}), shared, Options{})
	err := a.SetQuota(ctx, "web", "s1", 100000)
	want := `server "s1" of pool "web": change refused: pool "web": quotas add up to 100002 seats, above the limit of 10 seats per pool (raise --max-seats)`
	if !errors.Is(err, ErrInvalidChange) || err.Error() != want {
		t.Fatalf("SetQuota(s1, 100000) with MaxSeats 10 = %v; want %q", err, want)
	}
	if ov, _ := shared.Overrides(ctx); len(ov) != 0 {
		t.Errorf("refused change written to the overrides: %q", ov)
	}
	if err := a.SetQuota(ctx, "web", "s1", 8); err != nil {
		t.Fatalf("SetQuota(s1, 8) with MaxSeats 10: %v", err)
	}
	if got := a.Current(); got.MaxSeats != 10 || got.Pools[0].Servers[0].Quota != 8 {
		t.Errorf("after SetQuota(s1, 8): MaxSeats %d, s1 quota %d; want 10 and 8", got.MaxSeats, got.Pools[0].Servers[0].Quota)
	}
	if err := a.SetQuota(ctx, "web", "s2", 3); !errors.Is(err, ErrInvalidChange) {
		t.Errorf("SetQuota(s2, 3) with s1 at 8 and MaxSeats 10 = %v; want ErrInvalidChange", err)
	}
}

// TestInvalidSharedChangeIgnored: a change in the shared store that makes the configuration
// invalid (written by an older agent or by hand) is left out with a warning; the others
// apply and neither Sync nor a file reload fails on it.
func TestInvalidSharedChangeIgnored(t *testing.T) {
	ctx := context.Background()
	shared := memory.New(memory.Options{})
	var logs bytes.Buffer
	r := &recordingReloader{}
	base := cfg(2)
	base.MaxSeats = 10
	a := New(base, r, memory.New(memory.Options{}), shared, Options{Logger: zerolog.New(&syncWriter{w: &logs})})
	for field, value := range map[string]string{"web/s1": "quota=100000", "web/s2": "state=drain", "web/s9": "quota=5"} {
		if err := shared.SetOverride(ctx, field, value); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Sync(ctx); err != nil {
		t.Fatalf("Sync with an invalid shared change: %v", err)
	}
	if got := describe(r.last); got != "s1=up/2 s2=drain/2" {
		t.Errorf("after Sync: %s; want s1=up/2 s2=drain/2", got)
	}
	if !strings.Contains(logs.String(), `"field":"web/s1"`) || !strings.Contains(logs.String(), "ignoring a run-time change") {
		t.Errorf("no warning naming web/s1 in the log:\n%s", logs.String())
	}
	next := cfg(3)
	next.MaxSeats = 10
	if err := a.SetBase(ctx, next); err != nil {
		t.Fatalf("SetBase with an invalid shared change: %v", err)
	}
	if got := describe(r.last); got != "s1=up/3 s2=drain/2" {
		t.Errorf("after SetBase: %s; want s1=up/3 s2=drain/2", got)
	}
}
