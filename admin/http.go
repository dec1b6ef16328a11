package admin

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/stickyseat/stickyseat/assign"
)

// PoolView is one pool as the API and the page show it.
type PoolView struct {
	Name        string       `json:"name"`
	IdleTimeout string       `json:"idle_timeout"`
	Servers     []ServerView `json:"servers"`
	Seats       []SeatView   `json:"seats"`
	Used        int          `json:"used"`
	Quota       int          `json:"quota"`
	// Line is the pool's waiting line; nil when the pool refuses users when full.
	Line *LineView `json:"line,omitempty"`
}

// LineView is a pool's waiting line: its length and its head.
type LineView struct {
	Length int `json:"length"`
	// Lapsed counts the places that lapsed (their user stopped asking) since the store began.
	Lapsed  uint64      `json:"lapsed"`
	Timeout string      `json:"timeout"`
	Max     int         `json:"max"`
	Head    []PlaceView `json:"head"`
}

// PlaceView is one place in a line.
type PlaceView struct {
	Key      string    `json:"key"`
	Position int       `json:"position"`
	Joined   time.Time `json:"joined"`
	Waiting  string    `json:"waiting"`
	LapsesIn string    `json:"lapses_in"`
}

// ServerView is one server: its state and quota in force, and its live seats.
type ServerView struct {
	Name string `json:"name"`
	// State is the state this agent's decisions apply: up, drain, down-in-grace (HAProxy
	// reports it down; its users keep their seats until the down grace ends) or down.
	State string `json:"state"`
	// Configured is the state set by the configuration or an operator: up, drain or down.
	Configured string `json:"configured_state"`
	Quota      int    `json:"quota"`
	Used       int    `json:"used"`
}

// Percent is the share of the quota in use, for the page's bars (capped at 100).
func (s ServerView) Percent() int {
	if s.Quota <= 0 {
		return 100
	}
	return min(100, s.Used*100/s.Quota)
}

// SeatView is one live seat.
type SeatView struct {
	Key       string    `json:"key"`
	Server    string    `json:"server"`
	LastSeen  time.Time `json:"last_seen"`
	SeenAgo   string    `json:"seen_ago"`
	ExpiresIn string    `json:"expires_in"`
}

// Pools returns every pool with its servers and up to limit seats.
func (a *Admin) Pools(ctx context.Context, limit int) ([]PoolView, error) {
	cfg := a.Current()
	now := a.now()
	var out []PoolView
	for _, p := range cfg.Pools {
		names := make([]string, len(p.Servers))
		for i, s := range p.Servers {
			names[i] = s.Name
		}
		counts, err := a.store.LiveCounts(ctx, p.Name, names, p.IdleTimeout)
		if err != nil {
			return nil, err
		}
		pv := PoolView{Name: p.Name, IdleTimeout: p.IdleTimeout.String()}
		states := a.serverStates(p)
		for _, s := range p.Servers {
			pv.Servers = append(pv.Servers, ServerView{Name: s.Name, State: states[s.Name], Configured: s.State.String(), Quota: s.Quota, Used: counts[s.Name]})
			pv.Used += counts[s.Name]
			pv.Quota += s.Quota
		}
		seats, err := a.store.LiveSeats(ctx, p.Name, names, p.IdleTimeout, limit)
		if err != nil {
			return nil, err
		}
		for _, st := range seats {
			pv.Seats = append(pv.Seats, SeatView{Key: st.Key, Server: st.Server, LastSeen: st.LastSeen,
				SeenAgo: now.Sub(st.LastSeen).Round(time.Second).String(), ExpiresIn: st.Expires.Sub(now).Round(time.Second).String()})
		}
		if p.WhenFull == assign.WhenFullQueue {
			if pv.Line, err = a.line(ctx, p, limit); err != nil {
				return nil, err
			}
		}
		out = append(out, pv)
	}
	return out, nil
}

