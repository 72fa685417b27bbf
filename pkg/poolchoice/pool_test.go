package poolchoice

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func TestOnNode(t *testing.T) {
	rackA := pool("p", "10.0.0.0/24", func(p *spv2.SpiderIPPool) { p.Spec.NodeAffinity = sel("rack", "a") })
	named := pool("p", "10.0.0.0/24", func(p *spv2.SpiderIPPool) { p.Spec.NodeName = []string{"node-1"} })
	both := pool("p", "10.0.0.0/24", func(p *spv2.SpiderIPPool) {
		p.Spec.NodeName = []string{"node-1"}
		p.Spec.NodeAffinity = sel("rack", "b")
	})
	node := func(name, rack string) Node { return Node{Name: name, Labels: map[string]string{"rack": rack}} }
	for _, tc := range []struct {
		name  string
		pool  *spv2.SpiderIPPool
		node  Node
		field string
	}{
		{name: "unscoped pool is everywhere", pool: pool("p", "10.0.0.0/24"), node: node("node-9", "z")},
		{name: "affinity matches", pool: rackA, node: node("node-9", "a")},
		{name: "affinity does not match", pool: rackA, node: node("node-9", "b"), field: "spec.nodeAffinity"},
		{name: "node name listed", pool: named, node: node("node-1", "")},
		{name: "node name not listed", pool: named, node: node("node-2", ""), field: "spec.nodeName"},
		{name: "node name wins over affinity", pool: both, node: node("node-1", "a")},
		{name: "node name wins over affinity, also to refuse", pool: both, node: node("node-2", "b"), field: "spec.nodeName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewPool(tc.pool).OnNode(tc.node)
			switch {
			case tc.field == "" && r != nil:
				t.Errorf("refused: %v", r)
			case tc.field != "" && (r == nil || r.Field != tc.field || !r.Node):
				t.Errorf("got %+v, want a node rejection on %s", r, tc.field)
			}
		})
	}
}

func TestAdmitsPod(t *testing.T) {
	s := Subject{Namespace: "team-a", Pod: "p", Interface: "eth0", Network: "kube-system/macvlan-conf",
		PodLabels: map[string]string{"app": "web"}, NamespaceLabels: map[string]string{"tier": "prod"}}
	mk := func(f func(*spv2.IPPoolSpec)) *spv2.SpiderIPPool {
		return pool("p", "10.0.0.0/24", func(p *spv2.SpiderIPPool) { f(&p.Spec) })
	}
	unknownNS := s
	unknownNS.NamespaceLabels, unknownNS.NamespaceUnknown = nil, true
	for _, tc := range []struct {
		name      string
		pool      *spv2.SpiderIPPool
		s         Subject
		because   string
		transient bool
	}{
		{name: "no limits", pool: pool("p", "10.0.0.0/24"), s: s},
		{name: "namespace listed", pool: mk(func(x *spv2.IPPoolSpec) { x.NamespaceName = []string{"team-a"} }), s: s},
		{name: "namespace not listed", pool: mk(func(x *spv2.IPPoolSpec) { x.NamespaceName = []string{"team-b"} }), s: s, because: `spec.namespaceName [team-b] does not include namespace "team-a"`},
		{name: "namespace name wins over affinity", pool: mk(func(x *spv2.IPPoolSpec) {
			x.NamespaceName = []string{"team-a"}
			x.NamespaceAffinity = sel("tier", "dev")
		}), s: s},
		{name: "namespace affinity matches", pool: mk(func(x *spv2.IPPoolSpec) { x.NamespaceAffinity = sel("tier", "prod") }), s: s},
		{name: "namespace affinity does not match", pool: mk(func(x *spv2.IPPoolSpec) { x.NamespaceAffinity = sel("tier", "dev") }), s: s, because: "spec.namespaceAffinity (tier=dev)"},
		{name: "namespace labels unknown: not checked", pool: mk(func(x *spv2.IPPoolSpec) { x.NamespaceAffinity = sel("tier", "dev") }), s: unknownNS},
		{name: "pod affinity", pool: mk(func(x *spv2.IPPoolSpec) { x.PodAffinity = sel("app", "db") }), s: s, because: `spec.podAffinity (app=db) does not match the labels of pod "team-a/p"`},
		{name: "multus name", pool: mk(func(x *spv2.IPPoolSpec) { x.MultusName = []string{"kube-system/other"} }), s: s, because: "spec.multusName [kube-system/other] does not include network kube-system/macvlan-conf of interface eth0"},
		{name: "multus name listed", pool: mk(func(x *spv2.IPPoolSpec) { x.MultusName = []string{"kube-system/macvlan-conf"} }), s: s},
		{name: "bare multus name is in Multus' namespace", pool: mk(func(x *spv2.IPPoolSpec) { x.MultusName = []string{"macvlan-conf"} }), s: s},
		{name: "disabled", pool: mk(func(x *spv2.IPPoolSpec) { x.Disable = ptr(true) }), s: s, because: "spec.disable is true", transient: true},
		{name: "being deleted", pool: pool("p", "10.0.0.0/24", func(p *spv2.SpiderIPPool) { p.DeletionTimestamp = &metav1.Time{} }), s: s, because: "is being deleted", transient: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewPool(tc.pool).AdmitsPod(tc.s)
			if tc.because == "" {
				if r != nil {
					t.Errorf("refused: %v", r)
				}
				return
			}
			if r == nil || !strings.Contains(r.Reason, tc.because) || r.Transient != tc.transient {
				t.Errorf("got %+v, want %q (transient %v)", r, tc.because, tc.transient)
			}
		})
	}
}

func TestSameEligibility(t *testing.T) {
	base := pool("p", "10.0.0.0/24", func(p *spv2.SpiderIPPool) { p.Spec.NodeAffinity = sel("rack", "a") })
	same := base.DeepCopy()
	same.Spec.IPs = []string{"10.0.0.1-10.0.0.9"} // capacity is not eligibility
	other := base.DeepCopy()
	other.Spec.NodeAffinity = sel("rack", "b")
	if !NewPool(base).SameEligibility(NewPool(same)) {
		t.Error("a change of ips changed eligibility")
	}
	if NewPool(base).SameEligibility(NewPool(other)) {
		t.Error("a change of node affinity did not change eligibility")
	}
}
