package agent

import (
	"fmt"

	"github.com/stickyseat/stickyseat/assign"
	"github.com/stickyseat/stickyseat/keyfrom"
)

// Fallbacks a KeyRule may name.
const (
	// FallbackNone answers invalid when no key is found.
	FallbackNone = ""
	// FallbackSrc uses the message's src argument (the client address) when no key is found.
	FallbackSrc = "src"
)

// KeyRule says where a pool's user key comes from when the message's key argument is
// absent or empty.
type KeyRule struct {
	// FromBody extracts the key from the body argument (body=req.body); nil means none.
	FromBody keyfrom.Extractor
	// Fallback is FallbackNone or FallbackSrc.
	Fallback string
}

// Validate checks the rule.
func (r KeyRule) Validate() error {
	switch r.Fallback {
	case FallbackNone, FallbackSrc:
		return nil
	}
	return fmt.Errorf("unknown key fallback %q (want src or nothing)", r.Fallback)
}

// args are a message's arguments as text, decoded once.
type args struct {
	key, pool, src string
	body           []byte
	hasBody        bool
	health         bool               // up: arguments were sent
	down           []assign.ServerRef // servers they report down
}

// userKey applies rule to the arguments: the key argument, else the body, else the
// fallback. The error, assign.ErrNoKey wrapped, says why none worked; it never holds the
// key or the body.
func (r KeyRule) userKey(a args) (string, error) {
	if a.key != "" {
		return a.key, nil
	}
	var why error = assign.ErrNoKey
	if r.FromBody != nil {
		if !a.hasBody {
			why = fmt.Errorf("%w: no body argument for %s (send body=req.body)", assign.ErrNoKey, r.FromBody)
		} else {
			k, err := r.FromBody.Key(a.body)
			if err == nil {
				return k, nil
			}
			why = fmt.Errorf("%w: %w", assign.ErrNoKey, err)
		}
	}
	if r.Fallback == FallbackSrc {
		if a.src != "" {
			return a.src, nil
		}
		why = fmt.Errorf("%w (and no src argument for the fallback)", why)
	}
	return "", why
}
