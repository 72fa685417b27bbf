package submariner

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// Constants of Submariner's vxlan cable driver.
const (
	// CableDriver is the cable driver's name as Endpoints and subctl show it.
	CableDriver = "vxlan"
	// TunnelInterface is the VXLAN interface on a gateway node.
	TunnelInterface = "vxlan-tunnel"
	// VNI is the VXLAN network identifier of the cable.
	VNI = 1000
	// Port is the UDP port of the cable (Submariner's NAT-T port, which the vxlan driver reuses).
	Port = 4500
	// vtepFirstOctet replaces the first octet of an endpoint's private IP to form its VTEP address.
	vtepFirstOctet = 241
	// Namespace is where the broker sync writes Endpoint and Cluster objects in every cluster.
	Namespace = "submariner-operator"
)

// Cluster is one joined cluster as the simulation needs it.
type Cluster struct {
	// ID is the cluster ID (subctl join --clusterid), e.g. "cluster-a".
	ID string
	// ClusterCIDR and ServiceCIDR are what subctl join was given (--clustercidr) and discovered.
	ClusterCIDR, ServiceCIDR netip.Prefix
	// Gateway is the gateway node.
	Gateway Node
	// Nodes are the other nodes, which the route agent points at the gateway.
	Nodes []Node
}

// Node is a node of a cluster.
type Node struct {
	// Name is the Node name.
	Name string
	// IP is the node IP, the next hop other nodes use to reach it.
	IP netip.Addr
	// PrivateIP is the gateway's address on the inter-data-centre network (its ens192), the cable's
	// endpoint; unset on non-gateway nodes.
	PrivateIP netip.Addr
}

// Route is a route to install in a node's namespace.
type Route struct {
	Dst netip.Prefix
	// Via is the next hop; Dev the output interface.
	Via netip.Addr
	Dev string
	// Onlink marks a next hop not on a connected subnet of Dev (the remote VTEP is reached through the
	// forwarding entry, not by a subnet route).
	Onlink bool
}

func (r Route) String() string {
	s := fmt.Sprintf("%s via %s dev %s", r.Dst, r.Via, r.Dev)
	if r.Onlink {
		s += " onlink"
	}
	return s
}

// Cable is the VXLAN interface of one gateway.
type Cable struct {
	// Local is the gateway's private IP, the tunnel's source.
	Local netip.Addr
	// VTEP is the tunnel interface's own address (241.x.y.z/8).
	VTEP netip.Prefix
	// Remotes are the remote endpoints' private IPs, one forwarding entry each.
	Remotes []netip.Addr
}

// NodePlan is what one node gets.
type NodePlan struct {
	Cluster, Node string
	// Cable is set on gateway nodes.
	Cable *Cable
	// Routes to the remote clusters' CIDRs.
	Routes []Route
}

// Plan is everything the simulation creates.
type Plan struct {
	// Endpoints are the Endpoint objects, the same set in every cluster (the broker sync's view).
	Endpoints []*submarinerv1.Endpoint
	// Nodes are per-node datapath plans, in cluster and node order.
	Nodes []NodePlan
}

// VTEPAddr is a gateway's VTEP address as the vxlan cable driver derives it: its private IP with the
// first octet replaced by 241, in 241.0.0.0/8.
func VTEPAddr(private netip.Addr) (netip.Prefix, error) {
	if !private.Is4() {
		return netip.Prefix{}, fmt.Errorf("endpoint private IP %s: the vxlan cable driver needs IPv4", private)
	}
	b := private.As4()
	b[0] = vtepFirstOctet
	return netip.PrefixFrom(netip.AddrFrom4(b), 8), nil
}

// CableName is the Endpoint's cable name, as Submariner forms it.
func CableName(clusterID string, private netip.Addr) string {
	return "submariner-cable-" + clusterID + "-" + strings.ReplaceAll(private.String(), ".", "-")
}

