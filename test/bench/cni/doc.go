// Package cni measures CNI ADD latency of underlink's underlay chain against the floor of the reference
// plugins (macvlan + host-local), in one run on one node of a netbed. The benchmark needs root and
// carries the integration build tag: `make bench-cni`.
package cni
