package v2beta1

import (
	"encoding/json"
	"fmt"
)

// PoolIPAllocations maps each allocated address of a pool to its holder. Spiderpool stores it JSON-encoded
// in status.allocatedIPs; ParseAllocations and Encode convert between the two.
type PoolIPAllocations map[string]PoolIPAllocation

// PoolIPAllocation is the holder of one allocated address.
type PoolIPAllocation struct {
	// NIC is the pod interface the address is on, e.g. eth0.
	NIC string `json:"interface"`
	// NamespacedName is the pod, "namespace/name".
	NamespacedName string `json:"pod"`
	// PodUID is the UID of the pod, so a pod recreated under the same name is told apart.
	PodUID string `json:"podUid"`
	// ContainerID is the sandbox the address was last given to. It is an additive extension (Spiderpool
	// keeps it in its SpiderEndpoint and ignores the key here): underlink-agent releases on CNI DEL only
	// when it matches, so the late DEL of a replaced sandbox does not free the address its successor
	// (same pod UID and interface) now uses.
	ContainerID string `json:"containerID,omitempty"`
	// Node is the node whose agent gave the address, where the pod's sandbox runs. It is an additive
	// key (Spiderpool v1.2.2 keeps the node in its SpiderEndpoint, status.current.node, and ignores it
	// here): garbage collection keeps the address of a pod that is gone while its node is NotReady or
	// unreachable, since the old container may still answer on the underlay (cni/IPAM.md).
	Node string `json:"node,omitempty"`
	// IPConflict, when set, marks an address that another host on the segment answered for when it was
	// given to the pod named here: underlink-agent keeps it out of every allocation until an operator
	// clears it (AnnoClearIPConflicts). The record has no PodUID and no ContainerID, so it is never
	// the pod's. It is an additive key: Spiderpool reads the record as an allocation to that pod.
	IPConflict IPConflict `json:"ipConflict,omitzero"`
}

// IPConflict is what underlink-agent recorded when a pod's ADD found its address held by another host.
type IPConflict struct {
	// MAC is the link-layer address of the host that answered for the address.
	MAC string `json:"mac"`
	// Node is the node whose pod probed.
	Node string `json:"node,omitempty"`
	// DetectedAt is when, in RFC 3339.
	DetectedAt string `json:"detectedAt,omitempty"`
}

// IsConflict reports whether the record marks an address in use by a host outside the cluster.
func (a PoolIPAllocation) IsConflict() bool { return a.IPConflict.MAC != "" }

// ParseAllocations decodes status.allocatedIPs. An unset or empty status is an empty map; a status that
// is not the JSON object Spiderpool writes is an error, so callers never overwrite what they cannot read.
func ParseAllocations(status IPPoolStatus) (PoolIPAllocations, error) {
	allocs := PoolIPAllocations{}
	if status.AllocatedIPs == nil || *status.AllocatedIPs == "" {
		return allocs, nil
	}
	if err := json.Unmarshal([]byte(*status.AllocatedIPs), &allocs); err != nil {
		return nil, fmt.Errorf("status.allocatedIPs is not a JSON object of address → {interface, pod, podUid}: %w", err)
	}
	return allocs, nil
}

// Encode returns the status.allocatedIPs string for a, or nil when a is empty (Spiderpool omits it).
func (a PoolIPAllocations) Encode() (*string, error) {
	if len(a) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(a) // map keys are sorted, so equal maps encode equally
	if err != nil {
		return nil, fmt.Errorf("encode status.allocatedIPs: %w", err)
	}
	s := string(b)
	return &s, nil
}
