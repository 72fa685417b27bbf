// Package v1 holds the submariner.io/v1 API types underlink reads: Cluster and Endpoint. Submariner's
// broker syncs one Cluster (and one Endpoint per gateway) of every joined cluster into each cluster;
// underlink reads them to learn the local and remote pod and service CIDRs, and never writes them.
//
// The types mirror Submariner's public schema field for field, JSON keys included (snake_case as
// Submariner defines them). Mirrored from submariner-io/submariner, pkg/apis/submariner.io/v1/types.go
// (ClusterSpec, EndpointSpec) and the CRDs Submariner's operator installs. The CRDs here are for clusters
// and tests without Submariner; where Submariner runs, its own CRDs are already present.
//
// +kubebuilder:object:generate=true
// +groupName=submariner.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of Submariner's API.
	GroupVersion = schema.GroupVersion{Group: "submariner.io", Version: "v1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
