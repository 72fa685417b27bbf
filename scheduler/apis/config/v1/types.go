// Package v1 holds the versioned arguments of underlink's scheduler plugins, as they are written in a
// KubeSchedulerConfiguration's pluginConfig:
//
//	pluginConfig:
//	- name: UnderlayNetwork
//	  args:
//	    apiVersion: kubescheduler.config.k8s.io/v1
//	    kind: UnderlayNetworkArgs
//	    labelPrefix: underlay.underlink.io/
//
// kube-scheduler leaves the args of out-of-tree plugins undecoded (runtime.Unknown); the plugin decodes
// them once in New with Decode, which applies defaults and validates, so a bad value stops the scheduler
// at start-up with the field named instead of misbehaving later.
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version the args are written with: the same as the
// KubeSchedulerConfiguration around them, as kube-scheduler's own plugin args are.
var GroupVersion = schema.GroupVersion{Group: "kubescheduler.config.k8s.io", Version: "v1"}

// Kind is the kind of UnderlayNetworkArgs.
const Kind = "UnderlayNetworkArgs"

// UnderlayNetworkArgs configures the UnderlayNetwork plugin.
type UnderlayNetworkArgs struct {
	metav1.TypeMeta `json:",inline"`

	// LabelPrefix is the prefix of the node labels that report each underlay NIC's link state:
	// <labelPrefix><nic>=up|down (api/underlay), written by underlink-agent with the same prefix (its
	// --label-prefix). A node passes only when every master NIC of the pod's networks is labelled "up".
	// Default api/underlay.LabelPrefix.
	LabelPrefix string `json:"labelPrefix,omitempty"`

	// DefaultNetwork is the Multus cluster default network ("namespace/name") that pods without a
	// v1.multus-cni.io/default-network annotation are attached to. Set it when Multus' clusterNetwork is
	// itself an underlay network; leave it empty (the default) when such pods use the cluster's primary
	// CNI and so need no underlay.
	DefaultNetwork string `json:"defaultNetwork,omitempty"`
}
