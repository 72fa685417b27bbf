package cache

import (
	"math"
	"strings"
	"testing"

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
			// A selector that is no selector is pool choice's Problem; addresses that cannot be counted
			// are the cache's Uncountable. Either makes the pool unusable for placement.
			if got := p.Problem + p.Uncountable; (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("problem %q, want %q", got, tc.problem)
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
