package keyfrom

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// keyTest is one row of the Key tables: either want is the key, or wantErr is the sentinel the
// error must wrap.
type keyTest struct {
	name    string
	spec    string
	body    string
	want    string
	wantErr error
}

func runKeyTests(t *testing.T, tests []keyTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.spec)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.spec, err)
			}
			got, err := e.Key([]byte(tt.body))
			checkKey(t, e, tt.body, got, err, tt.want, tt.wantErr)
		})
	}
}

func checkKey(t *testing.T, e Extractor, body, got string, err error, want string, wantErr error) {
	t.Helper()
	shown := body
	if len(shown) > 200 {
		shown = fmt.Sprintf("%.100s…(%d bytes)", shown, len(body))
	}
	if wantErr == nil {
		if err != nil || got != want {
			t.Errorf("%v.Key(%q) = %q, %v; want %q, nil", e, shown, got, err, want)
		}
		return
	}
	if got != "" || !errors.Is(err, wantErr) {
		t.Errorf("%v.Key(%q) = %q, %v; want \"\", error wrapping %q", e, shown, got, err, wantErr)
	}
	if errors.Is(err, ErrNotFound) && errors.Is(err, ErrMalformed) {
		t.Errorf("%v.Key(%q) error %v wraps both ErrNotFound and ErrMalformed", e, shown, err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		spec string
		want string // the concrete type
	}{
		{"xml:CustomerId", "*keyfrom.xmlElement"},
		{"xml:Customer_Id-2.x", "*keyfrom.xmlElement"},
		{"xml:_id", "*keyfrom.xmlElement"},
		{"xml:顧客番号", "*keyfrom.xmlElement"},
		{"json:id", "*keyfrom.jsonPath"},
		{"json:customer.id", "*keyfrom.jsonPath"},
		{"json:items.0.id", "*keyfrom.jsonPath"},
		{"json:customer id.x-y", "*keyfrom.jsonPath"},
		{"json:" + strings.Repeat("a.", maxDepth-1) + "a", "*keyfrom.jsonPath"},
		{`regex:id=(\d+)`, "*keyfrom.regexGroup"},
		{`regex:(?i)customer:\s*(\d+)`, "*keyfrom.regexGroup"},
		{`regex:(?P<id>[^<]+)`, "*keyfrom.regexGroup"},
		{`regex:x|(y)`, "*keyfrom.regexGroup"},
	}
	for _, tt := range tests {
		e, err := Parse(tt.spec)
		if err != nil {
			t.Errorf("Parse(%q) error: %v; want a %s", tt.spec, err, tt.want)
			continue
		}
		if got := fmt.Sprintf("%T", e); got != tt.want {
			t.Errorf("Parse(%q) = %s; want %s", tt.spec, got, tt.want)
		}
		if got := fmt.Sprint(e); got != tt.spec {
			t.Errorf("Parse(%q).String() = %q; want the spec", tt.spec, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		spec string
		want string
	}{
		{"", `keyfrom: spec "" has no kind (want xml:<element>, json:<path> or regex:<expr>)`},
		{"CustomerId", `keyfrom: spec "CustomerId" has no kind (want xml:<element>, json:<path> or regex:<expr>)`},
		{"yaml:x", `keyfrom: unknown kind "yaml" in "yaml:x" (want xml:<element>, json:<path> or regex:<expr>)`},
		{"XML:Id", `keyfrom: unknown kind "XML" in "XML:Id" (want xml:<element>, json:<path> or regex:<expr>)`},
		{" xml:Id", `keyfrom: unknown kind " xml" in " xml:Id" (want xml:<element>, json:<path> or regex:<expr>)`},
		{"xml:", `keyfrom: empty element name in "xml:" (want e.g. xml:CustomerId)`},
		{"xml:ns:Id", `keyfrom: element name "ns:Id" in "xml:ns:Id" has a prefix; give the local name alone, namespaces are ignored`},
		{"xml:/Envelope/Body/Id", `keyfrom: "/Envelope/Body/Id" in "xml:/Envelope/Body/Id" is not an XML element name (want the local name alone, e.g. xml:CustomerId)`},
		{"xml:<Id>", `keyfrom: "<Id>" in "xml:<Id>" is not an XML element name (want the local name alone, e.g. xml:CustomerId)`},
		{"xml:1Id", `keyfrom: "1Id" in "xml:1Id" is not an XML element name (want the local name alone, e.g. xml:CustomerId)`},
		{"xml:Customer Id", `keyfrom: "Customer Id" in "xml:Customer Id" is not an XML element name (want the local name alone, e.g. xml:CustomerId)`},
		{"json:", `keyfrom: empty path in "json:" (want e.g. json:customer.id)`},
		{"json:a..b", `keyfrom: path "a..b" in "json:a..b" has an empty segment (keys containing dots cannot be addressed)`},
		{"json:.a", `keyfrom: path ".a" in "json:.a" has an empty segment (keys containing dots cannot be addressed)`},
		{"json:a.", `keyfrom: path "a." in "json:a." has an empty segment (keys containing dots cannot be addressed)`},
		{"json:" + strings.Repeat("a.", maxDepth) + "a", `keyfrom: path "` + strings.Repeat("a.", maxDepth) + `a" in "json:` + strings.Repeat("a.", maxDepth) + `a" has 65 segments, more than the nesting limit 64`},
		{"regex:(", "keyfrom: regex in \"regex:(\": error parsing regexp: missing closing ): `(`"},
		{"regex:", `keyfrom: regex "" in "regex:" has no capture group; the key is the first group, e.g. id=([0-9]+)`},
		{`regex:id=\d+`, `keyfrom: regex "id=\\d+" in "regex:id=\\d+" has no capture group; the key is the first group, e.g. id=([0-9]+)`},
		{`regex:(?:id)=x`, `keyfrom: regex "(?:id)=x" in "regex:(?:id)=x" has no capture group; the key is the first group, e.g. id=([0-9]+)`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.spec)
		if err == nil {
			t.Errorf("Parse(%q) = %v, nil; want error %q", tt.spec, e, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%q) error\n got %s\nwant %s", tt.spec, got, tt.want)
		}
	}
}

// TestKeyErrorText pins the messages operators see in logs: what was looked for and why it was
// not usable, and never the body's content.
func TestKeyErrorText(t *testing.T) {
	tests := []struct {
		spec string
		body string
		want string
	}{
		{"xml:Id", `<r/>`, `keyfrom: xml:Id: no such element: key not found`},
		{"xml:Id", `<r><Id/></r>`, `keyfrom: xml:Id: element is empty: key not found`},
		{"xml:Id", `<r><Id><v>1</v></Id></r>`, `keyfrom: xml:Id: element has child elements: key not found`},
		{"xml:Id", `<r><Id>12`, `keyfrom: xml:Id: body ends before the document is complete (truncated?): key not found`},
		{"xml:Id", `<r></x><Id>1</Id>`, `keyfrom: xml:Id: malformed body near byte 7: XML syntax error on line 1: element <r> closed by </x>`},
		{"xml:Id", strings.Repeat("<a>", 65) + "<Id>1</Id>", `keyfrom: xml:Id: malformed body near byte 195: nesting deeper than 64`},
		{"json:customer.id", `{"customer":{"name":"x"}}`, `keyfrom: json:customer.id: "customer" has no key "id": key not found`},
		{"json:customer.id", `{"customer":"x"}`, `keyfrom: json:customer.id: "customer" is a string, not an object or array: key not found`},
		{"json:customer.id", `[1]`, `keyfrom: json:customer.id: top-level value is an array, and "customer" is not an index: key not found`},
		{"json:items.2", `{"items":[1,2]}`, `keyfrom: json:items.2: "items" has 2 elements, no index 2: key not found`},
		{"json:customer.id", `{"customer":{"id":true}}`, `keyfrom: json:customer.id: "customer.id" is a boolean, not a string or number: key not found`},
		{"json:customer.id", `{"customer":{"id":""}}`, `keyfrom: json:customer.id: "customer.id" is an empty string: key not found`},
		{"json:customer.id", `{"customer":{"id":42`, `keyfrom: json:customer.id: "customer.id" is a number that ends the body (truncated?): key not found`},
		{"json:customer.id", `{"customer":{"id":"4`, `keyfrom: json:customer.id: body ends before the key (truncated?): key not found`},
		{"json:customer.id", `{"customer":{"id":42x}}`, `keyfrom: json:customer.id: malformed body near byte 20: invalid character 'x' after the number at "customer.id"`},
		{"json:customer.id", `{"a" 1}`, `keyfrom: json:customer.id: malformed body near byte 5: expected colon after object key`},
		{`regex:id=(\d+)`, `name=x`, `keyfrom: regex:id=(\d+): no match: key not found`},
		{`regex:id=(\d*);`, `id=;`, `keyfrom: regex:id=(\d*);: group 1 is empty: key not found`},
		{`regex:id=(\d+)|name`, `name`, `keyfrom: regex:id=(\d+)|name: group 1 is not part of the match: key not found`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.spec)
		if err != nil {
			t.Fatalf("Parse(%q) error: %v", tt.spec, err)
		}
		got, err := e.Key([]byte(tt.body))
		if err == nil {
			t.Errorf("%v.Key(%q) = %q, nil; want error %q", e, tt.body, got, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%v.Key(%q) error\n got %s\nwant %s", e, tt.body, err, tt.want)
		}
	}
}

// TestConcurrentKey runs one extractor of each kind from many goroutines, for the race detector:
// the agent shares one extractor between all its connections.
func TestConcurrentKey(t *testing.T) {
	tests := []struct {
		spec string
		body []byte
	}{
		{"xml:CustomerId", soapBody(2<<10, false)},
		{"json:customer.id", jsonBody(2<<10, false)},
		{`regex:<(?:\w+:)?CustomerId>([^<]+)</`, soapBody(2<<10, false)},
	}
	for _, tt := range tests {
		e, err := Parse(tt.spec)
		if err != nil {
			t.Fatalf("Parse(%q) error: %v", tt.spec, err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					got, err := e.Key(tt.body)
					if err != nil || got != benchKey {
						errs <- fmt.Errorf("%v.Key = %q, %v; want %q, nil", e, got, err, benchKey)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}
