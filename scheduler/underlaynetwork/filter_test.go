package underlaynetwork

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
)

func TestFilterLinks(t *testing.T) {
	w := newWorld(t, nil)
	w.seed()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		reason string
	}{
		{name: "up", labels: nic(up)},
		{name: "down", labels: nic(down), reason: "node(s) had underlay link ens224 down"},
		{name: "no label: agent not running", labels: map[string]string{labelOf("ens256"): up}, reason: "node(s) had no link state for underlay NIC ens224 (label underlay.underlink.io/ens224 missing)"},
		{name: "unexpected value", labels: nic("unknown"), reason: "node(s) had underlay link ens224 unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.node("n", tc.labels)
			st := w.cycle(seedPod()).filter("n")
			if tc.reason == "" {
				if !st.IsSuccess() {
					t.Errorf("rejected: %v", st)
				}
				return
			}
			if st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != tc.reason {
				t.Errorf("got %v %q, want UnschedulableAndUnresolvable %q", st.Code(), st.Message(), tc.reason)
			}
		})
	}
}

// A network with a VLAN ID attaches to the VLAN sub-interface (its NAD's macvlan master), so placement
// follows that link's label, not the master's: a node with ens224 up but ens224.100 missing (the agent
// labels it down) is refused, with the sub-interface named in the reason.
func TestFilterFollowsTheVLANParent(t *testing.T) {
	w := newWorld(t, nil)
	_, smc := w.seed()
	vlan := int32(100)
	tagged := smc.DeepCopy()
	tagged.Spec.MacvlanConfig.VlanID = &vlan
	w.multusConfig(tagged)
	w.node("n", map[string]string{labelOf("ens224"): up, labelOf("ens224.100"): down})
	if st := w.cycle(seedPod()).filter("n"); st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != "node(s) had underlay link ens224.100 down" {
		t.Errorf("got %v %q", st.Code(), st.Message())
	}
	w.node("n", map[string]string{labelOf("ens224"): down, labelOf("ens224.100"): up})
	if st := w.cycle(seedPod()).filter("n"); !st.IsSuccess() {
		t.Errorf("ens224.100 up: %v", st)
	}
}

func TestFilterLabelPrefixFromArgs(t *testing.T) {
	w := newWorld(t, nil)
	w.p.args.LabelPrefix = "net.example.com/"
	w.seed()
	w.node("n", map[string]string{"net.example.com/ens224": up})
	if st := w.cycle(seedPod()).filter("n"); !st.IsSuccess() {
		t.Errorf("label with the configured prefix not honoured: %v", st)
	}
}

