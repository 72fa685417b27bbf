package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CoordinatorDefaultName is the name of the SpiderCoordinator whose spec is the cluster's coordinator
// defaults, as in Spiderpool.
const CoordinatorDefaultName = "default"

// CoordinatorStatus is Spiderpool's status of a SpiderCoordinator (underlink does not write it).
type CoordinatorStatus struct {
	// Phase is Spiderpool's summary of the coordinator (Synced, NotReady).
	// +kubebuilder:validation:Required
	Phase string `json:"phase"`

	// Reason says why the phase is not Synced.
	// +optional
	Reason string `json:"reason,omitempty"`

	// OverlayPodCIDR are the overlay CNI's pod CIDRs Spiderpool found.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	OverlayPodCIDR []string `json:"overlayPodCIDR"`

	// ServiceCIDR are the cluster's service CIDRs Spiderpool found.
	// +kubebuilder:validation:MaxItems=64
	// +optional
	ServiceCIDR []string `json:"serviceCIDR"`
}

// SpiderCoordinator holds the cluster's coordinator defaults (the object named "default"): every field a
// SpiderMultusConfig's spec.coordinator leaves unset takes the default's value, as Spiderpool's
// coordinator merges them. underlink merges them when it writes each config's
// NetworkAttachmentDefinition, and rewrites the NADs when the defaults change.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories={spiderpool},path="spidercoordinators",scope="Cluster",shortName={scc},singular="spidercoordinator"
// +kubebuilder:printcolumn:JSONPath=".status.phase",name="STATUS",type=string,description="Spiderpool's phase"
type SpiderCoordinator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the coordinator defaults.
	// +optional
	Spec CoordinatorSpec `json:"spec,omitempty"`
	// Status is Spiderpool's.
	// +optional
	Status CoordinatorStatus `json:"status,omitempty"`
}

// SpiderCoordinatorList is a list of SpiderCoordinators.
//
// +kubebuilder:object:root=true
type SpiderCoordinatorList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderCoordinator `json:"items"`
}

func init() {
	SchemeBuilder.Register(&SpiderCoordinator{}, &SpiderCoordinatorList{})
}

// WithDefaults returns c with every field it leaves unset (a nil pointer, an empty list) taken from def,
// the cluster's SpiderCoordinator spec: how Spiderpool's coordinator merges a config's coordinator
// fields with the cluster defaults. c and def are not changed; either may be nil.
func (c *CoordinatorSpec) WithDefaults(def *CoordinatorSpec) *CoordinatorSpec {
	if c == nil && def == nil {
		return nil
	}
	out := &CoordinatorSpec{}
	if c != nil {
		out = c.DeepCopy()
	}
	if def == nil {
		return out
	}
	d := def.DeepCopy()
	pick(&out.Mode, d.Mode)
	pick(&out.PodCIDRType, d.PodCIDRType)
	pick(&out.PodMACPrefix, d.PodMACPrefix)
	pick(&out.TunePodRoutes, d.TunePodRoutes)
	pick(&out.PodDefaultRouteNIC, d.PodDefaultRouteNIC)
	pick(&out.HostRuleTable, d.HostRuleTable)
	pick(&out.PodRPFilter, d.PodRPFilter)
	pick(&out.TxQueueLen, d.TxQueueLen)
	pick(&out.DetectIPConflict, d.DetectIPConflict)
	pick(&out.DetectGateway, d.DetectGateway)
	pick(&out.VethMTU, d.VethMTU)
	pick(&out.VethLinkAddress, d.VethLinkAddress)
	if len(out.HijackCIDR) == 0 {
		out.HijackCIDR = d.HijackCIDR
	}
	if len(out.PolicyRoutes) == 0 {
		out.PolicyRoutes = d.PolicyRoutes
	}
	return out
}

func pick[T any](own **T, def *T) {
	if *own == nil {
		*own = def
	}
}
