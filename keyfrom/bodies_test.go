package keyfrom

import (
	"fmt"
	"strings"
)

// benchKey is the customer id that soapBody and jsonBody carry.
const benchKey = "C-20240917-0042"

// soap11 wraps an operation in a SOAP 1.1 envelope with a WS-Security header, as .NET and Java
// stacks send it.
func soap11(operation string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ord="urn:example:orders:v2">
  <soapenv:Header>
    <wsse:Security soapenv:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
      <wsse:UsernameToken><wsse:Username>gateway</wsse:Username></wsse:UsernameToken>
    </wsse:Security>
  </soapenv:Header>
  <soapenv:Body>
` + operation + `
  </soapenv:Body>
</soapenv:Envelope>
`
}

// soap12 wraps an operation in a SOAP 1.2 envelope whose operation uses a default namespace.
func soap12(operation string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">
  <env:Header>
    <m:reservation xmlns:m="http://travelcompany.example.org/reservation" env:role="http://www.w3.org/2003/05/soap-envelope/role/next">
      <m:reference>uuid:093a2da1-q345-739r-ba5d-pqff98fe8j7d</m:reference>
    </m:reservation>
  </env:Header>
  <env:Body>
` + operation + `
  </env:Body>
</env:Envelope>
`
}

// orderLine is one repeated line of the order bodies, about 200 bytes of SOAP.
func orderLine(i int) string {
	return fmt.Sprintf(`      <ord:Line number="%d"><ord:Sku>SKU-%06d</ord:Sku><ord:Description>Widget, blue &amp; large</ord:Description><ord:Quantity>%d</ord:Quantity><ord:Price currency="EUR">%d.95</ord:Price></ord:Line>
`, i, i*7919%1000000, i%9+1, i%90+10)
}

// soapBody returns a SOAP 1.1 order of about size bytes whose CustomerId is in the middle of the
// order lines, or after all of them when atEnd.
func soapBody(size int, atEnd bool) []byte {
	customer := `      <ord:Customer><ord:Name>Zoë Example</ord:Name><ord:CustomerId>` + benchKey + `</ord:CustomerId></ord:Customer>
`
	empty := len(soap11(`    <ord:PlaceOrder>
` + customer + `    </ord:PlaceOrder>`))
	n := max(0, (size-empty)/len(orderLine(100)))
	var lines strings.Builder
	for i := range n {
		if !atEnd && i == n/2 {
			lines.WriteString(customer)
		}
		lines.WriteString(orderLine(i))
	}
	if atEnd || n == 0 {
		lines.WriteString(customer)
	}
	return []byte(soap11("    <ord:PlaceOrder>\n" + lines.String() + "    </ord:PlaceOrder>"))
}

// jsonItem is one repeated item of the order bodies, about 150 bytes of JSON.
func jsonItem(i int) string {
	return fmt.Sprintf(`{"sku":"SKU-%06d","description":"Widget, blue \u0026 large","quantity":%d,"price":{"amount":%d.95,"currency":"EUR"},"tags":["a","b"]}`,
		i*7919%1000000, i%9+1, i%90+10)
}

// jsonBody returns a JSON order of about size bytes with customer.id in the middle of the items,
// or after all of them when atEnd. The key's path is always customer.id.
func jsonBody(size int, atEnd bool) []byte {
	customer := `"customer":{"name":"Zoë Example","segment":"retail","id":"` + benchKey + `"}`
	empty := len(`{"requestId":"7f9c2ba4-e88f-11ee-a951-0242ac120002","items":[],"more":[],` + customer + `}`)
	n := max(0, (size-empty)/(len(jsonItem(100))+1))
	items := func(from, to int) string {
		parts := make([]string, 0, to-from)
		for i := from; i < to; i++ {
			parts = append(parts, jsonItem(i))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	head := `{"requestId":"7f9c2ba4-e88f-11ee-a951-0242ac120002",`
	if atEnd {
		return []byte(head + `"items":` + items(0, n) + `,"more":[],` + customer + `}`)
	}
	return []byte(head + `"items":` + items(0, n/2) + `,` + customer + `,"more":` + items(n/2, n) + `}`)
}
