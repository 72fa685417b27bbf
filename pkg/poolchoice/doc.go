// Package poolchoice is the one reading of Spiderpool's pool choice and pool eligibility: which
// SpiderIPPools a pod interface takes its addresses from, in which order, and which of them may serve
// the pod on a node. The admission rules (pkg/rules), the scheduler plugin
// (scheduler/underlaynetwork) and the IPAM (underlink-agent, cni/agent/service) all decide with it, so a
// pod that is admitted and placed is a pod whose ADD finds an address, and the pool the scheduler
// counted is the pool the ADD takes from.
//
// The order of precedence is Spiderpool's, for one pod interface:
//
//  1. the pod annotation ipam.spidernet.io/ippools: its item for the interface. When the annotation is
//     there, every interface that takes addresses from SpiderIPPools must have an item: an interface
//     without one is an error, as in Spiderpool ("interface net1 must be specified");
//  2. the pod annotation ipam.spidernet.io/ippool, for whichever interface asks;
//  3. the pools the network's configuration names (a NAD's ipam.ipv4Pools/ipv6Pools, a
//     SpiderMultusConfig's spec.macvlan.ippools);
//  4. the pools with spec.default: true, the most specific first (pod affinity, then node, then
//     namespace, then network restrictions), then by name.
//
// A named pool that does not exist, or is of the other family, is a configuration error naming the field.
// Of the candidates, a pool serves a pod when it is not being deleted and not disabled, and
// spec.namespaceName (or, when empty, spec.namespaceAffinity), spec.podAffinity and spec.multusName admit
// it; on a node, when spec.nodeName (or, when empty, spec.nodeAffinity) admits the node. The name lists
// take precedence over the selectors as in Spiderpool.
//
// The package is pure: no client, no I/O. Callers turn each SpiderIPPool into a Pool once per version
// (NewPool) and ask Candidates (no node yet: admission, the scheduler's PreFilter) and Plan.OnNode (the
// scheduler's Filter), or Choose (both at once: the IPAM).
package poolchoice
