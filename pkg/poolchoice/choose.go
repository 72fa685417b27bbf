package poolchoice

import (
	"fmt"
	"net/netip"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// Subject is one pod interface asking for addresses, with everything pool eligibility reads of the pod.
type Subject struct {
	// Namespace and Pod name the pod.
	Namespace, Pod string
	// Interface is the pod interface, e.g. eth0 or net1.
	Interface string
	// Network is the network ("namespace/name") the pod's Multus annotations attach on Interface
	// (podnet.NetworkOn), or "" when they attach none there; spec.multusName is checked against it.
	Network string
	// PodLabels and PodAnnotations are the pod's.
	PodLabels, PodAnnotations map[string]string
	// NamespaceLabels are the labels of the pod's namespace. With NamespaceUnknown they could not be
	// read (admission without the Namespace object): spec.namespaceAffinity is then not checked, and the
	// caller says so.
	NamespaceLabels  map[string]string
	NamespaceUnknown bool
}

// Node is the node a pod's addresses are for.
type Node struct {
	Name   string
	Labels map[string]string
	// Addrs are the addresses of the node's NICs, by NIC name, for networks with matchMasterSubnet. A
	// NIC that is not in the map is not known (the scheduler reads what underlink-agent published), and
	// pools are then not checked against it; a NIC in the map with no address is known to have none.
	Addrs map[string][]netip.Prefix
}

// Pools is what choice reads of the cluster's pools.
type Pools interface {
	// Pool returns the pool named name.
	Pool(name string) (*Pool, bool)
	// Defaults returns the pools of family with spec.default: true, in the order they are tried
	// (OrderDefaults).
	Defaults(family int) []*Pool
}

// Index is Pools over a fixed list.
type Index struct {
	byName   map[string]*Pool
	defaults map[int][]*Pool
}

// NewIndex indexes pools.
func NewIndex(pools []*Pool) *Index {
	ix := &Index{byName: make(map[string]*Pool, len(pools)), defaults: map[int][]*Pool{}}
	for _, p := range pools {
		ix.byName[p.Name] = p
		if p.Default {
			ix.defaults[p.Family] = append(ix.defaults[p.Family], p)
		}
	}
	for _, ds := range ix.defaults {
		OrderDefaults(ds)
	}
	return ix
}

// IndexOf reads and indexes SpiderIPPools.
func IndexOf(pools []*spv2.SpiderIPPool) *Index {
	pls := make([]*Pool, len(pools))
	for i, p := range pools {
		pls[i] = NewPool(p)
	}
	return NewIndex(pls)
}

// Pool implements Pools.
func (ix *Index) Pool(name string) (*Pool, bool) { p, ok := ix.byName[name]; return p, ok }

// Defaults implements Pools.
func (ix *Index) Defaults(family int) []*Pool { return ix.defaults[family] }

// NetworkPools are the pools a network's configuration names, and where: a NAD's ipam section, or a
// SpiderMultusConfig's spec.macvlan.ippools.
type NetworkPools struct {
	Names
	// IPv4Field and IPv6Field name the two lists in messages; empty means the CNI configuration's
	// "ipam.ipv4Pools" and "ipam.ipv6Pools".
	IPv4Field, IPv6Field string
	// MatchMaster, when not empty, is the host NIC the network's interfaces are made on, and asks for
	// Spiderpool's matchMasterSubnet: on a node, a pool serves only when its spec.subnet holds an
	// address of that NIC.
	MatchMaster string
}

func (n NetworkPools) field(family int) string {
	switch {
	case family == 4 && n.IPv4Field != "":
		return n.IPv4Field
	case family == 6 && n.IPv6Field != "":
		return n.IPv6Field
	}
	return fmt.Sprintf("ipam.ipv%dPools", family)
}

// Plan is where one pod interface's addresses come from: one address per family, from the first pool of
// that family's list that can give one.
type Plan struct {
	Interface string
	// Source is where the pools were named (SourcePodIPPools, ..., SourceDefault), for messages.
	Source string
	// CleanGateway asks for no default route (an ipam.spidernet.io/ippools item's cleangateway).
	CleanGateway bool
	// MatchMaster is the network's NetworkPools.MatchMaster: OnNode keeps only the pools whose subnet
	// holds an address of that NIC on the node.
	MatchMaster string
	Families    []FamilyPlan
}

// FamilyPlan is the ordered list of eligible pools for one address family.
type FamilyPlan struct {
	Family int
	// Pools are tried in order: the next one is used when one is exhausted or refused.
	Pools []*Pool
	// Rejected are the candidates skipped as ineligible, and why.
	Rejected []Rejection
}

// Names are the names of fp's pools, in order.
func (fp FamilyPlan) Names() []string {
	out := make([]string, len(fp.Pools))
	for i, p := range fp.Pools {
		out[i] = p.Name
	}
	return out
}

// Candidates makes the plan of the pod interface s before a node is known: the pools the annotations
// choose, else the network's, else the defaults, each family's list keeping the pools that serve the
// pod (AdmitsPod). The network's pools must exist and be of their family even when an annotation
// overrides them, so a bad network fails on every pod. Errors are a *ConfigError naming the field, or a
// *NoPoolError when a family has no candidate left; with a *NoPoolError or a missing default pool the
// returned plan still says where the pools were to come from (Source).
func (a Annotations) Candidates(s Subject, network NetworkPools, pools Pools) (Plan, error) {
	for _, fam := range []struct {
		family int
		names  []string
	}{{4, network.IPv4}, {6, network.IPv6}} {
		for i, name := range fam.names {
			if err := named(pools, name, fam.family, &ConfigError{Field: fmt.Sprintf("%s[%d]", network.field(fam.family), i), Value: name}); err != nil {
				return Plan{}, err
			}
		}
	}
	choice, chosen, err := a.For(s.Interface)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{Interface: s.Interface, MatchMaster: network.MatchMaster}
	var v4, v6 []*Pool
	switch {
	case chosen:
		plan.Source, plan.CleanGateway = choice.Source(), choice.CleanGateway
		if v4, err = namedList(pools, choice.IPv4, 4, func(i int) *ConfigError {
			return &ConfigError{Annotation: choice.Annotation, Field: choice.field(4, i)}
		}); err != nil {
			return Plan{}, err
		}
		if v6, err = namedList(pools, choice.IPv6, 6, func(i int) *ConfigError {
			return &ConfigError{Annotation: choice.Annotation, Field: choice.field(6, i)}
		}); err != nil {
			return Plan{}, err
		}
	case !network.Empty():
		plan.Source = SourceNetwork
		v4, _ = namedList(pools, network.IPv4, 4, nil) // checked above
		v6, _ = namedList(pools, network.IPv6, 6, nil)
	default:
		plan.Source = SourceDefault
		v4, v6 = pools.Defaults(4), pools.Defaults(6)
		if len(v4)+len(v6) == 0 {
			return plan, &ConfigError{Field: "ipam", Msg: "no SpiderIPPool to allocate from: the pod names none (annotations " +
				spv2.AnnoPodIPPools + ", " + spv2.AnnoPodIPPool + "), the network's configuration names none, and no SpiderIPPool has spec.default: true",
				Fix: "name pools in the network's configuration or in a pod annotation, or set spec.default: true on a pool"}
		}
	}
	for _, fam := range []struct {
		family int
		pools  []*Pool
	}{{4, v4}, {6, v6}} {
		if len(fam.pools) == 0 {
			continue
		}
		fp := FamilyPlan{Family: fam.family}
		seen := map[string]bool{}
		for _, pl := range fam.pools {
			if seen[pl.Name] {
				continue
			}
			seen[pl.Name] = true
			if r := pl.AdmitsPod(s); r != nil {
				fp.Rejected = append(fp.Rejected, *r)
				continue
			}
			fp.Pools = append(fp.Pools, pl)
		}
		if len(fp.Pools) == 0 {
			return plan, &NoPoolError{Interface: s.Interface, Family: fam.family, Source: plan.Source, Rejections: fp.Rejected}
		}
		plan.Families = append(plan.Families, fp)
	}
	return plan, nil
}

// namedList looks up the pools of one family of a named list; at(i) is the error to fill for entry i.
func namedList(pools Pools, names []string, family int, at func(i int) *ConfigError) ([]*Pool, error) {
	out := make([]*Pool, 0, len(names))
	for i, name := range names {
		if at != nil {
			e := at(i)
			e.Value = name
			if err := named(pools, name, family, e); err != nil {
				return nil, err
			}
		}
		if pl, ok := pools.Pool(name); ok {
			out = append(out, pl)
		}
	}
	return out, nil
}

// MsgNoSuchPool is the message of a *ConfigError for a named pool that does not exist.
const MsgNoSuchPool = "no SpiderIPPool of that name exists"

// named checks that the pool a list names exists and is of the list's family; e carries the field.
func named(pools Pools, name string, family int, e *ConfigError) error {
	pl, ok := pools.Pool(name)
	switch {
	case !ok:
		e.Msg, e.Fix = MsgNoSuchPool, "create it or fix the name"
	case pl.Family != family:
		e.Msg, e.Fix = fmt.Sprintf("SpiderIPPool is IPv%d, listed as IPv%d", pl.Family, family), fmt.Sprintf("move it to the IPv%d list", pl.Family)
	default:
		return nil
	}
	return e
}

// OnNode narrows p to the pools that serve pods on node (Pool.OnNode, and Pool.OnMaster when the
// network matches the master's subnet). A family left without a pool is a *NoPoolError listing every
// rejection.
func (p Plan) OnNode(node Node) (Plan, error) {
	out := p
	out.Families = make([]FamilyPlan, 0, len(p.Families))
	for _, fp := range p.Families {
		nf := FamilyPlan{Family: fp.Family, Rejected: append([]Rejection(nil), fp.Rejected...)}
		for _, pl := range fp.Pools {
			if r := pl.Serves(node, p.MatchMaster); r != nil {
				nf.Rejected = append(nf.Rejected, *r)
				continue
			}
			nf.Pools = append(nf.Pools, pl)
		}
		if len(nf.Pools) == 0 {
			return Plan{}, &NoPoolError{Interface: p.Interface, Family: fp.Family, Source: p.Source, Rejections: nf.Rejected}
		}
		out.Families = append(out.Families, nf)
	}
	return out, nil
}

// Choose makes the plan of s on node, as the IPAM does at ADD: Candidates, then OnNode.
func Choose(s Subject, node Node, network NetworkPools, pools Pools) (Plan, error) {
	a, err := ParseAnnotations(s.PodAnnotations)
	if err != nil {
		return Plan{}, err
	}
	plan, err := a.Candidates(s, network, pools)
	if err != nil {
		return Plan{}, err
	}
	return plan.OnNode(node)
}
