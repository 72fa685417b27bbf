package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/underlink/underlink/api/scheme"
	"github.com/underlink/underlink/test"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/localenv"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/nodes"
	"github.com/underlink/underlink/test/submariner"
)

// NodePlan is the seed's topology: per cluster a gateway node (on the inter-data-centre network, with
// the seed's 10.7.168.73 / 10.6.168.73 for cluster-a) and a second node, each with an address on its
// cluster's underlay like the seed's nodes (172.110.168.73), and a node-local /24 for pods that name no
// network.
func NodePlan(c localenv.Cluster, index int) nodes.Cluster {
	underlay := []netbed.ClusterSpec{netbed.ClusterA, netbed.ClusterB}[index]
	gw := underlay.Gateway.Addr().As4() // 172.110.0.1 → node addresses 172.110.168.x
	node := func(name string, host byte, gateway bool) nodes.NodeSpec {
		s := nodes.NodeSpec{
			Name:       name,
			IP:         netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 7, 168, host}), 24),
			UnderlayIP: netip.PrefixFrom(netip.AddrFrom4([4]byte{gw[0], gw[1], 168, host}), 16),
			PodSubnet:  netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, host, 0}), 24),
		}
		if gateway {
			s.InterDC = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 6, 168, host}), 16)
		}
		return s
	}
	letter := string(c.Name[len(c.Name)-1])
	plan := nodes.Cluster{
		Name:      c.Name,
		APIServer: fmt.Sprintf("127.0.0.1:%d", c.APIServerPort),
		Underlay:  underlay,
		Nodes: []nodes.NodeSpec{
			node(letter+"-node1", byte(73+index), true),
			node(letter+"-node2", byte(75+index), false),
		},
	}
	if index == 0 {
		// The underlay steps' bed (issue #20): a second underlay NIC, ens256 on its own segment, on the
		// first node only (the second node lacks the parent of that network); a foreign host on the
		// cluster's underlay holding an address of the conflict step's pool; a peer behind the second
		// segment's gateway.
		plan.Nodes[0].Extra = []nodes.ExtraNIC{{Name: SecondNIC, Segment: StorageSegment}}
		plan.Hosts = []nodes.HostSpec{
			{Name: ForeignHost, Segment: underlay, Addrs: []netip.Prefix{netip.PrefixFrom(ForeignHostIP, underlay.Gateway.Bits())}},
			{Name: StoragePeer, Segment: StorageSegment, Addrs: []netip.Prefix{StoragePeerIP}},
		}
	}
	return plan
}

// The underlay steps' bed (NodePlan).
var (
	// SecondNIC is cluster-a's first node's second underlay NIC.
	SecondNIC = "ens256"
	// StorageSegment is SecondNIC's segment: its own subnet and gateway, which routes to the peer's.
	StorageSegment = netbed.ClusterSpec{Name: "cluster-a-storage", Gateway: netip.MustParsePrefix("192.168.56.1/24"),
		Routed: []netip.Prefix{netip.MustParsePrefix("192.168.57.1/24")}}
	// ForeignHost holds ForeignHostIP on cluster-a's underlay, outside Kubernetes; MovedIP is the
	// address that moves between nodes under its eyes.
	ForeignHost   = "a-foreign"
	ForeignHostIP = netip.MustParseAddr("172.110.200.10")
	MovedIP       = netip.MustParseAddr("172.110.200.20")
	// StoragePeer is a host behind StorageSegment's gateway.
	StoragePeer   = "a-storage-peer"
	StoragePeerIP = netip.MustParsePrefix("192.168.57.5/24")
)

// Env is the running bed: control planes, nodes, the Submariner simulation.
type Env struct {
	ControlPlane *localenv.Env
	Nodes        *nodes.Env
	// Submariner is nil in a bed of one cluster.
	Submariner *submariner.Plan
	// Images are the tarballs imported into every node, and the references they carry.
	Images []nodes.Image
}

// UpOptions tune Up.
type UpOptions struct {
	// Dir holds the nodes' directories.
	Dir string
	Out io.Writer
	// KeepLogs keeps node logs at teardown when it returns true.
	KeepLogs func() bool
	// ExtraPlugins are reference CNI plugins (containernetworking/plugins, in the tool cache) installed on
	// every node beside the base set, as a cluster that runs another CNI brings them (e.g. macvlan for
	// Spiderpool's configs).
	ExtraPlugins []string
}

