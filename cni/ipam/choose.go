package ipam

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
)

// Where a request's pools come from, in order of precedence.
const (
	SourcePodIPPools = "pod annotation " + spv2.AnnoPodIPPools
	SourcePodIPPool  = "pod annotation " + spv2.AnnoPodIPPool
	SourceConfig     = "CNI config ipam.ipv4Pools/ipv6Pools"
	SourceDefault    = "SpiderIPPools with spec.default: true"
)

// Subject is the pod interface a plan is made for, with everything pool eligibility looks at.
type Subject struct {
	Holder
	PodLabels       map[string]string
	PodAnnotations  map[string]string
	NamespaceLabels map[string]string
	NodeName        string
	NodeLabels      map[string]string
	// Network is the network ("namespace/name") the pod's Multus annotations attach on Holder.NIC
	// (podnet.NetworkOn), or "" when they attach none there; a pool's spec.multusName is checked
	// against it.
	Network string
}

// ConfPools are the pools the CNI network config names (api/cniconf.IPAM ipv4Pools/ipv6Pools).
type ConfPools struct {
	IPv4, IPv6 []string
}

// FamilyPlan is the ordered list of eligible pools for one address family.
type FamilyPlan struct {
	Family int
	// Pools are tried in order: the next one is used when one is exhausted or refused.
	Pools []string
	// Rejected are the named pools that were skipped as ineligible, and why.
	Rejected []Rejection
}

// Plan says where a pod interface's addresses come from: one address per family, from the first pool of
// that family's list that can give one.
type Plan struct {
	Source string
	// CleanGateway asks for no default route (annotation ipam.spidernet.io/ippools cleangateway).
	CleanGateway bool
	Families     []FamilyPlan
}

