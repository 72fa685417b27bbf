package ipam

import (
	"strings"
	"testing"
	"time"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// An address another host answered for is set aside: the record stays in the status (Spiderpool reads it
// as allocated, with the pod that found it and an additive ipConflict key), no pod holds it, no DEL or
// garbage collection frees it, no allocation gives it, until ClearConflict; the next allocation of the
// same pod interface takes another address.
func TestMarkConflictSetsTheAddressAside(t *testing.T) {
	p := mustLoad(t, pool("p", "172.110.1.0/29", []string{"172.110.1.2-172.110.1.5"}))
	h := holder("web-1", "u1")
	first, _, err := p.Allocate(h)
	if err != nil {
		t.Fatal(err)
	}
	c := spv2.IPConflict{MAC: "52:54:00:12:34:56", Node: "a-node1", DetectedAt: time.Now().UTC().Format(time.RFC3339)}
	if p.MarkConflict(holder("web-2", "u2"), first, c) {
		t.Fatal("another pod marked web-1's address")
	}
	if !p.MarkConflict(h, first, c) {
		t.Fatal("MarkConflict of the holder's own address did nothing")
	}
	if p.MarkConflict(h, first, c) {
		t.Error("marked twice")
	}
	if _, ok := p.Find(h); ok {
		t.Error("the pod still holds the conflicting address")
	}
	if freed := p.Release(h); len(freed) != 0 {
		t.Errorf("DEL freed %v", freed)
	}
	again, _, err := p.Allocate(h)
	if err != nil || again == first {
		t.Fatalf("next allocation %s %v, want another address than %s", again, err, first)
	}
	if o := Orphans("p", p.Allocations(), LivePods{}); len(o) != 1 || o[0].IP != again {
		t.Errorf("orphans with every pod gone: %+v, want only %s", o, again)
	}
	st, err := p.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*st.AllocatedIPs, `"172.110.1.2":{"interface":"eth0","pod":"default/web-1","podUid":"","ipConflict":{"mac":"52:54:00:12:34:56","node":"a-node1"`) {
		t.Errorf("status %s", *st.AllocatedIPs)
	}
	if *st.AllocatedIPCount != 2 {
		t.Errorf("allocatedIPCount %d, want 2: the set-aside address counts as taken", *st.AllocatedIPCount)
	}
	// What the writer keeps and what a reader parses say the same.
	reloaded := mustLoad(t, pool("p", "172.110.1.0/29", []string{"172.110.1.2-172.110.1.5"}, withStatus(*st.AllocatedIPs)))
	for _, q := range []*Pool{reloaded, p.Clone()} {
		if got := q.Conflicts(); len(got) != 1 || got[first] != (spv2.PoolIPAllocation{NIC: "eth0", NamespacedName: "default/web-1", IPConflict: c}) {
			t.Errorf("conflicts %+v", got)
		}
	}
	if reloaded.ClearConflict(again) {
		t.Error("cleared an address that is no conflict")
	}
	if !reloaded.ClearConflict(first) || len(reloaded.Conflicts()) != 0 || reloaded.Free() != 3 {
		t.Errorf("after clearing: %d conflicts, %d free", len(reloaded.Conflicts()), reloaded.Free())
	}
}
