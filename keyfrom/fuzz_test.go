package keyfrom

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// maxKeyTime bounds one Key call on a fuzzed body. Fuzz inputs are a few KB; the real bound is
// linear time, and this is generous enough for a loaded machine yet far below a hang.
const maxKeyTime = time.Second

// timedKey runs Key and fails the test when it takes longer than maxKeyTime.
func timedKey(t *testing.T, e Extractor, body []byte) (string, error) {
	t.Helper()
	start := time.Now()
	key, err := e.Key(body)
	if d := time.Since(start); d > maxKeyTime {
		t.Errorf("%v.Key on %d bytes took %v; want at most %v", e, len(body), d, maxKeyTime)
	}
	return key, err
}

// checkContract checks what every Key result must satisfy: a non-empty key and no error, or no
// key and an error wrapping exactly one of the sentinels.
func checkContract(t *testing.T, e Extractor, body []byte, key string, err error) {
	t.Helper()
	if err == nil {
		if key == "" {
			t.Errorf("%v.Key(%q) = \"\", nil; want a key or an error", e, body)
		}
		return
	}
	notFound, malformed := errors.Is(err, ErrNotFound), errors.Is(err, ErrMalformed)
	if key != "" || notFound == malformed {
		t.Errorf("%v.Key(%q) = %q, %v; want \"\" and an error wrapping exactly one of ErrNotFound, ErrMalformed", e, body, key, err)
	}
}

// checkPrefixes checks the truncation rule: a key found in a prefix of the body, which is what a
// truncated body is, is the key of the whole body. A partial key would break it.
func checkPrefixes(t *testing.T, e Extractor, body []byte, key string, err error) {
	t.Helper()
	for _, n := range cuts(body, key) {
		got, gotErr := e.Key(body[:n])
		if gotErr == nil && (err != nil || got != key) {
			t.Errorf("%v.Key(%q) = %q, nil; but for the whole body %q it is %q, %v", e, body[:n], got, body, key, err)
		}
	}
}

// cuts returns the prefix lengths checkPrefixes tries: all of them for short bodies; otherwise a
// spread, plus every length around where the key appears in the body, which is where a partial
// key would show.
func cuts(body []byte, key string) []int {
	if len(body) <= 32 {
		all := make([]int, len(body))
		for i := range all {
			all[i] = i
		}
		return all
	}
	var ns []int
	for i := range 24 {
		ns = append(ns, i*len(body)/24)
	}
	if i := bytes.Index(body, []byte(key)); key != "" && i >= 0 {
		for n := max(0, i-2); n < min(len(body), i+len(key)+16); n++ {
			ns = append(ns, n)
		}
	}
	return ns
}

