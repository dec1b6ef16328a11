package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestHAProxyConfigFastPath(t *testing.T) {
	base := []string{"stickyseat", "haproxy-config", "--servers", "s1,s2", "--server-addr", "s1=127.0.0.1:9001,s2=127.0.0.1:9002"}
	var out bytes.Buffer
	args := append(append([]string{}, base...), "--mode", "http", "--fast-path", "--fast-path-window", "3s", "--track-connections")
	if err := run(context.Background(), args, &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("haproxy-config --fast-path: %v", err)
	}
	for _, want := range []string{
		"    stick-table type string len 256 size 1m expire 3s store conn_cur\n",
		"    http-request set-var(txn.stickyseat_known) req.hdr(x-user),table_server_id(stickyseat_default) if ",
		"    stick store-request req.hdr(x-user) if { var(txn.stickyseat.server) -m found }",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("haproxy-config --fast-path lacks %q:\n%s", want, out.String())
		}
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--mode", "http", "--key", "body", "--fast-path"}, "--fast-path: the key is taken from the body by the agent"},
		{[]string{"--fast-path", "--fast-path-window", "soon"}, `--fast-path-window: "soon" is not a duration`},
	} {
		err := run(context.Background(), append(append([]string{}, base...), tt.args...), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("haproxy-config %q: error %v; want %q", tt.args, err, tt.want)
		}
	}
}
