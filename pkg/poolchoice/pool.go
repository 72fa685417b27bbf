package poolchoice

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
)

// Pool is a SpiderIPPool reduced to what choice and eligibility read, its selectors parsed once. It is
// never changed after NewPool, so it is shared without locks.
type Pool struct {
	Name string
	// Family is 4 or 6: spec.ipVersion, else the family of spec.subnet; 0 when neither says.
	Family int
	// Default is spec.default.
	Default bool
	// Disabled is spec.disable: the pool gives out no new address.
	Disabled bool
	// Deleting is set once the pool has a deletionTimestamp.
	Deleting bool
	// Problem, when not empty, is a selector that does not parse: the pool serves nobody.
	Problem string
	// Subnet is spec.subnet; invalid when it does not parse.
	Subnet netip.Prefix

	nodeNames  sets.Set[string]
	namespaces sets.Set[string]
	multus     sets.Set[string] // "namespace/name"; a bare spec.multusName entry is in Multus' namespace
	nodeSel    labels.Selector
	nsSel      labels.Selector
	podSel     labels.Selector
	// multusNames keeps spec.multusName as written, for messages.
	multusNames []string
}

// NewPool reads p. It never fails: a selector that does not parse is recorded in Problem.
func NewPool(p *spv2.SpiderIPPool) *Pool {
	pl := &Pool{
		Name:        p.Name,
		Family:      Family(p),
		Default:     p.Spec.Default != nil && *p.Spec.Default,
		Disabled:    p.Spec.Disable != nil && *p.Spec.Disable,
		Deleting:    p.DeletionTimestamp != nil,
		multusNames: slices.Clone(p.Spec.MultusName),
	}
	if sub, err := netip.ParsePrefix(strings.TrimSpace(p.Spec.Subnet)); err == nil {
		pl.Subnet = sub.Masked()
	}
	if len(p.Spec.NodeName) > 0 {
		pl.nodeNames = sets.New(p.Spec.NodeName...)
	} else {
		pl.nodeSel = pl.selector("spec.nodeAffinity", p.Spec.NodeAffinity)
	}
	if len(p.Spec.NamespaceName) > 0 {
		pl.namespaces = sets.New(p.Spec.NamespaceName...)
	} else {
		pl.nsSel = pl.selector("spec.namespaceAffinity", p.Spec.NamespaceAffinity)
	}
	pl.podSel = pl.selector("spec.podAffinity", p.Spec.PodAffinity)
	if len(p.Spec.MultusName) > 0 {
		pl.multus = sets.New[string]()
		for _, e := range p.Spec.MultusName {
			pl.multus.Insert(podnet.MultusNameKey(e))
		}
	}
	return pl
}

func (pl *Pool) selector(field string, ls *metav1.LabelSelector) labels.Selector {
	if ls == nil {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		msg := fmt.Sprintf("%s is not a valid label selector: %v", field, err)
		if pl.Problem == "" {
			pl.Problem = msg
		} else {
			pl.Problem += "; " + msg
		}
		return nil
	}
	return s
}

// Family is a pool's address family: spec.ipVersion when it is 4 or 6, else the family of spec.subnet;
// 0 when neither says.
func Family(p *spv2.SpiderIPPool) int {
	if v := p.Spec.IPVersion; v != nil && (*v == 4 || *v == 6) {
		return int(*v)
	}
	pfx, err := netip.ParsePrefix(strings.TrimSpace(p.Spec.Subnet))
	if err != nil {
		return 0
	}
	if pfx.Addr().Is4() {
		return 4
	}
	return 6
}

// NodeScoped reports whether the pool serves only some nodes (spec.nodeName or spec.nodeAffinity).
func (pl *Pool) NodeScoped() bool { return pl.nodeNames != nil || pl.nodeSel != nil }

// usable says why the pool can serve nobody, or nil.
func (pl *Pool) usable() *Rejection {
	switch {
	case pl.Problem != "":
		return &Rejection{Pool: pl.Name, Reason: pl.Problem}
	case pl.Deleting:
		return &Rejection{Pool: pl.Name, Reason: "is being deleted", Transient: true}
	case pl.Disabled:
		return &Rejection{Pool: pl.Name, Field: "spec.disable", Reason: "spec.disable is true", Transient: true}
	}
	return nil
}

