// Package netbed builds network test beds out of Linux network namespaces for underlink's datapath
// tests and local clusters: per cluster an underlay segment (a bridge holding the pool gateway), nodes
// with the seed's NICs (ens224 on the underlay, eth0 on a management segment, ens192 on an
// inter-data-centre segment for gateway nodes), pod namespaces, processes and CNI chains run inside node
// namespaces, and loopback relays from a node's 127.0.0.1 to a control plane in the root namespace.
//
// Every address of a bed lives inside its own namespaces; nothing is added to the root namespace, and
// a node's default route ends in the mgmt namespace, which routes nowhere. Everything is removed by
// t.Cleanup, also after a failure half-way through setup; namespaces of crashed runs are swept by the
// next New. See README.md for the topology and how to use it.
package netbed
