package haproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Runtime talks to one HAProxy's runtime API (its stats socket): a unix socket path or a
// host:port.
type Runtime struct {
	// Addr is the socket: an absolute path for a unix socket, else host:port.
	Addr string
	// Tables maps a pool name to the stick table tracking its open connections (the pool's
	// backend, with TrackConnections).
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

// OpenKeys lists the keys of the pool's table whose conn_cur is above zero.
func (r Runtime) OpenKeys(ctx context.Context, pool string) ([]string, error) {
	table, ok := r.Tables[pool]
	if !ok {
		return nil, nil // this pool tracks no connections
	}
	out, err := r.Command(ctx, "show table "+table+" data.conn_cur gt 0")
	if err != nil {
		return nil, err
	}
	return parseTableKeys(table, out)
}

// parseTableKeys reads `show table` output:
//
//	# table: be, type: string, size:1048576, used:2
//	0x55d0c0a8: key=alice use=1 exp=59000 shard=0 conn_cur=1
func parseTableKeys(table, out string) ([]string, error) {
	var keys []string
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
			// The key runs up to the first " use=": keys with that text inside are not
			// supported (HAProxy prints keys raw).
			key, _, ok := strings.Cut(rest, " use=")
			if !ok {
				return nil, fmt.Errorf("show table %s: unexpected line %q", table, line)
			}
			keys = append(keys, key)
		default:
			return nil, fmt.Errorf("show table %s: %s", table, strings.TrimSpace(line))
		}
	}
	if !header {
		return nil, fmt.Errorf("show table %s: no table in the answer %q", table, strings.TrimSpace(out))
	}
	return keys, sc.Err()
}
