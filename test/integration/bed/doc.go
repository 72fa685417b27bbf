// Package bed is the test bed the integration tests under test/integration share: a control plane with
// cluster-a's underlay and underlink-agent on its nodes (Cluster), this repository's commands built once
// per test binary (Commands), the cached tools run with a home of their own (Tool), namespaces and the
// seed's manifests applied to an apiserver. Waiting goes through test/poll.
package bed
