package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/stickyseat/stickyseat/assign"
)

// Runtime talks to one HAProxy's runtime API (its stats socket): a unix socket path or a
// host:port.
type Runtime struct {
	// Addr is the socket: an absolute path for a unix socket, else host:port.
	Addr string
	// Tables maps a pool name to its backend, whose stick table (TrackConnections,
	// FastPath) the agent reads and keeps in step with the seats.
	Tables map[string]string
	// Timeout bounds one command; default 2s.
	Timeout time.Duration
}

// maxReply bounds what one command may return (a 1M-entry table dumps ~100 MB; the
// connection table holds only users with open connections).
const maxReply = 64 << 20

// Command sends one command and returns HAProxy's whole answer.
func (r Runtime) Command(ctx context.Context, cmd string) (string, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	network := "tcp"
	if strings.HasPrefix(r.Addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, r.Addr)
	if err != nil {
		return "", fmt.Errorf("runtime API %s: %w", r.Addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, cmd+"\n"); err != nil {
		return "", fmt.Errorf("runtime API %s: %w", r.Addr, err)
	}
	out, err := io.ReadAll(io.LimitReader(conn, maxReply+1))
	if err != nil {
		return "", fmt.Errorf("runtime API %s: %q: %w", r.Addr, cmd, err)
	}
	if len(out) > maxReply {
		return "", fmt.Errorf("runtime API %s: %q: answer over %d bytes", r.Addr, cmd, maxReply)
	}
	return string(out), nil
}

var _ assign.LocalTable = Runtime{}

// Snapshot reads the pool's table and its servers' health: every user HAProxy routes by
// itself (fast path) with their server's name, every user with an open connection, and the
// servers HAProxy sees DOWN or in maintenance. A pool without a table has an empty snapshot.
func (r Runtime) Snapshot(ctx context.Context, pool string) (assign.TableSnapshot, error) {
	backend, ok := r.Tables[pool]
	if !ok {
		return assign.TableSnapshot{}, nil
	}
	out, err := r.Command(ctx, "show servers state "+backend)
	if err != nil {
		return assign.TableSnapshot{}, err
	}
	servers, err := parseServersState(backend, out)
	if err != nil {
		return assign.TableSnapshot{}, err
	}
	if out, err = r.Command(ctx, "show table "+backend); err != nil {
		return assign.TableSnapshot{}, err
	}
	rows, err := parseTable(backend, out)
	if err != nil {
		return assign.TableSnapshot{}, err
	}
	snap := assign.TableSnapshot{Health: true}
	for _, s := range servers {
		if !s.up {
			snap.Down = append(snap.Down, s.name)
		}
	}
	for _, row := range rows {
		e := assign.TableEntry{Key: row.key, Open: row.connCur > 0}
		if row.serverID > 0 {
			srv, ok := servers[row.serverID]
			if !ok {
				// A server the backend no longer has (HAProxy reloaded with fewer):
				// name none, so the entry is removed.
				srv.name = "#" + strconv.Itoa(row.serverID)
			}
			e.Server = srv.name
		}
		if e.Server != "" || e.Open {
			snap.Entries = append(snap.Entries, e)
		}
	}
	return snap, nil
}

// errInUse is HAProxy's answer to clearing an entry a connection still tracks.
const errInUse = "Entry currently in use"

// Forget removes key's entry from the pool's table, so the user's next request asks the
// agent. An entry a connection still tracks (conn_cur) cannot be removed: its server is
// set to none instead, which routes the same way.
func (r Runtime) Forget(ctx context.Context, pool, key string) error {
	backend, ok := r.Tables[pool]
	if !ok {
		return nil
	}
	arg, err := cliWord(key)
	if err != nil {
		return err
	}
	out, err := r.Command(ctx, "clear table "+backend+" key "+arg)
	if err != nil {
		return err
	}
	if strings.Contains(out, errInUse) {
		if out, err = r.Command(ctx, "set table "+backend+" key "+arg+" data.server_id 0"); err != nil {
			return err
		}
	}
	if out = strings.TrimSpace(out); out != "" {
		return fmt.Errorf("runtime API %s: forget %q in %s: %s", r.Addr, key, backend, out)
	}
	return nil
}

// cliWord escapes s as one word of a runtime API command: HAProxy's command line splits on
// spaces, tabs and ';', reads '\' as an escape and "<<" as a payload. A line feed, carriage
// return or NUL cannot be sent at all.
func cliWord(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "\n\r\x00") {
		return "", fmt.Errorf("key %q cannot be written on the runtime API command line", s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\\', ';', '<':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// tableRow is one line of `show table`.
type tableRow struct {
	key               string
	serverID, connCur int
}

// parseTable reads `show table` output:
//
//	# table: be, type: string, size:1048576, used:2
//	0x55d0c0a8: key=alice use=1 exp=59000 shard=0 server_id=2 conn_cur=1 server_key=s2
//
// HAProxy escapes a string key's spaces, '=', '\\' and control characters with a backslash
// ("\\ ", "\\t", "\\x01"), so the key ends at the first unescaped space.
func parseTable(table, out string) ([]tableRow, error) {
	var rows []tableRow
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	header := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
		case strings.HasPrefix(line, "# table: "):
			header = true
		case strings.HasPrefix(line, "0x"):
			_, rest, ok := strings.Cut(line, ": key=")
			if !ok {
				return nil, fmt.Errorf("show table %s: unexpected line %q", table, line)
			}
			key, fields, err := unescapeKey(rest)
			if err != nil {
				return nil, fmt.Errorf("show table %s: line %q: %w", table, line, err)
			}
			row := tableRow{key: key}
			for _, f := range strings.Fields(fields) {
				name, val, _ := strings.Cut(f, "=")
				var dst *int
				switch name {
				case "server_id":
					dst = &row.serverID
				case "conn_cur":
					dst = &row.connCur
				default:
					continue
				}
				if *dst, err = strconv.Atoi(val); err != nil {
					return nil, fmt.Errorf("show table %s: line %q: %s: %w", table, line, name, err)
				}
			}
			rows = append(rows, row)
		default:
			return nil, fmt.Errorf("show table %s: %s", table, strings.TrimSpace(line))
		}
	}
	if !header {
		return nil, fmt.Errorf("show table %s: no table in the answer %q", table, strings.TrimSpace(out))
	}
	return rows, sc.Err()
}

// unescapeKey reads a key as `show table` prints it, up to the first unescaped space, and
// returns it with the rest of the line.
func unescapeKey(s string) (key, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			return b.String(), s[i+1:], nil
		case c != '\\':
			b.WriteByte(c)
		case i+1 >= len(s):
			return "", "", errors.New("key ends with a lone backslash")
		default:
			i++
			switch s[i] {
			case 't':
				b.WriteByte('\t')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 'e':
				b.WriteByte(0x1b)
			case 'x':
				if i+2 >= len(s) {
					return "", "", errors.New("key has a short \\x escape")
				}
				v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return "", "", fmt.Errorf("key has a bad \\x escape: %w", err)
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				b.WriteByte(s[i]) // ' ', '=', '\\'
			}
		}
	}
	return "", "", errors.New("no fields after the key")
}

