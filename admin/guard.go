package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/internal/ratelimit"
)

// SessionCookie is the cookie the status page's login form sets. It holds a value derived
// from the admin token, never the token itself.
const SessionCookie = "stickyseat_admin"

// HostGuard answers 421 Misdirected Request, without calling next, when the request's Host
// is not one this server answers to: the address the connection was accepted on, a loopback
// name (localhost, 127.0.0.0/8, ::1) or one of allowed (a host name, or host:port to allow
// that port only; case-insensitive). A web page that rebinds its own DNS name to this
// address sends its own name as Host, so it is refused before it can read or change
// anything.
func HostGuard(allowed []string, log zerolog.Logger, next http.Handler) http.Handler {
	set := map[string]bool{}
	for _, h := range allowed {
		set[strings.ToLower(strings.TrimSuffix(strings.TrimSpace(h), "."))] = true
	}
	limit := ratelimit.New(logInterval)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r, set) {
			warnLimited(limit, log, func(e *zerolog.Event) {
				e.Str("host", r.Host).Str("remote", r.RemoteAddr).Str("path", r.URL.Path).Msg("refused a request for a foreign Host (DNS rebinding?)")
			})
			writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": "Host " + quoteHost(r.Host) + " is not this server's address, a loopback name or an allowed host"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func quoteHost(h string) string {
	if len(h) > 100 {
		h = h[:100]
	}
	return `"` + strings.ToValidUTF8(h, "?") + `"`
}

func hostAllowed(r *http.Request, allowed map[string]bool) bool {
	full := strings.ToLower(r.Host)
	if full == "" {
		return false
	}
	host := full
	if h, _, err := net.SplitHostPort(full); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if host == "localhost" || allowed[host] || allowed[full] {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := la.(*net.TCPAddr); ok && ta.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether a state-changing request may come from where the browser says
// it comes from: Sec-Fetch-Site, when present, must be same-origin or none (typed in the
// address bar), and Origin, when present, must name the request's own Host. A request with
// neither header is not from a current browser (curl, the admin CLI, scripts). A browser
// hides the origin as "null" under some referrer policies; that is accepted only when
// Sec-Fetch-Site, which no page can set, says same-origin.
func sameOrigin(r *http.Request) (bool, string) {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "", "same-origin", "none":
	default:
		return false, "Sec-Fetch-Site: " + site
	}
	origin := r.Header.Get("Origin")
	if origin == "" || (origin == "null" && site == "same-origin") {
		return true, ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return false, "Origin: " + origin
	}
	return true, ""
}

// sameSiteRead reports whether a read may come from where the browser says it comes from:
// another site's page must not make the browser fetch the API (each read can list a
// thousand seats and holds a pool's lock meanwhile, and a page can send many). Only the
// status page itself may be opened from another site, by a link (a top-level navigation:
// Sec-Fetch-Mode navigate), which costs one bounded page; its cookie is SameSite=Strict,
// so such a visit is not logged in. Requests without the header (curl, the admin CLI,
// scripts, older browsers) are not from a current browser's page.
func sameSiteRead(r *http.Request) (bool, string) {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "", "same-origin", "none":
		return true, ""
	}
	if r.URL.Path == "/" && r.Header.Get("Sec-Fetch-Mode") == "navigate" {
		return true, ""
	}
	return false, "Sec-Fetch-Site: " + site
}

// derive returns a value bound to the admin token and the session secret for one purpose
// (the session cookie, the forms' CSRF field), so neither reveals the token and both end
// when the secret changes.
func derive(token string, secret []byte, purpose string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("stickyseat admin " + purpose + "\x00"))
	m.Write(secret)
	return hex.EncodeToString(m.Sum(nil))
}

// Login attempts the agent takes per second, whoever makes them: guessing a 16-character
// token at this rate is hopeless, and an operator never types faster.
const loginsPerSecond = 5

// loginGate counts login attempts in the current second.
type loginGate struct {
	now func() time.Time

	mu     sync.Mutex
	second int64
	count  int
}

func newLoginGate() *loginGate { return &loginGate{now: time.Now} }

// allow reports whether one more attempt may be checked now.
func (g *loginGate) allow() bool {
	sec := g.now().Unix()
	g.mu.Lock()
	defer g.mu.Unlock()
	if sec != g.second {
		g.second, g.count = sec, 0
	}
	if g.count >= loginsPerSecond {
		return false
	}
	g.count++
	return true
}

// sessions holds the secret mixed into the page's session cookie and CSRF field. It is
// random at start and replaced at every logout, which ends every session of the page (its
// cookie and forms), on every browser; a restart ends them too.
type sessions struct {
	mu     sync.Mutex
	secret []byte
}

func newSessions() *sessions {
	s := &sessions{}
	s.rotate()
	return s
}

// rotate replaces the secret, ending every session.
func (s *sessions) rotate() {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it aborts the process instead)
	s.mu.Lock()
	s.secret = b
	s.mu.Unlock()
}

// value returns the session's value for purpose under token.
func (s *sessions) value(token, purpose string) string {
	s.mu.Lock()
	secret := s.secret
	s.mu.Unlock()
	return derive(token, secret, purpose)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// logInterval is the least time between two warnings of one kind about refused requests:
// a flood of them logs a line per interval with the count of those held back.
const logInterval = 10 * time.Second

// warnLimited logs the warning write fills if limit lets a line through now.
func warnLimited(limit *ratelimit.Limiter, log zerolog.Logger, write func(*zerolog.Event)) {
	if ok, held := limit.Allow(); ok {
		write(log.Warn().Uint64("suppressed", held))
	}
}
