package underlaynetwork

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/go-logr/logr"
	"github.com/underlink/underlink/api/cniconf"
	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/cni/ipam"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
	"github.com/underlink/underlink/pkg/rules"
	configv1 "github.com/underlink/underlink/scheduler/apis/config/v1"
	"github.com/underlink/underlink/webhook/netconf"
)

// The pool-choice contract, asked of all three components that read it: for every generated pod, set
// of pools and nodes, the webhook's admission (pkg/rules), this plugin's placement and the IPAM's
// allocation (cni/ipam, as underlink-agent calls it for each interface Multus creates) give the same
// answer.
//
//   - placement and allocation agree on every node: the plugin passes a node exactly when the IPAM can
//     give every underlay interface of the pod its addresses there, and it counts the pool the IPAM
//     takes from;
//   - a pod that can be allocated somewhere is admitted, and a denied pod cannot be allocated anywhere;
//   - when no pool is limited to some nodes (so admission, which runs before placement, knows all
//     that matters), a pod that cannot be allocated is denied, or admitted with a warning when only
//     a state an operator changes without touching the pod (spec.disable) stands in the way.
func TestPoolChoiceContract(t *testing.T) {
	const cases = 3000
	rng := rand.New(rand.NewPCG(15, 2026))
	failures := 0
	for i := range cases {
		c := genContractCase(rng)
		if msg := c.disagreement(t); msg != "" {
			failures++
			if failures <= 5 {
				t.Errorf("case %d: %s\n%s", i, msg, c)
			}
		}
	}
	if failures > 5 {
		t.Errorf("%d of %d cases disagree (the first 5 are shown)", failures, cases)
	}
}

// contractCase is one generated cluster and pod.
type contractCase struct {
	pools      []*spv2.SpiderIPPool
	configs    []*spv2.SpiderMultusConfig
	namespaces map[string]map[string]string
	nodes      []*v1.Node
	// hostAddrs are each node's NIC addresses as the kernel has them: the IPAM reads them, and the
	// node's annotation is what underlink-agent published of them.
	hostAddrs map[string]map[string][]netip.Prefix
	pod       *v1.Pod
}

var (
	contractNetworks = []string{"net-a", "net-b"}
	contractMasters  = map[string]string{"net-a": "ens224", "net-b": "ens256"}
	contractNodes    = []string{"node-1", "node-2"}
	contractZones    = map[string]string{"node-1": "east", "node-2": "west"}
)

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }

// someOf returns a random subset of xs in random order, possibly empty.
func someOf[T any](rng *rand.Rand, xs []T) []T {
	var out []T
	for _, i := range rng.Perm(len(xs)) {
		if rng.IntN(2) == 0 {
			out = append(out, xs[i])
		}
	}
	return out
}

