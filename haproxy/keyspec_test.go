package haproxy

import "testing"

func TestKeySpec(t *testing.T) {
	tests := []struct {
		spec       string
		wantSample string
		wantBody   bool
		wantErr    string
	}{
		{"header:X-User", "req.hdr(X-User)", false, ""},
		{"cookie:sid", "req.cook(sid)", false, ""},
		{"param:user", "url_param(user)", false, ""},
		{"body", "", true, ""},
		{"src", "src", false, ""},
		{"req.body_param(user)", "req.body_param(user)", false, ""},
		{"req.body,json_query('$.customer.id')", "req.body,json_query('$.customer.id')", false, ""},
		{"req.hdr('x", "", false, `key "req.hdr('x": must be one word: no spaces, control characters, double or unpaired single quotes, '#' or '\'`},
		{"header:", "", false, `key "header:": header needs a plain name after the colon`},
		{"query:user", "", false, `key "query:user": unknown kind "query" (want header:NAME, cookie:NAME, param:NAME, body or a sample expression)`},
		{"header:a b", "", false, `key "header:a b": must be one word: no spaces, control characters, double or unpaired single quotes, '#' or '\'`},
	}
	for _, tt := range tests {
		sample, body, err := KeySpec(tt.spec)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("KeySpec(%q) error = %v; want %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil || sample != tt.wantSample || body != tt.wantBody {
			t.Errorf("KeySpec(%q) = %q, %v, %v; want %q, %v", tt.spec, sample, body, err, tt.wantSample, tt.wantBody)
		}
	}
}
