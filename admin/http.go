package admin

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
}

// ServerView is one server: its state and quota in force, and its live seats.
type ServerView struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Quota int    `json:"quota"`
	Used  int    `json:"used"`
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
		for _, s := range p.Servers {
			pv.Servers = append(pv.Servers, ServerView{Name: s.Name, State: s.State.String(), Quota: s.Quota, Used: counts[s.Name]})
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
		out = append(out, pv)
	}
	return out, nil
}

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

// Handler serves the API under /api/ and the status page at /.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /api/pools", a.apiPools)
	mux.HandleFunc("GET /api/user", a.apiUser)
	mux.HandleFunc("POST /api/evict", a.apiEvict)
	mux.HandleFunc("POST /api/state", a.apiState)
	mux.HandleFunc("POST /api/quota", a.apiQuota)
	return a.auth(mux)
}

// auth requires the token, when one is set, as a bearer token or a token field.
func (a *Admin) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" {
			got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			if got == "" || got == r.Header.Get("Authorization") {
				got = r.FormValue("token")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="stickyseat"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (a *Admin) page(w http.ResponseWriter, r *http.Request) {
	pools, err := a.Pools(r.Context(), 200)
	if err != nil {
		http.Error(w, "stickyseat: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	if err := page.Execute(w, map[string]any{"Pools": pools, "Token": r.FormValue("token"), "Now": a.now().UTC().Format(time.RFC3339)}); err != nil {
		a.log.Warn().Err(err).Msg("status page")
	}
}

func (a *Admin) apiPools(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.FormValue("seats"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "seats must be a number"})
			return
		}
		limit = n
	}
	pools, err := a.Pools(r.Context(), limit)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, pools)
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

func statusFor(err error) (int, error) {
	if errors.Is(err, ErrNotFound) {
		return http.StatusNotFound, err
	}
	return http.StatusServiceUnavailable, err
}

// done answers a change: a redirect back to the page for its forms, JSON otherwise.
func (a *Admin) done(w http.ResponseWriter, r *http.Request, failStatus int, err error) {
	if r.FormValue("redirect") != "" && err == nil {
		to := "/"
		if t := r.FormValue("token"); t != "" {
			to += "?token=" + url.QueryEscape(t)
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
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
