// Package v1 holds the k8s.cni.cncf.io/v1 NetworkAttachmentDefinition type: the network a Multus-style
// meta plugin attaches a pod to. underlink generates one per SpiderMultusConfig.
//
// Mirrored field for field from the Network Plumbing Working Group's de-facto standard
// (k8snetworkplumbingwg/network-attachment-definition-client, pkg/apis/k8s.cni.cncf.io/v1/types.go, and
// the CRD Multus ships): spec.config is the CNI configuration as a JSON string.
//
// +kubebuilder:object:generate=true
// +groupName=k8s.cni.cncf.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the NetworkAttachmentDefinition API.
	GroupVersion = schema.GroupVersion{Group: "k8s.cni.cncf.io", Version: "v1"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Pod annotations Multus reads.
const (
	// DefaultNetworkAnnotation names the NetworkAttachmentDefinition ("namespace/name" or "name") that
	// replaces the pod's cluster default network.
	DefaultNetworkAnnotation = "v1.multus-cni.io/default-network"
	// NetworksAnnotation lists extra networks: "ns/name@ifname, other" or a JSON list of selections.
	NetworksAnnotation = "k8s.v1.cni.cncf.io/networks"
)
