package spop

import (
	"fmt"
	"strconv"
)

// KV is one key/value item of a HELLO or DISCONNECT payload, or one message argument.
type KV struct {
	Name  string
	Value Value
}

// AppendKV appends a key and a value already encoded as typed data.
func AppendKV(b []byte, name string, value []byte) []byte {
	return append(AppendName(b, name), value...)
}

// ReadKVs decodes a HELLO or DISCONNECT payload: key/value items up to the end of b.
func ReadKVs(b []byte) ([]KV, error) {
	var kvs []KV
	for len(b) > 0 {
		name, n, err := readName(b)
		if err != nil {
			return nil, fmt.Errorf("spop: item name: %w", err)
		}
		b = b[n:]
		v, n, err := ReadValue(b)
		if err != nil {
			return nil, fmt.Errorf("spop: item %q: %w", name, err)
		}
		b = b[n:]
		kvs = append(kvs, KV{Name: string(name), Value: v})
	}
	return kvs, nil
}

// ItemUint returns a numeric item of a HELLO or DISCONNECT payload (a decimal string is
// taken too).
func ItemUint(kvs []KV, name string) (uint64, bool) {
	for _, kv := range kvs {
		if kv.Name == name {
			switch kv.Value.Kind {
			case DataInt32, DataInt64, DataUint32, DataUint64:
				return kv.Value.Uint, true
			case DataString:
				n, err := strconv.ParseUint(string(kv.Value.Bytes), 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// Message is one NOTIFY message with its arguments.
type Message struct {
	Name string
	Args []KV
}

// ReadMessages decodes a NOTIFY payload.
func ReadMessages(b []byte) ([]Message, error) {
	var msgs []Message
	for len(b) > 0 {
		name, n, err := readName(b)
		if err != nil {
			return nil, fmt.Errorf("spop: message name: %w", err)
		}
		b = b[n:]
		if len(b) == 0 {
			return nil, fmt.Errorf("spop: message %q: %w", name, ErrShort)
		}
		nargs := int(b[0])
		b = b[1:]
		m := Message{Name: string(name)}
		for i := 0; i < nargs; i++ {
			an, n, err := readName(b)
			if err != nil {
				return nil, fmt.Errorf("spop: message %q arg %d: %w", name, i, err)
			}
			b = b[n:]
			v, n, err := ReadValue(b)
			if err != nil {
				return nil, fmt.Errorf("spop: message %q arg %q: %w", name, an, err)
			}
			b = b[n:]
			m.Args = append(m.Args, KV{Name: string(an), Value: v})
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// Action is one action of an ACK frame. Name and Value.Bytes alias the decoded payload.
type Action struct {
	Type  byte
	Scope byte
	Name  []byte
	Value Value // set-var only
}

// AppendSetVar appends a set-var action.
func AppendSetVar(b []byte, scope byte, name string, v Value) []byte {
	b = append(b, ActionSetVar, 3, scope)
	return AppendValue(AppendName(b, name), v)
}

// ReadAction decodes the action at the start of an ACK payload and returns it with its
// length, without allocating.
func ReadAction(b []byte) (Action, int, error) {
	if len(b) < 3 {
		return Action{}, 0, fmt.Errorf("spop: action: %w", ErrShort)
	}
	a := Action{Type: b[0], Scope: b[2]}
	nargs := b[1]
	name, n, err := readName(b[3:])
	if err != nil {
		return Action{}, 0, fmt.Errorf("spop: action name: %w", err)
	}
	a.Name = name
	n += 3
	switch {
	case a.Type == ActionSetVar && nargs == 3:
		v, l, err := ReadValue(b[n:])
		if err != nil {
			return Action{}, 0, fmt.Errorf("spop: action %q value: %w", name, err)
		}
		a.Value = v
		n += l
	case a.Type == ActionUnsetVar && nargs == 2:
	default:
		return Action{}, 0, fmt.Errorf("spop: action type %d with %d args", a.Type, nargs)
	}
	return a, n, nil
}

// ReadActions decodes an ACK payload.
func ReadActions(b []byte) ([]Action, error) {
	var acts []Action
	for len(b) > 0 {
		a, n, err := ReadAction(b)
		if err != nil {
			return nil, err
		}
		acts = append(acts, a)
		b = b[n:]
	}
	return acts, nil
}
