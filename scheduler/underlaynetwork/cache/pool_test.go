package cache

import (
	"errors"
	"math"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/test"
)

func ptr[T any](v T) *T { return &v }

func seedPool(t *testing.T) *spv2.SpiderIPPool {
	t.Helper()
	p := &spv2.SpiderIPPool{}
	test.DecodeSeed(t, "cluster-a-ippool.yaml", p)
	p.ResourceVersion = "10"
	return p
}

// allocated returns a status.allocatedIPs string holding the given uids, one address each.
func allocated(t *testing.T, uids ...string) *string {
	t.Helper()
	a := spv2.PoolIPAllocations{}
	for i, uid := range uids {
		a["172.110.1."+string(rune('1'+i))] = spv2.PoolIPAllocation{NIC: "eth0", NamespacedName: "default/p" + uid, PodUID: uid}
	}
	s, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewPool(t *testing.T) {
	seed := seedPool(t)

	withHolders := seed.DeepCopy()
	withHolders.Status.AllocatedIPs = allocated(t, "a", "a", "b")
	withHolders.Status.AllocatedIPCount = ptr(int64(3))

	excluded := seed.DeepCopy()
	excluded.Spec.IPs = []string{"172.110.1.1-172.110.1.10"}
	excluded.Spec.ExcludeIPs = []string{"172.110.1.9-172.110.1.10"}
	excluded.Spec.Gateway = ptr("172.110.1.1")

	malformedWithCount := seed.DeepCopy()
	malformedWithCount.Status.AllocatedIPs = ptr(`{"172.110.1.1":`)
	malformedWithCount.Status.AllocatedIPCount = ptr(int64(150))

	malformed := seed.DeepCopy()
	malformed.Status.AllocatedIPs = ptr(`not json`)

	badIPsWithTotal := seed.DeepCopy()
	badIPsWithTotal.Spec.IPs = []string{"172.110.1.300"}
	badIPsWithTotal.Status.TotalIPCount = ptr(int64(50))

	badIPs := seed.DeepCopy()
	badIPs.Spec.IPs = []string{"172.110.1.300"}

	v6 := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: spv2.IPPoolSpec{Subnet: "fd00::/64", IPs: []string{"fd00::1-fd00::ffff:ffff:ffff:ffff"}}}

	badAffinity := seed.DeepCopy()
	badAffinity.Spec.NodeAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "Near"}}}

	for _, tc := range []struct {
		name          string
		in            *spv2.SpiderIPPool
		total, alloc  int64
		holdersKnown  bool
		family        int
		problem, note string
	}{
		{name: "seed pool: 200 addresses, gateway outside the range", in: seed, total: 200, holdersKnown: true, family: 4},
		{name: "allocations are counted per address and per pod", in: withHolders, total: 200, alloc: 3, holdersKnown: true, family: 4},
		{name: "excludeIPs and gateway are not given out", in: excluded, total: 7, holdersKnown: true, family: 4},
		{name: "malformed allocatedIPs falls back to allocatedIPCount", in: malformedWithCount, total: 200, alloc: 150, family: 4, note: "using status.allocatedIPCount 150"},
		{name: "malformed allocatedIPs without a count makes the pool unusable", in: malformed, total: 200, family: 4, problem: "status.allocatedIPs is not a JSON object"},
		{name: "unreadable spec.ips falls back to totalIPCount", in: badIPsWithTotal, total: 50, holdersKnown: true, family: 4, note: "spec.ips"},
		{name: "unreadable spec.ips without totalIPCount makes the pool unusable", in: badIPs, holdersKnown: true, family: 4, problem: `cannot count its addresses: spec.ips: "172.110.1.300" is not an IP address`},
		{name: "an IPv6 /64 is counted without overflow", in: v6, total: math.MaxInt64, holdersKnown: true, family: 6},
		{name: "a node affinity that is no selector makes the pool unusable", in: badAffinity, total: 200, holdersKnown: true, family: 4, problem: "spec.nodeAffinity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool(tc.in)
			if p.Total != tc.total || p.Allocated != tc.alloc || p.HoldersKnown != tc.holdersKnown || p.Family != tc.family {
				t.Errorf("got total %d allocated %d holdersKnown %v family %d; want %d %d %v %d", p.Total, p.Allocated, p.HoldersKnown, p.Family, tc.total, tc.alloc, tc.holdersKnown, tc.family)
			}
			if (tc.problem == "") != (p.Problem == "") || !strings.Contains(p.Problem, tc.problem) {
				t.Errorf("problem %q, want %q", p.Problem, tc.problem)
			}
			if tc.note != "" && !strings.Contains(strings.Join(p.Notes, "|"), tc.note) {
				t.Errorf("notes %q, want %q", p.Notes, tc.note)
			}
		})
	}
	if p := NewPool(withHolders); p.Held("a") != 2 || p.Held("b") != 1 || p.Held("c") != 0 {
		t.Errorf("Held: a=%d b=%d c=%d", p.Held("a"), p.Held("b"), p.Held("c"))
	}
}

