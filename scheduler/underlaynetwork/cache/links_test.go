package cache

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// infos wraps nodes as the scheduler's snapshot does: one NodeInfo per node, kept across cycles, whose
// node object is replaced on updates.
func infos(nodes []*v1.Node, into []fwk.NodeInfo) []fwk.NodeInfo {
	for len(into) < len(nodes) {
		into = append(into, framework.NewNodeInfo())
	}
	into = into[:len(nodes)]
	for i, n := range nodes {
		if n == nil {
			into[i] = framework.NewNodeInfo()
			continue
		}
		into[i].SetNode(n)
	}
	return into
}

func TestLinksAllUp(t *testing.T) {
	mk := func(name, state string) *v1.Node {
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"underlay.underlink.io/ens224": state}}}
	}
	nodes := []*v1.Node{mk("a", "up"), mk("b", "up"), mk("c", "up")}
	reads := 0
	up := func(n *v1.Node) bool { reads++; return n.Labels["underlay.underlink.io/ens224"] == "up" }
	l := NewLinks()
	var ni []fwk.NodeInfo
	all := func() bool { ni = infos(nodes, ni); return l.AllUp("ens224", ni, up) }

	if !all() || reads != 3 {
		t.Fatalf("first scan: reads %d", reads)
	}
	if !all() || reads != 3 {
		t.Errorf("unchanged nodes were read again: %d reads", reads)
	}
	nodes[1] = mk("b", "down") // an update is a new object
	if all() || reads != 4 {
		t.Errorf("link down on b not seen (reads %d)", reads)
	}
	if all() || reads != 4 {
		t.Errorf("second scan with b down: reads %d", reads)
	}
	nodes[1] = mk("b", "up")
	if !all() {
		t.Error("b up again not seen")
	}
	nodes = append(nodes, mk("d", "down")) // a node joined: the scan starts over
	if all() {
		t.Error("new node with its link down not seen")
	}
	nodes[3] = nil // the framework may hold a node without its object; it is skipped
	if !all() {
		t.Error("a nil node counted as down")
	}
	if l.AllUp("ens256", ni, func(*v1.Node) bool { return false }) {
		t.Error("NIC sets share results")
	}
}

func BenchmarkLinksAllUp(b *testing.B) {
	var nodes []*v1.Node
	for i := 0; i < 1000; i++ {
		nodes = append(nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint(i), Labels: map[string]string{"underlay.underlink.io/ens224": "up"}}})
	}
	l := NewLinks()
	up := func(n *v1.Node) bool { return n.Labels["underlay.underlink.io/ens224"] == "up" }
	ni := infos(nodes, nil)
	changed := make([]*v1.Node, len(nodes))
	for i := range nodes {
		changed[i] = nodes[i].DeepCopy()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ni[i%1000].SetNode(changed[i%1000]) // one node object changes per cycle, as heartbeats do
		changed[i%1000], nodes[i%1000] = nodes[i%1000], changed[i%1000]
		if !l.AllUp("ens224", ni, up) {
			b.Fatal("not all up")
		}
	}
}
