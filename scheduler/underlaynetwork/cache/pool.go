// Package cache keeps what the UnderlayNetwork plugin knows between scheduling cycles: every
// SpiderIPPool reduced to its capacity and eligibility, every network (SpiderMultusConfig or
// NetworkAttachmentDefinition) reduced to its NICs and pools, and the pods placed on a pool that do not
// yet hold an address in its status (assumed by this scheduler, or bound but not yet started). It has no
// client: the plugin feeds it from informers and from the objects of cluster events, and reads it in
// PreFilter.
package cache

import (
	"fmt"
	"math"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/pkg/podnet"
)

// Pool is one SpiderIPPool as placement sees it. It is computed once per version of the object and never
// changed afterwards, so cycles share it without locks.
type Pool struct {
	// Name of the SpiderIPPool.
	Name string
	// ResourceVersion of the object the pool was computed from.
	ResourceVersion string
	// Family is 4 or 6 (0 when neither spec.ipVersion nor spec.subnet says).
	Family int
	// Total is the number of addresses pods may get: spec.ips less spec.excludeIPs and the gateway.
	Total int64
	// Allocated is the number of addresses held by pods, from status.allocatedIPs.
	Allocated int64
	// HoldersKnown is false when status.allocatedIPs could not be read and Allocated comes from
	// status.allocatedIPCount: then no pod can be matched to its address.
	HoldersKnown bool
	// Default marks a cluster default pool (spec.default).
	Default bool
	// Disabled pools give out no new address (spec.disable).
	Disabled bool
	// Problem, when not empty, says why the pool cannot be used at all, naming the field.
	Problem string
	// Notes are fields that could not be read but were worked around, for logs.
	Notes []string

	holders      map[string]int // pod UID → addresses it holds in the pool
	nodeSelector labels.Selector
	nodeNames    sets.Set[string]
	podSelector  labels.Selector
	nsSelector   labels.Selector
	namespaces   sets.Set[string]
	multusNames  sets.Set[string]
}

// NewPool computes the Pool of a SpiderIPPool. It never fails: what cannot be read is recorded in
// Problem (the pool is then unusable) or Notes (a fallback was used).
func NewPool(p *spv2.SpiderIPPool) *Pool {
	pl := &Pool{
		Name:            p.Name,
		ResourceVersion: p.ResourceVersion,
		Default:         p.Spec.Default != nil && *p.Spec.Default,
		Disabled:        p.Spec.Disable != nil && *p.Spec.Disable,
	}
	pl.Family = familyOf(p)
	pl.countTotal(p)
	pl.countAllocated(p)
	var err error
	if pl.nodeSelector, err = selector(p.Spec.NodeAffinity); err != nil {
		pl.problem("spec.nodeAffinity: %v", err)
	}
	if pl.podSelector, err = selector(p.Spec.PodAffinity); err != nil {
		pl.problem("spec.podAffinity: %v", err)
	}
	if pl.nsSelector, err = selector(p.Spec.NamespaceAffinity); err != nil {
		pl.problem("spec.namespaceAffinity: %v", err)
	}
	if len(p.Spec.NodeName) > 0 {
		pl.nodeNames = sets.New(p.Spec.NodeName...)
	}
	if len(p.Spec.NamespaceName) > 0 {
		pl.namespaces = sets.New(p.Spec.NamespaceName...)
	}
	if len(p.Spec.MultusName) > 0 {
		pl.multusNames = sets.New[string]()
		for _, e := range p.Spec.MultusName {
			pl.multusNames.Insert(podnet.MultusNameKey(e)) // a bare name is in Multus' namespace
		}
	}
	return pl
}

func (pl *Pool) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if pl.Problem == "" {
		pl.Problem = msg
	} else {
		pl.Problem += "; " + msg
	}
}

func familyOf(p *spv2.SpiderIPPool) int {
	if p.Spec.IPVersion != nil && (*p.Spec.IPVersion == 4 || *p.Spec.IPVersion == 6) {
		return int(*p.Spec.IPVersion)
	}
	if pfx, err := netip.ParsePrefix(strings.TrimSpace(p.Spec.Subnet)); err == nil {
		return iprange.FamilyOf(pfx.Addr())
	}
	return 0
}

// countTotal counts spec.ips − spec.excludeIPs − spec.gateway, the same addresses IPAM gives out. When
// the spec cannot be read it falls back to status.totalIPCount as the IPAM side wrote it.
func (pl *Pool) countTotal(p *spv2.SpiderIPPool) {
	ips, err := iprange.ParseSet(p.Spec.IPs, pl.Family)
	var excl iprange.Set
	if err == nil {
		excl, err = iprange.ParseSet(p.Spec.ExcludeIPs, pl.Family)
		if err != nil {
			err = fmt.Errorf("spec.excludeIPs: %w", err)
		}
	} else {
		err = fmt.Errorf("spec.ips: %w", err)
	}
	if err == nil {
		usable := ips.Minus(excl)
		if p.Spec.Gateway != nil {
			if gw, gerr := iprange.Parse(*p.Spec.Gateway); gerr == nil {
				usable = usable.Minus(iprange.NewSet(gw))
			}
		}
		n := usable.Size()
		if n.IsInt64() {
			pl.Total = n.Int64()
		} else {
			pl.Total = math.MaxInt64 // an IPv6 /64 never runs out
		}
		return
	}
	if p.Status.TotalIPCount != nil {
		pl.Total = *p.Status.TotalIPCount
		pl.Notes = append(pl.Notes, fmt.Sprintf("%v; using status.totalIPCount %d", err, pl.Total))
		return
	}
	pl.problem("cannot count its addresses: %v, and status.totalIPCount is not set", err)
}

