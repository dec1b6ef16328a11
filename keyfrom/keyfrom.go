// Package keyfrom extracts a user key from a request body, for keys that HAProxy cannot fetch itself.
//
// HAProxy forwards the body (req.body, possibly cut at its buffer size) and a spec names where the
// key is:
//
//	xml:<element>  text of the first element with that local name, namespaces ignored
//	json:<path>    string or number at a dotted path, e.g. customer.id or items.0.id
//	regex:<expr>   first capture group of an RE2 expression
//
// An xml element is matched by local name in document order, so xml:CustomerId finds
// <ns:CustomerId> whatever ns stands for, and one in a SOAP header comes before one in the body.
// Its key is its character data and CDATA sections joined, entities decoded, comments and
// processing instructions skipped, XML white space trimmed. An element with child elements gives
// ErrNotFound rather than its children's text joined (<Id><T>B</T>42</Id> is not "B42"). Parsing
// is strict: mismatched tags, undeclared entities (DTDs are not read) and encodings other than
// UTF-8 are ErrMalformed.
//
// A json path's segments name object keys, compared after unescaping. A segment of decimal
// digits without leading zeros also indexes an array from 0 (items.0.id), and still matches an
// object key "0". Keys containing a dot cannot be addressed. When an object repeats a key, the
// first occurrence decides (encoding/json would keep the last). The value must be a non-empty
// string, returned unescaped and untrimmed, or a number, returned exactly as written (4.20, 1e3);
// anything else is ErrNotFound.
//
// The XML and JSON extractors follow these rules; a regex returns what its leftmost match
// captured, and sees truncation only if the expression matches what follows the key.
//
//   - The first occurrence decides. Reading stops as soon as the key is complete, so a large
//     body with the key near its start is cheap, and anything malformed after the key is never
//     seen.
//   - A key is never a guess. An element with child elements, an empty value, a value of another
//     type, a body that ends before the key is complete (HAProxy truncated it) and a JSON number
//     that ends the body (it may have been cut) all give [ErrNotFound]: a wrong key would give the
//     user someone else's seat, while no key only makes the agent answer "invalid".
//   - A body that cannot be parsed up to the key gives [ErrMalformed], and so does nesting deeper
//     than 64 levels before the key, which bounds the work and memory an attacker can ask for.
//   - Keys are returned whole whatever their length; the caller bounds or hashes long keys.
//
// XML and JSON keys are valid UTF-8; a regex key is the exact bytes the group matched.
// Extractors are safe for concurrent use.
package keyfrom

import (
	"errors"
	"fmt"
	"strings"
)

// Extractor takes a user key out of a request body.
//
// Key returns a non-empty key, or an error that wraps exactly one of [ErrNotFound] and
// [ErrMalformed]. It keeps no reference to body after it returns.
type Extractor interface {
	Key(body []byte) (string, error)
}

// ErrNotFound means the body holds no usable key: the element, path or match is absent, empty,
// of the wrong kind, or cut off by the end of a truncated body.
var ErrNotFound = errors.New("key not found")

// ErrMalformed means the body cannot be parsed up to the key.
var ErrMalformed = errors.New("malformed body")

// maxDepth caps the nesting of XML elements and JSON containers read before the key. Real SOAP
// envelopes and API payloads stay far below it.
const maxDepth = 64

const wantKinds = "want xml:<element>, json:<path> or regex:<expr>"

// Parse validates spec and returns the extractor it names. The spec is kind:argument, split at
// the first colon, so a regex may contain colons. Kinds are lower case.
func Parse(spec string) (Extractor, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("keyfrom: spec %q has no kind (%s)", spec, wantKinds)
	}
	switch kind {
	case "xml":
		return newXML(spec, arg)
	case "json":
		return newJSON(spec, arg)
	case "regex":
		return newRegex(spec, arg)
	}
	return nil, fmt.Errorf("keyfrom: unknown kind %q in %q (%s)", kind, spec, wantKinds)
}

// notFound says what was looked for and why it was not usable; the key text itself never
// appears in errors because it is often personal data.
func notFound(spec, reason string) error {
	return fmt.Errorf("keyfrom: %s: %s: %w", spec, reason, ErrNotFound)
}

// malformed keeps the decoder's message as text only: callers branch on ErrMalformed, and
// encoding/xml or encoding/json error types are not part of this package's contract.
func malformed(spec string, offset int64, cause error) error {
	return fmt.Errorf("keyfrom: %s: %w near byte %d: %v", spec, ErrMalformed, offset, cause)
}

// errTooDeep is the cause reported with ErrMalformed when nesting exceeds maxDepth.
var errTooDeep = fmt.Errorf("nesting deeper than %d", maxDepth)

// Every extractor also prints as its spec, for logs and status pages.
var (
	_ Extractor    = (*xmlElement)(nil)
	_ Extractor    = (*jsonPath)(nil)
	_ Extractor    = (*regexGroup)(nil)
	_ fmt.Stringer = (*xmlElement)(nil)
	_ fmt.Stringer = (*jsonPath)(nil)
	_ fmt.Stringer = (*regexGroup)(nil)
)
