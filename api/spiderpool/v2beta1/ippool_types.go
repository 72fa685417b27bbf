package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPoolSpec is the desired state of a SpiderIPPool: a subnet, the addresses in it that pods may get, and
// which pods, namespaces and nodes may use it.
type IPPoolSpec struct {
	// IPVersion is the address family of the pool, 4 or 6. When omitted it follows spec.subnet.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// Subnet is the pool's subnet in CIDR notation, e.g. 172.110.1.0/24. Every address in spec.ips,
	// spec.excludeIPs and spec.gateway must lie inside it. It cannot change once the pool exists.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 172.110.1.0/24"
	Subnet string `json:"subnet"`

	// IPs are the addresses pods may be given: single addresses ("172.110.1.10") or inclusive ranges
	// ("172.110.1.1-172.110.1.200"), all inside spec.subnet.
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:MaxLength=81
	// +kubebuilder:validation:items:XValidation:rule="self.split('-').size() <= 2 && self.split('-').all(a, isIP(a))",message="each entry must be an IP address or a range such as 172.110.1.1-172.110.1.200"
	// +optional
	IPs []string `json:"ips,omitempty"`

	// ExcludeIPs are addresses or ranges inside spec.ips that are never given to a pod, e.g. addresses
	// used by routers or hosts on the segment.
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:MaxLength=81
	// +kubebuilder:validation:items:XValidation:rule="self.split('-').size() <= 2 && self.split('-').all(a, isIP(a))",message="each entry must be an IP address or a range such as 172.110.1.250-172.110.1.254"
	// +optional
	ExcludeIPs []string `json:"excludeIPs,omitempty"`

	// Gateway is the default gateway of pods that get an address from this pool. It must lie inside
	// spec.subnet (pods reach it on-link) and is never given to a pod.
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address such as 172.110.1.254"
	// +optional
	Gateway *string `json:"gateway,omitempty"`

	// Vlan is deprecated by Spiderpool and ignored by underlink; use the SpiderMultusConfig's vlanID.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	// +optional
	Vlan *int64 `json:"vlan,omitempty"`

	// Routes are extra routes installed in pods that get an address from this pool.
	// +kubebuilder:validation:MaxItems=256
	// +optional
	Routes []Route `json:"routes,omitempty"`

	// PodAffinity limits the pool to pods whose labels match this selector.
	// +optional
	PodAffinity *metav1.LabelSelector `json:"podAffinity,omitempty"`

	// NamespaceAffinity limits the pool to pods in namespaces whose labels match this selector.
	// +optional
	NamespaceAffinity *metav1.LabelSelector `json:"namespaceAffinity,omitempty"`

	// NamespaceName limits the pool to pods in these namespaces.
	// +optional
	NamespaceName []string `json:"namespaceName,omitempty"`

	// NodeAffinity limits the pool to pods on nodes whose labels match this selector.
	// +optional
	NodeAffinity *metav1.LabelSelector `json:"nodeAffinity,omitempty"`

	// NodeName limits the pool to pods on these nodes.
	// +optional
	NodeName []string `json:"nodeName,omitempty"`

	// MultusName limits the pool to pods attached through these Multus networks ("namespace/name").
	// +optional
	MultusName []string `json:"multusName,omitempty"`

	// Default marks the pool as a cluster default: pods that name no pool, through their annotations or
	// their SpiderMultusConfig, get an address from a default pool.
	// +kubebuilder:default=false
	// +optional
	Default *bool `json:"default,omitempty"`

	// Disable stops new allocations from the pool; addresses already given out stay valid.
	// +kubebuilder:default=false
	// +optional
	Disable *bool `json:"disable,omitempty"`
}

// Route is a route installed in a pod: traffic to Dst goes via Gw.
type Route struct {
	// Dst is the destination in CIDR notation, e.g. 10.6.0.0/16.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a CIDR such as 10.6.0.0/16"
	Dst string `json:"dst"`

	// Gw is the next hop, an address inside the pool's subnet.
	// +kubebuilder:validation:Required
	// +kubebuilder:validation:MaxLength=39
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address"
	Gw string `json:"gw"`
}

// IPPoolStatus is the observed state of a SpiderIPPool, in the exact shape Spiderpool writes it.
type IPPoolStatus struct {
	// AllocatedIPs is a JSON object, encoded as a string as Spiderpool does, that maps each allocated
	// address to the pod holding it: {"172.110.1.5":{"interface":"eth0","pod":"ns/name","podUid":"..."}}.
	// Decode it with ParseAllocations.
	// +optional
	AllocatedIPs *string `json:"allocatedIPs,omitempty"`

	// TotalIPCount is the number of addresses in spec.ips less spec.excludeIPs and the gateway.
	// +kubebuilder:validation:Minimum=0
	// +optional
	TotalIPCount *int64 `json:"totalIPCount,omitempty"`

	// AllocatedIPCount is the number of addresses in status.allocatedIPs.
	// +kubebuilder:validation:Minimum=0
	// +optional
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`
}

// SpiderIPPool is a pool of underlay addresses for pods.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={spiderpool},path="spiderippools",scope="Cluster",shortName={sp},singular="spiderippool"
// +kubebuilder:printcolumn:JSONPath=".spec.subnet",name="SUBNET",type=string,description="Subnet of the pool"
// +kubebuilder:printcolumn:JSONPath=".spec.default",name="DEFAULT",type=boolean,description="Whether pods without a pool choice use this pool"
// +kubebuilder:printcolumn:JSONPath=".status.totalIPCount",name="TOTAL",type=integer,description="Addresses the pool can give out"
// +kubebuilder:printcolumn:JSONPath=".status.allocatedIPCount",name="ALLOCATED",type=integer,description="Addresses given out"
// +kubebuilder:printcolumn:JSONPath=".spec.disable",name="DISABLE",type=boolean,description="Whether new allocations are stopped"
// +kubebuilder:printcolumn:JSONPath=".spec.ipVersion",name="VERSION",type=integer,priority=10,description="Address family"
// +kubebuilder:printcolumn:JSONPath=".spec.gateway",name="GATEWAY",type=string,priority=10,description="Default gateway of the pool's pods"
type SpiderIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the pool.
	// +optional
	Spec IPPoolSpec `json:"spec,omitempty"`
	// Status is the allocation state of the pool, written by the IPAM agents.
	// +optional
	Status IPPoolStatus `json:"status,omitempty"`
}

// SpiderIPPoolList is a list of SpiderIPPools.
//
// +kubebuilder:object:root=true
type SpiderIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderIPPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SpiderIPPool{}, &SpiderIPPoolList{})
}
