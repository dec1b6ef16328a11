package keyfrom

import (
	"strings"
	"testing"
)

// nest wraps inner in n levels of elements.
func nest(n int, inner string) string {
	return strings.Repeat("<a>", n) + inner + strings.Repeat("</a>", n)
}

func TestXMLKey(t *testing.T) {
	const spec = "xml:CustomerId"
	huge := strings.Repeat(orderLine(1), (1<<20)/len(orderLine(1)))
	tests := []keyTest{
		{name: "plain", body: `<CustomerId>42</CustomerId>`, want: "42"},
		{name: "nested in other elements", body: `<a><b><c><CustomerId>42</CustomerId></c></b></a>`, want: "42"},

		// Namespaces: only the local name counts.
		{name: "declared prefix", body: `<r xmlns:ns="urn:x"><ns:CustomerId>42</ns:CustomerId></r>`, want: "42"},
		{name: "undeclared prefix", body: `<ns:CustomerId>42</ns:CustomerId>`, want: "42"},
		{name: "default namespace", body: `<CustomerId xmlns="urn:x">42</CustomerId>`, want: "42"},
		{name: "inherited default namespace", body: `<r xmlns="urn:x"><CustomerId>42</CustomerId></r>`, want: "42"},
		{name: "two namespaces first wins", body: `<r><a:CustomerId xmlns:a="urn:a">1</a:CustomerId><b:CustomerId xmlns:b="urn:b">2</b:CustomerId></r>`, want: "1"},
		{name: "prefix end tag mismatch", body: `<a:CustomerId xmlns:a="urn:a" xmlns:b="urn:a">42</b:CustomerId>`, wantErr: ErrMalformed},

		// Text: CDATA, entities, white space.
		{name: "CDATA", body: `<CustomerId><![CDATA[42]]></CustomerId>`, want: "42"},
		{name: "CDATA keeps markup", body: `<CustomerId><![CDATA[<4&2>]]></CustomerId>`, want: "<4&2>"},
		{name: "text and CDATA joined", body: `<CustomerId>4<![CDATA[2]]></CustomerId>`, want: "42"},
		{name: "CDATA white space trimmed", body: "<CustomerId><![CDATA[ \n42\t]]></CustomerId>", want: "42"},
		{name: "entities decoded", body: `<CustomerId>A&amp;B&#67;&#x44;&lt;&gt;&quot;&apos;</CustomerId>`, want: `A&BCD<>"'`},
		{name: "surrounding white space trimmed", body: "<CustomerId>\n\t 42 \r\n</CustomerId>", want: "42"},
		{name: "inner white space kept", body: "<CustomerId> 4 2 </CustomerId>", want: "4 2"},
		{name: "CRLF inside normalised", body: "<CustomerId>4\r\n2</CustomerId>", want: "4\n2"},
		{name: "no-break space is text", body: "<CustomerId>\u00a042</CustomerId>", want: "\u00a042"},
		{name: "UTF-8 key", body: `<CustomerId>Zoë-北京-🙂</CustomerId>`, want: "Zoë-北京-🙂"},
		{name: "long key returned whole", body: "<CustomerId>" + strings.Repeat("k", 1000) + "</CustomerId>", want: strings.Repeat("k", 1000)},

		// Which element: the first with the name decides, whatever it holds.
		{name: "repeated first wins", body: `<r><CustomerId>1</CustomerId><CustomerId>2</CustomerId></r>`, want: "1"},
		{name: "header before body wins", body: soap11(`<CustomerId>2</CustomerId>`) + `<CustomerId>3</CustomerId>`, want: "2"},
		{name: "first empty decides", body: `<r><CustomerId/><CustomerId>2</CustomerId></r>`, wantErr: ErrNotFound},
		{name: "self-closing", body: `<r><CustomerId/></r>`, wantErr: ErrNotFound},
		{name: "white space only", body: "<CustomerId> \n\t</CustomerId>", wantErr: ErrNotFound},
		{name: "child element", body: `<a><CustomerId><x>1</x></CustomerId></a>`, wantErr: ErrNotFound},
		{name: "text and child element", body: `<a><CustomerId>1<x/></CustomerId></a>`, wantErr: ErrNotFound},
		{name: "same name nested", body: `<CustomerId><CustomerId>1</CustomerId></CustomerId>`, wantErr: ErrNotFound},
		{name: "longer names skipped", body: `<r><CustomerIdType>A</CustomerIdType><XCustomerId>B</XCustomerId><CustomerId>42</CustomerId></r>`, want: "42"},
		{name: "case sensitive", body: `<customerid>42</customerid>`, wantErr: ErrNotFound},
		{name: "attributes ignored", body: `<r CustomerId="9"><CustomerId type="x" CustomerId="8">42</CustomerId></r>`, want: "42"},
		{name: "attribute only", body: `<r CustomerId="9"/>`, wantErr: ErrNotFound},

		// Comments, processing instructions, directives.
		{name: "comment inside", body: `<CustomerId><!-- 99 -->42</CustomerId>`, want: "42"},
		{name: "comment splits text", body: `<CustomerId>4<!-- x -->2</CustomerId>`, want: "42"},
		{name: "commented-out element", body: `<r><!-- <CustomerId>9</CustomerId> --><CustomerId>42</CustomerId></r>`, want: "42"},
		{name: "processing instructions", body: `<?xml version="1.0"?><r><?pi CustomerId?><CustomerId>42<?x y?></CustomerId></r>`, want: "42"},
		{name: "doctype without entities", body: `<!DOCTYPE r><r><CustomerId>42</CustomerId></r>`, want: "42"},
		{name: "entity defined in DTD", body: `<!DOCTYPE r [<!ENTITY id "42">]><r><CustomerId>&id;</CustomerId></r>`, wantErr: ErrMalformed},

		// SOAP.
		{name: "SOAP 1.1", body: soap11(`<ord:GetBalance><ord:CustomerId>C-17</ord:CustomerId></ord:GetBalance>`), want: "C-17"},
		{name: "SOAP 1.2 default namespace", body: soap12(`<GetBalance xmlns="urn:example:accounts"><CustomerId> C-18 </CustomerId></GetBalance>`), want: "C-18"},
		{name: "SOAP 1.1 without the element", body: soap11(`<ord:Ping/>`), wantErr: ErrNotFound},
		{name: "SOAP order middle", body: string(soapBody(16<<10, false)), want: benchKey},
		{name: "SOAP order end", body: string(soapBody(16<<10, true)), want: benchKey},

		// Malformed before, inside and after the element.
		{name: "mismatched tag before", body: `<r><a></b><CustomerId>42</CustomerId></r>`, wantErr: ErrMalformed},
		{name: "unknown entity before", body: `<r>&nbsp;<CustomerId>42</CustomerId></r>`, wantErr: ErrMalformed},
		{name: "unquoted attribute before", body: `<r a=1><CustomerId>42</CustomerId></r>`, wantErr: ErrMalformed},
		{name: "unknown entity inside", body: `<CustomerId>4&bogus;2</CustomerId>`, wantErr: ErrMalformed},
		{name: "wrong end tag", body: `<CustomerId>42</customerid>`, wantErr: ErrMalformed},
		{name: "invalid UTF-8 inside", body: "<CustomerId>4\xff2</CustomerId>", wantErr: ErrMalformed},
		{name: "control character inside", body: "<CustomerId>4\x002</CustomerId>", wantErr: ErrMalformed},
		{name: "mismatched tag after", body: `<r><CustomerId>42</CustomerId></x>`, want: "42"},
		{name: "garbage after", body: "<r><CustomerId>42</CustomerId>\x00\xff<<<&&&", want: "42"},
		{name: "declared Latin-1", body: `<?xml version="1.0" encoding="ISO-8859-1"?><CustomerId>42</CustomerId>`, wantErr: ErrMalformed},

		// Empty and garbage bodies.
		{name: "empty", body: ``, wantErr: ErrNotFound},
		{name: "white space", body: " \r\n\t", wantErr: ErrNotFound},
		{name: "text mentioning the name", body: `CustomerId=42`, wantErr: ErrNotFound},
		{name: "JSON body", body: `{"CustomerId":"42"}`, wantErr: ErrNotFound},
		{name: "binary without the name", body: "\x00\x01\x02\xff\xfe<\x80", wantErr: ErrNotFound},
		{name: "binary with the name", body: "\x00\x01\xff<CustomerId>42</CustomerId>", wantErr: ErrMalformed},

		// Truncated: the key is returned only when its end tag is present.
		{name: "cut in text", body: `<r><CustomerId>12`, wantErr: ErrNotFound},
		{name: "cut in end tag", body: `<r><CustomerId>12</Custo`, wantErr: ErrNotFound},
		{name: "cut before end tag's >", body: `<r><CustomerId>12</CustomerId`, wantErr: ErrNotFound},
		{name: "cut in CDATA", body: `<r><CustomerId><![CDATA[12`, wantErr: ErrNotFound},
		{name: "cut in CDATA end", body: `<r><CustomerId><![CDATA[12]]`, wantErr: ErrNotFound},
		{name: "cut in entity", body: `<r><CustomerId>12&am`, wantErr: ErrNotFound},
		{name: "cut in start tag", body: `<r><CustomerId`, wantErr: ErrNotFound},
		{name: "cut in attribute", body: `<r><CustomerId a="x`, wantErr: ErrNotFound},
		{name: "cut in comment", body: `<r><!-- x <CustomerId>1</CustomerId>`, wantErr: ErrNotFound},
		{name: "cut after end tag", body: `<r><CustomerId>12</CustomerId>`, want: "12"},
		{name: "cut SOAP order", body: string(soapBody(16<<10, true)[:16<<9]), wantErr: ErrNotFound},

		// Size and depth.
		{name: "1 MB key at start", body: `<r><CustomerId>42</CustomerId>` + huge + `</r>`, want: "42"},
		{name: "1 MB key at end", body: `<r>` + huge + `<CustomerId>42</CustomerId></r>`, want: "42"},
		{name: "1 MB garbage after key", body: `<r><CustomerId>42</CustomerId>` + strings.Repeat("</x>", 1<<18), want: "42"},
		{name: "key at depth 64", body: nest(63, `<CustomerId>42</CustomerId>`), want: "42"},
		{name: "key at depth 65", body: nest(64, `<CustomerId>42</CustomerId>`), wantErr: ErrMalformed},
		{name: "deep subtree before key", body: `<r>` + nest(100, "") + `<CustomerId>42</CustomerId></r>`, wantErr: ErrMalformed},
		{name: "deep subtree after key", body: `<r><CustomerId>42</CustomerId>` + nest(100000, "") + `</r>`, want: "42"},
		{name: "unclosed depth bomb", body: strings.Repeat("<a>", 1<<18) + `<CustomerId>42</CustomerId>`, wantErr: ErrMalformed},
	}
	for i := range tests {
		tests[i].spec = spec
	}
	runKeyTests(t, tests)
}
