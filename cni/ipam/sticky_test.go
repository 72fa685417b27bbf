package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestStatefulSetOrdinal(t *testing.T) {
	for _, c := range []struct {
		pod     string
		set     string
		ordinal int
		ok      bool
	}{
		{"web-0", "web", 0, true},
		{"web-12", "web", 12, true},
		{"my-db-3", "my-db", 3, true},
		{"web", "", 0, false},
		{"web-", "", 0, false},
		{"-1", "", 0, false},
		{"web-01", "", 0, false}, // not an ordinal the StatefulSet controller writes
		{"web-7d9f5-x2b4k", "", 0, false},
		{"web--1", "web-", 1, true},
	} {
		set, ord, ok := StatefulSetOrdinal(c.pod)
		if set != c.set || ord != c.ordinal || ok != c.ok {
			t.Errorf("StatefulSetOrdinal(%q) = %q, %d, %v; want %q, %d, %v", c.pod, set, ord, ok, c.set, c.ordinal, c.ok)
		}
	}
}

func TestOrdinalWanted(t *testing.T) {
	for _, c := range []struct {
		replicas, start int32
		ordinal         int
		want            bool
	}{
		{3, 0, 0, true}, {3, 0, 2, true}, {3, 0, 3, false}, {1, 0, 1, false}, {0, 0, 0, false},
		{3, 5, 4, false}, {3, 5, 5, true}, {3, 5, 7, true}, {3, 5, 8, false},
	} {
		if got := OrdinalWanted(c.replicas, c.start, c.ordinal); got != c.want {
			t.Errorf("OrdinalWanted(replicas %d, start %d, %d) = %v", c.replicas, c.start, c.ordinal, got)
		}
	}
}

// TestReclaimGivesTheKeptAddressBackOnlyToItsPod: a StatefulSet pod recreated under its name (new UID,
// another node) gets the address recorded for its name and interface, and nothing else ever does.
func TestReclaimGivesTheKeptAddressBackOnlyToItsPod(t *testing.T) {
	p := mustLoad(t, pool("sts", "172.110.1.0/24", []string{"172.110.1.10-172.110.1.12"}))
	old := Holder{Namespace: "db", Name: "web-0", UID: "u1", NIC: "eth0", ContainerID: "c1", Node: "a-node1"}
	a, _, err := p.Allocate(old)
	if err != nil {
		t.Fatal(err)
	}
	other := Holder{Namespace: "db", Name: "web-1", UID: "u2", NIC: "eth0", ContainerID: "c2", Node: "a-node1"}
	b, _, _ := p.Allocate(other)

	// The new pod web-0 (UID u3) on another node.
	again := Holder{Namespace: "db", Name: "web-0", UID: "u3", NIC: "eth0", ContainerID: "c3", Node: "a-node2"}
	changed, err := p.Reclaim(again, a)
	if err != nil || !changed {
		t.Fatalf("Reclaim(%s) = %v, %v; want the kept address back", a, changed, err)
	}
	if got, ok := p.Find(again); !ok || got != a {
		t.Fatalf("after Reclaim the new pod holds %v, %v; want %s", got, ok, a)
	}
	if rec := p.Allocations()[a.String()]; rec.PodUID != "u3" || rec.Node != "a-node2" || rec.ContainerID != "c3" {
		t.Fatalf("record after Reclaim = %+v; want the new pod's UID, node and sandbox", rec)
	}
	// The late DEL of the old sandbox frees nothing.
	if freed := p.Release(old); len(freed) != 0 {
		t.Fatalf("the old sandbox's DEL freed %v", freed)
	}
	// Asked again: nothing changes.
	if changed, err := p.Reclaim(again, a); err != nil || changed {
		t.Fatalf("repeated Reclaim = %v, %v", changed, err)
	}

	// Another pod's address, another interface, a conflict: refused, and nothing changes.
	before := p.Allocations()
	for _, c := range []struct {
		h    Holder
		ip   netip.Addr
		want string
	}{
		{again, b, "held by interface eth0 of pod db/web-1"},
		{Holder{Namespace: "db", Name: "web-0", UID: "u3", NIC: "net1"}, a, "held by interface eth0 of pod db/web-0"},
		{again, netip.MustParseAddr("172.110.1.50"), "no longer among the pool's allocatable addresses"},
	} {
		_, err := p.Reclaim(c.h, c.ip)
		var ke *KeptError
		if !errors.As(err, &ke) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Reclaim(%s %s, %s) = %v; want a KeptError saying %q", c.h.NamespacedName(), c.h.NIC, c.ip, err, c.want)
		}
	}
	if !p.MarkConflict(other, b, spv2.IPConflict{MAC: "52:54:00:00:00:01"}) {
		t.Fatalf("MarkConflict(%s) did nothing", b)
	}
	if _, err := p.Reclaim(Holder{Namespace: "db", Name: "web-1", UID: "u9", NIC: "eth0"}, b); err == nil || !strings.Contains(err.Error(), "52:54:00:00:00:01") {
		t.Errorf("Reclaim of an address set aside as a conflict = %v", err)
	}
	delete(before, b.String())
	after := p.Allocations()
	delete(after, b.String())
	if len(before) != len(after) || after[a.String()] != before[a.String()] {
		t.Fatalf("a refused Reclaim changed the pool: %v → %v", before, after)
	}
}

