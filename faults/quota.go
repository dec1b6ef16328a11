package faults

import (
	"fmt"
	"sort"
	"time"
)

// checkQuotas sweeps each server's runs and reports every instant more users than its quota
// were certainly seated on it.
func checkQuotas(cfg Config, runs []run, violate func(Violation), most map[string]int) {
	type event struct {
		at  time.Time
		add bool
		run int
	}
	per := map[string][]event{}
	for i, r := range runs {
		from, to := r.first.Answered, r.last.Sent
		if !to.After(from) {
			continue // one decision: no instant is certainly inside the seat
		}
		per[r.server] = append(per[r.server], event{from, true, i}, event{to, false, i})
	}
	for server, evs := range per {
		// Ends before starts at the same instant: touching intervals do not overlap.
		sort.Slice(evs, func(i, j int) bool {
			if !evs[i].at.Equal(evs[j].at) {
				return evs[i].at.Before(evs[j].at)
			}
			return !evs[i].add && evs[j].add
		})
		quota, known := cfg.Quotas[server]
		if !known {
			violate(Violation{At: runs[evs[0].run].first.Answered, Evidence: []Reply{runs[evs[0].run].first},
				What: fmt.Sprintf("answered by %s, which is not a configured server", server)})
			continue
		}
		live := map[int]bool{}
		over := false
		for _, e := range evs {
			if !e.add {
				delete(live, e.run)
				over = over && len(live) > quota
				continue
			}
			live[e.run] = true
			if len(live) > most[server] {
				most[server] = len(live)
			}
			if len(live) > quota && !over {
				over = true // report each excursion once
				v := Violation{At: e.at, What: fmt.Sprintf("%s holds %d users, quota %d", server, len(live), quota)}
				// The evidence: the newcomer and the earliest-seated others.
				ids := make([]int, 0, len(live))
				for id := range live {
					ids = append(ids, id)
				}
				sort.Slice(ids, func(i, j int) bool { return runs[ids[i]].first.Answered.After(runs[ids[j]].first.Answered) })
				for k, id := range ids {
					if k == 4 {
						break
					}
					v.Evidence = append(v.Evidence, runs[id].first)
				}
				violate(v)
			}
		}
	}
}
