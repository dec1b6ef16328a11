package keyfrom

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// jsonPath finds the string or number at a dotted path (see the package documentation). The
// first of repeated keys wins because that is what lets the walk stop as soon as the key is read.
// A number counts only when a delimiter follows it: one that ends the body may have been cut by
// truncation, 42 being the start of 4217.
type jsonPath struct {
	spec string
	path []segment
}

// segment is one step of a path.
type segment struct {
	key string
	// index is the array index key spells, or -1 when key is not one.
	index int
}

func newJSON(spec, path string) (*jsonPath, error) {
	if path == "" {
		return nil, fmt.Errorf("keyfrom: empty path in %q (want e.g. json:customer.id)", spec)
	}
	keys := strings.Split(path, ".")
	if len(keys) > maxDepth {
		return nil, fmt.Errorf("keyfrom: path %q in %q has %d segments, more than the nesting limit %d", path, spec, len(keys), maxDepth)
	}
	e := &jsonPath{spec: spec, path: make([]segment, len(keys))}
	for i, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("keyfrom: path %q in %q has an empty segment (keys containing dots cannot be addressed)", path, spec)
		}
		e.path[i] = segment{key: k, index: arrayIndex(k)}
	}
	return e, nil
}

// arrayIndex returns the index s spells, or -1. Leading zeros, signs and values beyond an int are
// not indexes, so "01" only ever matches an object key.
func arrayIndex(s string) int {
	if s != "0" && s[0] == '0' || s[0] < '0' || s[0] > '9' {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// String returns the spec the extractor was parsed from.
func (e *jsonPath) String() string { return e.spec }

// Key implements Extractor.
func (e *jsonPath) Key(body []byte) (string, error) {
	// The decoder reads body in small chunks as the walk asks for tokens, so the work done is
	// proportional to the bytes before the key, not to the body.
	w := &jsonWalk{spec: e.spec, path: e.path, body: body, dec: json.NewDecoder(bytes.NewReader(body))}
	w.dec.UseNumber()
	for i := range e.path {
		if err := w.enter(i); err != nil {
			return "", err
		}
	}
	return w.value()
}

// jsonWalk is the state of one Key call.
type jsonWalk struct {
	spec string
	path []segment
	body []byte
	dec  *json.Decoder
	// depth counts the containers the walk is inside.
	depth int
	// skip lives here so that skipping a value does not allocate.
	skip jsonSkip
}

// where names the value the first n segments lead to, for error messages.
func (w *jsonWalk) where(n int) string {
	if n == 0 {
		return "top-level value"
	}
	keys := make([]string, n)
	for i, seg := range w.path[:n] {
		keys[i] = seg.key
	}
	return strconv.Quote(strings.Join(keys, "."))
}

// enter reads the container that the first i segments lead to and stops before the value
// segment i selects in it.
func (w *jsonWalk) enter(i int) error {
	seg := w.path[i]
	tok, err := w.token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		if err := w.push(); err != nil {
			return err
		}
		for {
			tok, err := w.token()
			if err != nil {
				return err
			}
			if tok == json.Delim('}') {
				return notFound(w.spec, fmt.Sprintf("%s has no key %q", w.where(i), seg.key))
			}
			// Token returns only strings and '}' where a key is expected.
			if tok.(string) == seg.key {
				return nil
			}
			if err := w.skipValue(); err != nil {
				return err
			}
		}
	case json.Delim('['):
		if seg.index < 0 {
			return notFound(w.spec, fmt.Sprintf("%s is an array, and %q is not an index", w.where(i), seg.key))
		}
		if err := w.push(); err != nil {
			return err
		}
		for n := 0; ; n++ {
			if !w.dec.More() {
				// ']' or an error: let token say which.
				if _, err := w.token(); err != nil {
					return err
				}
				return notFound(w.spec, fmt.Sprintf("%s has %d elements, no index %d", w.where(i), n, seg.index))
			}
			if n == seg.index {
				return nil
			}
			if err := w.skipValue(); err != nil {
				return err
			}
		}
	}
	return notFound(w.spec, fmt.Sprintf("%s is %s, not an object or array", w.where(i), describe(tok)))
}

// value reads the value the whole path leads to and returns it as a key.
func (w *jsonWalk) value() (string, error) {
	start := w.dec.InputOffset()
	tok, err := w.token()
	if err != nil {
		return "", err
	}
	end := w.dec.InputOffset()
	switch v := tok.(type) {
	case string:
		if v == "" {
			return "", notFound(w.spec, w.where(len(w.path))+" is an empty string")
		}
		// encoding/json turns invalid UTF-8 into U+FFFD, which would give different users the
		// same key; the raw bytes between start and end are the string plus ASCII separators.
		if !utf8.Valid(w.body[start:end]) {
			return "", malformed(w.spec, end, fmt.Errorf("invalid UTF-8 in the string at %s", w.where(len(w.path))))
		}
		return v, nil
	case json.Number:
		if end >= int64(len(w.body)) {
			return "", notFound(w.spec, w.where(len(w.path))+" is a number that ends the body (truncated?)")
		}
		switch c := w.body[end]; c {
		case ' ', '\t', '\r', '\n', ',', '}', ']':
			return string(v), nil
		default:
			return "", malformed(w.spec, end, fmt.Errorf("invalid character %q after the number at %s", c, w.where(len(w.path))))
		}
	}
	return "", notFound(w.spec, fmt.Sprintf("%s is %s, not a string or number", w.where(len(w.path)), describe(tok)))
}

// describe names the kind of a token for error messages.
func describe(tok json.Token) string {
	switch tok {
	case json.Delim('{'):
		return "an object"
	case json.Delim('['):
		return "an array"
	case nil:
		return "null"
	}
	switch tok.(type) {
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%v", tok)
}

func (w *jsonWalk) push() error {
	w.depth++
	if w.depth > maxDepth {
		return malformed(w.spec, w.dec.InputOffset(), errTooDeep)
	}
	return nil
}

func (w *jsonWalk) token() (json.Token, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return nil, w.decodeError(err)
	}
	return tok, nil
}

// skipValue steps over one value without building it, checking its nesting against the cap.
// Decoding into jsonSkip lets the decoder's scanner check the value's syntax in one call; walking
// it with Token instead measured five times slower, with an allocation per token.
func (w *jsonWalk) skipValue() error {
	w.skip.room = maxDepth - w.depth
	if err := w.dec.Decode(&w.skip); err != nil {
		return w.decodeError(err)
	}
	return nil
}

// decodeError sorts a decoder error into not found (the body ended, cleanly or cut short) and
// malformed (anything else).
func (w *jsonWalk) decodeError(err error) error {
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return notFound(w.spec, "body ends before the key (truncated?)")
	case errors.Is(err, errTooDeep):
		return malformed(w.spec, w.dec.InputOffset(), errTooDeep)
	}
	return malformed(w.spec, w.dec.InputOffset(), err)
}

// jsonSkip receives a value's raw bytes, already checked by the decoder's scanner, and only
// measures its nesting: nothing is allocated for skipped values.
type jsonSkip struct {
	// room is how many more levels of nesting are allowed.
	room int
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *jsonSkip) UnmarshalJSON(raw []byte) error {
	if nesting(raw) > s.room {
		return errTooDeep
	}
	return nil
}

// nesting returns how deeply containers nest in the valid JSON value raw.
func nesting(raw []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			// Jump to the closing quote: the next one not escaped by an odd run of backslashes.
			for {
				j := bytes.IndexByte(raw[i+1:], '"')
				if j < 0 {
					return deepest
				}
				i += 1 + j
				if !escaped(raw, i) {
					break
				}
			}
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// escaped reports whether the byte at i follows an odd number of backslashes.
func escaped(raw []byte, i int) bool {
	n := 0
	for i > 0 && raw[i-1] == '\\' {
		n++
		i--
	}
	return n%2 == 1
}
