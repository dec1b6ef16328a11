package admin

import "github.com/stickyseat/stickyseat/assign"

// ServerStates tells the state each server of a pool is in for this agent's decisions
// (assign.Assigner): the configured state under HAProxy's health reports and the down
// grace. A Reloader that implements it gives the page, the API and the metrics that
// state; with any other, they show the configured state.
type ServerStates interface {
	// ServerStates returns the state of every server of pool by name; nil for an unknown
	// pool.
	ServerStates(pool string) map[string]assign.EffectiveState
}

var _ ServerStates = (*assign.Assigner)(nil)

// serverStates returns how each server of p is shown: the state the decisions apply when
// the reloader tells it, else (or for a server it does not know yet, during a reload) the
// configured one.
func (a *Admin) serverStates(p assign.Pool) map[string]string {
	var effective map[string]assign.EffectiveState
	if ss, ok := a.reloader.(ServerStates); ok {
		effective = ss.ServerStates(p.Name)
	}
	out := make(map[string]string, len(p.Servers))
	for _, s := range p.Servers {
		if st, ok := effective[s.Name]; ok {
			out[s.Name] = st.String()
		} else {
			out[s.Name] = s.State.String()
		}
	}
	return out
}
