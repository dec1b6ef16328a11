package admin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// getWith sends a GET with the given header pairs and returns the status and body.
func getWith(t *testing.T, u string, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
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

// TestListsAreBounded: one request lists at most admin.MaxList seats per pool or places of
// a line; a larger count is refused before the store is read.
func TestListsAreBounded(t *testing.T) {
	adm, _, _ := lineAdmin(t)
	srv := httptest.NewServer(adm.Handler())
	defer srv.Close()
	for _, path := range []string{"/api/pools?seats=1001", "/api/pools?seats=999999999", "/api/queue?pool=web&places=1001", "/api/queue?pool=web&places=999999999", "/api/pools?seats=-1"} {
		if code, body := getWith(t, srv.URL+path); code != http.StatusBadRequest || !strings.Contains(body, "from 0 to 1000") {
			t.Errorf("GET %s = %d %s; want 400, at most 1000", path, code, body)
		}
	}
	for _, path := range []string{"/api/pools?seats=1000", "/api/queue?pool=web&places=1000", "/api/pools", "/api/pools?seats=0"} {
		if code, body := getWith(t, srv.URL+path); code != http.StatusOK {
			t.Errorf("GET %s = %d %s; want 200", path, code, body)
		}
	}
}

// TestCrossSiteReadsRefused: another site's page cannot make a browser read the API (a
// request a browser marks cross-site or same-site gets 403); the status page may still be
// opened from a link on another site; non-browser clients and the page's own requests
// read as before.
func TestCrossSiteReadsRefused(t *testing.T) {
	adm, _, _ := lineAdmin(t)
	srv := httptest.NewServer(adm.Handler())
	defer srv.Close()
	for _, path := range []string{"/api/pools", "/api/queue?pool=web", "/api/user?pool=web&key=u1", "/"} {
		for _, site := range []string{"cross-site", "same-site"} {
			if code, body := getWith(t, srv.URL+path, "Sec-Fetch-Site", site, "Sec-Fetch-Mode", "no-cors"); code != http.StatusForbidden || strings.Contains(body, "u1") {
				t.Errorf("GET %s with Sec-Fetch-Site %s = %d %.80s; want 403 and no key", path, site, code, body)
			}
			if code, _ := getWith(t, srv.URL+path, "Sec-Fetch-Site", site, "Sec-Fetch-Mode", "cors", "Origin", "http://evil.example"); code != http.StatusForbidden {
				t.Errorf("GET %s with Sec-Fetch-Site %s from a script = %d; want 403", path, site, code)
			}
		}
		for _, h := range [][]string{nil, {"Sec-Fetch-Site", "none", "Sec-Fetch-Mode", "navigate"}, {"Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "cors"}} {
			if code, body := getWith(t, srv.URL+path, h...); code != http.StatusOK {
				t.Errorf("GET %s with %q = %d %.80s; want 200", path, h, code, body)
			}
		}
	}
	if code, _ := getWith(t, srv.URL+"/", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"); code != http.StatusOK {
		t.Errorf("GET / from a link on another site = %d; want 200", code)
	}
	if code, _ := getWith(t, srv.URL+"/api/pools", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"); code != http.StatusForbidden {
		t.Errorf("GET /api/pools from a link on another site = %d; want 403 (only the page may be opened so)", code)
	}
}