// Up starts the nodes of every cluster of cp (whose control planes run) in bed and joins the clusters
// with the Submariner simulation (a bed of one cluster has no Submariner: Env.Submariner is nil). Each
// missing piece is named with the command that provides it.
func Up(ctx context.Context, bed *netbed.Bed, cp *localenv.Env, o UpOptions) (*Env, error) {
	bins := map[string]string{}
	plugins := map[string]string{}
	for _, name := range []string{"kubelet", "kube-proxy", "kube-scheduler"} {
		p, err := controlplane.Binary(name)
		if err != nil {
			return nil, err
		}
		bins[name] = p
	}
	// loopback for every pod (containerd runs it); bridge and host-local for the node-local network.
	// Multus is not among them: its DaemonSet's init container installs it, as on any cluster.
	for _, name := range append([]string{"loopback", "bridge", "host-local"}, o.ExtraPlugins...) {
		p, err := controlplane.Binary(name)
		if err != nil {
			return nil, err
		}
		plugins[name] = p
	}
	images, err := nodes.FindImages(nodes.ImagesDir())
	if err != nil {
		return nil, err
	}
	pause, err := nodes.PickImage(images, "pause")
	if err != nil {
		return nil, err
	}
	var specs []nodes.Cluster
	for i, c := range cp.Clusters {
		s := NodePlan(c, i)
		s.PKIDir = cp.PKIDir(c)
		s.EgressSocket = cp.EgressSocket(c)
		specs = append(specs, s)
	}
	ne, err := nodes.Start(ctx, bed, nodes.Options{
		Dir: o.Dir, Images: nodes.Tarballs(images), SandboxImage: pause, CNIPlugins: plugins, Binaries: bins,
		Out: o.Out, KeepLogs: o.KeepLogs,
	}, specs...)
	if err != nil {
		return nil, err
	}
	env := &Env{ControlPlane: cp, Nodes: ne, Images: images}
	if len(specs) < 2 {
		return env, nil // one cluster: nothing to join
	}
	plan, err := submariner.NewPlan(submarinerClusters(cp, specs))
	if err != nil {
		return nil, err
	}
	clients := map[string]client.Client{}
	for _, cn := range ne.Clusters() {
		cl, err := client.New(cn.Config, client.Options{Scheme: scheme.New()})
		if err != nil {
			return nil, err
		}
		clients[cn.Spec.Name] = cl
	}
	netns := map[string]*netbed.Netns{}
	for _, cn := range ne.Clusters() {
		for _, n := range cn.Nodes {
			netns[n.Spec.Name] = n.Net.NS
		}
	}
	if err := submariner.Apply(ctx, plan, clients, netns); err != nil {
		return nil, fmt.Errorf("submariner simulation: %w", err)
	}
	env.Submariner = plan
	return env, nil
}

// submarinerClusters describes the clusters to the simulation: the CIDRs subctl join was given (the
// Cluster objects localenv wrote) and the gateway (first node) and other nodes.
func submarinerClusters(cp *localenv.Env, specs []nodes.Cluster) []submariner.Cluster {
	var out []submariner.Cluster
	for i, c := range cp.Clusters {
		s := specs[i]
		sc := submariner.Cluster{
			ID:          c.Name,
			ClusterCIDR: netip.MustParsePrefix(c.ClusterCIDR),
			ServiceCIDR: netip.MustParsePrefix(c.ServiceCIDR),
			Gateway:     submariner.Node{Name: s.Nodes[0].Name, IP: s.Nodes[0].IP.Addr(), PrivateIP: s.Nodes[0].InterDC.Addr()},
		}
		for _, n := range s.Nodes[1:] {
			sc.Nodes = append(sc.Nodes, submariner.Node{Name: n.Name, IP: n.IP.Addr()})
		}
		out = append(out, sc)
	}
	return out
}

// ChartDir is underlink's Helm chart in this repository.
func ChartDir() string { return test.Path("deploy", "helm", "underlink") }
