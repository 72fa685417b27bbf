// Package ipam is underlink's pure address allocator for SpiderIPPools: it reads a pool's spec and its
// status (Spiderpool's allocatedIPs JSON-in-string), decides which address a pod interface gets, releases
// addresses, computes the new status, chooses and filters pools for a pod, and decides which allocations
// garbage collection may free. It does no I/O: underlink-agent (cni/agent) reads pools from the apiserver,
// runs these functions and writes the result back with optimistic concurrency.
//
// Semantics, following Spiderpool where it defines them:
//   - Allocatable addresses are spec.ips less spec.excludeIPs and spec.gateway. An empty spec.ips means
//     the pool has no address to give (Spiderpool's AssembleTotalIPs of no ranges), not "the whole
//     subnet". In addition, and unlike Spiderpool, the network and broadcast addresses of an IPv4 subnet
//     of /30 or wider are never given out, since a pod holding them cannot talk on the segment; they do
//     not count in status.totalIPCount.
//   - A pod interface (pod UID + interface name) holds at most one address per pool; a repeated request
//     returns the address it already holds.
//   - Pool choice: annotation ipam.spidernet.io/ippools, else ipam.spidernet.io/ippool, else the CNI
//     config's ipv4Pools/ipv6Pools, else every pool with spec.default true. Pools are tried in order;
//     ineligible ones (disabled, terminating, wrong family, node/namespace/pod affinity not matching)
//     are skipped, and the error names each skipped pool and why when none is left.
//   - A status that is not the shape Spiderpool writes is never rewritten: Load refuses the pool.
package ipam