// PoolFamily is a pool's address family: spec.ipVersion, else the family of spec.subnet; 0 if neither
// can be read.
func PoolFamily(p *spv2.SpiderIPPool) int {
	if p.Spec.IPVersion != nil {
		return int(*p.Spec.IPVersion)
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

// Choose makes the plan for s: pools from the pod's annotations, else from the CNI config, else the
// default pools, each family's list filtered by eligibility. Pools named in the config or an annotation
// must exist and be of the family they are listed under; otherwise the error is a *ConfigError naming the
// field. A family whose pools are all ineligible is a *NoPoolError listing why.
func Choose(s Subject, conf ConfPools, pools []*spv2.SpiderIPPool) (Plan, error) {
	byName := make(map[string]*spv2.SpiderIPPool, len(pools))
	for _, p := range pools {
		byName[p.Name] = p
	}
	// The config is checked even when an annotation overrides it, so a bad config fails on every pod.
	if err := checkNamed(byName, "ipam.ipv4Pools", conf.IPv4, 4); err != nil {
		return Plan{}, err
	}
	if err := checkNamed(byName, "ipam.ipv6Pools", conf.IPv6, 6); err != nil {
		return Plan{}, err
	}

	plan, v4, v6, err := fromAnnotations(s)
	if err != nil {
		return Plan{}, err
	}
	switch {
	case plan.Source != "":
		field := "pod annotation " + spv2.AnnoPodIPPool
		if plan.Source == SourcePodIPPools {
			field = "pod annotation " + spv2.AnnoPodIPPools
		}
		if err := checkNamed(byName, field+" ipv4", v4, 4); err != nil {
			return Plan{}, err
		}
		if err := checkNamed(byName, field+" ipv6", v6, 6); err != nil {
			return Plan{}, err
		}
	case len(conf.IPv4)+len(conf.IPv6) > 0:
		plan.Source, v4, v6 = SourceConfig, conf.IPv4, conf.IPv6
	default:
		plan.Source = SourceDefault
		v4, v6 = defaults(pools)
		if len(v4)+len(v6) == 0 {
			return Plan{}, &ConfigError{Field: "ipam", Msg: "no SpiderIPPool to allocate from: the pod names none (annotations " +
				spv2.AnnoPodIPPools + ", " + spv2.AnnoPodIPPool + "), the network config names none (ipam.ipv4Pools, ipam.ipv6Pools), and no SpiderIPPool has spec.default: true"}
		}
	}
	for _, fam := range []struct {
		family int
		names  []string
	}{{4, v4}, {6, v6}} {
		if len(fam.names) == 0 {
			continue
		}
		fp := FamilyPlan{Family: fam.family}
		for _, name := range fam.names {
			if slices.Contains(fp.Pools, name) {
				continue
			}
			if err := Eligible(byName[name], fam.family, s); err != nil {
				fp.Rejected = append(fp.Rejected, Rejection{Pool: name, Reason: err.Error()})
				continue
			}
			fp.Pools = append(fp.Pools, name)
		}
		if len(fp.Pools) == 0 {
			return Plan{}, &NoPoolError{Family: fam.family, Source: plan.Source, Rejections: fp.Rejected}
		}
		plan.Families = append(plan.Families, fp)
	}
	return plan, nil
}

func checkNamed(byName map[string]*spv2.SpiderIPPool, field string, names []string, family int) error {
	for i, name := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		p, ok := byName[name]
		if !ok {
			return &ConfigError{Field: f, Value: name, Msg: "no SpiderIPPool of that name exists; create it or fix the name"}
		}
		if got := PoolFamily(p); got != family {
			return &ConfigError{Field: f, Value: name, Msg: fmt.Sprintf("SpiderIPPool is IPv%d (spec.subnet %s), listed as IPv%d; move it to the IPv%d list", got, p.Spec.Subnet, family, got)}
		}
	}
	return nil
}

// fromAnnotations reads the pod's pool choice: ipam.spidernet.io/ippools (per interface) before
// ipam.spidernet.io/ippool (the interface being set up). An empty Source means the pod chose nothing.
func fromAnnotations(s Subject) (plan Plan, v4, v6 []string, err error) {
	if raw, ok := s.PodAnnotations[spv2.AnnoPodIPPools]; ok {
		field := "pod annotation " + spv2.AnnoPodIPPools
		var items spv2.AnnoPodIPPoolsValue
		if err := json.Unmarshal([]byte(raw), &items); err != nil {
			return Plan{}, nil, nil, &ConfigError{Field: field, Value: raw, Msg: fmt.Sprintf(`is not a JSON list such as [{"interface":"eth0","ipv4":["pool-a"]}]: %v`, err)}
		}
		if len(items) == 0 {
			return Plan{}, nil, nil, &ConfigError{Field: field, Value: raw, Msg: "lists no interface; name at least one"}
		}
		seen := map[string]bool{}
		var mine *spv2.AnnoIPPoolItem
		for i := range items {
			it := &items[i]
			if it.NIC == "" {
				return Plan{}, nil, nil, &ConfigError{Field: fmt.Sprintf("%s[%d].interface", field, i), Msg: "is empty; every item names the pod interface it is for"}
			}
			if seen[it.NIC] {
				return Plan{}, nil, nil, &ConfigError{Field: fmt.Sprintf("%s[%d].interface", field, i), Value: it.NIC, Msg: "is listed twice"}
			}
			seen[it.NIC] = true
			if it.NIC == s.NIC {
				mine = it
			}
		}
		if mine == nil {
			return Plan{}, nil, nil, &ConfigError{Field: field, Value: raw, Msg: fmt.Sprintf("names no pools for interface %q, which the runtime is setting up", s.NIC)}
		}
		if len(mine.IPv4Pools)+len(mine.IPv6Pools) == 0 {
			return Plan{}, nil, nil, &ConfigError{Field: field, Value: raw, Msg: fmt.Sprintf("names no ipv4 or ipv6 pools for interface %q", s.NIC)}
		}
		return Plan{Source: SourcePodIPPools, CleanGateway: mine.CleanGateway}, mine.IPv4Pools, mine.IPv6Pools, nil
	}
	if raw, ok := s.PodAnnotations[spv2.AnnoPodIPPool]; ok {
		field := "pod annotation " + spv2.AnnoPodIPPool
		var v spv2.AnnoPodIPPoolValue
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return Plan{}, nil, nil, &ConfigError{Field: field, Value: raw, Msg: fmt.Sprintf(`is not a JSON object such as {"ipv4":["pool-a"]}: %v`, err)}
		}
		if len(v.IPv4Pools)+len(v.IPv6Pools) == 0 {
			return Plan{}, nil, nil, &ConfigError{Field: field, Value: raw, Msg: "names no ipv4 or ipv6 pools"}
		}
		return Plan{Source: SourcePodIPPool}, v.IPv4Pools, v.IPv6Pools, nil
	}
	return Plan{}, nil, nil, nil
}

