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
	"time"

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

	// MaxStartingPodsPerNode paces the starts of underlay pods: at most this many pods of this scheduler
	// that need an underlay may be starting on one node at once, from the bind until their sandbox is
	// ready (condition PodReadyToStartContainers) or they leave Pending. Further pods wait in Permit, in
	// the order they came, and are bound as slots free. A burst of pods then creates sandboxes at the pace
	// the node's CNI chain and the apiserver keep up with, instead of all at once until Multus' reads of
	// the pod time out and kubelet retries them after a back-off (docs/DESIGN.md, "The scheduler paces
	// the starts of underlay pods per node"). 0 turns pacing off. Default DefaultMaxStartingPodsPerNode.
	MaxStartingPodsPerNode *int32 `json:"maxStartingPodsPerNode,omitempty"`

	// StartingTimeout is the longest a pod counts as starting: a sandbox that never gets ready (a failing
	// CNI, a node gone silent) holds its slot no longer. Default DefaultStartingTimeout.
	StartingTimeout *metav1.Duration `json:"startingTimeout,omitempty"`
}

const (
	// DefaultMaxStartingPodsPerNode is MaxStartingPodsPerNode's default.
	DefaultMaxStartingPodsPerNode = 8
	// DefaultStartingTimeout is StartingTimeout's default.
	DefaultStartingTimeout = time.Minute
)