// TestReclaimTakesAFreeKeptAddressAndGivesBackAnother: a kept address without a record is taken if free,
// and an address the pod interface got meanwhile goes back.
func TestReclaimTakesAFreeKeptAddressAndGivesBackAnother(t *testing.T) {
	p := mustLoad(t, pool("sts", "172.110.1.0/24", []string{"172.110.1.10-172.110.1.12"}))
	h := Holder{Namespace: "db", Name: "web-0", UID: "u1", NIC: "eth0"}
	got, _, _ := p.Allocate(h)
	kept := netip.MustParseAddr("172.110.1.12")
	if _, err := p.Reclaim(h, kept); err != nil {
		t.Fatal(err)
	}
	if a, _ := p.Find(h); a != kept || p.Allocated() != 1 {
		t.Fatalf("after Reclaim: holds %s, %d allocated; want only %s (and %s given back)", a, p.Allocated(), kept, got)
	}
	if p.Free() != 2 {
		t.Fatalf("Free = %d, want 2", p.Free())
	}
}

func endpoint(ns, name, owner, ownerName string, ips ...spv2.IPAllocationDetail) spv2.SpiderEndpoint {
	return spv2.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status: spv2.WorkloadEndpointStatus{OwnerControllerType: owner, OwnerControllerName: ownerName,
			Current: spv2.PodIPAllocation{UID: "u", Node: "n", IPs: ips}},
	}
}

func v4(nic, pool, ip string) spv2.IPAllocationDetail {
	return spv2.IPAllocationDetail{NIC: nic, IPv4Pool: &pool, IPv4: &ip}
}

// TestCollectableKeepsAddressesTheStatefulSetWants: garbage collection never frees an address a
// StatefulSet still wants for the ordinal, whether its pod is gone, finished or recreated, and frees it
// like any other once the StatefulSet is scaled below the ordinal or deleted.
func TestCollectableKeepsAddressesTheStatefulSetWants(t *testing.T) {
	allocs := spv2.PoolIPAllocations{
		"172.110.1.10": {NIC: "eth0", NamespacedName: "db/web-0", PodUID: "old0"},
		"172.110.1.11": {NIC: "eth0", NamespacedName: "db/web-1", PodUID: "old1"},
		"172.110.1.12": {NIC: "eth0", NamespacedName: "db/web-2", PodUID: "old2"},
		"172.110.1.13": {NIC: "eth0", NamespacedName: "db/other", PodUID: "old3"},
	}
	eps := []spv2.SpiderEndpoint{
		endpoint("db", "web-0", spv2.OwnerStatefulSet, "web", v4("eth0", "sts", "172.110.1.10/24")),
		endpoint("db", "web-1", spv2.OwnerStatefulSet, "web", v4("eth0", "sts", "172.110.1.11/24")),
		endpoint("db", "web-2", spv2.OwnerStatefulSet, "web", v4("eth0", "sts", "172.110.1.12/24")),
		endpoint("db", "other", spv2.OwnerNone, "other", v4("eth0", "sts", "172.110.1.13/24")),
	}
	freed := func(sets map[string]Ordinals, pods LivePods) []string {
		o, _ := Collectable("sts", allocs, Cluster{Pods: pods, Kept: KeptAddresses(eps, sets)})
		var out []string
		for _, x := range o {
			out = append(out, x.IP.String())
		}
		return out
	}
	// Every pod gone (a rollout, a force delete), or web-0 recreated under a new UID: only the pod
	// that is not a StatefulSet's loses its address.
	want := "[172.110.1.13]"
	for _, pods := range []LivePods{{}, {"db/web-0": "new0"}} {
		if got := freed(map[string]Ordinals{"db/web": {Replicas: 3}}, pods); fmtList(got) != want {
			t.Errorf("StatefulSet at 3, pods %v: freed %v; want %s", pods, got, want)
		}
	}
	// Scaled to 1: web-1 and web-2 go.
	if got := freed(map[string]Ordinals{"db/web": {Replicas: 1}}, LivePods{}); fmtList(got) != "[172.110.1.11 172.110.1.12 172.110.1.13]" {
		t.Errorf("scaled to 1: freed %v", got)
	}
	// Ordinals from 1: web-0 is not wanted.
	if got := freed(map[string]Ordinals{"db/web": {Replicas: 3, Start: 1}}, LivePods{}); fmtList(got) != "[172.110.1.10 172.110.1.13]" {
		t.Errorf("ordinals from 1: freed %v", got)
	}
	// The StatefulSet deleted, or one of another name: everything goes.
	for _, sets := range []map[string]Ordinals{{}, {"db/webx": {Replicas: 3}}, {"other/web": {Replicas: 3}}} {
		if got := freed(sets, LivePods{}); len(got) != 4 {
			t.Errorf("StatefulSets %v: freed %v; want all four", sets, got)
		}
	}
}

func fmtList(s []string) string { return "[" + strings.Join(s, " ") + "]" }
