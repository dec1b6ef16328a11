package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stickyseat/stickyseat/internal/testbed"
)

// soapOrder is a SOAP 1.1 request whose customer id the agent must find (xml:CustomerId).
func soapOrder(customer string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:o="urn:example:orders">
  <soap:Header><o:Trace>abc</o:Trace></soap:Header>
  <soap:Body><o:PlaceOrder><o:CustomerId>` + customer + `</o:CustomerId><o:Item>tea</o:Item></o:PlaceOrder></soap:Body>
</soap:Envelope>`
}

// keyCase is one request and where it must land: "same:<name>" means on the server the
// request named <name> landed on, "other:<name>" on a different one, "refused:<status>" refused.
type keyCase struct {
	name   string
	source string
	req    testbed.Request
	want   string
}

// TestKeys runs http mode with each way of naming the user: HAProxy samples (header,
// cookie, URL parameter, json_query on the body) and agent-side extraction (SOAP body, JSON
// body), with and without the src fallback, and bodies larger than HAProxy's buffer.
func TestKeys(t *testing.T) { forEachHAProxy(t, testKeys) }

func testKeys(t *testing.T, bin string) {
	post := func(body string, h ...string) testbed.Request {
		r := testbed.Request{Method: "POST", Body: body, Header: map[string]string{"Content-Type": "text/xml"}}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header[h[i]] = h[i+1]
		}
		return r
	}
	get := func(path string, h ...string) testbed.Request {
		r := testbed.Request{Path: path, Header: map[string]string{}}
		for i := 0; i+1 < len(h); i += 2 {
			r.Header[h[i]] = h[i+1]
		}
		return r
	}
	big := strings.Repeat("<o:Pad>0123456789abcdef</o:Pad>", 40_000/32) // ~40 KB, beyond tune.bufsize 16384
	tests := []struct {
		name      string
		key       string
		agentArgs []string
		sendSrc   bool
		cases     []keyCase
	}{
		{"header", "header:X-User", nil, false, []keyCase{
			{"a", "127.0.0.11", get("/", "X-User", "alice"), "seated"},
			{"a again from elsewhere", "127.0.0.12", get("/", "X-User", "alice"), "same:a"},
			{"b", "127.0.0.11", get("/", "X-User", "bob"), "other:a"},
			{"no header", "127.0.0.13", get("/"), "refused:400"},
		}},
		{"cookie", "cookie:sid", nil, false, []keyCase{
			{"a", "127.0.0.11", get("/", "Cookie", "sid=s-1; theme=dark"), "seated"},
			{"a again", "127.0.0.12", get("/", "Cookie", "theme=light; sid=s-1"), "same:a"},
			{"b", "127.0.0.11", get("/", "Cookie", "sid=s-2"), "other:a"},
			{"no cookie", "127.0.0.13", get("/"), "refused:400"},
		}},
		{"url parameter", "param:user", nil, false, []keyCase{
			{"a", "127.0.0.11", get("/?user=u1&x=1"), "seated"},
			{"a again", "127.0.0.12", get("/app?x=2&user=u1"), "same:a"},
			{"b", "127.0.0.11", get("/?user=u2"), "other:a"},
			{"no parameter", "127.0.0.13", get("/?x=1"), "refused:400"},
		}},
		{"json_query in haproxy", "req.body,json_query('$.customer.id')", nil, false, []keyCase{
			{"a", "127.0.0.11", post(`{"customer":{"id":"c-1"},"item":"tea"}`, "Content-Type", "application/json"), "seated"},
			{"a again", "127.0.0.12", post(`{"item":"milk","customer":{"id":"c-1"}}`, "Content-Type", "application/json"), "same:a"},
			{"b", "127.0.0.11", post(`{"customer":{"id":"c-2"}}`, "Content-Type", "application/json"), "other:a"},
			{"no id", "127.0.0.13", post(`{"customer":{}}`, "Content-Type", "application/json"), "refused:400"},
		}},
		{"form field in the body", "req.body_param(user)", nil, false, []keyCase{
			{"a", "127.0.0.11", post("user=f1&item=tea", "Content-Type", "application/x-www-form-urlencoded"), "seated"},
			{"a again", "127.0.0.12", post("item=milk&user=f1", "Content-Type", "application/x-www-form-urlencoded"), "same:a"},
			{"b", "127.0.0.11", post("user=f2", "Content-Type", "application/x-www-form-urlencoded"), "other:a"},
			{"no field", "127.0.0.13", post("item=tea", "Content-Type", "application/x-www-form-urlencoded"), "refused:400"},
		}},
		{"soap body", "body", []string{"--key-from-body", "xml:CustomerId"}, false, []keyCase{
			{"42", "127.0.0.11", post(soapOrder("42")), "seated"},
			{"42 from another address", "127.0.0.12", post(soapOrder("42")), "same:42"},
			{"43", "127.0.0.11", post(soapOrder("43")), "other:42"},
			{"no customer id", "127.0.0.13", post(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>`), "refused:400"},
			{"broken xml", "127.0.0.13", post(`<soap:Envelope><CustomerId>44</soap:Envelope>`), "refused:400"},
			{"key early in a body over the buffer", "127.0.0.14", post(`<Envelope><CustomerId>42</CustomerId>` + big + `</Envelope>`), "same:42"},
			{"key beyond the buffer", "127.0.0.14", post(`<Envelope>` + big + `<CustomerId>45</CustomerId></Envelope>`), "refused:400"},
		}},
		{"json body", "body", []string{"--key-from-body", "json:customer.id"}, false, []keyCase{
			{"7", "127.0.0.11", post(`{"customer":{"id":7}}`, "Content-Type", "application/json"), "seated"},
			{"7 again", "127.0.0.12", post(`{"items":[1,2],"customer":{"name":"x","id":7}}`, "Content-Type", "application/json"), "same:7"},
			{"8", "127.0.0.11", post(`{"customer":{"id":"8"}}`, "Content-Type", "application/json"), "other:7"},
			{"no id", "127.0.0.13", post(`{"customer":{"id":null}}`, "Content-Type", "application/json"), "refused:400"},
		}},
		{"soap body with src fallback", "body", []string{"--key-from-body", "xml:CustomerId", "--key-fallback", "src"}, true, []keyCase{
			{"42", "127.0.0.11", post(soapOrder("42")), "seated"},
			{"no id: seated by address", "127.0.0.13", post(`<Envelope/>`), "other:42"},
			{"no id, same address again", "127.0.0.13", get("/"), "same:no id: seated by address"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startStack(t, testbed.StackOptions{HAProxyBin: bin, Mode: "http", Key: tt.key, SendSrc: tt.sendSrc,
				Servers: []string{"s1", "s2", "s3"}, MaxUsers: 1, Idle: time.Hour, AgentArgs: tt.agentArgs})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			landed := map[string]string{}
			for _, c := range tt.cases {
				client := testbed.NewClient(c.name, c.source, "")
				r, err := client.Do(ctx, s.Frontend, c.req)
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				landed[c.name] = r.Server
				kind, ref, _ := strings.Cut(c.want, ":")
				switch kind {
				case "seated":
					if !r.Seated() {
						t.Errorf("%s: %s; want a seat", c.name, r)
					}
				case "same":
					if !r.Seated() || r.Server != landed[ref] {
						t.Errorf("%s: %s; want the server %q got (%s)", c.name, r, ref, landed[ref])
					}
				case "other":
					if !r.Seated() || r.Server == landed[ref] {
						t.Errorf("%s: %s; want a seat on another server than %q (%s)", c.name, r, ref, landed[ref])
					}
				case "refused":
					if got := fmt.Sprint(r.Status); r.Seated() || got != ref {
						t.Errorf("%s: %s; want refused with HTTP %s", c.name, r, ref)
					}
				}
			}
		})
	}
}
