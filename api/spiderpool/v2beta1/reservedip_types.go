package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReservedIPSpec lists addresses that no SpiderIPPool gives to a pod.
type ReservedIPSpec struct {
	// IPVersion is the address family of spec.ips, 4 or 6. When omitted it follows the first entry.
	// +kubebuilder:validation:Enum=4;6
	// +optional
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// IPs are single addresses ("172.110.1.10") or inclusive ranges ("172.110.1.10-172.110.1.20"), all of
	// one family.
	// +kubebuilder:validation:MaxItems=512
	// +kubebuilder:validation:items:MaxLength=81
	// +kubebuilder:validation:items:XValidation:rule="self.split('-').size() <= 2 && self.split('-').all(a, isIP(a))",message="each entry must be an IP address or a range such as 172.110.1.10-172.110.1.20"
	// +optional
	IPs []string `json:"ips,omitempty"`
}

// SpiderReservedIP keeps addresses out of every pool's allocations: routers, hosts or VIPs on the
// segment that a pool's spec.ips happens to cover. An address already allocated when it is reserved
// stays with its pod until released, and is never given out again.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories={spiderpool},path="spiderreservedips",scope="Cluster",shortName={sr},singular="spiderreservedip"
// +kubebuilder:printcolumn:JSONPath=".spec.ipVersion",name="VERSION",type=string,description="Address family"
type SpiderReservedIP struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the reserved addresses.
	// +optional
	Spec ReservedIPSpec `json:"spec,omitempty"`
}

// SpiderReservedIPList is a list of SpiderReservedIPs.
//
// +kubebuilder:object:root=true
type SpiderReservedIPList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderReservedIP `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SpiderReservedIP{}, &SpiderReservedIPList{})
}
