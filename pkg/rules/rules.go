package rules

// Rule IDs. They are stable strings: metrics label admission decisions with them, the controller's
// conditions and `underlink doctor` name them, and tests pin them.
const (
	// RuleClustersKnown: Submariner Cluster objects exist and the local cluster is known.
	RuleClustersKnown = "submariner-clusters-known"
	// RuleClusterCIDRsValid: each Cluster's cluster_cidr, service_cidr and global_cidr are CIDRs.
	RuleClusterCIDRsValid = "cluster-cidrs-valid"
	// RuleClustersDisjoint: without globalnet, no remote cluster's CIDRs overlap the local cluster's.
	RuleClustersDisjoint = "clusters-disjoint"

	// RulePoolSubnetValid: spec.subnet is a CIDR (network address, not /0); spec.ipVersion matches it.
	RulePoolSubnetValid = "pool-subnet-valid"
	// RulePoolIPsInSubnet: spec.ips and spec.excludeIPs are well-formed addresses or ranges inside the subnet.
	RulePoolIPsInSubnet = "pool-ips-in-subnet"
	// RulePoolGatewayInSubnet: spec.gateway lies inside the subnet and is a usable host address.
	RulePoolGatewayInSubnet = "pool-gateway-in-subnet"
	// RulePoolGatewayNotAllocatable: spec.gateway is never given to a pod.
	RulePoolGatewayNotAllocatable = "pool-gateway-not-allocatable"
	// RulePoolRoutesValid: spec.routes have CIDR destinations and next hops inside the subnet.
	RulePoolRoutesValid = "pool-routes-valid"
	// RulePoolAffinityValid: spec.podAffinity, namespaceAffinity and nodeAffinity are valid label selectors,
	// and spec.multusName names networks that exist (a warning when one does not).
	RulePoolAffinityValid = "pool-affinity-valid"
	// RulePoolNoOverlap: the pool's subnet and addresses overlap no other pool's.
	RulePoolNoOverlap = "pool-no-overlap"
	// RulePoolImmutable: spec.subnet and spec.ipVersion do not change once the pool exists.
	RulePoolImmutable = "pool-subnet-immutable"
	// RulePoolKeepsAllocated: an update removes no address a pod holds.
	RulePoolKeepsAllocated = "pool-keeps-allocated-ips"
	// RulePoolCapacity: the pool has addresses to give and is at most 90% allocated (warning).
	RulePoolCapacity = "pool-capacity"
	// RulePoolFieldsUsed: a field of Spiderpool's schema that underlink keeps but does not act on is named.
	RulePoolFieldsUsed = "pool-fields-used"
	// RulePoolReservedIPs: addresses of spec.ips that a SpiderReservedIP reserves are named (warning): no
	// pod gets them, though totalIPCount counts them.
	RulePoolReservedIPs = "pool-reserved-ips"
	// RulePoolInUse: a pool is not deleted while pods hold its addresses.
	RulePoolInUse = "pool-not-deleted-in-use"
	// RulePoolInLocalClusterCIDR (design rule 1): a pool used by an underlay config lies inside the local
	// cluster's cluster_cidr, the one pod CIDR Submariner routes to this cluster.
	RulePoolInLocalClusterCIDR = "pool-in-local-cluster-cidr"
	// RulePoolClearOfRemoteCIDRs (design rule 2): no pool overlaps a remote cluster_cidr or service_cidr,
	// unless globalnet is in use.
	RulePoolClearOfRemoteCIDRs = "pool-clear-of-remote-cidrs"
	// RulePoolClearOfLocalServiceCIDR: no pool overlaps the local service_cidr.
	RulePoolClearOfLocalServiceCIDR = "pool-clear-of-local-service-cidr"

	// RuleConfigSpecValid: spec.cniType macvlan has a master NIC, names and vlanID are valid.
	RuleConfigSpecValid = "config-spec-valid"
	// RuleConfigPoolsExist: pools named in spec.macvlan.ippools exist and are of the listed family.
	RuleConfigPoolsExist = "config-pools-exist"
	// RuleCoordinatorSpecValid: the SpiderCoordinator underlink reads ("default") holds cluster defaults it
	// can apply; a field it keeps but does not act on is named.
	RuleCoordinatorSpecValid = "coordinator-spec-valid"
	// RuleHijackCIDRValid: spec.coordinator.hijackCIDR entries are CIDRs.
	RuleHijackCIDRValid = "hijack-cidr-valid"
	// RuleHijackCoversRemotes (design rule 3): hijackCIDR covers every remote cluster_cidr and service_cidr
	// (their global_cidr under globalnet).
	RuleHijackCoversRemotes = "hijack-covers-remote-cidrs"
	// RuleHijackAvoidsLocalPools (design rule 3): hijackCIDR covers no address of a local pool.
	RuleHijackAvoidsLocalPools = "hijack-avoids-local-pools"

	// RulePodNetworkExists (design rule 5): a pod's Multus network annotations name existing
	// SpiderMultusConfigs or NetworkAttachmentDefinitions.
	RulePodNetworkExists = "pod-network-exists"
	// RulePodPoolsAllowed (design rule 5): a pod's pool annotations name existing pools its namespace and
	// labels may use.
	RulePodPoolsAllowed = "pod-pools-allowed"
	// RuleDefaultNetworkExists: the network injected into pods by default resolves.
	RuleDefaultNetworkExists = "default-network-exists"
)