func genContractCase(rng *rand.Rand) *contractCase {
	c := &contractCase{namespaces: map[string]map[string]string{
		"kube-system": {},
		"default":     {"env": pick(rng, "prod", "dev")},
		"team":        {"env": pick(rng, "prod", "dev")},
	}}
	nodeScoped := rng.IntN(2) == 0
	var poolNames []string
	for i := range 2 + rng.IntN(3) {
		name := fmt.Sprintf("pool-%d", i)
		poolNames = append(poolNames, name)
		p := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
		p.Spec.IPVersion = ptr(int64(4))
		p.Spec.Subnet = fmt.Sprintf("10.%d.0.0/24", i)
		p.Spec.IPs = []string{fmt.Sprintf("10.%d.0.10-10.%d.0.200", i, i)}
		if rng.IntN(10) == 0 {
			p.Spec.IPVersion = ptr(int64(6))
			p.Spec.Subnet = fmt.Sprintf("fd00:%d::/64", i)
			p.Spec.IPs = []string{fmt.Sprintf("fd00:%d::10-fd00:%d::200", i, i)}
		}
		p.Spec.Default = ptr(rng.IntN(3) == 0)
		p.Spec.Disable = ptr(rng.IntN(12) == 0)
		if nodeScoped {
			switch rng.IntN(4) {
			case 0:
				p.Spec.NodeName = someOf(rng, contractNodes)
			case 1:
				p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"zone": pick(rng, "east", "west")}}
			case 2: // both: spec.nodeName wins, as in Spiderpool
				p.Spec.NodeName = someOf(rng, contractNodes)
				p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"zone": pick(rng, "east", "west")}}
			}
		}
		switch rng.IntN(5) {
		case 0:
			p.Spec.NamespaceName = someOf(rng, []string{"default", "team"})
		case 1:
			p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"env": pick(rng, "prod", "dev")}}
		case 2: // both: spec.namespaceName wins, as in Spiderpool
			p.Spec.NamespaceName = someOf(rng, []string{"default", "team"})
			p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"env": pick(rng, "prod", "dev")}}
		}
		if rng.IntN(5) == 0 {
			p.Spec.PodAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"app": pick(rng, "web", "db")}}
		}
		if rng.IntN(4) == 0 {
			for _, n := range someOf(rng, contractNetworks) {
				p.Spec.MultusName = append(p.Spec.MultusName, pick(rng, n, "kube-system/"+n))
			}
		}
		c.pools = append(c.pools, p)
	}
	for _, n := range contractNetworks {
		smc := &spv2.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: n}}
		smc.Spec.CniType = ptr("macvlan")
		smc.Spec.MacvlanConfig = &spv2.SpiderMacvlanCniConfig{Master: []string{contractMasters[n]}}
		if rng.IntN(2) == 0 {
			smc.Spec.MacvlanConfig.SpiderpoolConfigPools = &spv2.SpiderpoolPools{IPv4IPPool: someOf(rng, poolNames)}
		}
		if rng.IntN(4) == 0 {
			if smc.Spec.MacvlanConfig.SpiderpoolConfigPools == nil {
				smc.Spec.MacvlanConfig.SpiderpoolConfigPools = &spv2.SpiderpoolPools{}
			}
			smc.Spec.MacvlanConfig.SpiderpoolConfigPools.MatchMasterSubnet = ptr(true)
		}
		c.configs = append(c.configs, smc)
	}
	c.hostAddrs = map[string]map[string][]netip.Prefix{}
	for j, name := range contractNodes {
		labels := map[string]string{"zone": contractZones[name]}
		annotations := map[string]string{}
		c.hostAddrs[name] = map[string][]netip.Prefix{}
		for _, nic := range contractMasters {
			labels[underlay.LabelKey(underlay.LabelPrefix, nic)] = underlay.LinkUp
			// The NIC is on some of the pools' subnets (none, one or several).
			var addrs []netip.Prefix
			for _, i := range someOf(rng, []int{0, 1, 2, 3, 4}) {
				addrs = append(addrs, netip.MustParsePrefix(fmt.Sprintf("10.%d.0.%d/24", i, 250+j)))
			}
			c.hostAddrs[name][nic] = addrs
			annotations[underlay.AddressesKey(underlay.LabelPrefix, nic)] = underlay.FormatAddresses(addrs)
		}
		c.nodes = append(c.nodes, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}})
	}

	ns := pick(rng, "default", "team")
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", UID: types.UID("uid-app"), Annotations: map[string]string{}}}
	if rng.IntN(2) == 0 {
		pod.Labels = map[string]string{"app": pick(rng, "web", "db")}
	}
	pod.Annotations[nadv1.DefaultNetworkAnnotation] = pick(rng, "net-a", "kube-system/net-a", "kube-system/net-b")
	if rng.IntN(2) == 0 {
		pod.Annotations[nadv1.NetworksAnnotation] = pick(rng, "kube-system/net-b", "kube-system/net-b@net1", "kube-system/net-a@net2",
			"kube-system/net-b, kube-system/net-a", `[{"name":"net-b","namespace":"kube-system","interface":"net1"}]`)
	}
	names := func() []string { return someOf(rng, poolNames) }
	if rng.IntN(3) == 0 {
		b, _ := json.Marshal(spv2.AnnoPodIPPoolValue{IPv4Pools: names()})
		pod.Annotations[spv2.AnnoPodIPPool] = string(b)
	}
	if rng.IntN(3) == 0 {
		var items spv2.AnnoPodIPPoolsValue
		for _, nic := range someOf(rng, []string{"eth0", "net1", "net2"}) {
			items = append(items, spv2.AnnoIPPoolItem{NIC: nic, IPv4Pools: names()})
		}
		b, _ := json.Marshal(items)
		pod.Annotations[spv2.AnnoPodIPPools] = string(b)
	}
	c.pod = pod
	return c
}

