package ipam

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestOrphansNeverListsALivePod(t *testing.T) {
	allocs := spv2.PoolIPAllocations{
		"10.0.0.2": {NIC: "eth0", NamespacedName: "d/live", PodUID: "u1"},
		"10.0.0.3": {NIC: "eth0", NamespacedName: "d/gone", PodUID: "u2"},
		"10.0.0.4": {NIC: "eth0", NamespacedName: "d/recreated", PodUID: "old"},
		"10.0.0.5": {NIC: "eth0", NamespacedName: "d/no-uid"},
		"10.0.0.6": {NIC: "eth0", NamespacedName: "d/gone-no-uid"},
		"10.0.0.7": {NIC: "net1", NamespacedName: "d/live", PodUID: "u1"},
	}
	live := LivePods{"d/live": "u1", "d/recreated": "new", "d/no-uid": "u5"}
	got := Orphans("p", allocs, live)
	var ips, reasons []string
	for _, o := range got {
		ips = append(ips, o.IP.String())
		reasons = append(reasons, o.Reason)
		if o.Pool != "p" || o.Allocation != allocs[o.IP.String()] {
			t.Errorf("orphan %+v does not carry its pool and record", o)
		}
	}
	if strings.Join(ips, ",") != "10.0.0.3,10.0.0.4,10.0.0.6" {
		t.Fatalf("orphans %v", ips)
	}
	for i, want := range []string{"pod d/gone no longer exists", "pod d/recreated is now UID new; the address was given to UID old", "pod d/gone-no-uid no longer exists"} {
		if reasons[i] != want {
			t.Errorf("reason %q, want %q", reasons[i], want)
		}
	}
	if len(Orphans("p", allocs, LivePods{"d/live": "u1", "d/recreated": "old", "d/no-uid": "", "d/gone": "u2", "d/gone-no-uid": "x"})) != 0 {
		t.Error("listed orphans while every pod lives")
	}
}

func TestGraceFreesOnlyAfterThePeriodContinuously(t *testing.T) {
	t0 := time.Unix(1000, 0)
	o := func(ip string) Orphan {
		return Orphan{Pool: "p", IP: netip.MustParseAddr(ip), Allocation: spv2.PoolIPAllocation{NIC: "eth0", NamespacedName: "d/" + ip, PodUID: "u"}}
	}
	g := &Grace{Period: 30 * time.Second}
	steps := []struct {
		at      time.Duration
		orphans []Orphan
		due     string
	}{
		{0, []Orphan{o("10.0.0.2"), o("10.0.0.3")}, ""},
		{10 * time.Second, []Orphan{o("10.0.0.2"), o("10.0.0.3")}, ""},
		{20 * time.Second, []Orphan{o("10.0.0.2")}, ""},                        // .3 came back: forgotten
		{30 * time.Second, []Orphan{o("10.0.0.2"), o("10.0.0.3")}, "10.0.0.2"}, // .3 starts again
		{59 * time.Second, []Orphan{o("10.0.0.3")}, ""},
		{60 * time.Second, []Orphan{o("10.0.0.3")}, "10.0.0.3"},
	}
	for _, s := range steps {
		var due []string
		for _, d := range g.Due(t0.Add(s.at), s.orphans) {
			due = append(due, d.IP.String())
		}
		if strings.Join(due, ",") != s.due {
			t.Fatalf("at %v due %v, want %q", s.at, due, s.due)
		}
	}
	// The same address given to another pod is another orphan with its own clock.
	g = &Grace{Period: time.Second}
	a := o("10.0.0.2")
	g.Due(t0, []Orphan{a})
	b := a
	b.Allocation.PodUID = "other"
	if len(g.Due(t0.Add(2*time.Second), []Orphan{b})) != 0 || g.Pending() != 1 {
		t.Fatal("a changed record inherited the old record's clock")
	}
	if got := (&Grace{}).Due(t0, []Orphan{a}); len(got) != 1 {
		t.Fatal("zero grace did not free at once")
	}
}