// serverState is one server as `show servers state` reports it.
type serverState struct {
	name string
	up   bool
}

// parseServersState reads `show servers state <backend>` (format 1: a version line, a
// "# be_id be_name srv_id srv_name ..." header, one line per server) into the backend's
// servers by id. A server is up as srv_is_up() sees it: not stopped, not in maintenance.
func parseServersState(backend, out string) (map[int]serverState, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "1" || !strings.HasPrefix(lines[1], "# ") {
		return nil, fmt.Errorf("show servers state %s: unexpected answer %q", backend, strings.TrimSpace(out))
	}
	col := map[string]int{}
	for i, name := range strings.Fields(strings.TrimPrefix(lines[1], "# ")) {
		col[name] = i
	}
	need := []string{"srv_id", "srv_name", "srv_op_state", "srv_admin_state"}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, fmt.Errorf("show servers state %s: no %s column in %q", backend, n, lines[1])
		}
	}
	servers := map[int]serverState{}
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) < len(col) {
			return nil, fmt.Errorf("show servers state %s: short line %q", backend, line)
		}
		id, err1 := strconv.Atoi(f[col["srv_id"]])
		op, err2 := strconv.Atoi(f[col["srv_op_state"]])
		adm, err3 := strconv.Atoi(f[col["srv_admin_state"]])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("show servers state %s: line %q: %w", backend, line, err)
		}
		// op state 0 is STOPPED; 0x23 is HAProxy's maintenance mask (forced, inherited,
		// resolution), the one srv_is_up() tests; a draining server (0x18) is up.
		servers[id] = serverState{name: f[col["srv_name"]], up: op != 0 && adm&0x23 == 0}
	}
	return servers, nil
}