func (c *contractCase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  pod %s/%s labels=%v annotations=%v (namespace labels %v)\n", c.pod.Namespace, c.pod.Name, c.pod.Labels, c.pod.Annotations, c.namespaces[c.pod.Namespace])
	for _, smc := range c.configs {
		var pools []string
		if p := smc.Spec.MacvlanConfig.SpiderpoolConfigPools; p != nil {
			pools = p.IPv4IPPool
		}
		fmt.Fprintf(&b, "  network %s/%s master %v pools %v\n", smc.Namespace, smc.Name, smc.Spec.MacvlanConfig.Master, pools)
	}
	for _, p := range c.pools {
		s := p.Spec
		fmt.Fprintf(&b, "  pool %s v%d default=%v disable=%v nodeName=%v nodeAffinity=%v namespaceName=%v namespaceAffinity=%v podAffinity=%v multusName=%v\n",
			p.Name, *s.IPVersion, *s.Default, *s.Disable, s.NodeName, selectorString(s.NodeAffinity), s.NamespaceName, selectorString(s.NamespaceAffinity), selectorString(s.PodAffinity), s.MultusName)
	}
	return b.String()
}

func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return "-"
	}
	return metav1.FormatLabelSelector(s)
}

// disagreement returns "" when the three components agree on c, else what differs.
func (c *contractCase) disagreement(t *testing.T) string {
	admitted, warned, why := c.admit()
	cy := c.cycle(t)
	anywhere := false
	for _, node := range c.nodes {
		placed, placedPools, schedWhy := cy.schedule(node)
		allocated, allocPools, allocWhy := c.allocate(node)
		if placed != allocated {
			return fmt.Sprintf("on %s the scheduler says placed=%v (%s) but the IPAM says allocated=%v (%s)", node.Name, placed, schedWhy, allocated, allocWhy)
		}
		if placed && !mapsEqual(placedPools, allocPools) {
			return fmt.Sprintf("on %s the scheduler counts pools %v but the IPAM takes %v", node.Name, placedPools, allocPools)
		}
		anywhere = anywhere || allocated
	}
	if anywhere && !admitted {
		return "the pod can be allocated, but admission denies it: " + why
	}
	nodeScoped := false
	for _, p := range c.pools {
		nodeScoped = nodeScoped || len(p.Spec.NodeName) > 0 || p.Spec.NodeAffinity != nil
	}
	for _, smc := range c.configs {
		// Which pools match a master's subnet is known on the node only.
		p := smc.Spec.MacvlanConfig.SpiderpoolConfigPools
		nodeScoped = nodeScoped || p != nil && p.MatchMasterSubnet != nil && *p.MatchMasterSubnet
	}
	if !nodeScoped && admitted && !anywhere && !warned {
		_, _, allocWhy := c.allocate(c.nodes[0])
		return "admission allows the pod, but no node can allocate it: " + allocWhy
	}
	return ""
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// admit asks the admission rules, as the validating webhook does for a pod CREATE, and reports
// whether they warned about the pod's pools.
func (c *contractCase) admit() (admitted, warned bool, why string) {
	in := rules.Input{}
	for _, p := range c.pools {
		in.Pools = append(in.Pools, *p)
	}
	for _, smc := range c.configs {
		in.MultusConfigs = append(in.MultusConfigs, *smc)
	}
	for name, labels := range c.namespaces {
		in.Namespaces = append(in.Namespaces, v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
	}
	vs := rules.CheckPod(rules.NewWorld(in), c.pod.Namespace, &c.pod.ObjectMeta, &c.pod.Spec, nil)
	var denied []string
	for _, v := range vs {
		switch {
		case v.Severity == rules.Deny && v.Rule != rules.RuleClustersKnown:
			denied = append(denied, v.String())
		case v.Severity == rules.Warn && v.Rule == rules.RulePodPoolsAllowed:
			warned = true
		}
	}
	return len(denied) == 0, warned, strings.Join(denied, "; ")
}

// cycle runs the plugin's PreFilter for the pod in a scheduler that sees the case's objects.
func (c *contractCase) cycle(t *testing.T) *cycle {
	w := newWorld(t, &configv1.UnderlayNetworkArgs{})
	w.p.logger = logr.Discard()
	for ns, labels := range c.namespaces {
		w.ns[ns] = labels
	}
	for _, p := range c.pools {
		w.pool(p)
	}
	for _, smc := range c.configs {
		w.multusConfig(smc)
	}
	for _, n := range c.nodes {
		w.nodes[n.Name] = n
	}
	return w.cycle(c.pod)
}

// schedule runs Filter for node and returns the pool counted for each interface and family
// ("eth0/4" → pool).
func (cy *cycle) schedule(node *v1.Node) (bool, map[string]string, string) {
	if !cy.resolved() {
		return false, nil, cy.pre.Message()
	}
	st, err := readState(cy.state)
	if err != nil { // skipped: no underlay needs
		return true, map[string]string{}, ""
	}
	if cy.pre.IsSuccess() {
		if f := cy.filter(node.Name); !f.IsSuccess() {
			return false, nil, f.Message()
		}
	}
	picks := make([]string, len(st.reqs))
	if _, reason := st.choose(node, picks); reason != "" {
		return false, nil, reason
	}
	out := map[string]string{}
	for i, r := range st.reqs {
		out[fmt.Sprintf("%s/%d", r.iface, r.family)] = picks[i]
	}
	return true, out, ""
}

// allocate asks the IPAM for every interface Multus would create on node, with the pools the
// network's NAD names, and returns the first pool of each family's plan.
func (c *contractCase) allocate(node *v1.Node) (bool, map[string]string, string) {
	atts, err := podnet.Attachments(c.pod, "")
	if err != nil {
		return false, nil, err.Error()
	}
	pools := slices.Clone(c.pools)
	out := map[string]string{}
	for _, att := range atts {
		smc := c.config(att.Namespace, att.Name)
		if smc == nil {
			return false, nil, "Multus finds no network " + att.Key()
		}
		raw, err := netconf.Build(smc, netconf.Local{})
		if err != nil {
			return false, nil, err.Error()
		}
		conf, err := ipamConf(raw)
		if err != nil {
			return false, nil, err.Error()
		}
		s := ipam.Subject{
			Holder:          ipam.Holder{Namespace: c.pod.Namespace, Name: c.pod.Name, UID: string(c.pod.UID), NIC: att.Interface},
			PodLabels:       c.pod.Labels,
			PodAnnotations:  c.pod.Annotations,
			NamespaceLabels: c.namespaces[c.pod.Namespace],
			NodeName:        node.Name,
			NodeLabels:      node.Labels,
			Network:         att.Key(),
		}
		if conf.MatchMaster != "" {
			s.NodeAddrs = map[string][]netip.Prefix{conf.MatchMaster: c.hostAddrs[node.Name][conf.MatchMaster]}
		}
		plan, err := ipam.Choose(s, conf, pools)
		if err != nil {
			return false, nil, fmt.Sprintf("%s: %v", att.Interface, err)
		}
		for _, f := range plan.Families {
			out[fmt.Sprintf("%s/%d", att.Interface, f.Family)] = f.Pools[0].Name
		}
	}
	return true, out, ""
}

func (c *contractCase) config(ns, name string) *spv2.SpiderMultusConfig {
	for _, smc := range c.configs {
		if smc.Namespace == ns && smc.Name == name {
			return smc
		}
	}
	return nil
}

// ipamConf reads the pools the first plugin's ipam names in a NAD's configuration list, as the runtime
// hands them to underlink-ipam.
func ipamConf(raw string) (poolchoice.NetworkPools, error) {
	var list struct {
		Plugins []struct {
			IPAM *cniconf.IPAM `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		return poolchoice.NetworkPools{}, err
	}
	for _, p := range list.Plugins {
		if p.IPAM != nil {
			out := poolchoice.NetworkPools{Names: poolchoice.Names{IPv4: p.IPAM.IPv4Pools, IPv6: p.IPAM.IPv6Pools}}
			if p.IPAM.MatchMasterSubnet {
				out.MatchMaster = p.IPAM.Master
			}
			return out, nil
		}
	}
	return poolchoice.NetworkPools{}, nil
}