// TestCollectableKeepsTheAddressesOfADownNode pins node failure: a pod force-deleted from a node that is
// down keeps its address until the node is back, or until the operator's timeout; finished pods release
// after their grace period; records without a node, and of a node that is gone, are orphans as before.
func TestCollectableKeepsTheAddressesOfADownNode(t *testing.T) {
	now := time.Unix(10000, 0)
	allocs := spv2.PoolIPAllocations{
		"10.0.0.2": {NIC: "eth0", NamespacedName: "d/on-down-node", PodUID: "u2", Node: "n-down"},
		"10.0.0.3": {NIC: "eth0", NamespacedName: "d/on-up-node", PodUID: "u3", Node: "n-up"},
		"10.0.0.4": {NIC: "eth0", NamespacedName: "d/on-deleted-node", PodUID: "u4", Node: "n-deleted"},
		"10.0.0.5": {NIC: "eth0", NamespacedName: "d/no-node", PodUID: "u5"},
		"10.0.0.6": {NIC: "eth0", NamespacedName: "d/succeeded", PodUID: "u6", Node: "n-down"},
		"10.0.0.7": {NIC: "eth0", NamespacedName: "d/running", PodUID: "u7", Node: "n-down"},
	}
	c := Cluster{
		Pods:     LivePods{"d/succeeded": "u6", "d/running": "u7"},
		Finished: map[string]FinishedPod{"d/succeeded": {UID: "u6", Phase: "Succeeded", Grace: 30 * time.Second}},
		Nodes: map[string]NodeState{
			"n-down": {Up: false, Since: now.Add(-5 * time.Minute), Why: "NotReady"},
			"n-up":   {Up: true},
		},
		Now: now,
	}
	ips := func(os []Orphan) string {
		var out []string
		for _, o := range os {
			out = append(out, o.IP.String())
		}
		return strings.Join(out, ",")
	}
	orphans, held := Collectable("p", allocs, c)
	if got := ips(orphans); got != "10.0.0.3,10.0.0.4,10.0.0.5,10.0.0.6" {
		t.Errorf("orphans %s", got)
	}
	if got := ips(held); got != "10.0.0.2" {
		t.Errorf("held %s", got)
	}
	if !strings.Contains(held[0].Reason, "node n-down is down (NotReady) for 5m0s") {
		t.Errorf("held reason %q", held[0].Reason)
	}
	for _, o := range orphans {
		if o.IP.String() == "10.0.0.6" && (o.Delay != 30*time.Second || o.Reason != "pod d/succeeded is Succeeded") {
			t.Errorf("finished pod: %+v", o)
		}
	}
	// The operator's timeout: shorter than the time down frees, longer keeps.
	c.NodeLostAfter = 10 * time.Minute
	if _, held := Collectable("p", allocs, c); ips(held) != "10.0.0.2" {
		t.Errorf("held before the timeout: %s", ips(held))
	}
	c.NodeLostAfter = 4 * time.Minute
	orphans, held = Collectable("p", allocs, c)
	if len(held) != 0 || !strings.Contains(ips(orphans), "10.0.0.2") {
		t.Errorf("after the timeout: orphans %s, held %s", ips(orphans), ips(held))
	}
	// A finished pod waits its grace on top of the collector's.
	g := &Grace{Period: time.Minute}
	fin := []Orphan{{Pool: "p", IP: netip.MustParseAddr("10.0.0.6"), Allocation: allocs["10.0.0.6"], Delay: 30 * time.Second}}
	g.Due(now, fin)
	if len(g.Due(now.Add(time.Minute), fin)) != 0 || len(g.Due(now.Add(90*time.Second), fin)) != 1 {
		t.Error("a finished pod's address must wait the grace period plus its own")
	}
}

// TestGraceWaitsForTheNodeToRenewAfterThePodWent pins the case a short grace period would miss: a
// kubelet stops, and its pod is force-deleted before the node's Lease expires. The node still looks up,
// but it has renewed nothing since the orphan appeared, so the address is not freed; once the Lease
// expires, Collectable holds it for the down node. A node that renews after the orphan appeared frees
// it after the grace period as before.
func TestGraceWaitsForTheNodeToRenewAfterThePodWent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	allocs := spv2.PoolIPAllocations{"10.0.0.2": {NIC: "eth0", NamespacedName: "d/gone", PodUID: "u", Node: "n"}}
	g := &Grace{Period: 5 * time.Second}
	pass := func(at time.Duration, node NodeState) (due, held int) {
		orphans, h := Collectable("p", allocs, Cluster{Pods: LivePods{}, Nodes: map[string]NodeState{"n": node}, Now: t0.Add(at)})
		return len(g.Due(t0.Add(at), orphans)), len(h)
	}
	stopped := t0.Add(-time.Second) // the kubelet's last renewal, just before the pod was deleted
	for _, at := range []time.Duration{0, 10 * time.Second, 30 * time.Second} {
		if due, _ := pass(at, NodeState{Up: true, Renewed: stopped}); due != 0 {
			t.Fatalf("at %v: freed although node n renewed nothing since the pod went", at)
		}
	}
	if due, held := pass(45*time.Second, NodeState{Since: stopped, Renewed: stopped, Why: "Lease expired"}); due != 0 || held != 1 {
		t.Fatalf("Lease expired: due %d held %d, want the address held", due, held)
	}
	// Back: the kubelet renews; the orphan's clock starts again, and it is freed after the grace period.
	back := t0.Add(60 * time.Second)
	if due, _ := pass(61*time.Second, NodeState{Up: true, Renewed: back}); due != 0 {
		t.Fatal("freed before the grace period")
	}
	if due, _ := pass(70*time.Second, NodeState{Up: true, Renewed: t0.Add(69 * time.Second)}); due != 1 {
		t.Fatal("not freed after the node renewed and the grace period passed")
	}
	// Without a Lease (Renewed zero) the grace period alone decides, as before.
	g = &Grace{Period: 5 * time.Second}
	pass(0, NodeState{Up: true})
	if due, _ := pass(6*time.Second, NodeState{Up: true}); due != 1 {
		t.Fatal("a node without a Lease held the address")
	}
}
