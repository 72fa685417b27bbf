package v2beta1

// Pod annotations with which a pod chooses its pools, as Spiderpool defines them
// (spidernet-io/spiderpool, pkg/types: AnnoPodIPPoolValue, AnnoPodIPPoolsValue).
const (
	// AnnoPodIPPool chooses the pools of the pod's first interface: {"ipv4":["pool-a"],"ipv6":[]}.
	AnnoPodIPPool = "ipam.spidernet.io/ippool"
	// AnnoPodIPPools chooses pools per interface: [{"interface":"eth0","ipv4":["pool-a"]}].
	AnnoPodIPPools = "ipam.spidernet.io/ippools"
)

// AnnoPodIPPoolValue is the value of the ipam.spidernet.io/ippool annotation.
type AnnoPodIPPoolValue struct {
	IPv4Pools []string `json:"ipv4,omitempty"`
	IPv6Pools []string `json:"ipv6,omitempty"`
}

// AnnoPodIPPoolsValue is the value of the ipam.spidernet.io/ippools annotation.
type AnnoPodIPPoolsValue []AnnoIPPoolItem

// AnnoIPPoolItem chooses the pools of one pod interface.
type AnnoIPPoolItem struct {
	NIC          string   `json:"interface,omitempty"`
	IPv4Pools    []string `json:"ipv4,omitempty"`
	IPv6Pools    []string `json:"ipv6,omitempty"`
	CleanGateway bool     `json:"cleangateway"`
}

// AnnoClearIPConflicts, set on a SpiderIPPool, asks underlink-agent to free the addresses it marked as
// in conflict (PoolIPAllocation.IPConflict): a comma-separated list of addresses, or "all". The agent
// that collects garbage frees them on its next pass and removes the annotation. It is underlink's own.
const AnnoClearIPConflicts = "underlink.io/clear-ip-conflicts"