// TestFailedSchedulingMessage pins the message `kubectl describe pod` shows, as kube-scheduler builds it
// from the plugin's reasons.
func TestFailedSchedulingMessage(t *testing.T) {
	w := newWorld(t, nil)
	pool, _ := w.seed()
	var uids []string
	for i := 0; i < 200; i++ {
		uids = append(uids, "holder-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	pool.Status.AllocatedIPs = allocations(t, uids...)
	pool.Status.AllocatedIPCount = ptr(int64(200))
	w.pool(pool)
	w.node("node-1", nic(down))
	w.node("node-2", nic(up))
	w.node("node-3", nic(up))
	got := w.cycle(seedPod()).fitError()
	want := "0/3 nodes are available: 1 node(s) had underlay link ens224 down, 2 node(s) had no free IP in pool cluster-a (200/200 allocated)."
	if got != want {
		t.Errorf("message\n got %q\nwant %q", got, want)
	}
}

func TestFilterPools(t *testing.T) {
	rack := func(name, r string, ips string) *spv2.SpiderIPPool {
		return &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spv2.IPPoolSpec{
			Subnet: "172.110.0.0/16", IPs: []string{ips},
			NodeAffinity: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": r}},
		}}
	}
	racked := func(r string) map[string]string { l := nic(up); l["rack"] = r; return l }
	for _, tc := range []struct {
		name   string
		setup  func(w *world)
		ann    map[string]string
		node   map[string]string
		reason string
	}{
		{name: "free address in the seed pool", node: nic(up)},
		{
			name: "pool full",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Spec.IPs = []string{"172.110.1.1-172.110.1.3"}
				p.Status.AllocatedIPs = allocations(t, "x", "y", "z")
				w.pool(p)
			},
			node: nic(up), reason: "node(s) had no free IP in pool cluster-a (3/3 allocated)",
		},
		{
			name: "first candidate full, second free: the pod takes the second",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Spec.IPs = []string{"172.110.1.1"}
				p.Status.AllocatedIPs = allocations(t, "x")
				w.pool(p)
				w.pool(rack("spare", "a", "172.110.2.1-172.110.2.9"))
			},
			ann:  map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["cluster-a","spare"]}`},
			node: racked("a"),
		},
		{
			name: "pools limited to other racks",
			setup: func(w *world) {
				w.pool(rack("rack-a", "a", "172.110.2.1-172.110.2.9"))
				w.pool(rack("rack-b", "b", "172.110.3.1-172.110.3.9"))
			},
			ann:    map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["rack-a","rack-b"]}`},
			node:   racked("c"),
			reason: "node(s) didn't match the node affinity of pools rack-a (spec.nodeAffinity), rack-b (spec.nodeAffinity)",
		},
		{
			name: "eligible pool full, other pool elsewhere",
			setup: func(w *world) {
				p := rack("rack-a", "a", "172.110.2.1")
				p.Status.AllocatedIPs = allocations(t, "x")
				w.pool(p)
				w.pool(rack("rack-b", "b", "172.110.3.1-172.110.3.9"))
			},
			ann:    map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["rack-a","rack-b"]}`},
			node:   racked("a"),
			reason: "node(s) had no free IP in pool rack-a (1/1 allocated)",
		},
		{
			name: "pool limited by node name",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Spec.NodeName = []string{"other"}
				w.pool(p)
			},
			node: nic(up), reason: "node(s) didn't match the node affinity of pool cluster-a (spec.nodeName)",
		},
		{
			name: "two interfaces on a pool with one free address",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Spec.IPs = []string{"172.110.1.1-172.110.1.2"}
				p.Status.AllocatedIPs = allocations(t, "x")
				w.pool(p)
			},
			ann:    map[string]string{nadv1.NetworksAnnotation: "kube-system/macvlan-conf"},
			node:   nic(up),
			reason: "node(s) had no free IP in pool cluster-a (needed by another interface of the pod)",
		},
		{
			name: "pool status unreadable but its count is: decided from the count",
			setup: func(w *world) {
				p, _ := w.seed()
				p.Status.AllocatedIPs = ptr("{not json")
				p.Status.AllocatedIPCount = ptr(int64(200))
				w.pool(p)
			},
			node: nic(up), reason: "node(s) had no free IP in pool cluster-a (200/200 allocated)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			w.seed()
			if tc.setup != nil {
				tc.setup(w)
			}
			w.node("n", tc.node)
			ann := map[string]string{nadv1.DefaultNetworkAnnotation: "kube-system/macvlan-conf"}
			for k, v := range tc.ann {
				ann[k] = v
			}
			c := w.cycle(underlayPod(ann))
			if !c.resolved() {
				t.Fatalf("PreFilter: %v", c.pre)
			}
			st := c.filter("n")
			if tc.reason == "" {
				if !st.IsSuccess() {
					t.Errorf("rejected: %v", st)
				}
				return
			}
			if st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != tc.reason {
				t.Errorf("got %v %q\nwant UnschedulableAndUnresolvable %q", st.Code(), st.Message(), tc.reason)
			}
		})
	}
}

func TestFilterWithoutStateIsAnError(t *testing.T) {
	w := newWorld(t, nil)
	w.node("n", nic(up))
	c := &cycle{w: w, pod: seedPod(), state: w.cycle(underlayPod(nil)).state}
	if st := c.filter("n"); st.Code() != fwk.Error || !strings.Contains(st.Message(), "not found") {
		t.Errorf("got %v", st)
	}
}

// TestFilterCountsAStatefulSetPodsKeptAddressAsItsOwn: in a full pool, a StatefulSet pod recreated under
// its name fits, because one of the allocated addresses is kept for its name (its ADD takes it back); a
// pod of another name, or of that name without a StatefulSet, does not.
func TestFilterCountsAStatefulSetPodsKeptAddressAsItsOwn(t *testing.T) {
	w := newWorld(t, nil)
	p, _ := w.seed()
	p.Spec.IPs = []string{"172.110.1.1-172.110.1.3"}
	p.Status.AllocatedIPs = allocations(t, "web-0", "web-1", "x") // web-0's record has the old UID "web-0"
	w.pool(p)
	w.node("n", nic(up))
	pod := func(name string, sts bool) *v1.Pod {
		pd := seedPod()
		pd.Name = name
		if sts {
			pd.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: "sts", Controller: ptr(true)}}
		}
		return pd
	}
	for _, tc := range []struct {
		pod  *v1.Pod
		fits bool
	}{
		{pod("web-0", true), true},
		{pod("web-2", true), false},
		{pod("web-0", false), false},
	} {
		c := w.cycle(tc.pod)
		if !c.resolved() {
			t.Fatalf("PreFilter %s: %v", tc.pod.Name, c.pre)
		}
		if st := c.filter("n"); st.IsSuccess() != tc.fits {
			t.Errorf("%s (StatefulSet %v): filter %v, want fits=%v", tc.pod.Name, tc.pod.OwnerReferences != nil, st, tc.fits)
		}
	}
}

// TestFilterCountsReservedAddressesAsTaken: addresses a SpiderReservedIP reserves are taken for
// placement, and the reason says so; deleting the SpiderReservedIP frees them again.
func TestFilterCountsReservedAddressesAsTaken(t *testing.T) {
	w := newWorld(t, nil)
	p, _ := w.seed()
	p.Spec.IPs = []string{"172.110.1.1-172.110.1.3"}
	p.Status.AllocatedIPs = allocations(t, "x") // 172.110.1.1
	w.pool(p)
	w.node("n", nic(up))
	r := &spv2.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "routers", ResourceVersion: w.rv()}, Spec: spv2.ReservedIPSpec{IPs: []string{"172.110.1.1-172.110.1.3"}}}
	w.p.reservedHandlers(w.p.store).OnAdd(toUnstructured(t, r), false)
	c := w.cycle(seedPod())
	if !c.resolved() {
		t.Fatalf("PreFilter: %v", c.pre)
	}
	want := "node(s) had no free IP in pool cluster-a (3/3 taken: 1 allocated, 2 reserved by SpiderReservedIPs)"
	if st := c.filter("n"); st.IsSuccess() || st.Message() != want {
		t.Fatalf("filter = %v; want %q", st, want)
	}
	w.p.reservedHandlers(w.p.store).OnDelete(toUnstructured(t, r))
	if st := w.cycle(seedPod()).filter("n"); !st.IsSuccess() {
		t.Fatalf("after the SpiderReservedIP is deleted: %v", st)
	}
}

// A network with matchMasterSubnet is placed only where a listed pool's subnet holds an address of the
// master NIC, as underlink-agent publishes it in the node annotation; a node without the annotation is
// not refused for it (its agent has not published yet, and the ADD checks the NIC itself).
func TestFilterMatchMasterSubnet(t *testing.T) {
	w := newWorld(t, nil)
	p, smc := w.seed() // cluster-a: 172.110.1.0/24
	other := p.DeepCopy()
	other.Name, other.Spec.Subnet, other.Spec.IPs, other.Spec.Gateway = "dc2", "172.120.0.0/16", []string{"172.120.1.1-172.120.1.9"}, nil
	w.pool(other)
	match := smc.DeepCopy()
	match.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv4IPPool = []string{"cluster-a", "dc2"}
	match.Spec.MacvlanConfig.SpiderpoolConfigPools.MatchMasterSubnet = ptr(true)
	w.multusConfig(match)
	key := underlay.AddressesKey(underlay.LabelPrefix, "ens224")
	for name, addrs := range map[string]string{"in-dc1": "172.110.1.200/24", "in-dc2": "172.120.1.200/16,fd00::1/64", "elsewhere": "10.7.0.5/24"} {
		n := w.node(name, nic(up))
		n.Annotations = map[string]string{key: addrs}
	}
	w.node("unpublished", nic(up))
	c := w.cycle(seedPod())
	if !c.resolved() {
		t.Fatalf("PreFilter: %v", c.pre)
	}
	for _, n := range []string{"in-dc1", "in-dc2", "unpublished"} {
		if st := c.filter(n); !st.IsSuccess() {
			t.Errorf("%s: %v", n, st)
		}
	}
	want := "node(s) had no address of master NIC ens224 in the subnet of pools cluster-a (172.110.1.0/24), dc2 (172.120.0.0/16) (matchMasterSubnet)"
	if st := c.filter("elsewhere"); st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != want {
		t.Errorf("elsewhere: %v %q; want %q", st.Code(), st.Message(), want)
	}
}