func TestEligibleOnNode(t *testing.T) {
	rackA := seedPool(t)
	rackA.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "a"}}
	named := seedPool(t)
	named.Spec.NodeName = []string{"node-1"}
	node := func(name, rack string) *v1.Node {
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"rack": rack}}}
	}
	for _, tc := range []struct {
		name   string
		pool   *spv2.SpiderIPPool
		node   *v1.Node
		ok     bool
		reason string
	}{
		{name: "unscoped pool is everywhere", pool: seedPool(t), node: node("node-9", "z"), ok: true},
		{name: "affinity matches", pool: rackA, node: node("node-9", "a"), ok: true},
		{name: "affinity does not match", pool: rackA, node: node("node-9", "b"), reason: "spec.nodeAffinity"},
		{name: "node name listed", pool: named, node: node("node-1", ""), ok: true},
		{name: "node name not listed", pool: named, node: node("node-2", ""), reason: "spec.nodeName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := NewPool(tc.pool).EligibleOnNode(tc.node)
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("got %v %q, want %v %q", ok, reason, tc.ok, tc.reason)
			}
		})
	}
}

func TestAdmitsPod(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "p", Labels: map[string]string{"app": "web"}}}
	nsLabels := func(ns string) (map[string]string, error) {
		if ns == "team-a" {
			return map[string]string{"tier": "prod"}, nil
		}
		return nil, errors.New("namespace not found")
	}
	mk := func(f func(*spv2.IPPoolSpec)) *spv2.SpiderIPPool {
		p := seedPool(t)
		f(&p.Spec)
		return p
	}
	for _, tc := range []struct {
		name    string
		pool    *spv2.SpiderIPPool
		pod     *v1.Pod
		ok      bool
		because string
	}{
		{name: "no limits", pool: seedPool(t), pod: pod, ok: true},
		{name: "namespace listed", pool: mk(func(s *spv2.IPPoolSpec) { s.NamespaceName = []string{"team-a"} }), pod: pod, ok: true},
		{name: "namespace not listed", pool: mk(func(s *spv2.IPPoolSpec) { s.NamespaceName = []string{"team-b"} }), pod: pod, because: "limited to namespaces [team-b] (spec.namespaceName)"},
		{name: "pod affinity", pool: mk(func(s *spv2.IPPoolSpec) {
			s.PodAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}
		}), pod: pod, because: "admits only pods matching app=db (spec.podAffinity)"},
		{name: "multus name", pool: mk(func(s *spv2.IPPoolSpec) { s.MultusName = []string{"kube-system/other"} }), pod: pod, because: "(spec.multusName)"},
		{name: "multus name listed", pool: mk(func(s *spv2.IPPoolSpec) { s.MultusName = []string{"kube-system/macvlan-conf"} }), pod: pod, ok: true},
		{name: "bare multus name is in Multus' namespace", pool: mk(func(s *spv2.IPPoolSpec) { s.MultusName = []string{"macvlan-conf"} }), pod: pod, ok: true},
		{name: "namespace affinity matches", pool: mk(func(s *spv2.IPPoolSpec) {
			s.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}
		}), pod: pod, ok: true},
		{name: "namespace that cannot be read is named", pool: mk(func(s *spv2.IPPoolSpec) {
			s.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}
		}),
			pod: &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "gone"}}, because: "namespace gone could not be read: namespace not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, because := NewPool(tc.pool).AdmitsPod(tc.pod, "kube-system/macvlan-conf", nsLabels)
			if ok != tc.ok || !strings.Contains(because, tc.because) || (tc.ok && because != "") {
				t.Errorf("got %v %q, want %v %q", ok, because, tc.ok, tc.because)
			}
		})
	}
}

func TestMayHelp(t *testing.T) {
	base := seedPool(t)
	base.Status.AllocatedIPs = allocated(t, "a", "b")
	mut := func(f func(*spv2.SpiderIPPool)) *Pool {
		p := base.DeepCopy()
		f(p)
		return NewPool(p)
	}
	for _, tc := range []struct {
		name     string
		old, new *Pool
		want     bool
	}{
		{name: "a new pool", new: NewPool(base), want: true},
		{name: "an address released", old: NewPool(base), new: mut(func(p *spv2.SpiderIPPool) { p.Status.AllocatedIPs = allocated(t, "a") }), want: true},
		{name: "ips grew", old: NewPool(base), new: mut(func(p *spv2.SpiderIPPool) { p.Spec.IPs = []string{"172.110.1.1-172.110.1.250"} }), want: true},
		{name: "an address allocated", old: NewPool(base), new: mut(func(p *spv2.SpiderIPPool) { p.Status.AllocatedIPs = allocated(t, "a", "b", "c") })},
		{name: "nothing that matters changed", old: NewPool(base), new: mut(func(p *spv2.SpiderIPPool) { p.Spec.Routes = []spv2.Route{{Dst: "10.6.0.0/16", Gw: "172.110.1.254"}} })},
		{name: "re-enabled", old: mut(func(p *spv2.SpiderIPPool) { p.Spec.Disable = ptr(true) }), new: NewPool(base), want: true},
		{name: "node affinity changed", old: NewPool(base), new: mut(func(p *spv2.SpiderIPPool) {
			p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
		}), want: true},
		{name: "deleted", old: NewPool(base)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MayHelp(tc.old, tc.new); got != tc.want {
				t.Errorf("MayHelp = %v, want %v", got, tc.want)
			}
		})
	}
}
