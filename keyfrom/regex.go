package keyfrom

import (
	"fmt"
	"regexp"
)

// regexGroup finds the first capture group of the leftmost match of an RE2 expression.
//
// The key is the exact bytes the group matched, not trimmed and not checked for UTF-8. A regex
// cannot tell a complete key from one cut by a truncated body, so expressions should match what
// follows the key too, e.g. <Id>([^<]+)</Id> rather than <Id>([^<]+). RE2 matching is linear in
// the body, whatever the expression.
type regexGroup struct {
	spec string
	re   *regexp.Regexp
}

func newRegex(spec, expr string) (*regexGroup, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("keyfrom: regex in %q: %w", spec, err)
	}
	if re.NumSubexp() == 0 {
		return nil, fmt.Errorf("keyfrom: regex %q in %q has no capture group; the key is the first group, e.g. id=([0-9]+)", expr, spec)
	}
	return &regexGroup{spec: spec, re: re}, nil
}

// String returns the spec the extractor was parsed from.
func (e *regexGroup) String() string { return e.spec }

// Key implements Extractor.
func (e *regexGroup) Key(body []byte) (string, error) {
	m := e.re.FindSubmatchIndex(body)
	switch {
	case m == nil:
		return "", notFound(e.spec, "no match")
	case m[2] < 0:
		return "", notFound(e.spec, "group 1 is not part of the match")
	case m[2] == m[3]:
		return "", notFound(e.spec, "group 1 is empty")
	}
	return string(body[m[2]:m[3]]), nil
}
