package doctor

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/rules"
)

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// Doctor lists, per network, the nodes where the link its pods attach to is not up: the agent's label
// says down (missing or down), or no agent reports it. A network whose parent is a VLAN sub-interface
// is judged on that sub-interface, not on its master. Missing on some nodes warns; on every node fails.
func TestDoctorListsNodesWithoutTheParent(t *testing.T) {
	pool, smc := seedObjects(t)
	vlan := smc.DeepCopy()
	vlan.Name, vlan.UID = "macvlan-vlan100", "vlan-uid"
	v := int32(100)
	vlan.Spec.MacvlanConfig.VlanID = &v
	base := []client.Object{cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18"),
		pool, smc, ownedNAD(t, smc), vlan, ownedNAD(t, vlan)}

	rep := run(t, append(base,
		node("a-node1", map[string]string{"underlay.underlink.io/ens224": "up", "underlay.underlink.io/ens224.100": "up"}),
		node("a-node2", map[string]string{"underlay.underlink.io/ens224": "up", "underlay.underlink.io/ens224.100": "down"}),
		node("a-node3", map[string]string{"underlay.underlink.io/ens224": "up"}))...)
	c := check(t, rep, CheckParentsOnNodes)
	if c.Status != Warn || len(c.Findings) != 1 {
		t.Fatalf("%s is %s with %+v, want one warning", c.ID, c.Status, c.Findings)
	}
	f := c.Findings[0]
	for _, want := range []string{"attach to ens224.100", "missing or down on a-node2 (node label underlay.underlink.io/ens224.100=down)", "no underlink-agent reports ens224.100 on a-node3"} {
		if !strings.Contains(f.Why, want) {
			t.Errorf("finding %q lacks %q", f.Why, want)
		}
	}
	if f.Subject != "SpiderMultusConfig/kube-system/macvlan-vlan100" || f.Field != "spec.macvlan.vlanID" || f.Value != "ens224.100" || !strings.Contains(f.Fix, "create and bring up ens224.100") {
		t.Errorf("finding %+v", f)
	}

	// Missing everywhere: no pod of the network can start.
	rep = run(t, append(base, node("a-node1", map[string]string{"underlay.underlink.io/ens224": "up", "underlay.underlink.io/ens224.100": "down"}))...)
	if c := check(t, rep, CheckParentsOnNodes); c.Status != Fail || c.Findings[0].Severity != rules.Deny {
		t.Errorf("parent missing on every node: %s %+v", c.Status, c.Findings)
	}
	// Everywhere up passes; no nodes at all (an offline reader) has nothing to say.
	if c := check(t, run(t, append(base[:5:5], node("a-node1", map[string]string{"underlay.underlink.io/ens224": "up"}))...), CheckParentsOnNodes); c.Status != Pass {
		t.Errorf("parent up everywhere: %s %+v", c.Status, c.Findings)
	}
	if c := check(t, run(t, base...), CheckParentsOnNodes); c.Status != Pass {
		t.Errorf("no nodes: %s", c.Status)
	}
}

// An address set aside because another host answered for it is listed with the holder's MAC and how to
// clear it.
func TestDoctorListsIPConflicts(t *testing.T) {
	pool, smc := seedObjects(t)
	st := `{"172.110.1.10":{"interface":"eth0","pod":"default/web-1","podUid":"","ipConflict":{"mac":"52:54:00:12:34:56","node":"a-node1","detectedAt":"2026-12-06T05:00:00Z"}},` +
		`"172.110.1.11":{"interface":"eth0","pod":"default/web-1","podUid":"u1"}}`
	pool.Status = spv2.IPPoolStatus{AllocatedIPs: &st}
	rep := run(t, cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18"), pool, smc, ownedNAD(t, smc))
	c := check(t, rep, CheckIPConflicts)
	if c.Status != Warn || len(c.Findings) != 1 {
		t.Fatalf("%s is %s with %+v", c.ID, c.Status, c.Findings)
	}
	f := c.Findings[0]
	if f.Subject != "SpiderIPPool/cluster-a" || f.Field != "status.allocatedIPs[172.110.1.10]" || !strings.Contains(f.Why, "in use on the underlay by 52:54:00:12:34:56") ||
		!strings.Contains(f.Fix, "kubectl annotate spiderippool cluster-a underlink.io/clear-ip-conflicts=172.110.1.10") {
		t.Errorf("finding %+v", f)
	}
}
