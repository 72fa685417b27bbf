// Package prealloc gives the pods scheduled to an agent's node the addresses of every underlay network
// they attach (the default network's eth0 and each extra network's interface) as soon as the agent sees
// them, ahead of the runtime's CNI ADDs. The kubelet reaches ADD tens of milliseconds
// or more after the pod is bound (pod worker, cgroups, volumes, the sandbox); the pool status write that
// an allocation needs, about 5 ms on the apiserver, then happens in that time instead of inside ADD, which
// answers from the pre-allocation (cni/agent/service).
//
// Which pods: Eligible and Conf are pure; Runner wires them to the agent's pod informer.
package prealloc

import (
	corev1 "k8s.io/api/core/v1"

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

// Attachment is one interface of a pod to pre-allocate for, and the pools its network names.
type Attachment struct {
	// Interface is the pod interface: eth0 for the default network, net1, ... (podnet.Attachments).
	Interface string
	// Pools are the network's spec.macvlan.ippools, as its NAD's ipam.ipv4Pools/ipv6Pools, and the NIC
	// whose subnet they must match with matchMasterSubnet.
	Pools poolchoice.NetworkPools
}

// Conf returns the interfaces whose ADDs will ask underlink-ipam, with the pools each is configured with:
// every network the pod's annotations attach (the default network on eth0, each entry of
// k8s.v1.cni.cncf.io/networks on its interface) that is an underlay SpiderMultusConfig with IPAM, whose
// NetworkAttachmentDefinition underlink writes with underlink-ipam. It is empty when none is (no
// annotation, the cluster's primary CNI, NADs of other authors, configs without IPAM or unusable, or
// annotations that cannot be read): nothing is pre-allocated, and the ADDs, if any, allocate.
func Conf(pod *corev1.Pod, lookup Lookup) []Attachment {
	if !podnet.HasNetworkAnnotations(pod) {
		return nil
	}
	atts, err := podnet.Attachments(pod, "")
	if err != nil {
		return nil
	}
	var out []Attachment
	for _, a := range atts {
		smc, ok := lookup(a.Namespace, a.Name)
		if !ok {
			continue
		}
		n := podnet.FromMultusConfig(smc)
		if n.Problem != "" || !n.IPAM || len(n.Masters) == 0 {
			continue
		}
		out = append(out, Attachment{Interface: a.Interface, Pools: poolchoice.NetworkPools{
			Names: poolchoice.Names{IPv4: n.Pools.IPv4, IPv6: n.Pools.IPv6}, MatchMaster: n.Pools.MatchMaster}})
	}
	return out
}