// line reads the pool's line with up to limit places from its head.
func (a *Admin) line(ctx context.Context, p assign.Pool, limit int) (*LineView, error) {
	l, err := a.store.Line(ctx, p.Name, p.QueueTimeout, limit)
	if err != nil {
		return nil, err
	}
	now := a.now()
	lv := &LineView{Length: l.Length, Lapsed: l.Lapsed, Timeout: p.QueueTimeout.String(), Max: p.QueueMax, Head: []PlaceView{}}
	for _, pl := range l.Head {
		lv.Head = append(lv.Head, PlaceView{Key: pl.Key, Position: pl.Position, Joined: pl.Joined,
			Waiting: now.Sub(pl.Joined).Round(time.Second).String(), LapsesIn: pl.Lapses.Sub(now).Round(time.Second).String()})
	}
	return lv, nil
}

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

//go:embed login.html
var loginHTML string

var loginPage = template.Must(template.New("login").Parse(loginHTML))

// Handler serves the API under /api/ and the status page at /. Every request must name this
// server in its Host (see HostGuard); changes must not come from another site (see
// sameOrigin); with a token, every request needs it as a bearer token or the session cookie
// the page's login form sets, and a change made with the cookie needs the page's form field
// too. The token is never read from the URL.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /api/pools", a.apiPools)
	mux.HandleFunc("GET /api/user", a.apiUser)
	mux.HandleFunc("GET /api/queue", a.apiQueue)
	mux.HandleFunc("POST /api/evict", a.apiEvict)
	mux.HandleFunc("POST /api/state", a.apiState)
	mux.HandleFunc("POST /api/quota", a.apiQuota)
	return HostGuard(a.allowedHosts, a.log, a.guard(mux))
}

// guard refuses tokens in the URL, cross-site changes and, with a token set, requests
// without it.
func (a *Admin) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("token") {
			a.refused(w, r, http.StatusBadRequest, "the admin token is never read from the URL (it would land in histories and logs): send Authorization: Bearer, or log in on the page")
			return
		}
		mutating := r.Method != http.MethodGet && r.Method != http.MethodHead
		if mutating {
			if ok, why := sameOrigin(r); !ok {
				a.refused(w, r, http.StatusForbidden, "cross-site request refused ("+why+")")
				return
			}
		} else if ok, why := sameSiteRead(r); !ok {
			a.refused(w, r, http.StatusForbidden, "cross-site request refused ("+why+")")
			return
		}
		if a.token == "" || r.URL.Path == "/login" {
			next.ServeHTTP(w, r)
			return
		}
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			if !equal(bearer, a.token) {
				a.unauthorized(w, r)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if c, err := r.Cookie(SessionCookie); err == nil && equal(c.Value, a.sessions.value(a.token, "session")) {
			if mutating && r.URL.Path != "/logout" && !equal(r.PostFormValue("csrf"), a.sessions.value(a.token, "csrf")) {
				a.refused(w, r, http.StatusForbidden, "missing or wrong csrf field: use the status page's forms")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			a.showLogin(w, http.StatusUnauthorized, "")
			return
		}
		a.unauthorized(w, r)
	})
}

