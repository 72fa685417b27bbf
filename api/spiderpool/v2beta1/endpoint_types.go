package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Values of WorkloadEndpointStatus.OwnerControllerType.
const (
	// OwnerStatefulSet is the owner type of a StatefulSet pod's endpoint: its addresses are kept for the
	// pod's ordinal while the StatefulSet wants it.
	OwnerStatefulSet = "StatefulSet"
	// OwnerNone is the owner type of a pod that no controller owns.
	OwnerNone = "Pod"
)

// EndpointFinalizer is kept on a SpiderEndpoint until the addresses it records are released (the same
// finalizer as a SpiderIPPool's).
const EndpointFinalizer = "spiderpool.spidernet.io"

// WorkloadEndpointStatus records the addresses a pod holds, and the controller it belongs to.
type WorkloadEndpointStatus struct {
	// Current is the pod the addresses were last given to, and the addresses.
	// +kubebuilder:validation:Required
	Current PodIPAllocation `json:"current"`

	// OwnerControllerType is the kind of the pod's top controller (StatefulSet, Deployment, …), or Pod.
	// +kubebuilder:validation:Required
	OwnerControllerType string `json:"ownerControllerType"`

	// OwnerControllerName is that controller's name (the pod's own for Pod).
	// +kubebuilder:validation:Required
	OwnerControllerName string `json:"ownerControllerName"`
}

// PodIPAllocation is the pod (UID, node) holding the addresses of an endpoint.
type PodIPAllocation struct {
	// UID is the UID of the pod the addresses were last given to.
	// +kubebuilder:validation:Required
	UID string `json:"uid"`

	// Node is the node that pod ran on.
	// +kubebuilder:validation:Required
	Node string `json:"node"`

	// IPs are the pod's addresses, one entry per interface.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:Required
	IPs []IPAllocationDetail `json:"ips"`
}

// IPAllocationDetail is the addresses of one interface of the pod and the pools they came from.
type IPAllocationDetail struct {
	// NIC is the interface in the pod, e.g. eth0.
	// +kubebuilder:validation:Required
	NIC string `json:"interface"`

	// IPv4 is the interface's IPv4 address with its prefix length, e.g. 172.110.1.10/24.
	// +optional
	IPv4 *string `json:"ipv4,omitempty"`

	// IPv6 is the interface's IPv6 address with its prefix length.
	// +optional
	IPv6 *string `json:"ipv6,omitempty"`

	// IPv4Pool is the SpiderIPPool of IPv4.
	// +optional
	IPv4Pool *string `json:"ipv4Pool,omitempty"`

	// IPv6Pool is the SpiderIPPool of IPv6.
	// +optional
	IPv6Pool *string `json:"ipv6Pool,omitempty"`

	// Vlan is the VLAN of the pools (Spiderpool's field; underlink writes 0).
	// +kubebuilder:default=0
	// +kubebuilder:validation:Maximum=4094
	// +kubebuilder:validation:Minimum=0
	// +optional
	Vlan *int64 `json:"vlan,omitempty"`

	// IPv4Gateway is the IPv4 pool's gateway.
	// +optional
	IPv4Gateway *string `json:"ipv4Gateway,omitempty"`

	// IPv6Gateway is the IPv6 pool's gateway.
	// +optional
	IPv6Gateway *string `json:"ipv6Gateway,omitempty"`

	// CleanGateway is whether the interface got no default route (the ippools annotation's
	// cleangateway).
	// +optional
	CleanGateway *bool `json:"cleanGateway,omitempty"`

	// Routes are the pools' routes given to the interface (both families' pools).
	// +kubebuilder:validation:MaxItems=512
	// +optional
	Routes []Route `json:"routes,omitempty"`

	// MAC is the interface's MAC address when an external system provides it (not written by underlink).
	// +optional
	MAC *string `json:"mac,omitempty"`
}

// SpiderEndpoint records the addresses of one pod (named after the pod, in its namespace). underlink
// writes one for each StatefulSet pod: its addresses are kept for the pod's ordinal, and a pod
// recreated under that name gets them back. Spiderpool reads and writes the same record.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spiderendpoints",scope="Namespaced",shortName={se},singular="spiderendpoint"
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].interface",name="INTERFACE",type=string,description="First interface"
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv4Pool",name="IPV4POOL",type=string,description="Its IPv4 pool"
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv4",name="IPV4",type=string,description="Its IPv4 address"
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv6Pool",name="IPV6POOL",type=string,description="Its IPv6 pool"
// +kubebuilder:printcolumn:JSONPath=".status.current.ips[0].ipv6",name="IPV6",type=string,description="Its IPv6 address"
// +kubebuilder:printcolumn:JSONPath=".status.current.node",name="NODE",type=string,description="Node of the pod"
type SpiderEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Status is the pod's addresses and owner. The object has no status subresource (as in Spiderpool):
	// it is written whole.
	// +optional
	Status WorkloadEndpointStatus `json:"status,omitempty"`
}

// SpiderEndpointList is a list of SpiderEndpoints.
//
// +kubebuilder:object:root=true
type SpiderEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderEndpoint `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SpiderEndpoint{}, &SpiderEndpointList{})
}
