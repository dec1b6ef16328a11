package keyfrom

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// xmlSpace is the XML spec's white space (production S); Unicode spaces such as U+00A0 are text.
const xmlSpace = " \t\r\n"

// xmlElement finds the text of the first element with a given local name (see the package
// documentation for what counts as its text). Child elements make it ErrNotFound because joining
// their text would invent a key nobody wrote.
type xmlElement struct {
	spec  string
	local string
	// name is local as bytes, to skip the decoder for bodies that cannot hold the element.
	name []byte
}

func newXML(spec, local string) (*xmlElement, error) {
	if local == "" {
		return nil, fmt.Errorf("keyfrom: empty element name in %q (want e.g. xml:CustomerId)", spec)
	}
	if strings.Contains(local, ":") {
		return nil, fmt.Errorf("keyfrom: element name %q in %q has a prefix; give the local name alone, namespaces are ignored", local, spec)
	}
	if !isXMLName(local) {
		return nil, fmt.Errorf("keyfrom: %q in %q is not an XML element name (want the local name alone, e.g. xml:CustomerId)", local, spec)
	}
	return &xmlElement{spec: spec, local: local, name: []byte(local)}, nil
}

// isXMLName accepts letters, digits, '-', '.', '_' and combining marks, not starting with a digit,
// '-' or '.'. It is a little narrower than the XML Name production; its job is to catch specs
// such as "xml:/Envelope/Body/Id" or "xml:<Id>", which could never match.
func isXMLName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc)):
		default:
			return false
		}
	}
	return true
}

// String returns the spec the extractor was parsed from.
func (e *xmlElement) String() string { return e.spec }

// Key implements Extractor.
func (e *xmlElement) Key(body []byte) (string, error) {
	// An element name cannot be escaped, so a body without it cannot hold the element.
	if !bytes.Contains(body, e.name) {
		return "", notFound(e.spec, "no such element")
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	// Strict (the default, spelled out because it matters): mismatched or missing end tags and
	// unknown entities are errors instead of being guessed at, so the key is read from the same
	// document structure the application server will see. Entity stays nil, so only the five
	// predefined entities and character references expand; DTDs are never processed, so
	// entity-expansion bombs cannot apply. CharsetReader stays nil: a body declaring a non-UTF-8
	// encoding is ErrMalformed rather than decoded into a key that differs from its bytes.
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return "", e.decodeError(d, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxDepth {
				return "", malformed(e.spec, d.InputOffset(), errTooDeep)
			}
			if t.Name.Local == e.local {
				return e.text(d)
			}
		case xml.EndElement:
			depth--
		}
	}
}

// text reads the element just opened up to its end tag and returns its trimmed text. It returns
// at the end tag, so whatever follows it in the body is never parsed.
func (e *xmlElement) text(d *xml.Decoder) (string, error) {
	var text []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return "", e.decodeError(d, err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			// CharData is only valid until the next Token call.
			text = append(text, t...)
		case xml.StartElement:
			return "", notFound(e.spec, "element has child elements")
		case xml.EndElement:
			// Token guarantees this end tag matches our start tag: no child element is open.
			key := bytes.Trim(text, xmlSpace)
			if len(key) == 0 {
				return "", notFound(e.spec, "element is empty")
			}
			return string(key), nil
		}
	}
}

// decodeError sorts a decoder error into not found (the body ended, cleanly or cut short) and
// malformed (anything else).
func (e *xmlElement) decodeError(d *xml.Decoder, err error) error {
	if err == io.EOF {
		return notFound(e.spec, "no such element")
	}
	// encoding/xml reports an input ending inside a token, an element or a CDATA section as a
	// SyntaxError whose message starts "unexpected EOF"; there is no sentinel to test instead.
	var syntax *xml.SyntaxError
	if errors.As(err, &syntax) && strings.HasPrefix(syntax.Msg, "unexpected EOF") {
		return notFound(e.spec, "body ends before the document is complete (truncated?)")
	}
	return malformed(e.spec, d.InputOffset(), err)
}
