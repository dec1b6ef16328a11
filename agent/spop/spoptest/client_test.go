package spoptest

import (
	"testing"

	"github.com/stickyseat/stickyseat/agent/spop"
)

func TestVars(t *testing.T) {
	var b []byte
	b = spop.AppendSetVar(b, spop.ScopeTransaction, "status", spop.Str("hit"))
	b = spop.AppendName(append(b, spop.ActionUnsetVar, 2, spop.ScopeTransaction), "old")
	b = spop.AppendSetVar(b, spop.ScopeTransaction, "n", spop.Uint32(5))
	acts, err := spop.ReadActions(b)
	if err != nil {
		t.Fatal(err)
	}
	if v := Vars(acts); len(v) != 2 || v["status"] != "hit" || v["n"] != "5" {
		t.Errorf("Vars = %v; want status=hit n=5 (unset-var left out)", v)
	}
}
