package haproxy

import (
	"reflect"
	"testing"
)

func TestParseTable(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []tableRow
		wantErr string
	}{
		{"connections", "# table: be, type: string, size:1048576, used:2\n0x55d0c0a8: key=alice use=1 exp=59000 shard=0 conn_cur=1\n0x55d0c0b0: key=127.0.0.11 use=2 exp=0 conn_cur=2\n\n",
			[]tableRow{{key: "alice", connCur: 1}, {key: "127.0.0.11", connCur: 2}}, ""},
		{"fast path and connections", "# table: be, type: string, size:1048576, used:2\n0x1: key=alice use=0 exp=4000 server_id=2 conn_cur=0 server_key=s2\n0x2: key=bob use=1 exp=0 server_id=0 conn_cur=1 server_key=-\n",
			[]tableRow{{key: "alice", serverID: 2}, {key: "bob", connCur: 1}}, ""},
		{"escaped key", `# table: be, type: string, size:1048576, used:1` + "\n" + `0x1: key=a\ b\=c\\d\te\x01f\xc3\xa9 use=0 exp=4000 server_id=1` + "\n",
			[]tableRow{{key: "a b=c\\d\te\x01f\u00e9", serverID: 1}}, ""},
		{"empty table", "# table: be, type: string, size:1048576, used:0\n\n", nil, ""},
		{"unknown table", "No such table: nope\n", nil, "show table be: No such table: nope"},
		{"garbled", "# table: be\n0x1: nokey\n", nil, `show table be: unexpected line "0x1: nokey"`},
		{"bad escape", "# table: be\n0x1: key=a\\xZZ use=0\n", nil, `show table be: line "0x1: key=a\\xZZ use=0": key has a bad \x escape: strconv.ParseUint: parsing "ZZ": invalid syntax`},
		{"bad server id", "# table: be\n0x1: key=a use=0 server_id=x\n", nil, `show table be: line "0x1: key=a use=0 server_id=x": server_id: strconv.Atoi: parsing "x": invalid syntax`},
	}
	for _, tt := range tests {
		got, err := parseTable("be", tt.out)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%s: error %v; want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parseTable = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestCLIWord(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"a b;c\\d\te<<", `a\ b\;c\\d\` + "\t" + `e\<\<`},
		{"é=x", "é=x"},
	}
	for _, tt := range tests {
		if got, err := cliWord(tt.in); err != nil || got != tt.want {
			t.Errorf("cliWord(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "a\nb", "a\rb", "a\x00b"} {
		if got, err := cliWord(bad); err == nil {
			t.Errorf("cliWord(%q) = %q; want an error", bad, got)
		}
	}
}

func TestParseServersState(t *testing.T) {
	out := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n" +
		"3 be 1 s1 127.0.0.1 2 0 0\n3 be 2 s2 127.0.0.1 0 0 0\n3 be 3 s3 127.0.0.1 2 1 0\n3 be 4 s4 127.0.0.1 2 8 0\n"
	got, err := parseServersState("be", out)
	want := map[int]serverState{1: {"s1", true}, 2: {"s2", false}, 3: {"s3", false}, 4: {"s4", true}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseServersState = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"", "Can't find backend.\n", "1\n# be_id be_name\n"} {
		if got, err := parseServersState("be", bad); err == nil {
			t.Errorf("parseServersState(%q) = %+v; want an error", bad, got)
		}
	}
}