// AdmitsPod says why the pool cannot serve the pod interface s (spec.namespaceName or
// spec.namespaceAffinity, spec.podAffinity, spec.multusName), or nil when it can. With
// s.NamespaceUnknown a namespace selector is not checked.
func (pl *Pool) AdmitsPod(s Subject) *Rejection {
	if r := pl.usable(); r != nil {
		return r
	}
	reject := func(field, format string, args ...any) *Rejection {
		return &Rejection{Pool: pl.Name, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case pl.namespaces != nil && !pl.namespaces.Has(s.Namespace):
		return reject("spec.namespaceName", "spec.namespaceName %v does not include namespace %q", sets.List(pl.namespaces), s.Namespace)
	case pl.nsSel != nil && !s.NamespaceUnknown && !pl.nsSel.Matches(labels.Set(s.NamespaceLabels)):
		return reject("spec.namespaceAffinity", "spec.namespaceAffinity (%s) does not match the labels of namespace %q", pl.nsSel, s.Namespace)
	case pl.podSel != nil && !pl.podSel.Matches(labels.Set(s.PodLabels)):
		return reject("spec.podAffinity", "spec.podAffinity (%s) does not match the labels of pod %q", pl.podSel, s.Namespace+"/"+s.Pod)
	case pl.multus != nil && s.Network == "":
		return reject("spec.multusName", "spec.multusName %v limits it to those networks, and the pod's annotations attach no network on %s", pl.multusNames, s.Interface)
	case pl.multus != nil && !pl.multus.Has(s.Network):
		return reject("spec.multusName", "spec.multusName %v does not include network %s of interface %s", pl.multusNames, s.Network, s.Interface)
	}
	return nil
}

// ChecksNamespaceLabels reports whether AdmitsPod reads the labels of the pod's namespace.
func (pl *Pool) ChecksNamespaceLabels() bool { return pl.nsSel != nil }

// OnNode says why the pool cannot serve pods on node (spec.nodeName, else spec.nodeAffinity), or nil
// when it can.
func (pl *Pool) OnNode(node Node) *Rejection {
	switch {
	case pl.nodeNames != nil && !pl.nodeNames.Has(node.Name):
		return &Rejection{Pool: pl.Name, Field: "spec.nodeName", Node: true,
			Reason: fmt.Sprintf("spec.nodeName %v does not include node %q", sets.List(pl.nodeNames), node.Name)}
	case pl.nodeSel != nil && !pl.nodeSel.Matches(labels.Set(node.Labels)):
		return &Rejection{Pool: pl.Name, Field: "spec.nodeAffinity", Node: true,
			Reason: fmt.Sprintf("spec.nodeAffinity (%s) does not match the labels of node %q", pl.nodeSel, node.Name)}
	}
	return nil
}

// OnMaster says why the pool cannot serve, on node, a network made on the host NIC master whose pools
// must match its subnet (Spiderpool's matchMasterSubnet): spec.subnet holds none of the NIC's addresses.
// nil when master is "", when the node's addresses of master are not known, or when the pool serves.
func (pl *Pool) OnMaster(node Node, master string) *Rejection {
	if master == "" {
		return nil
	}
	addrs, known := node.Addrs[master]
	if !known {
		return nil
	}
	var have []string
	for _, a := range addrs {
		if pl.Subnet.IsValid() && pl.Subnet.Contains(a.Addr()) {
			return nil
		}
		have = append(have, a.String())
	}
	has := "has no address"
	if len(have) > 0 {
		has = "has " + strings.Join(have, ", ")
	}
	return &Rejection{Pool: pl.Name, Field: "spec.subnet", Node: true,
		Reason: fmt.Sprintf("spec.subnet %s holds no address of master NIC %s on node %q (%s %s), and the network sets matchMasterSubnet", pl.Subnet, master, node.Name, master, has)}
}

// Serves says why the pool cannot serve pods on node, or nil: OnNode, then OnMaster.
func (pl *Pool) Serves(node Node, master string) *Rejection {
	if r := pl.OnNode(node); r != nil {
		return r
	}
	return pl.OnMaster(node, master)
}

// SameEligibility reports whether a and b serve the same pods on the same nodes.
func (pl *Pool) SameEligibility(b *Pool) bool {
	str := func(s labels.Selector) string {
		if s == nil {
			return "<all>"
		}
		return s.String()
	}
	eqSet := func(x, y sets.Set[string]) bool { return (x == nil) == (y == nil) && x.Equal(y) }
	return pl.Default == b.Default && pl.Disabled == b.Disabled && pl.Deleting == b.Deleting && pl.Problem == b.Problem &&
		pl.Family == b.Family && pl.Subnet == b.Subnet && str(pl.nodeSel) == str(b.nodeSel) && str(pl.podSel) == str(b.podSel) &&
		str(pl.nsSel) == str(b.nsSel) && eqSet(pl.nodeNames, b.nodeNames) && eqSet(pl.namespaces, b.namespaces) &&
		eqSet(pl.multus, b.multus)
}

// specificity ranks a default pool: pod affinity, then node, then namespace, then network restrictions,
// as Spiderpool orders candidates.
func (pl *Pool) specificity() int {
	r := 0
	if pl.podSel != nil {
		r += 8
	}
	if pl.NodeScoped() {
		r += 4
	}
	if pl.namespaces != nil || pl.nsSel != nil {
		r += 2
	}
	if pl.multus != nil {
		r++
	}
	return r
}

// TriedBefore reports whether default pool a is tried before b: the more specific first, then by name.
func TriedBefore(a, b *Pool) bool {
	if ra, rb := a.specificity(), b.specificity(); ra != rb {
		return ra > rb
	}
	return a.Name < b.Name
}

// OrderDefaults sorts default pools in the order they are tried (TriedBefore).
func OrderDefaults(pools []*Pool) {
	sort.Slice(pools, func(i, j int) bool { return TriedBefore(pools[i], pools[j]) })
}
