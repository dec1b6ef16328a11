package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stickyseat/stickyseat/assign"
)

// fileError is one problem in a config file, printed "name:line: field: message". Field is
// the path to the value, like pools[0].servers[1].quota; empty at the top level.
type fileError struct {
	Name  string
	Line  int
	Field string
	Err   error
}

func (e *fileError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s: %v", e.Name, e.Line, e.Field, e.Err)
}

func (e *fileError) Unwrap() error { return e.Err }

// configDecoder walks the YAML node tree by hand so every error can carry its line.
type configDecoder struct {
	file string // the file's name, for errors
}

// yamlEntry is one "key: value" of a mapping.
type yamlEntry struct {
	path  string     // e.g. pools[0].servers[1].quota
	line  int        // of the key
	value *yaml.Node // aliases resolved
}

// yamlMapping is a YAML mapping whose keys were checked against the allowed ones.
type yamlMapping struct {
	d       configDecoder
	path    string
	line    int // of the mapping, for fields it lacks
	entries map[string]yamlEntry
}

// get returns the key's entry; a key given no value (null) counts as absent.
func (m yamlMapping) get(key string) (yamlEntry, bool) {
	e, ok := m.entries[key]
	if !ok || e.value.ShortTag() == "!!null" {
		return yamlEntry{}, false
	}
	return e, true
}

// required is get for a field that must be there.
func (m yamlMapping) required(key string) (yamlEntry, error) {
	if e, ok := m.get(key); ok {
		return e, nil
	}
	return yamlEntry{}, m.d.errorf(m.keyLine(key), m.fieldPath(key), "required")
}

// keyLine is the line of key when written with no value, else of the mapping.
func (m yamlMapping) keyLine(key string) int {
	if e, ok := m.entries[key]; ok {
		return e.line
	}
	return m.line
}

func (m yamlMapping) fieldPath(key string) string {
	if m.path == "" {
		return key
	}
	return m.path + "." + key
}

// document parses data as a single YAML document and returns its root; nil for a file
// with nothing in it but comments or an empty document.
func (d configDecoder) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, d.syntaxError(data, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, d.errorf(next.Line, "", "a second YAML document: the file must hold one")
	} else if !errors.Is(err, io.EOF) {
		return nil, d.syntaxError(data, err)
	}
	if root := doc.Content[0]; root.Kind != yaml.ScalarNode || root.ShortTag() != "!!null" {
		return root, nil
	}
	return nil, nil
}

// yamlError splits a yaml.v3 error into its line, when it gives one, and its message.
var yamlError = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// maxSyntaxScan bounds the lines re-parsed to place a syntax error.
const maxSyntaxScan = 1000

// syntaxError turns a yaml.v3 parse error into a fileError at the line where the problem is.
// yaml.v3 reports the line of the enclosing construct, off by one, for parser errors
// (a mis-indented key three lines into a list is "line 1"), so the line given is instead the
// first whose end makes the file fail with the same message when parsing stops there.
func (d configDecoder) syntaxError(data []byte, err error) error {
	msg := yamlError.ReplaceAllString(err.Error(), "")
	end := 0
	for line := 1; end < len(data) && line <= maxSyntaxScan; line++ {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
		var n yaml.Node
		perr := yaml.NewDecoder(bytes.NewReader(data[:end])).Decode(&n)
		if perr != nil && yamlError.ReplaceAllString(perr.Error(), "") == msg {
			return d.errorf(line, "", "%s", msg)
		}
	}
	line := 1
	if m := yamlError.FindStringSubmatch(err.Error()); m != nil && m[1] != "" {
		line, _ = strconv.Atoi(m[1]) // digits only: cannot fail
	}
	return d.errorf(line, "", "%s", msg)
}

// fields checks that n is a mapping holding only allowed keys, each once.
func (d configDecoder) fields(n *yaml.Node, path string, allowed ...string) (yamlMapping, error) {
	m := yamlMapping{d: d, path: path, line: 1, entries: map[string]yamlEntry{}}
	if n == nil { // an empty file
		return m, nil
	}
	n = followAlias(n)
	m.line = n.Line
	if n.Kind != yaml.MappingNode {
		if path == "" {
			return m, d.errorf(n.Line, "", "want fields like pools:, got %s", describeNode(n))
		}
		return m, d.errorf(n.Line, path, "want fields, got %s", describeNode(n))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := followAlias(n.Content[i]), followAlias(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return m, d.errorf(k.Line, path, "want a field name, got %s", describeNode(k))
		}
		known := false
		for _, a := range allowed {
			known = known || a == k.Value
		}
		if !known {
			return m, d.errorf(k.Line, path, "unknown field %q", k.Value)
		}
		if first, dup := m.entries[k.Value]; dup {
			return m, d.errorf(k.Line, first.path, "given twice (first at line %d)", first.line)
		}
		m.entries[k.Value] = yamlEntry{path: m.fieldPath(k.Value), line: k.Line, value: v}
	}
	return m, nil
}

// list returns the items of a non-empty sequence of what (pools or servers).
func (d configDecoder) list(e yamlEntry, what string) ([]*yaml.Node, error) {
	if e.value.Kind != yaml.SequenceNode {
		return nil, d.errorf(e.line, e.path, "want a list of %s, got %s", what, describeNode(e.value))
	}
	if len(e.value.Content) == 0 {
		return nil, d.errorf(e.line, e.path, "at least one %s is required", strings.TrimSuffix(what, "s"))
	}
	return e.value.Content, nil
}

// scalar returns the text of a single value.
func (d configDecoder) scalar(e yamlEntry) (string, error) {
	if e.value.Kind != yaml.ScalarNode {
		return "", d.errorf(e.line, e.path, "want a single value, got %s", describeNode(e.value))
	}
	return e.value.Value, nil
}

// name returns a pool, server or backend name.
func (d configDecoder) name(e yamlEntry) (string, error) {
	s, err := d.scalar(e)
	if err != nil {
		return "", err
	}
	if assign.ValidName(s) != nil {
		return "", d.errorf(e.line, e.path, "%q is not a valid name (use letters, digits, '_', '-' and '.')", s)
	}
	return s, nil
}

// positive returns a whole number above zero.
func (d configDecoder) positive(e yamlEntry) (int, error) {
	s, err := d.scalar(e)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil && e.value.ShortTag() == "!!int" {
		err = e.value.Decode(&n) // YAML's other spellings: 0x10, 0o20, 1_000
	}
	if err != nil {
		return 0, d.errorf(e.line, e.path, "%q is not a whole number", s)
	}
	if n <= 0 {
		return 0, d.errorf(e.line, e.path, "must be positive, got %d", n)
	}
	return n, nil
}

func (d configDecoder) errorf(line int, field, format string, args ...any) error {
	return &fileError{Name: d.file, Line: line, Field: field, Err: fmt.Errorf(format, args...)}
}

// wrap places err, from a parser of the value, at e.
func (d configDecoder) wrap(e yamlEntry, err error) error {
	return &fileError{Name: d.file, Line: e.line, Field: e.path, Err: err}
}

// followAlias follows aliases (*name) to the node they stand for.
func followAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// describeNode names what a node holds, for "want X, got Y".
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "fields"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}
