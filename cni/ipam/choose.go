package ipam

import (
	"net/netip"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/poolchoice"
)

// Subject is the pod interface an ADD allocates for, with everything pool eligibility reads of the pod,
// its namespace and this node.
type Subject struct {
	Holder
	PodLabels       map[string]string
	PodAnnotations  map[string]string
	NamespaceLabels map[string]string
	NodeName        string
	NodeLabels      map[string]string
	// NodeAddrs are the addresses of this node's NICs, by name, for a network with matchMasterSubnet
	// (poolchoice.Node.Addrs).
	NodeAddrs map[string][]netip.Prefix
	// Network is the network ("namespace/name") the pod's Multus annotations attach on Holder.NIC
	// (podnet.NetworkOn), or "" when they attach none there.
	Network string
}

// Choose makes the plan for s on this node with the pools the network's CNI configuration names
// (ipam.ipv4Pools/ipv6Pools, and ipam.master with matchMasterSubnet): the one pool choice of
// pkg/poolchoice, which the webhook and the scheduler decide with too. Errors are a
// *poolchoice.ConfigError naming the field, or a *poolchoice.NoPoolError.
func Choose(s Subject, conf poolchoice.NetworkPools, pools []*spv2.SpiderIPPool) (poolchoice.Plan, error) {
	return poolchoice.Choose(poolchoice.Subject{
		Namespace: s.Namespace, Pod: s.Name, Interface: s.NIC, Network: s.Network,
		PodLabels: s.PodLabels, PodAnnotations: s.PodAnnotations, NamespaceLabels: s.NamespaceLabels,
	}, poolchoice.Node{Name: s.NodeName, Labels: s.NodeLabels, Addrs: s.NodeAddrs}, conf, poolchoice.IndexOf(pools))
}
