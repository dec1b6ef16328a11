package haproxy

import (
	"reflect"
	"testing"
)

func TestParseTableKeys(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []string
		wantErr string
	}{
		{"two keys", "# table: be, type: string, size:1048576, used:2\n0x55d0c0a8: key=alice use=1 exp=59000 shard=0 conn_cur=1\n0x55d0c0b0: key=127.0.0.11 use=2 exp=0 conn_cur=2\n\n", []string{"alice", "127.0.0.11"}, ""},
		{"empty table", "# table: be, type: string, size:1048576, used:0\n\n", nil, ""},
		{"unknown table", "No such table: nope\n", nil, "show table be: No such table: nope"},
		{"garbled", "# table: be\n0x1: nokey\n", nil, `show table be: unexpected line "0x1: nokey"`},
	}
	for _, tt := range tests {
		got, err := parseTableKeys("be", tt.out)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("%s: error %v; want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: parseTableKeys = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
