package haproxy

import (
	"fmt"
	"strings"
)

// KeySpec turns the short key forms users type into the sample HAProxy sends as key=:
//
//	header:X-User  → req.hdr(X-User)
//	cookie:sid     → req.cook(sid)
//	param:user     → url_param(user)
//	body           → no key argument; the agent extracts the key from body=req.body
//	anything else  → used as a sample expression as it is (src, req.hdr(x-user),
//	                 req.body_param(user), req.body,json_query('$.customer.id'), …)
//
// body reports whether the message must carry the request body.
func KeySpec(spec string) (sample string, body bool, err error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if spec == "body" {
		return "", true, nil
	}
	if !ok || strings.Contains(kind, "(") {
		if err := checkSample(spec); err != nil {
			return "", false, fmt.Errorf("key %q: %w", spec, err)
		}
		return spec, false, nil
	}
	if arg == "" || strings.ContainsAny(arg, "(),") {
		return "", false, fmt.Errorf("key %q: %s needs a plain name after the colon", spec, kind)
	}
	switch kind {
	case "header":
		sample = "req.hdr(" + arg + ")"
	case "cookie":
		sample = "req.cook(" + arg + ")"
	case "param":
		sample = "url_param(" + arg + ")"
	default:
		return "", false, fmt.Errorf("key %q: unknown kind %q (want header:NAME, cookie:NAME, param:NAME, body or a sample expression)", spec, kind)
	}
	if err := checkSample(sample); err != nil {
		return "", false, fmt.Errorf("key %q: %w", spec, err)
	}
	return sample, false, nil
}
