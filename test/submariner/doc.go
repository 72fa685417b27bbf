// Package submariner simulates, in the test bed, what Submariner's components do for the user's
// scenario — it is a simulation, named as one, and underlink never depends on it:
//
//   - the broker sync: every cluster gets every cluster's submariner.io/v1 Endpoint (test/localenv
//     already writes the Cluster objects);
//   - the gateway engine with the vxlan cable driver: a VXLAN interface "vxlan-tunnel" on each gateway
//     node, over its ens192, with a VTEP address 241.x.y.z/8 derived from the endpoint's private IP, a
//     forwarding entry per remote endpoint, and routes of the remote clusters' pod and service CIDRs via
//     the remote VTEP;
//   - the route agent: every non-gateway node routes the remote CIDRs to its cluster's gateway node;
//   - `subctl show`: connections, endpoints, gateways and network details printed from those objects
//     and the cable's state.
//
// Plan is the pure part (what to create, from the clusters' CIDRs and gateway addresses); Apply puts a
// plan into the nodes' namespaces and the clusters' apiservers.
package submariner
