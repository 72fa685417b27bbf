// Package cni measures CNI ADD latency of underlink's full underlay chain (macvlan with underlink-ipam,
// then underlink-coordinator, a real underlink-agent and apiserver behind the IPAM) against the floor of
// the reference plugins (macvlan + host-local) and against Spiderpool v1.2.2's chain (macvlan with its IPAM
// plugin, then its coordinator in underlay mode, a real spiderpool-agent behind both), with the rows that
// tell where the time goes, in one run on one node of a netbed. The benchmark needs root, the cached etcd
// and kube-apiserver, Spiderpool's binaries (`make spiderpool`), and carries the integration build tag:
// `make bench-cni`.
package cni
