package keyfrom

import (
	"strings"
	"testing"
)

func TestJSONKey(t *testing.T) {
	const spec = "json:customer.id"
	// hugeArray is a 1 MB array of objects, for skipping.
	hugeArray := "[" + strings.Repeat(jsonItem(1)+",", (1<<20)/(len(jsonItem(1))+1)) + "0]"
	tests := []keyTest{
		{name: "string", body: `{"customer":{"id":"42"}}`, want: "42"},
		{name: "white space around tokens", body: " \n{ \"customer\" :\t{ \"id\" : \"42\" } }\n", want: "42"},
		{name: "siblings skipped", body: `{"a":[1,{"b":[{}]}],"customer":{"name":"x","tags":["id"],"x":{"id":0},"id":7}}`, want: "7"},

		// Numbers, exactly as written.
		{name: "integer", body: `{"customer":{"id":42}}`, want: "42"},
		{name: "trailing zero kept", body: `{"customer":{"id":4.20}}`, want: "4.20"},
		{name: "exponent", body: `{"customer":{"id":1e3}}`, want: "1e3"},
		{name: "signed exponent", body: `{"customer":{"id":-1.5E+03}}`, want: "-1.5E+03"},
		{name: "negative zero", body: `{"customer":{"id":-0}}`, want: "-0"},
		{name: "beyond float64", body: `{"customer":{"id":123456789012345678901234567890}}`, want: "123456789012345678901234567890"},
		{name: "number then space", body: `{"customer":{"id":42 }}`, want: "42"},
		{name: "number then comma", body: `{"customer":{"id":42,"x":1}}`, want: "42"},
		{name: "number then newline", body: "{\"customer\":{\"id\":42\n}}", want: "42"},
		{name: "leading zero", body: `{"customer":{"id":042}}`, wantErr: ErrMalformed},
		{name: "number then garbage", body: `{"customer":{"id":42x}}`, wantErr: ErrMalformed},

		// Strings: unescaped, untrimmed, UTF-8.
		{name: "unicode escape", body: `{"customer":{"id":"a\u0041"}}`, want: "aA"},
		{name: "escapes", body: `{"customer":{"id":"\"q\"\\\/\t"}}`, want: "\"q\"\\/\t"},
		{name: "surrogate pair", body: `{"customer":{"id":"\ud83d\ude00"}}`, want: "😀"},
		{name: "escaped key", body: `{"\u0063ustomer":{"i\u0064":"1"}}`, want: "1"},
		{name: "UTF-8 key", body: `{"customer":{"id":"Zoë-北京-🙂"}}`, want: "Zoë-北京-🙂"},
		{name: "white space kept", body: `{"customer":{"id":" 42 "}}`, want: " 42 "},
		{name: "long key returned whole", body: `{"customer":{"id":"` + strings.Repeat("k", 1000) + `"}}`, want: strings.Repeat("k", 1000)},
		{name: "invalid UTF-8", body: "{\"customer\":{\"id\":\"4\xff2\"}}", wantErr: ErrMalformed},
		{name: "invalid UTF-8 elsewhere", body: "{\"x\":\"\xff\",\"customer\":{\"id\":\"42\"}}", want: "42"},
		{name: "control character", body: "{\"customer\":{\"id\":\"4\n2\"}}", wantErr: ErrMalformed},

		// Values that are not keys.
		{name: "empty string", body: `{"customer":{"id":""}}`, wantErr: ErrNotFound},
		{name: "true", body: `{"customer":{"id":true}}`, wantErr: ErrNotFound},
		{name: "null", body: `{"customer":{"id":null}}`, wantErr: ErrNotFound},
		{name: "object", body: `{"customer":{"id":{"value":"42"}}}`, wantErr: ErrNotFound},
		{name: "array", body: `{"customer":{"id":["42"]}}`, wantErr: ErrNotFound},
		{name: "missing key", body: `{"customer":{"name":"x"}}`, wantErr: ErrNotFound},
		{name: "missing parent", body: `{"id":"42"}`, wantErr: ErrNotFound},
		{name: "parent is a string", body: `{"customer":"42"}`, wantErr: ErrNotFound},
		{name: "parent is an array", body: `{"customer":[{"id":"42"}]}`, wantErr: ErrNotFound},
		{name: "case sensitive", body: `{"Customer":{"id":"42"}}`, wantErr: ErrNotFound},
		{name: "top-level string", body: `"42"`, wantErr: ErrNotFound},
		{name: "top-level number", body: `42`, wantErr: ErrNotFound},
		{name: "top-level array", body: `[{"customer":{"id":"42"}}]`, wantErr: ErrNotFound},
		{name: "top-level null", body: `null`, wantErr: ErrNotFound},
		{name: "second top-level value not read", body: `{} {"customer":{"id":"42"}}`, wantErr: ErrNotFound},

		// Repeated keys: the first decides.
		{name: "repeated first wins", body: `{"customer":{"id":"1","id":"2"}}`, want: "1"},
		{name: "repeated parent first wins", body: `{"customer":{"id":1},"customer":{"id":2}}`, want: "1"},
		{name: "repeated parent first decides", body: `{"customer":{"x":1},"customer":{"id":2}}`, wantErr: ErrNotFound},

		// Malformed before, inside and after the key.
		{name: "bad literal before", body: `{"a":tru,"customer":{"id":"42"}}`, wantErr: ErrMalformed},
		{name: "missing colon before", body: `{"a" 1,"customer":{"id":"42"}}`, wantErr: ErrMalformed},
		{name: "single quotes before", body: `{'a':1,"customer":{"id":"42"}}`, wantErr: ErrMalformed},
		{name: "double comma before", body: `{"a":1,,"customer":{"id":"42"}}`, wantErr: ErrMalformed},
		{name: "unclosed array before", body: `{"a":[1,"customer":{"id":"42"}}`, wantErr: ErrMalformed},
		{name: "bad escape inside", body: `{"customer":{"id":"4\x2"}}`, wantErr: ErrMalformed},
		{name: "garbage after", body: `{"customer":{"id":"42"}}}}` + "\x00garbage", want: "42"},
		{name: "unclosed after", body: `{"customer":{"id":"42", oops`, want: "42"},
		{name: "bad delimiter after number", body: `{"customer":{"id":42,]`, want: "42"},

		// Empty and garbage bodies.
		{name: "empty", body: ``, wantErr: ErrNotFound},
		{name: "white space", body: " \r\n\t", wantErr: ErrNotFound},
		{name: "XML body", body: `<customer><id>42</id></customer>`, wantErr: ErrMalformed},
		{name: "binary", body: "\x00\x01\x02\xff\xfe{\x80", wantErr: ErrMalformed},

		// Truncated: a key cut short is never returned.
		{name: "cut in string", body: `{"customer":{"id":"4`, wantErr: ErrNotFound},
		{name: "cut in escape", body: `{"customer":{"id":"4\u00`, wantErr: ErrNotFound},
		{name: "cut after number", body: `{"customer":{"id":42`, wantErr: ErrNotFound},
		{name: "cut in number", body: `{"customer":{"id":4`, wantErr: ErrNotFound},
		{name: "cut in fraction", body: `{"customer":{"id":4.`, wantErr: ErrNotFound},
		{name: "cut before value", body: `{"customer":{"id":`, wantErr: ErrNotFound},
		{name: "cut in key", body: `{"customer":{"i`, wantErr: ErrNotFound},
		{name: "cut in skipped value", body: `{"a":[1,{"b":"x`, wantErr: ErrNotFound},
		{name: "cut in literal", body: `{"a":tr`, wantErr: ErrNotFound},
		{name: "cut after string", body: `{"customer":{"id":"42"`, want: "42"},
		{name: "cut after number and space", body: `{"customer":{"id":42 `, want: "42"},
		{name: "cut JSON order", body: string(jsonBody(16<<10, true)[:16<<9]), wantErr: ErrNotFound},

		// Size and depth.
		{name: "JSON order middle", body: string(jsonBody(16<<10, false)), want: benchKey},
		{name: "JSON order end", body: string(jsonBody(16<<10, true)), want: benchKey},
		{name: "1 MB key at start", body: `{"customer":{"id":"42"},"items":` + hugeArray + `}`, want: "42"},
		{name: "1 MB key at end", body: `{"items":` + hugeArray + `,"customer":{"id":"42"}}`, want: "42"},
		{name: "1 MB garbage after key", body: `{"customer":{"id":"42"}` + strings.Repeat("]", 1<<20), want: "42"},
		{name: "sibling nested to depth 64", body: `{"x":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `,"customer":{"id":"42"}}`, want: "42"},
		{name: "sibling nested to depth 65", body: `{"x":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `,"customer":{"id":"42"}}`, wantErr: ErrMalformed},
		{name: "deep sibling in customer", body: `{"customer":{"x":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `,"id":"42"}}`, wantErr: ErrMalformed},
		{name: "brackets in skipped strings", body: `{"x":"` + strings.Repeat("[{", 100) + `","customer":{"id":"42"}}`, want: "42"},
		{name: "deep subtree after key", body: `{"customer":{"id":"42"},"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, want: "42"},
		{name: "unclosed depth bomb", body: `{"x":` + strings.Repeat("[", 1<<20), wantErr: ErrMalformed},
	}
	for i := range tests {
		tests[i].spec = spec
	}
	runKeyTests(t, tests)
}

func TestJSONPaths(t *testing.T) {
	tests := []keyTest{
		{name: "top-level key", spec: "json:id", body: `{"id":"42"}`, want: "42"},
		{name: "deep path", spec: "json:a.b.c.d", body: `{"a":{"b":{"c":{"d":5}}}}`, want: "5"},
		{name: "array index 0", spec: "json:items.0.id", body: `{"items":[{"id":"a"},{"id":"b"}]}`, want: "a"},
		{name: "array index 1", spec: "json:items.1.id", body: `{"items":[{"id":"a"},{"id":"b"}]}`, want: "b"},
		{name: "array index past end", spec: "json:items.2.id", body: `{"items":[{"id":"a"},{"id":"b"}]}`, wantErr: ErrNotFound},
		{name: "empty array", spec: "json:items.0", body: `{"items":[]}`, wantErr: ErrNotFound},
		{name: "array of scalars", spec: "json:ids.2", body: `{"ids":["x",[1,[2]],"z",4]}`, want: "z"},
		{name: "leading zero is not an index", spec: "json:items.01", body: `{"items":["a","b"]}`, wantErr: ErrNotFound},
		{name: "name is not an index", spec: "json:items.id", body: `{"items":[{"id":"a"}]}`, wantErr: ErrNotFound},
		{name: "huge index", spec: "json:items.99999999999999999999", body: `{"items":["a"]}`, wantErr: ErrNotFound},
		{name: "digits match object key", spec: "json:map.0", body: `{"map":{"0":"zero"}}`, want: "zero"},
		{name: "leading zero matches object key", spec: "json:map.01", body: `{"map":{"1":"one","01":"zero-one"}}`, want: "zero-one"},
		{name: "top-level array", spec: "json:0.id", body: `[{"id":5}]`, want: "5"},
		{name: "key with space", spec: "json:customer id", body: `{"customer id":"7"}`, want: "7"},
		{name: "malformed element before index", spec: "json:ids.1", body: `{"ids":[tru,"x"]}`, wantErr: ErrMalformed},
		{name: "missing comma in array", spec: "json:ids.1", body: `{"ids":["a" "b"]}`, wantErr: ErrMalformed},
		{name: "cut in array", spec: "json:ids.1", body: `{"ids":["a"`, wantErr: ErrNotFound},
		{name: "path of 64 segments", spec: "json:" + strings.Repeat("a.", 63) + "a", body: strings.Repeat(`{"a":`, 64) + `"42"` + strings.Repeat("}", 64), want: "42"},
	}
	runKeyTests(t, tests)
}

func TestNesting(t *testing.T) {
	tests := []struct {
		raw  string
		want int
	}{
		{`1`, 0},
		{`"[{"`, 0},
		{`"\"[{"`, 0},
		{`"\\"`, 0},
		{`[]`, 1},
		{`{"a":[1,{"b":[]}],"c":{}}`, 4},
		{`["\\",["]"]]`, 2},
		{`["\\\"]",[[]]]`, 3},
		{`{"\\\\":"{"}`, 1},
	}
	for _, tt := range tests {
		if got := nesting([]byte(tt.raw)); got != tt.want {
			t.Errorf("nesting(%s) = %d; want %d", tt.raw, got, tt.want)
		}
	}
}
