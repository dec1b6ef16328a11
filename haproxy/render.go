package haproxy

import (
	"bytes"
	"embed"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Bodies of the http refusals (the generated config ends each with a newline).
const (
	InvalidText     = "stickyseat: no user key in the request"
	FullText        = "stickyseat: every server is full, retry later"
	UnavailableText = "stickyseat: seat service unavailable"
)

// extraInspectDelay is how long, beyond the SPOE processing timeout, a tcp-mode backend waits
// for the client to send the data its key is read from (req.hdr and the like).
const extraInspectDelay = 5 * time.Second

//go:embed templates/*.tmpl
var templateFS embed.FS

// templates are parsed once; they are constant, so a parse error is a programming error
// caught by every test.
var templates = template.Must(template.New("").Funcs(template.FuncMap{"isAbs": filepath.IsAbs}).ParseFS(templateFS, "templates/*.tmpl"))

// Globals are the settings of a standalone haproxy.cfg outside the stickyseat sections.
type Globals struct {
	// StatsSocket, when set, is the absolute path of an admin-level runtime API socket (HAProxy
	// reads a bare name as a host name).
	StatsSocket string
	// LogStdout sends HAProxy's logs to its standard output, for running in the foreground.
	LogStdout bool
}

// Validate reports problems in g.
func (g Globals) Validate() error {
	if strings.ContainsFunc(g.StatsSocket, isSpaceOrControl) || strings.ContainsAny(g.StatsSocket, `#"'\`) {
		return fmt.Errorf("StatsSocket %q: must not contain spaces, control characters, quotes, '#' or '\\'", g.StatsSocket)
	}
	if g.StatsSocket != "" && !filepath.IsAbs(g.StatsSocket) {
		return fmt.Errorf("StatsSocket %q: want an absolute path", g.StatsSocket)
	}
	return nil
}

// renderData is what the templates see: the config with defaults applied plus derived values.
type renderData struct {
	Config
	Globals
	Engine, Frontend, AgentBackend         string
	InvalidText, FullText, UnavailableText string
	Checks, SetPoolVar, FrontendLog        bool
	// StaticUseServer: one use-server rule per server instead of the dynamic
	// "use-server %[var(...)]" (see layer4Key).
	StaticUseServer bool
	// BufferBody: the message reads the request body (body=req.body or a req.body* key).
	BufferBody                          bool
	InspectDelay, ProcessingTimeoutText string
	// AgentConnectTimeout is the agent backend's "timeout connect": a quarter of the
	// processing timeout, so that retries of a refused connection fit in it.
	AgentConnectTimeout string
	RetryAfterSeconds   int64
	// Table: each pool backend has the stick table (TrackConnections or FastPath);
	// TableExpire is its expire, TableStore its "store" list (empty for none).
	Table                   bool
	TableExpire, TableStore string
	// MaxTableKey is the longest key the fast path looks up or stores: the table keeps
	// TableKeyLen bytes of a key, and two keys cut to the same bytes must never share an entry.
	MaxTableKey, TableKeyLen int
	// AnyQueue: some pool has a line, so the agent may set position and wait.
	AnyQueue               bool
	QueueRetryAfterSeconds int64
	// QueuePageHead and QueuePageTail frame the page a queued http user sees.
	QueuePageHead, QueuePageTail string
}

// queuePageHead and queuePageTail are the waiting page, written into haproxy.cfg as one
// lf-string: single quotes only (the string is in double quotes), no '%' but HAProxy's own
// %[...] (it is a log-format), no script and nothing fetched from elsewhere. It refreshes
// itself after %d seconds (the Retry-After), which is what keeps the place.
const (
	queuePageHead = "<!doctype html><html lang='en'><head><meta charset='utf-8'><meta http-equiv='refresh' content='%d'>" +
		"<meta name='viewport' content='width=device-width, initial-scale=1'><title>Waiting for a seat</title>" +
		"<style>body{font-family:sans-serif;max-width:32em;margin:4em auto;text-align:center}.place{font-size:3em;margin:.2em}</style></head>" +
		"<body><h1>Every seat is taken</h1><p>Your place in line:</p><p class='place' id='place'>%%[var(txn.stickyseat.position)]</p>"
	queuePageTail = "<p>This page asks again by itself; keep it open to keep your place.</p></body></html>"
)

// tableKeyLen is the stick table's key length, the agent's own longest key kept as it is.
const tableKeyLen = 256

func newRenderData(c Config, g Globals, frontendLog bool) renderData {
	c = c.withDefaults()
	expire, store := "10m", ""
	if c.TrackConnections {
		store = "conn_cur"
	}
	if c.FastPath {
		expire = formatTimeout(c.FastPathWindow)
	}
	return renderData{
		Table:                  c.TrackConnections || c.FastPath,
		TableExpire:            expire,
		TableStore:             store,
		MaxTableKey:            tableKeyLen - 1,
		TableKeyLen:            tableKeyLen,
		FrontendLog:            frontendLog,
		Config:                 c,
		Globals:                g,
		Engine:                 Engine,
		Frontend:               Frontend,
		AgentBackend:           AgentBackend,
		InvalidText:            InvalidText,
		FullText:               FullText,
		UnavailableText:        UnavailableText,
		Checks:                 !c.NoHealthChecks,
		SetPoolVar:             len(c.Pools) > 1,
		StaticUseServer:        c.Mode == ModeTCP && !layer4Key(c.Key),
		BufferBody:             c.SendBody || strings.Contains(c.Key, "req.body"),
		InspectDelay:           formatTimeout(c.ProcessingTimeout + extraInspectDelay),
		ProcessingTimeoutText:  formatTimeout(c.ProcessingTimeout),
		AgentConnectTimeout:    formatTimeout(max(c.ProcessingTimeout/4, time.Millisecond)),
		RetryAfterSeconds:      int64((c.RetryAfter + time.Second - 1) / time.Second),
		AnyQueue:               slices.ContainsFunc(c.Pools, func(p Pool) bool { return p.Queue }),
		QueuePageHead:          fmt.Sprintf(queuePageHead, int64((c.QueueRetryAfter+time.Second-1)/time.Second)),
		QueuePageTail:          queuePageTail,
		QueueRetryAfterSeconds: int64((c.QueueRetryAfter + time.Second - 1) / time.Second),
	}
}

// layer4Fetches are the sample fetches a tcp-mode key may start with and still be read without
// HTTP parsing. The list is short on purpose: a layer-4 key missing from it only gets the
// static use-server rules, which route the same way.
var layer4Fetches = map[string]bool{
	"src": true, "dst": true, "src_port": true, "dst_port": true,
	"req.ssl_sni": true, "req_ssl_sni": true, "ssl_fc_sni": true,
	"req.payload": true, "req.payload_lv": true, "req.len": true,
}

// layer4Key reports whether key reads only layer-4 data. A tcp backend whose rules fetch
// anything from HTTP (req.hdr, req.cook, url_param in the send-spoe-group condition) makes
// HAProxy 3.0.0 refuse the dynamic "use-server %[var(txn.stickyseat.server)]" ("logformat
// expression not usable here (at least one node depends on HTTP mode)"); such backends get
// one "use-server NAME if { var(txn.stickyseat.server) -m str NAME }" per server instead,
// which every version from 2.6 to 3.4 accepts.
func layer4Key(key string) bool {
	fetch, _, _ := strings.Cut(key, ",")
	fetch, _, _ = strings.Cut(fetch, "(")
	return layer4Fetches[fetch]
}

// Render returns the haproxy.cfg part (the frontend, one backend per pool and the agent
// backend, to follow your global and defaults sections) and the SPOE file to write at
// c.SPOEPath.
func Render(c Config) (cfg, spoe []byte, err error) {
	if err := c.Validate(); err != nil {
		return nil, nil, fmt.Errorf("invalid config: %w", err)
	}
	return render(c, true)
}

// render returns Render's files; frontendLog adds the frontend's "option tcplog/httplog".
func render(c Config, frontendLog bool) (cfg, spoe []byte, err error) {
	d := newRenderData(c, Globals{}, frontendLog)
	if cfg, err = execute("haproxy.cfg.tmpl", d); err != nil {
		return nil, nil, err
	}
	if spoe, err = execute("spoe.conf.tmpl", d); err != nil {
		return nil, nil, err
	}
	return cfg, spoe, nil
}

// RenderStandalone returns a complete haproxy.cfg: global and defaults sections followed by
// Render's part. It is meant for running in the foreground (no daemon), as the tests, the
// demo and the examples do. The SPOE file is Render's. Without g.LogStdout nothing is logged,
// and the frontend's "option tcplog/httplog" is left out (HAProxy warns about a log format
// with no log address).
func RenderStandalone(c Config, g Globals) ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("invalid globals: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config: %w", err)
	}
	part, _, err := render(c, g.LogStdout)
	if err != nil {
		return nil, err
	}
	head, err := execute("standalone.cfg.tmpl", newRenderData(c, g, g.LogStdout))
	if err != nil {
		return nil, err
	}
	return append(head, part...), nil
}

func execute(name string, d renderData) ([]byte, error) {
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, name, d); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// formatTimeout writes d in HAProxy's time format, in whole seconds when exact, else in
// milliseconds rounded up.
func formatTimeout(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", (d+time.Millisecond-1)/time.Millisecond)
}