// countAllocated reads status.allocatedIPs to learn which pods hold addresses. A status that cannot be
// read falls back to status.allocatedIPCount (then no pod can be matched to an address, so every pod
// placed on the pool counts as waiting for one: safe, never an overcommit).
func (pl *Pool) countAllocated(p *spv2.SpiderIPPool) {
	allocs, err := spv2.ParseAllocations(p.Status)
	if err == nil {
		pl.Allocated = int64(len(allocs))
		pl.HoldersKnown = true
		if len(allocs) > 0 {
			pl.holders = make(map[string]int, len(allocs))
			for _, a := range allocs {
				pl.holders[a.PodUID]++
			}
		}
		return
	}
	if p.Status.AllocatedIPCount != nil {
		pl.Allocated = *p.Status.AllocatedIPCount
		pl.Notes = append(pl.Notes, fmt.Sprintf("%v; using status.allocatedIPCount %d", err, pl.Allocated))
		return
	}
	pl.problem("%v, and status.allocatedIPCount is not set", err)
}

func selector(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return nil, nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// Held returns how many addresses of the pool the pod with uid holds.
func (pl *Pool) Held(uid string) int { return pl.holders[uid] }

// Capacity is Total − Allocated: the addresses no pod holds, before counting pods still starting.
func (pl *Pool) Capacity() int64 { return pl.Total - pl.Allocated }

// EligibleOnNode reports whether pods on node may take addresses from the pool (spec.nodeName and
// spec.nodeAffinity), and if not, which field excludes it.
func (pl *Pool) EligibleOnNode(node *v1.Node) (bool, string) {
	if pl.nodeNames != nil && !pl.nodeNames.Has(node.Name) {
		return false, "spec.nodeName"
	}
	if pl.nodeSelector != nil && !pl.nodeSelector.Matches(labels.Set(node.Labels)) {
		return false, "spec.nodeAffinity"
	}
	return true, ""
}

// NodeScoped reports whether the pool is limited to some nodes.
func (pl *Pool) NodeScoped() bool { return pl.nodeNames != nil || pl.nodeSelector != nil }

// AdmitsPod reports whether the pod may use the pool (spec.namespaceName, spec.namespaceAffinity,
// spec.podAffinity, spec.multusName), and if not, why. nsLabels returns the labels of the pod's
// namespace; it is only called when the pool has a namespace affinity. network is "namespace/name".
func (pl *Pool) AdmitsPod(pod *v1.Pod, network string, nsLabels func(string) (map[string]string, error)) (bool, string) {
	if pl.namespaces != nil && !pl.namespaces.Has(pod.Namespace) {
		return false, fmt.Sprintf("pool %s is limited to namespaces %v (spec.namespaceName)", pl.Name, sets.List(pl.namespaces))
	}
	if pl.podSelector != nil && !pl.podSelector.Matches(labels.Set(pod.Labels)) {
		return false, fmt.Sprintf("pool %s admits only pods matching %s (spec.podAffinity)", pl.Name, pl.podSelector)
	}
	if pl.multusNames != nil && !pl.multusNames.Has(network) {
		return false, fmt.Sprintf("pool %s is limited to networks %v (spec.multusName)", pl.Name, sets.List(pl.multusNames))
	}
	if pl.nsSelector != nil {
		nsl, err := nsLabels(pod.Namespace)
		if err != nil {
			return false, fmt.Sprintf("pool %s has spec.namespaceAffinity but namespace %s could not be read: %v", pl.Name, pod.Namespace, err)
		}
		if !pl.nsSelector.Matches(labels.Set(nsl)) {
			return false, fmt.Sprintf("pool %s admits only namespaces matching %s (spec.namespaceAffinity)", pl.Name, pl.nsSelector)
		}
	}
	return true, ""
}

// sameEligibility reports whether a and b admit the same pods on the same nodes.
func sameEligibility(a, b *Pool) bool {
	str := func(s labels.Selector) string {
		if s == nil {
			return "<all>"
		}
		return s.String()
	}
	eqSet := func(x, y sets.Set[string]) bool { return (x == nil) == (y == nil) && x.Equal(y) }
	return a.Default == b.Default && a.Disabled == b.Disabled && a.Problem == b.Problem && a.Family == b.Family &&
		str(a.nodeSelector) == str(b.nodeSelector) && str(a.podSelector) == str(b.podSelector) &&
		str(a.nsSelector) == str(b.nsSelector) && eqSet(a.nodeNames, b.nodeNames) &&
		eqSet(a.namespaces, b.namespaces) && eqSet(a.multusNames, b.multusNames)
}

// MayHelp reports whether the change from old to new can make a pod that could not get an address from
// the pool get one: the pool appeared, gained free addresses (ips grew, allocatedIPCount dropped) or
// changed whom it admits. old is nil for a new pool.
func MayHelp(old, new *Pool) bool {
	if new == nil {
		return false
	}
	if old == nil {
		return true
	}
	return new.Capacity() > old.Capacity() || !sameEligibility(old, new)
}
