package keyfrom

import (
	"strings"
	"testing"
)

func TestRegexKey(t *testing.T) {
	const soapID = `regex:<(?:\w+:)?CustomerId>([^<]+)</`
	huge := strings.Repeat(orderLine(1), (1<<20)/len(orderLine(1)))
	tests := []keyTest{
		{name: "SOAP element", spec: soapID, body: soap11(`<ord:GetBalance><ord:CustomerId>C-17</ord:CustomerId></ord:GetBalance>`), want: "C-17"},
		{name: "SOAP order middle", spec: soapID, body: string(soapBody(16<<10, false)), want: benchKey},
		{name: "SOAP order end", spec: soapID, body: string(soapBody(16<<10, true)), want: benchKey},
		{name: "JSON member", spec: `regex:"id"\s*:\s*"([^"]+)"`, body: `{"customer": {"id" : "42"}}`, want: "42"},
		{name: "form field", spec: `regex:(?:^|&)user=([^&]+)`, body: `a=1&user=bob&b=2`, want: "bob"},
		{name: "leftmost match wins", spec: `regex:id=(\d+)`, body: `id=1 id=2`, want: "1"},
		{name: "first group of several", spec: `regex:(\w+)=(\d+)`, body: `ab=12`, want: "ab"},
		{name: "named group", spec: `regex:id=(?P<id>\d+)`, body: `id=7`, want: "7"},
		{name: "non-capturing groups skipped", spec: `regex:(?:a|b)=(?:x)?(\d+)`, body: `b=x9`, want: "9"},
		{name: "case-insensitive flag", spec: `regex:(?i)customer:\s*(\d+)`, body: `CUSTOMER: 5`, want: "5"},
		{name: "white space kept", spec: `regex:id=\[([^\]]+)\]`, body: `id=[ 4 2 ]`, want: " 4 2 "},
		{name: "UTF-8 key", spec: `regex:name=(\pL+)`, body: `name=Zoë`, want: "Zoë"},
		{name: "exact bytes even if not UTF-8", spec: `regex:(?s)K=(.{4})`, body: "K=\xff\xfe\x00\x01", want: "\xff\xfe\x00\x01"},
		{name: "entities not decoded", spec: soapID, body: `<CustomerId>A&amp;B</CustomerId>`, want: "A&amp;B"},

		{name: "no match", spec: `regex:id=(\d+)`, body: `name=x`, wantErr: ErrNotFound},
		{name: "group not in match", spec: `regex:id=(\d+)|name=\w+`, body: `name=bob`, wantErr: ErrNotFound},
		{name: "empty group", spec: `regex:id=(\d*);`, body: `id=;`, wantErr: ErrNotFound},
		{name: "empty body", spec: `regex:(.*)`, body: ``, wantErr: ErrNotFound},
		{name: "binary body", spec: `regex:id=(\d+)`, body: "\x00\xff\xfeid\x00=1", wantErr: ErrNotFound},
		// A regex cannot see truncation; an expression that matches what follows the key can.
		{name: "cut before closing tag", spec: soapID, body: `<CustomerId>12`, wantErr: ErrNotFound},
		{name: "cut, unanchored expression", spec: `regex:<CustomerId>(\d+)`, body: `<CustomerId>12`, want: "12"},

		{name: "1 MB key at start", spec: soapID, body: `<r><CustomerId>42</CustomerId>` + huge + `</r>`, want: "42"},
		{name: "1 MB key at end", spec: soapID, body: `<r>` + huge + `<CustomerId>42</CustomerId></r>`, want: "42"},
		{name: "1 MB no match", spec: soapID, body: `<r>` + huge + `</r>`, wantErr: ErrNotFound},
	}
	runKeyTests(t, tests)
}
