package spop

import "fmt"

// KV is one key/value item of a HELLO or DISCONNECT payload, or one message argument.
type KV struct {
	Name  string
	Value Value
}

// AppendKV appends a key and a value already encoded as typed data.
func AppendKV(b []byte, name string, value []byte) []byte {
	return append(appendName(b, name), value...)
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

// Message is one NOTIFY message with its arguments.
type Message struct {
	Name string
	Args []KV
}

// AppendMessage appends a message; arguments are typed data already encoded by the
// caller through AppendArg.
func AppendMessage(b []byte, name string, nargs int, args []byte) []byte {
	b = appendName(b, name)
	b = append(b, byte(nargs))
	return append(b, args...)
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

// Action is one action of an ACK frame.
type Action struct {
	Type  byte
	Scope byte
	Name  string
	Value Value
}

// ReadActions decodes an ACK payload.
func ReadActions(b []byte) ([]Action, error) {
	var acts []Action
	for len(b) > 0 {
		if len(b) < 3 {
			return nil, fmt.Errorf("spop: action: %w", ErrShort)
		}
		a := Action{Type: b[0], Scope: b[2]}
		nargs := b[1]
		b = b[3:]
		name, n, err := readName(b)
		if err != nil {
			return nil, fmt.Errorf("spop: action name: %w", err)
		}
		a.Name = string(name)
		b = b[n:]
		switch {
		case a.Type == ActionSetVar && nargs == 3:
			v, n, err := ReadValue(b)
			if err != nil {
				return nil, fmt.Errorf("spop: action %q value: %w", a.Name, err)
			}
			a.Value = v
			b = b[n:]
		case a.Type == ActionUnsetVar && nargs == 2:
		default:
			return nil, fmt.Errorf("spop: action type %d with %d args", a.Type, nargs)
		}
		acts = append(acts, a)
	}
	return acts, nil
}
