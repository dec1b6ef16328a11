package agent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stickyseat/stickyseat/agent/spop"
	"github.com/stickyseat/stickyseat/agent/spop/spoptest"
	"github.com/stickyseat/stickyseat/keyfrom"
)

func mustParse(t *testing.T, spec string) keyfrom.Extractor {
	t.Helper()
	e, err := keyfrom.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestKeyRules(t *testing.T) {
	soap := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:Order xmlns:m="urn:x"><m:CustomerId>42</m:CustomerId></m:Order></soap:Body></soap:Envelope>`
	rules := map[string]KeyRule{
		"":     {},
		"soap": {FromBody: mustParse(t, "xml:CustomerId")},
		"json": {FromBody: mustParse(t, "json:customer.id"), Fallback: FallbackSrc},
		"src":  {Fallback: FallbackSrc},
	}
	_, addr, _ := startAgent(t, &fakeDecider{}, Options{KeyRules: rules})
	c := dial(t, addr)
	src := arg("src", spop.Addr(netip.MustParseAddr("127.0.0.21")))
	tests := []struct {
		name       string
		args       []spop.KV
		wantStatus string
		wantServer string
	}{
		{"key argument wins over the body", []spop.KV{arg("key", spop.Str("k1")), arg("pool", spop.Str("soap")), arg("body", spop.Bin([]byte(soap)))}, "new", "srv-k1-soap"},
		{"xml body", []spop.KV{arg("key", spop.Str("")), arg("pool", spop.Str("soap")), arg("body", spop.Bin([]byte(soap)))}, "new", "srv-42-soap"},
		{"xml body without key argument", []spop.KV{arg("pool", spop.Str("soap")), arg("body", spop.Bin([]byte(soap)))}, "new", "srv-42-soap"},
		{"truncated xml body", []spop.KV{arg("pool", spop.Str("soap")), arg("body", spop.Bin([]byte(soap[:strings.Index(soap, "</m:CustomerId>")])))}, "invalid", ""},
		{"broken xml body", []spop.KV{arg("pool", spop.Str("soap")), arg("body", spop.Bin([]byte("<a><b></a>CustomerId")))}, "invalid", ""},
		{"no body argument", []spop.KV{arg("pool", spop.Str("soap"))}, "invalid", ""},
		{"json body", []spop.KV{arg("pool", spop.Str("json")), arg("body", spop.Bin([]byte(`{"customer":{"id":7}}`))), src}, "new", "srv-7-json"},
		{"json body without the path falls back to src", []spop.KV{arg("pool", spop.Str("json")), arg("body", spop.Bin([]byte(`{"customer":{}}`))), src}, "new", "srv-127.0.0.21-json"},
		{"fallback without src argument", []spop.KV{arg("pool", spop.Str("json")), arg("body", spop.Bin([]byte(`{}`)))}, "invalid", ""},
		{"src fallback", []spop.KV{arg("pool", spop.Str("src")), src}, "new", "srv-127.0.0.21-src"},
		{"default rule: no key is invalid", []spop.KV{arg("pool", spop.Str("other")), src}, "invalid", ""},
		{"body of a bad type", []spop.KV{arg("pool", spop.Str("soap")), arg("body", spop.Bool(true))}, "invalid", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acts, err := c.Notify(uint64(i+1), 1, msg(tt.args...))
			if err != nil {
				t.Fatal(err)
			}
			vars := spoptest.Vars(acts)
			if vars[VarStatus] != tt.wantStatus || vars[VarServer] != tt.wantServer {
				t.Errorf("vars = %v; want status %q server %q", vars, tt.wantStatus, tt.wantServer)
			}
		})
	}
}

func TestKeyRuleValidate(t *testing.T) {
	if err := (KeyRule{Fallback: "header"}).Validate(); err == nil || err.Error() != `unknown key fallback "header" (want src or nothing)` {
		t.Errorf("Validate(fallback header) = %v", err)
	}
	if err := (KeyRule{Fallback: FallbackSrc}).Validate(); err != nil {
		t.Errorf("Validate(fallback src) = %v; want nil", err)
	}
}
