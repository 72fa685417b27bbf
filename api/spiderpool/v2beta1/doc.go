// Package v2beta1 holds the spiderpool.spidernet.io/v2beta1 API types that underlink reads and writes:
// SpiderIPPool, SpiderMultusConfig and SpiderEndpoint.
//
// The types mirror Spiderpool's public schema field for field (same names, JSON keys and shapes), so
// manifests written for Spiderpool apply unchanged and tools that read Spiderpool's pool status read ours.
// Mirrored from spidernet-io/spiderpool, pkg/k8s/apis/spiderpool.spidernet.io/v2beta1:
// spiderippool_types.go (IPPoolSpec, Route, IPPoolStatus, PoolIPAllocation), spiderendpoint_types.go
// (WorkloadEndpointStatus, PodIPAllocation, IPAllocationDetail), spidermultus_types.go
// (MultusCNIConfigSpec, SpiderMacvlanCniConfig, SpiderpoolPools) and spidercoordinator_types.go
// (CoordinatorSpec), and the CRDs Spiderpool publishes from them. Only the CNI types underlink drives
// (macvlan; the others keep their names for round trips via customCNI) are typed here.
//
// Additive extensions, which Spiderpool's own CRDs would prune but never reject:
//   - SpiderMultusConfig status.conditions (Aligned, Ready), written by underlink's controller.
//   - CEL validation of IP, range and CIDR formats, so the apiserver itself names the field.
//
// +kubebuilder:object:generate=true
// +groupName=spiderpool.spidernet.io
package v2beta1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of Spiderpool's v2beta1 API.
	GroupVersion = schema.GroupVersion{Group: "spiderpool.spidernet.io", Version: "v2beta1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