// defaults lists the default pools per family, the most specific first (pod affinity, then node, then
// namespace, then network restrictions, as Spiderpool orders candidates), then by name.
func defaults(pools []*spv2.SpiderIPPool) (v4, v6 []string) {
	var ds []*spv2.SpiderIPPool
	for _, p := range pools {
		if p.Spec.Default != nil && *p.Spec.Default {
			ds = append(ds, p)
		}
	}
	rank := func(p *spv2.SpiderIPPool) int {
		r := 0
		if p.Spec.PodAffinity != nil {
			r += 8
		}
		if len(p.Spec.NodeName) > 0 || p.Spec.NodeAffinity != nil {
			r += 4
		}
		if len(p.Spec.NamespaceName) > 0 || p.Spec.NamespaceAffinity != nil {
			r += 2
		}
		if len(p.Spec.MultusName) > 0 {
			r++
		}
		return r
	}
	sort.SliceStable(ds, func(i, j int) bool {
		if ri, rj := rank(ds[i]), rank(ds[j]); ri != rj {
			return ri > rj
		}
		return ds[i].Name < ds[j].Name
	})
	for _, p := range ds {
		switch PoolFamily(p) {
		case 4:
			v4 = append(v4, p.Name)
		case 6:
			v6 = append(v6, p.Name)
		}
	}
	return v4, v6
}

// Eligible says why p cannot serve s for the given family, or nil if it can. spec.nodeName, when set,
// replaces spec.nodeAffinity, and spec.namespaceName replaces spec.namespaceAffinity, as in Spiderpool.
// spec.multusName, when set, must list s.Network; a bare name there is in Multus' namespace.
func Eligible(p *spv2.SpiderIPPool, family int, s Subject) error {
	if p == nil {
		return fmt.Errorf("does not exist")
	}
	if p.DeletionTimestamp != nil {
		return fmt.Errorf("is being deleted")
	}
	if p.Spec.Disable != nil && *p.Spec.Disable {
		return fmt.Errorf("spec.disable is true")
	}
	if got := PoolFamily(p); got != family {
		return fmt.Errorf("is IPv%d, not IPv%d", got, family)
	}
	if len(p.Spec.NodeName) > 0 {
		if !slices.Contains(p.Spec.NodeName, s.NodeName) {
			return fmt.Errorf("spec.nodeName %v does not include node %q", p.Spec.NodeName, s.NodeName)
		}
	} else if err := selects(p.Spec.NodeAffinity, s.NodeLabels, "spec.nodeAffinity", "node "+quote(s.NodeName)); err != nil {
		return err
	}
	if len(p.Spec.NamespaceName) > 0 {
		if !slices.Contains(p.Spec.NamespaceName, s.Namespace) {
			return fmt.Errorf("spec.namespaceName %v does not include namespace %q", p.Spec.NamespaceName, s.Namespace)
		}
	} else if err := selects(p.Spec.NamespaceAffinity, s.NamespaceLabels, "spec.namespaceAffinity", "namespace "+quote(s.Namespace)); err != nil {
		return err
	}
	if err := selects(p.Spec.PodAffinity, s.PodLabels, "spec.podAffinity", "pod "+quote(s.NamespacedName())); err != nil {
		return err
	}
	if !podnet.PoolServesNetwork(p.Spec.MultusName, s.Network) {
		if s.Network == "" {
			return fmt.Errorf("spec.multusName %v limits it to those networks, and the pod's annotations attach no network on %s", p.Spec.MultusName, s.NIC)
		}
		return fmt.Errorf("spec.multusName %v does not include network %s of interface %s", p.Spec.MultusName, s.Network, s.NIC)
	}
	return nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func selects(sel *metav1.LabelSelector, set map[string]string, field, what string) error {
	if sel == nil {
		return nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return fmt.Errorf("%s is not a valid label selector: %v", field, err)
	}
	if !selector.Matches(labels.Set(set)) {
		return fmt.Errorf("%s (%s) does not match the labels of %s", field, selector, what)
	}
	return nil
}