// NewPlan computes the Endpoints, cables and routes for the joined clusters, checking what Submariner
// itself refuses without globalnet: overlapping CIDRs between clusters.
func NewPlan(clusters []Cluster) (*Plan, error) {
	if len(clusters) < 2 {
		return nil, fmt.Errorf("a Submariner connection needs at least two clusters, got %d", len(clusters))
	}
	seen := map[string]bool{}
	for i, c := range clusters {
		if c.ID == "" || seen[c.ID] {
			return nil, fmt.Errorf("cluster %d: ID %q is empty or repeated", i, c.ID)
		}
		seen[c.ID] = true
		if !c.ClusterCIDR.IsValid() || !c.ServiceCIDR.IsValid() {
			return nil, fmt.Errorf("cluster %s: cluster CIDR %s or service CIDR %s is not a CIDR", c.ID, c.ClusterCIDR, c.ServiceCIDR)
		}
		if !c.Gateway.PrivateIP.IsValid() || !c.Gateway.IP.IsValid() {
			return nil, fmt.Errorf("cluster %s: gateway node %q needs a node IP and a private (ens192) IP", c.ID, c.Gateway.Name)
		}
		for _, o := range clusters[:i] {
			for _, a := range []netip.Prefix{c.ClusterCIDR, c.ServiceCIDR} {
				for _, b := range []netip.Prefix{o.ClusterCIDR, o.ServiceCIDR} {
					if a.Overlaps(b) {
						return nil, fmt.Errorf("cluster %s's %s overlaps cluster %s's %s: Submariner needs globalnet for that", c.ID, a, o.ID, b)
					}
				}
			}
		}
	}
	p := &Plan{}
	for _, c := range clusters {
		ep := &submarinerv1.Endpoint{
			ObjectMeta: metav1.ObjectMeta{
				Name:      c.ID + "-" + CableName(c.ID, c.Gateway.PrivateIP),
				Namespace: Namespace,
				Labels:    map[string]string{"submariner-io/clusterID": c.ID},
			},
			Spec: submarinerv1.EndpointSpec{
				ClusterID: c.ID,
				CableName: CableName(c.ID, c.Gateway.PrivateIP),
				Hostname:  c.Gateway.Name,
				Subnets:   []string{c.ServiceCIDR.String(), c.ClusterCIDR.String()},
				PrivateIP: c.Gateway.PrivateIP.String(),
				// No NAT between the data centres: the public IP is the private one.
				PublicIP:   c.Gateway.PrivateIP.String(),
				NATEnabled: false,
				Backend:    CableDriver,
			},
		}
		p.Endpoints = append(p.Endpoints, ep)
	}
	for _, c := range clusters {
		vtep, err := VTEPAddr(c.Gateway.PrivateIP)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", c.ID, err)
		}
		gw := NodePlan{Cluster: c.ID, Node: c.Gateway.Name, Cable: &Cable{Local: c.Gateway.PrivateIP, VTEP: vtep}}
		var others []NodePlan
		for _, n := range c.Nodes {
			others = append(others, NodePlan{Cluster: c.ID, Node: n.Name})
		}
		for _, r := range clusters {
			if r.ID == c.ID {
				continue
			}
			rv, err := VTEPAddr(r.Gateway.PrivateIP)
			if err != nil {
				return nil, fmt.Errorf("cluster %s: %w", r.ID, err)
			}
			gw.Cable.Remotes = append(gw.Cable.Remotes, r.Gateway.PrivateIP)
			for _, dst := range []netip.Prefix{r.ServiceCIDR, r.ClusterCIDR} {
				gw.Routes = append(gw.Routes, Route{Dst: dst.Masked(), Via: rv.Addr(), Dev: TunnelInterface, Onlink: true})
				for i := range others {
					others[i].Routes = append(others[i].Routes, Route{Dst: dst.Masked(), Via: c.Gateway.IP, Dev: NodeNIC})
				}
			}
		}
		p.Nodes = append(p.Nodes, gw)
		p.Nodes = append(p.Nodes, others...)
	}
	for _, n := range p.Nodes {
		slices.SortFunc(n.Routes, func(a, b Route) int { return strings.Compare(a.Dst.String(), b.Dst.String()) })
	}
	return p, nil
}

// NodeNIC is the interface non-gateway nodes reach their gateway on (the bed's node NIC).
const NodeNIC = "eth0"