func FuzzXML(f *testing.F) {
	for _, s := range []string{
		``,
		`<Id>42</Id>`,
		`<r xmlns:ns="urn:x"><ns:Id> 42 </ns:Id></r>`,
		`<Id xmlns="urn:x"><![CDATA[4<2]]>&amp;&#x41;</Id>`,
		`<r><Id><x>1</x></Id></r>`,
		`<r><!-- <Id>9</Id> --><?pi x?><Id>4<!--c-->2</Id></r>`,
		`<r><Id/><Id>2</Id></r>`,
		`<r><a></b><Id>42</Id></r>`,
		`<r><Id>42</Id></x>`,
		`<r><Id>12`,
		"<Id>4\r\n2</Id>",
		`<!DOCTYPE r [<!ENTITY id "42">]><r><Id>&id;</Id></r>`,
		`<?xml version="1.0" encoding="ISO-8859-1"?><Id>42</Id>`,
		soap11(`<ord:GetBalance><ord:Id>C-17</ord:Id></ord:GetBalance>`),
		soap12(`<GetBalance xmlns="urn:example:accounts"><Id>C-18</Id></GetBalance>`),
		nest(70, `<Id>1</Id>`),
	} {
		f.Add([]byte(s))
	}
	e, err := Parse("xml:Id")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		key, err := timedKey(t, e, body)
		checkContract(t, e, body, key, err)
		checkPrefixes(t, e, body, key, err)
		if err != nil {
			return
		}
		if !utf8.ValidString(key) || strings.Trim(key, xmlSpace) != key {
			t.Errorf("%v.Key(%q) = %q; want valid UTF-8 without surrounding XML white space", e, body, key)
		}
		// Without entities, CR (normalised to LF), CDATA, comments or processing instructions,
		// the text is one run of bytes from the body.
		if !bytes.ContainsAny(body, "&\r") && !bytes.Contains(body, []byte("<!")) && !bytes.Contains(body, []byte("<?")) &&
			!bytes.Contains(body, []byte(key)) {
			t.Errorf("%v.Key(%q) = %q; want a substring of the body", e, body, key)
		}
	})
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		``,
		`{"id":"42"}`,
		`{"id":4.20}`,
		`{"id":1e3 }`,
		`{"id":"a\u0041\ud83d\ude00"}`,
		`{"a":{"id":"x"},"a":{"id":"y"}}`,
		`{"a":[{"id":1},"b",[2]],"id":true}`,
		`{"a":{"b":[1,{"c":null}],"id":-0}}`,
		`[{"id":5},"x"]`,
		`{"a":tru,"id":"42"}`,
		`{"id":"42"}}}garbage`,
		`{"id":42`,
		`{"id":"4`,
		"{\"id\":\"4\xff2\"}",
		`{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `,"id":1}`,
		string(jsonBody(2<<10, false)),
	} {
		f.Add([]byte(s))
	}
	var es []*jsonPath
	for _, spec := range []string{"json:id", "json:a.id", "json:a.1", "json:customer.id"} {
		e, err := Parse(spec)
		if err != nil {
			f.Fatal(err)
		}
		es = append(es, e.(*jsonPath))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, e := range es {
			key, err := timedKey(t, e, body)
			checkContract(t, e, body, key, err)
			checkPrefixes(t, e, body, key, err)
			if err == nil && !utf8.ValidString(key) {
				t.Errorf("%v.Key(%q) = %q; want valid UTF-8", e, body, key)
			}
			// Without escapes, strings and numbers are copied from the body as they are.
			if err == nil && !bytes.ContainsRune(body, '\\') && !bytes.Contains(body, []byte(key)) {
				t.Errorf("%v.Key(%q) = %q; want a substring of the body", e, body, key)
			}
			// On a document where first-wins and encoding/json's last-wins agree, a full decode
			// must find the same key.
			if json.Valid(body) && utf8.Valid(body) && !hasDuplicateKeys(body) {
				// Past the nesting cap, Key may stop with ErrMalformed before the key.
				want, found := jsonOracle(body, e.path)
				if (err == nil || nesting(body) <= maxDepth) && (found != (err == nil) || key != want) {
					t.Errorf("%v.Key(%q) = %q, %v; want %q (found %v) as json.Unmarshal sees it", e, body, key, err, want, found)
				}
			}
		}
	})
}

// jsonOracle decodes the whole body with encoding/json and follows path the same way.
func jsonOracle(body []byte, path []segment) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false
	}
	for _, seg := range path {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[seg.key]
			if !ok {
				return "", false
			}
			v = next
		case []any:
			if seg.index < 0 || seg.index >= len(c) {
				return "", false
			}
			v = c[seg.index]
		default:
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case json.Number:
		return string(x), true
	}
	return "", false
}

// hasDuplicateKeys reports whether some object in the valid JSON body repeats a key.
func hasDuplicateKeys(body []byte) bool {
	type frame struct {
		keys    map[string]bool // nil for arrays
		wantKey bool
	}
	var stack []*frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, wantKey: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		if s, ok := tok.(string); ok && len(stack) > 0 && stack[len(stack)-1].wantKey {
			top := stack[len(stack)-1]
			if top.keys[s] {
				return true
			}
			top.keys[s] = true
			top.wantKey = false
			continue
		}
		valueDone()
	}
}

func FuzzRegex(f *testing.F) {
	for _, s := range []struct{ expr, body string }{
		{`<(?:\w+:)?CustomerId>([^<]+)</`, soap11(`<ord:CustomerId>C-17</ord:CustomerId>`)},
		{`id=(\d+)`, `a=1&id=42`},
		{`id=(\d*);`, `id=;`},
		{`(?:id=(\d+)|name)`, `name`},
		{`(?s)K=(.{4})`, "K=\xff\xfe\x00\x01"},
		{`(a*)*b`, strings.Repeat("a", 1000)},
		{`((a|b)+)+c`, strings.Repeat("ab", 500)},
		{`(`, `x`},
		{`x{1000}(y)`, `x`},
	} {
		f.Add(s.expr, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, expr string, body []byte) {
		e, err := Parse("regex:" + expr)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "keyfrom: regex ") {
				t.Errorf("Parse(%q) error %q; want a keyfrom: regex error", "regex:"+expr, err)
			}
			return
		}
		key, err := timedKey(t, e, body)
		checkContract(t, e, body, key, err)
		var want string
		if m := regexp.MustCompile(expr).FindSubmatch(body); m != nil {
			want = string(m[1])
		}
		if key != want {
			t.Errorf("%v.Key(%q) = %q, %v; want %q", e, body, key, err, want)
		}
	})
}
