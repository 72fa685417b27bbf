// Package nodes gives the local clusters real nodes: per node a network namespace of test/netbed (with
// the seed's NICs ens224, eth0 and, on gateways, ens192) in which containerd 1.6 (Debian's, with runc)
// and kubelet and kube-proxy v1.37.2 run, as test/nodes/README.md says they must on this kind of machine.
//
// What a node is made of, and why:
//   - A private mount namespace (held by a sleeping process) with a tmpfs on /run and its own /var/lib,
//     /var/log, /opt and /etc/cni, bind-mounted from the node's directory. Every node thereby has the
//     usual paths of a real node to itself — containerd's socket and state, /var/lib/kubelet,
//     /var/log/pods, /opt/cni/bin (which the chart's agent and Multus' installer fill), /etc/cni/net.d
//     (where Multus writes its configuration), /run/underlink/agent.sock — while sharing the machine's
//     binaries. Everything a node mounts (pod volumes, overlay rootfs, pod netns) lives in that namespace
//     and disappears with it.
//   - A primary CNI network of its own (a bridge on the node's /24), which Multus, once its DaemonSet
//     runs, wraps as its cluster network.
//   - A cgroup root per node (/underlink/<bed>/<node> in every v1 hierarchy) for kubelet's pods.
//   - Client and serving certificates signed by the cluster's CA (test/localenv's PKI).
//
// How the node and the control plane reach each other without any address of the test in the root
// namespace:
//   - node → apiserver: a relay of netbed in the management namespace, at MgmtRouter:<apiserver port>
//     (10.7.168.1:16443 for cluster-a), forwards to the apiserver on the root namespace's loopback; node
//     processes use it with tls-server-name "kubernetes" (a name the serving certificate carries), and
//     the kubernetes Service's endpoint is that address, so pods using in-cluster config reach it too.
//   - apiserver → kubelet (exec, logs) and → Services (webhooks referenced by Service): the apiserver's
//     egress selector sends "cluster" traffic as HTTP CONNECT over a unix socket (test/localenv
//     configures it); this package serves that socket and dials each target from inside the cluster's
//     first node namespace, where node IPs and (through kube-proxy) ClusterIPs are reachable.
//
// Teardown (the bed's, in reverse order of creation) stops kubelet, kube-proxy and containerd, kills
// whatever is left in the node's namespaces and cgroups (shims, containers), removes the cgroups, the
// node's directory and the namespace.
package nodes
