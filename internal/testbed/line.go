package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Line is a pool's waiting line as the agent's admin API (GET /api/queue) lists it.
type Line struct {
	Length int `json:"length"`
	Head   []struct {
		Key      string `json:"key"`
		Position int    `json:"position"`
	} `json:"head"`
}

// Place returns key's place in the line, 0 when it holds none.
func (l Line) Place(key string) int {
	for _, p := range l.Head {
		if p.Key == key {
			return p.Position
		}
	}
	return 0
}

// Keys lists the line's keys from its head.
func (l Line) Keys() []string {
	var keys []string
	for _, p := range l.Head {
		keys = append(keys, p.Key)
	}
	return keys
}

// Line reads the default pool's line from the stack's agent (StackOptions.Admin).
func (s *Stack) Line(ctx context.Context) (Line, error) {
	var l Line
	body, err := s.admin(ctx, http.MethodGet, "/api/queue", url.Values{"pool": {"default"}, "places": {"1000"}})
	if err != nil {
		return l, err
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return l, fmt.Errorf("GET /api/queue: %w: %s", err, body)
	}
	return l, nil
}

// Evict frees key's seat (or place in line) in the default pool through the stack's agent
// (StackOptions.Admin), as `stickyseat admin evict` does.
func (s *Stack) Evict(ctx context.Context, key string) error {
	_, err := s.admin(ctx, http.MethodPost, "/api/evict", url.Values{"pool": {"default"}, "key": {key}})
	return err
}

// admin calls the agent's admin API and returns the body of a 200 answer.
func (s *Stack) admin(ctx context.Context, method, path string, form url.Values) ([]byte, error) {
	if s.AdminAddr == "" {
		return nil, fmt.Errorf("%s %s: the stack has no admin API (StackOptions.Admin)", method, path)
	}
	u := "http://" + s.AdminAddr + path
	var body io.Reader
	if method == http.MethodGet {
		u += "?" + form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	return b, nil
}

// placeRE finds the place on the waiting page HAProxy answers a queued http user with.
var placeRE = regexp.MustCompile(`id='place'>([0-9]+)<`)

// pagePlace returns the place the waiting page shows, 0 when body is no such page.
func pagePlace(body string) int {
	m := placeRE.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1]) // the pattern admits digits only; too many of them is no place
	return n
}

// waitLogField polls p's JSON log until a line with message has field, for up to d.
func waitLogField(p *Process, message, field string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		if v := LogField(p.Output(), message, field); v != "" {
			return v, nil
		}
		if ok, err := p.Exited(); ok {
			return "", fmt.Errorf("%s exited (%v) before logging %q:\n%s", p.Name, err, message, p.Output())
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not log %q in %s:\n%s", p.Name, message, d, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
