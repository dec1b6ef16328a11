package admin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/store/memory"
)

// login posts the token as the page's form does and returns the session cookie and the
// page's CSRF field.
func login(t *testing.T, base, token string) (cookie, csrf string) {
	t.Helper()
	resp, _ := do(t, nil, http.MethodPost, base+"/login", "", url.Values{"token": {token}}, "Origin", base, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Fatalf("login: HTTP %d, cookies %v; want 303 and a cookie", resp.StatusCode, resp.Cookies())
	}
	cookie = resp.Cookies()[0].Name + "=" + resp.Cookies()[0].Value
	resp, body := do(t, nil, http.MethodGet, base+"/", "", nil, "Cookie", cookie)
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET / after login: HTTP %d; want the page with its csrf field", resp.StatusCode)
	}
	return cookie, m[1]
}

// TestLogoutEndsEverySession: after a logout the cookie and CSRF field of that session,
// and of every other session of the page, no longer work; logging in again does.
func TestLogoutEndsEverySession(t *testing.T) {
	const token = "a-long-enough-admin-token"
	srv, r, _ := newServer(t, Options{Token: token})
	base := srv.URL
	cookie, csrf := login(t, base, token)
	other, otherCSRF := login(t, base, token) // another browser
	if resp, _ := do(t, nil, http.MethodPost, base+"/logout", "", url.Values{}, "Cookie", cookie, "Origin", base, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: HTTP %d; want 303", resp.StatusCode)
	}
	for _, s := range []struct{ name, cookie, csrf string }{{"this browser", cookie, csrf}, {"another browser", other, otherCSRF}} {
		if resp, _ := do(t, nil, http.MethodGet, base+"/api/pools", "", nil, "Cookie", s.cookie); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /api/pools with %s's cookie after logout: HTTP %d; want 401", s.name, resp.StatusCode)
		}
		form := url.Values{"pool": {"web"}, "server": {"s1"}, "state": {"drain"}, "csrf": {s.csrf}}
		if resp, _ := do(t, nil, http.MethodPost, base+"/api/state", "", form, "Cookie", s.cookie, "Origin", base, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /api/state with %s's cookie and csrf after logout: HTTP %d; want 401", s.name, resp.StatusCode)
		}
	}
	if got := describe(r.last); got != "s1=up/2 s2=up/2" {
		t.Fatalf("after requests with ended sessions: %s; want nothing changed", got)
	}
	cookie, csrf = login(t, base, token)
	form := url.Values{"pool": {"web"}, "server": {"s1"}, "state": {"drain"}, "csrf": {csrf}}
	if resp, body := do(t, nil, http.MethodPost, base+"/api/state", "", form, "Cookie", cookie, "Origin", base, "Sec-Fetch-Site", "same-origin"); resp.StatusCode != http.StatusOK {
		t.Errorf("POST /api/state after logging in again: HTTP %d %s; want 200", resp.StatusCode, body)
	}
}

// TestLoginAttemptsThrottled: at most loginsPerSecond login attempts a second are checked,
// the right token included; the next get 429 with Retry-After and no cookie; the next
// second logging in works again.
func TestLoginAttemptsThrottled(t *testing.T) {
	const token = "a-long-enough-admin-token"
	clock := time.Unix(1000, 0)
	a := New(cfg(2), &recordingReloader{}, memory.New(memory.Options{}), memory.New(memory.Options{}), Options{Token: token})
	a.logins.now = func() time.Time { return clock }
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	post := func(tok string) *http.Response {
		resp, _ := do(t, nil, http.MethodPost, srv.URL+"/login", "", url.Values{"token": {tok}})
		return resp
	}
	for i := range loginsPerSecond {
		if resp := post("wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong attempt %d: HTTP %d; want 401", i+1, resp.StatusCode)
		}
	}
	resp := post(token)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || len(resp.Cookies()) != 0 {
		t.Fatalf("attempt %d in one second, right token: HTTP %d, Retry-After %q, cookies %v; want 429, 1, none",
			loginsPerSecond+1, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Cookies())
	}
	clock = clock.Add(time.Second)
	if resp := post(token); resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("login the next second: HTTP %d, cookies %v; want 303 and the cookie", resp.StatusCode, resp.Cookies())
	}
}