func (a *Admin) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="stickyseat"`)
	a.refused(w, r, http.StatusUnauthorized, "missing or wrong admin token")
}

// refused answers an error and logs it, at most one line per interval.
func (a *Admin) refused(w http.ResponseWriter, r *http.Request, status int, msg string) {
	warnLimited(a.refusals, a.log, func(e *zerolog.Event) {
		e.Int("status", status).Str("remote", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).Str("reason", msg).Msg("admin request refused")
	})
	writeJSON(w, status, map[string]string{"error": msg})
}

func (a *Admin) showLogin(w http.ResponseWriter, status int, msg string) {
	setPageHeaders(w)
	w.WriteHeader(status)
	if err := loginPage.Execute(w, map[string]any{"Error": msg}); err != nil {
		a.log.Warn().Err(err).Msg("login page")
	}
}

// login checks the token the page's form posts and sets the session cookie: HttpOnly (no
// script reads it), SameSite=Strict (no other site's page sends it).
// Attempts beyond loginsPerSecond in a second are answered 429 without checking the token.
func (a *Admin) login(w http.ResponseWriter, r *http.Request) {
	if a.token != "" {
		if !a.logins.allow() {
			warnLimited(a.refusals, a.log, func(e *zerolog.Event) {
				e.Str("remote", r.RemoteAddr).Msg("admin login refused: too many attempts")
			})
			w.Header().Set("Retry-After", "1")
			a.showLogin(w, http.StatusTooManyRequests, "too many login attempts: try again in a second")
			return
		}
		if !equal(r.PostFormValue("token"), a.token) {
			warnLimited(a.refusals, a.log, func(e *zerolog.Event) {
				e.Str("remote", r.RemoteAddr).Msg("admin login refused: wrong token")
			})
			a.showLogin(w, http.StatusUnauthorized, "wrong token")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: a.sessions.value(a.token, "session"), Path: "/",
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		a.log.Info().Str("remote", r.RemoteAddr).Msg("admin login")
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends every session of the page, not only this browser's: the cookie is derived
// from the token and a secret the agent replaces here, so a copy of the cookie or of a
// form's CSRF field taken before stops working too.
func (a *Admin) logout(w http.ResponseWriter, r *http.Request) {
	if a.token != "" {
		a.sessions.rotate()
		a.log.Info().Str("remote", r.RemoteAddr).Msg("admin logout: every session of the page ended")
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// setPageHeaders keeps the pages from running scripts, posting elsewhere or being framed
// by another site (clickjacking).
func setPageHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin") // "no-referrer" would make browsers send Origin: null
	w.Header().Set("Cache-Control", "no-store")
}

func (a *Admin) page(w http.ResponseWriter, r *http.Request) {
	pools, err := a.Pools(r.Context(), 200)
	if err != nil {
		http.Error(w, "stickyseat: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	setPageHeaders(w)
	csrf := ""
	if a.token != "" {
		csrf = a.sessions.value(a.token, "csrf")
	}
	if err := page.Execute(w, map[string]any{"Pools": pools, "CSRF": csrf, "LoggedIn": a.token != "", "Now": a.now().UTC().Format(time.RFC3339)}); err != nil {
		a.log.Warn().Err(err).Msg("status page")
	}
}

// MaxList is the most seats per pool (or places of a line) one request may list: a whole
// pool of hundreds of thousands of seats would take megabytes and hold the pool's lock
// long enough to delay decisions.
const MaxList = 1000

// listLimit reads how many entries to list from the form field name: 100 when absent, at
// most MaxList. It answers 400 and returns false when the value is not such a number.
func listLimit(w http.ResponseWriter, r *http.Request, name string) (int, bool) {
	v := r.FormValue(name)
	if v == "" {
		return 100, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > MaxList {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": name + " must be a number from 0 to " + strconv.Itoa(MaxList)})
		return 0, false
	}
	return n, true
}

func (a *Admin) apiPools(w http.ResponseWriter, r *http.Request) {
	limit, ok := listLimit(w, r, "seats")
	if !ok {
		return
	}
	pools, err := a.Pools(r.Context(), limit)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, pools)
}

// apiQueue answers one pool's waiting line with up to places places from its head.
func (a *Admin) apiQueue(w http.ResponseWriter, r *http.Request) {
	pool := r.FormValue("pool")
	p, ok := a.pool(pool)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown pool " + strconv.Quote(pool)})
		return
	}
	if p.WhenFull != assign.WhenFullQueue {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "pool " + strconv.Quote(p.Name) + " has no line (when-full: reject)"})
		return
	}
	limit, ok := listLimit(w, r, "places")
	if !ok {
		return
	}
	lv, err := a.line(r.Context(), p, limit)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, lv)
}

func (a *Admin) apiUser(w http.ResponseWriter, r *http.Request) {
	pool, key := r.FormValue("pool"), r.FormValue("key")
	p, ok := a.pool(pool)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "unknown pool " + strconv.Quote(pool)})
		return
	}
	seat, found, err := a.store.LiveSeat(r.Context(), p.Name, assign.NormalizeKey(key), p.IdleTimeout)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	if !found {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no live seat"})
		return
	}
	now := a.now()
	writeJSON(w, http.StatusOK, SeatView{Key: key, Server: seat.Server, LastSeen: seat.LastSeen,
		SeenAgo: now.Sub(seat.LastSeen).Round(time.Second).String(), ExpiresIn: seat.Expires.Sub(now).Round(time.Second).String()})
}

func (a *Admin) apiEvict(w http.ResponseWriter, r *http.Request) {
	pool, key := r.FormValue("pool"), r.FormValue("key")
	if _, ok := a.pool(pool); !ok || key == "" {
		a.done(w, r, http.StatusNotFound, errors.New("unknown pool or empty key"))
		return
	}
	evicted, err := a.store.Evict(r.Context(), pool, assign.NormalizeKey(key))
	if err == nil && !evicted {
		a.done(w, r, http.StatusNotFound, errors.New("no live seat"))
		return
	}
	a.done(w, r, http.StatusServiceUnavailable, err)
}

func (a *Admin) apiState(w http.ResponseWriter, r *http.Request) {
	var st assign.State
	switch r.FormValue("state") {
	case "drain":
		st = assign.StateDrain
	case "up":
		st = assign.StateUp
	default:
		a.done(w, r, http.StatusBadRequest, errors.New("state must be drain or up"))
		return
	}
	code, err := statusFor(a.SetState(r.Context(), r.FormValue("pool"), r.FormValue("server"), st))
	a.done(w, r, code, err)
}

func (a *Admin) apiQuota(w http.ResponseWriter, r *http.Request) {
	q, err := strconv.Atoi(r.FormValue("quota"))
	if err != nil || q < 0 {
		a.done(w, r, http.StatusBadRequest, errors.New("quota must be a number of 0 or more (0: back to the configured quota)"))
		return
	}
	code, err := statusFor(a.SetQuota(r.Context(), r.FormValue("pool"), r.FormValue("server"), q))
	a.done(w, r, code, err)
}

// statusFor maps a change's error to its HTTP status: 404 for an unknown pool or server,
// 409 for a change the configuration cannot take (ErrInvalidChange: retrying will not
// help), 503 for a store that failed.
func statusFor(err error) (int, error) {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, err
	case errors.Is(err, ErrInvalidChange):
		return http.StatusConflict, err
	}
	return http.StatusServiceUnavailable, err
}

// done answers a change: a redirect back to the page for its forms, JSON otherwise. A change
// made is logged with the client's address.
func (a *Admin) done(w http.ResponseWriter, r *http.Request, failStatus int, err error) {
	if err == nil {
		change := strings.TrimPrefix(r.URL.Path, "/api/")
		e := a.log.Info().Str("remote", r.RemoteAddr).Str("change", change)
		for _, f := range []string{"pool", "server", "state", "quota"} {
			if v := r.FormValue(f); v != "" {
				e = e.Str(f, v)
			}
		}
		e.Msg("admin change")
		// User keys (addresses, user names) are personal data: logged at debug only.
		if key := r.FormValue("key"); key != "" {
			a.log.Debug().Str("remote", r.RemoteAddr).Str("change", change).Str("pool", r.FormValue("pool")).Str("key", key).Msg("admin change: user key")
		}
	}
	if r.FormValue("redirect") != "" && err == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if err != nil {
		writeJSON(w, failStatus, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (a *Admin) pool(name string) (assign.Pool, bool) {
	for _, p := range a.Current().Pools {
		if p.Name == name {
			return p, true
		}
	}
	return assign.Pool{}, false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}
