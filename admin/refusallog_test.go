package admin

import (
	"net/http"
	"strings"
	"testing"
)

// TestRefusalLogsAreRateLimited: a flood of refused requests logs one line per kind per
// interval, not one each.
func TestRefusalLogsAreRateLimited(t *testing.T) {
	srv, _, logs := newServer(t, Options{})
	for range 20 {
		do(t, nil, http.MethodGet, srv.URL+"/api/pools", "evil.example", nil)
		do(t, nil, http.MethodPost, srv.URL+"/api/state", "", drainS1, "Sec-Fetch-Site", "cross-site")
	}
	for _, msg := range []string{"refused a request for a foreign Host", "admin request refused"} {
		if n := strings.Count(logs.String(), msg); n != 1 {
			t.Errorf("%d lines %q for 20 refused requests within one interval; want 1:\n%s", n, msg, logs)
		}
	}
}