// RuleInfo describes one rule for `underlink doctor` and documentation.
type RuleInfo struct {
	// ID is the stable rule ID.
	ID string
	// Applies is the kind of object the rule reads: Cluster, SpiderIPPool, SpiderMultusConfig, Pod.
	Applies string
	// Description is one line saying what holds when the rule passes.
	Description string
}

// Rules lists every rule in the order `underlink doctor` prints them.
var Rules = []RuleInfo{
	{RuleClustersKnown, "Cluster", "Submariner Cluster objects exist and the local cluster is known"},
	{RuleClusterCIDRsValid, "Cluster", "every Cluster's cluster_cidr, service_cidr and global_cidr are CIDRs"},
	{RuleClustersDisjoint, "Cluster", "without globalnet, remote clusters' pod and service CIDRs do not overlap the local cluster's"},
	{RulePoolSubnetValid, "SpiderIPPool", "spec.subnet is a network CIDR and spec.ipVersion matches it"},
	{RulePoolIPsInSubnet, "SpiderIPPool", "spec.ips and spec.excludeIPs are well-formed and inside spec.subnet"},
	{RulePoolGatewayInSubnet, "SpiderIPPool", "spec.gateway is a usable address inside spec.subnet"},
	{RulePoolGatewayNotAllocatable, "SpiderIPPool", "spec.gateway is never given to a pod"},
	{RulePoolRoutesValid, "SpiderIPPool", "spec.routes have CIDR destinations and next hops inside spec.subnet"},
	{RulePoolAffinityValid, "SpiderIPPool", "spec.podAffinity, namespaceAffinity and nodeAffinity are valid, non-empty label selectors"},
	{RulePoolNoOverlap, "SpiderIPPool", "pools do not share subnets partially nor addresses"},
	{RulePoolImmutable, "SpiderIPPool", "spec.subnet and spec.ipVersion never change"},
	{RulePoolKeepsAllocated, "SpiderIPPool", "an update keeps every address a pod holds"},
	{RulePoolCapacity, "SpiderIPPool", "the pool has addresses and is at most 90% allocated"},
	{RulePoolFieldsUsed, "SpiderIPPool", "every field set is one underlink acts on (spec.vlan, deprecated in Spiderpool, is named)"},
	{RulePoolReservedIPs, "SpiderIPPool", "addresses a SpiderReservedIP reserves are named: no pod gets them"},
	{RulePoolInUse, "SpiderIPPool", "a pool is deleted only once no pod holds its addresses"},
	{RulePoolInLocalClusterCIDR, "SpiderIPPool", "pools of underlay configs lie inside the local cluster_cidr (design rule 1)"},
	{RulePoolClearOfRemoteCIDRs, "SpiderIPPool", "no pool overlaps a remote cluster_cidr or service_cidr unless globalnet is on (design rule 2)"},
	{RulePoolClearOfLocalServiceCIDR, "SpiderIPPool", "no pool overlaps the local service_cidr"},
	{RuleConfigSpecValid, "SpiderMultusConfig", "macvlan configs have a master NIC, valid names and vlanID"},
	{RuleConfigPoolsExist, "SpiderMultusConfig", "pools in spec.macvlan.ippools exist and match their family"},
	{RuleCoordinatorSpecValid, "SpiderCoordinator", "the cluster's coordinator defaults (SpiderCoordinator default) are ones underlink applies"},
	{RuleHijackCIDRValid, "SpiderMultusConfig", "spec.coordinator.hijackCIDR entries are CIDRs"},
	{RuleHijackCoversRemotes, "SpiderMultusConfig", "hijackCIDR covers every remote cluster_cidr and service_cidr (design rule 3)"},
	{RuleHijackAvoidsLocalPools, "SpiderMultusConfig", "hijackCIDR covers no local pool (design rule 3)"},
	{RulePodNetworkExists, "Pod", "Multus network annotations name an existing SpiderMultusConfig or NAD (design rule 5)"},
	{RulePodPoolsAllowed, "Pod", "pool annotations name existing pools the namespace may use (design rule 5)"},
	{RuleDefaultNetworkExists, "Pod", "the default network injected into pods resolves"},
}

// RuleByID returns the rule with the given ID.
func RuleByID(id string) (RuleInfo, bool) {
	for _, r := range Rules {
		if r.ID == id {
			return r, true
		}
	}
	return RuleInfo{}, false
}
