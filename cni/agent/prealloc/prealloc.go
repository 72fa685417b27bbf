// Package prealloc gives the pods scheduled to an agent's node their default network's addresses as soon
// as the agent sees them, ahead of the runtime's CNI ADD. The kubelet reaches ADD tens of milliseconds
// or more after the pod is bound (pod worker, cgroups, volumes, the sandbox); the pool status write that
// an allocation needs, about 5 ms on the apiserver, then happens in that time instead of inside ADD, which
// answers from the pre-allocation (cni/agent/service).
//
// Which pods: Eligible and Conf are pure; Runner wires them to the agent's pod informer.
package prealloc

import (
	corev1 "k8s.io/api/core/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/pkg/podnet"
	"github.com/underlink/underlink/pkg/poolchoice"
)

// Eligible reports whether pod, seen by the agent of node, is one the runtime has not attached yet: bound
// to node, not on the host network, not being deleted, pending, without pod IPs and without a sandbox
// reported ready. A pod already attached is left to its ADD's record.
func Eligible(pod *corev1.Pod, node string) bool {
	if pod.Spec.NodeName != node || pod.Spec.HostNetwork || pod.DeletionTimestamp != nil {
		return false
	}
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending {
		return false
	}
	if len(pod.Status.PodIPs) > 0 || pod.Status.PodIP != "" {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReadyToStartContainers && c.Status == corev1.ConditionTrue {
			return false
		}
	}
	return true
}

// Lookup returns the SpiderMultusConfig namespace/name, if it exists.
type Lookup func(namespace, name string) (*spv2.SpiderMultusConfig, bool)

// Conf returns the pools the ADD of pod's default network (Multus' eth0) will be configured with: the
// ones of the SpiderMultusConfig its v1.multus-cni.io/default-network annotation names, whose
// NetworkAttachmentDefinition underlink writes with underlink-ipam. ok is false when the pod's default
// network is not such a config (no annotation, the cluster's primary CNI, a NAD of another author, a
// config without IPAM or unusable): nothing is pre-allocated, and the ADD, if any, allocates.
func Conf(pod *corev1.Pod, lookup Lookup) (poolchoice.Names, bool) {
	if _, ok := pod.Annotations[nadv1.DefaultNetworkAnnotation]; !ok {
		return poolchoice.Names{}, false
	}
	atts, err := podnet.Attachments(pod, "")
	if err != nil || len(atts) == 0 || atts[0].Interface != podnet.DefaultInterface {
		return poolchoice.Names{}, false
	}
	smc, ok := lookup(atts[0].Namespace, atts[0].Name)
	if !ok {
		return poolchoice.Names{}, false
	}
	n := podnet.FromMultusConfig(smc)
	if n.Problem != "" || !n.IPAM || len(n.Masters) == 0 {
		return poolchoice.Names{}, false
	}
	return poolchoice.Names{IPv4: n.Pools.IPv4, IPv6: n.Pools.IPv6}, true
}
