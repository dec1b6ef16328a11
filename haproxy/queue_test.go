package haproxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRoutingQueued: a pool with a line answers a queued user with a 503 showing the place
// (and the wait when known), as a self-refreshing page or, for a client that accepts only
// JSON, as JSON; Retry-After is the queue's, not the full one's. Nothing reaches a server.
func TestRoutingQueued(t *testing.T) {
	for _, bin := range haproxyBins(t) {
		t.Run(binName(bin), func(t *testing.T) {
			c := validConfig()
			c.Mode = ModeHTTP
			c.Pools[0].Queue = true
			c.QueueRetryAfter = 3 * time.Second
			r := startRig(t, bin, c, true, nil)
			r.agent.setAnswer(func(args map[string]any) seat {
				switch key, _ := args["key"].(string); key {
				case "q1":
					return seat{status: "queued", position: "3", wait: "40"}
				case "q2":
					return seat{status: "queued", position: "17"}
				case "full":
					return seat{status: "full"}
				}
				return seat{server: "s1", status: "new"}
			})
			html := "text/html; charset=utf-8"
			for _, tt := range []struct {
				user, accept string
				ctype        string
				body         []string // each must appear
				not          []string // none may appear
				retryAfter   string
			}{
				{"q1", "", html, []string{"id='place'>3</p>", "about 40 s", "http-equiv='refresh' content='3'"}, nil, "3"},
				{"q1", "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8", html, []string{"id='place'>3</p>"}, nil, "3"},
				{"q2", "*/*", html, []string{"id='place'>17</p>"}, []string{"Estimated wait"}, "3"},
				{"q1", "application/json", "application/json", []string{`{"status":"queued","position":3,"wait_seconds":40,"retry_after":3}`}, nil, "3"},
				{"q2", "application/json", "application/json", []string{`{"status":"queued","position":17,"retry_after":3}`}, []string{"wait_seconds"}, "3"},
				{"full", "application/json", "text/plain", []string{FullText}, nil, "30"},
			} {
				req, err := http.NewRequest("GET", "http://"+r.front+"/", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("X-User", tt.user)
				if tt.accept != "" {
					req.Header.Set("Accept", tt.accept)
				}
				client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				body := string(b)
				name := tt.user + " accepting " + tt.accept
				if resp.StatusCode != 503 || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) || resp.Header.Get("Retry-After") != tt.retryAfter {
					t.Errorf("%s: %d %q Retry-After %q; want 503 %q Retry-After %q", name, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"), tt.ctype, tt.retryAfter)
				}
				for _, want := range tt.body {
					if !strings.Contains(body, want) {
						t.Errorf("%s: body lacks %q:\n%s", name, want, body)
					}
				}
				for _, bad := range tt.not {
					if strings.Contains(body, bad) {
						t.Errorf("%s: body has %q:\n%s", name, bad, body)
					}
				}
				if hits := r.hits(); hits != "" {
					t.Errorf("%s reached servers %q; want none", name, hits)
				}
			}
		})
	}
}

// TestQueueRetryWithinTimeout: users in line are told to try again well within the time their
// place is kept, or they would lose it between two tries.
func TestQueueRetryWithinTimeout(t *testing.T) {
	for _, tt := range []struct {
		timeout, retry time.Duration
		want           string // the Retry-After written, or the error's start
	}{
		{30 * time.Second, 0, "hdr Retry-After 5 "},
		{6 * time.Second, 0, "hdr Retry-After 2 "},
		{2 * time.Second, 0, "hdr Retry-After 1 "},
		{10 * time.Second, 5 * time.Second, "hdr Retry-After 5 "},
		{6 * time.Second, 5 * time.Second, "invalid config: QueueRetryAfter 5s: pool \"web\"'s places lapse 6s after a try"},
		{1500 * time.Millisecond, 0, "invalid config: QueueRetryAfter 1s: pool \"web\"'s places lapse 1.5s after a try"},
	} {
		c := validConfig()
		c.Mode, c.QueueRetryAfter = ModeHTTP, tt.retry
		c.Pools[0].Queue, c.Pools[0].QueueTimeout = true, tt.timeout
		cfg, _, err := Render(c)
		got := string(cfg)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("queue timeout %v, retry %v: got\n%s\nwant it to contain %q", tt.timeout, tt.retry, got, tt.want)
		}
	}
}
