package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/negasus/haproxy-spoe-go/message"
	"github.com/negasus/haproxy-spoe-go/request"

	"github.com/stickyseat/stickyseat/assign"
)

// Message arguments, the user-visible contract with HAProxy's SPOE configuration.
const (
	ArgKey  = "key"
	ArgPool = "pool"
	ArgBody = "body"
	// ArgSrc carries the client address for the src key fallback.
	ArgSrc = "src"
	// ArgUpPrefix starts the health arguments, one per server:
	// up:<pool>:<server>=srv_is_up(<backend>/<server>).
	ArgUpPrefix = "up:"
)

// handle answers one NOTIFY frame. It runs on the library's goroutine for that frame
// (negasus.go, assumption 7), so a panic is recovered here or kills the process.
func (a *Agent) handle(req *request.Request) {
	defer func() {
		if r := recover(); r != nil {
			a.stats.panics.Add(1)
			a.logPanic(r, a.log.Error().Uint64("stream_id", req.StreamID).Uint64("frame_id", req.FrameID), "handler panicked; answered status=error")
			req.Actions.Reset()
			a.answer(req, assign.Decision{Status: assign.StatusError})
		}
	}()
	a.stats.frames.Add(1)
	for _, m := range *req.Messages {
		if m.Name != MessageName {
			continue
		}
		start := time.Now()
		d := a.decide(m)
		a.answer(req, d)
		if a.opts.OnDecision != nil {
			a.opts.OnDecision(d, time.Since(start))
		}
		if d.Err != nil && a.log.Debug().Enabled() {
			a.log.Debug().Uint64("stream_id", req.StreamID).Str("status", d.Status.String()).Err(d.Err).Msg("no seat")
		}
		return // one decision per stream: later messages of the same name are ignored
	}
}

// decide turns a message into a decision.
func (a *Agent) decide(m *message.Message) assign.Decision {
	var in args
	var argErr error // the first unusable argument; the others are still read for the pool
	for _, item := range m.KV.Data() {
		var err error
		switch item.Name {
		case ArgKey:
			in.key, err = argText(item.Value)
		case ArgPool:
			in.pool, err = argText(item.Value)
		case ArgSrc:
			in.src, err = argText(item.Value)
		default:
			if strings.HasPrefix(item.Name, ArgUpPrefix) {
				in.health = true
				if up, ok := argBool(item.Value); ok && !up {
					pool, server, _ := strings.Cut(item.Name[len(ArgUpPrefix):], ":")
					in.down = append(in.down, assign.ServerRef{Pool: pool, Server: server})
				}
			}
		case ArgBody:
			// Extractors keep nothing of the body, so the library's buffer is read in place
			// (negasus.go, assumption 9).
			var ok bool
			if in.body, ok = argBody(item.Value); ok {
				in.hasBody = true
			} else {
				err = fmt.Errorf("%w %T", errArgType, item.Value)
			}
		}
		if err != nil && argErr == nil {
			argErr = fmt.Errorf("argument %q: %w", item.Name, err)
		}
	}
	if argErr != nil {
		return a.invalid(in.pool, argErr)
	}
	key, err := a.keyRule(in.pool).userKey(in)
	if err != nil {
		return a.invalid(in.pool, err)
	}
	return a.ask(assign.Request{Pool: in.pool, Key: key, Health: in.health, Down: in.down})
}

// invalid answers a message refused before any decision, counted in the pool the message
// named. Asking the decider with no key resolves that name as a decision would (the only
// pool when none is named, nothing for an unknown name, so metrics label it unknown
// rather than take any name a message carries) and never reaches the store.
func (a *Agent) invalid(pool string, err error) assign.Decision {
	d := a.ask(assign.Request{Pool: pool})
	return assign.Decision{Status: assign.StatusInvalid, Pool: d.Pool, Err: err}
}

// ask runs one decision, under the decision deadline unless the decider never blocks.
func (a *Agent) ask(req assign.Request) assign.Decision {
	if a.neverBlocks {
		return a.decider.Decide(context.Background(), req)
	}
	ctx, cancel := newDeadlineContext(a.opts.DecisionTimeout)
	defer cancel()
	return a.decider.Decide(ctx, req)
}

// keyRule returns the pool's key rule, or the default one (KeyRules[""]).
func (a *Agent) keyRule(pool string) KeyRule {
	rules := *a.keyRules.Load()
	if r, ok := rules[pool]; ok {
		return r
	}
	return rules[""]
}

// answer writes the decision as variables, strings only (see setVar).
func (a *Agent) answer(req *request.Request, d assign.Decision) {
	a.stats.count(d.Status)
	setVar(req, VarStatus, d.Status.String())
	if d.Status.Seated() && d.Server != "" {
		setVar(req, VarServer, d.Server)
	}
	if d.Status == assign.StatusQueued {
		setVar(req, VarPosition, strconv.Itoa(d.Position))
		if d.Wait > 0 {
			// Whole seconds, rounded up: a wait under a second is still "1", never "0".
			setVar(req, VarWait, strconv.FormatInt(int64((d.Wait+time.Second-1)/time.Second), 10))
		}
	}
}
