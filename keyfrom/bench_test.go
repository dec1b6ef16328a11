package keyfrom

import (
	"fmt"
	"testing"
)

// BenchmarkKey measures each extractor on realistic orders of 2 KB and 16 KB with the customer
// id in the middle or at the end: the cost of a request whose key is late in its body.
func BenchmarkKey(b *testing.B) {
	extractors := []struct {
		name string
		spec string
		body func(size int, atEnd bool) []byte
	}{
		{"xml", "xml:CustomerId", soapBody},
		{"json", "json:customer.id", jsonBody},
		{"regex", `regex:<(?:\w+:)?CustomerId>([^<]+)</`, soapBody},
	}
	for _, x := range extractors {
		e, err := Parse(x.spec)
		if err != nil {
			b.Fatal(err)
		}
		for _, size := range []int{2 << 10, 16 << 10} {
			for _, atEnd := range []bool{false, true} {
				where := "middle"
				if atEnd {
					where = "end"
				}
				body := x.body(size, atEnd)
				b.Run(fmt.Sprintf("%s/%dKB/%s", x.name, size>>10, where), func(b *testing.B) {
					b.SetBytes(int64(len(body)))
					b.ReportAllocs()
					for b.Loop() {
						key, err := e.Key(body)
						if err != nil || key != benchKey {
							b.Fatalf("%v.Key = %q, %v; want %q", e, key, err, benchKey)
						}
					}
				})
			}
		}
	}
}
