package submariner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
	"github.com/underlink/underlink/test/netbed"
)

// InterDCNIC is the gateway NIC the cable runs over (the seed's ens192).
const InterDCNIC = netbed.InterDCNIC

// Apply creates the plan's Endpoint objects in every cluster (clients by cluster ID) and its cables and
// routes in the nodes' namespaces (by node name). It is idempotent: a second Apply leaves things as
// they are.
func Apply(ctx context.Context, p *Plan, clients map[string]client.Client, nodes map[string]*netbed.Netns) error {
	for id, cl := range clients {
		for _, ep := range p.Endpoints {
			if err := applyEndpoint(ctx, cl, ep.DeepCopy()); err != nil {
				return fmt.Errorf("cluster %s: Endpoint %s: %w", id, ep.Name, err)
			}
		}
	}
	for _, np := range p.Nodes {
		n := nodes[np.Node]
		if n == nil {
			return fmt.Errorf("node %s of cluster %s has no namespace", np.Node, np.Cluster)
		}
		if err := applyNode(n, np); err != nil {
			return fmt.Errorf("node %s: %w", np.Node, err)
		}
	}
	return nil
}

func applyEndpoint(ctx context.Context, cl client.Client, ep *submarinerv1.Endpoint) error {
	err := cl.Create(ctx, ep)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &submarinerv1.Endpoint{}
	if err := cl.Get(ctx, client.ObjectKeyFromObject(ep), cur); err != nil {
		return err
	}
	cur.Spec = ep.Spec
	cur.Labels = ep.Labels
	return cl.Update(ctx, cur)
}

func applyNode(n *netbed.Netns, np NodePlan) error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	if np.Cable != nil {
		if err := applyCable(h, np.Cable); err != nil {
			return err
		}
	}
	for _, r := range np.Routes {
		l, err := h.LinkByName(r.Dev)
		if err != nil {
			return fmt.Errorf("route %s: %w", r, err)
		}
		rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(r.Dst), Gw: r.Via.AsSlice()}
		if r.Onlink {
			rt.Flags = int(netlink.FLAG_ONLINK)
		}
		if err := h.RouteReplace(rt); err != nil {
			return fmt.Errorf("route %s: %w", r, err)
		}
	}
	return nil
}

// applyCable creates (or keeps) the VXLAN interface over ens192, its VTEP address and one all-zero
// forwarding entry per remote endpoint, as the vxlan cable driver does.
func applyCable(h handle, c *Cable) error {
	under, err := h.LinkByName(InterDCNIC)
	if err != nil {
		return fmt.Errorf("the gateway has no %s: %w", InterDCNIC, err)
	}
	l, err := h.LinkByName(TunnelInterface)
	if err != nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: TunnelInterface,
				// The VXLAN header and outer IP/UDP headers come out of the underlying NIC's MTU.
				MTU: under.Attrs().MTU - 50},
			VxlanId:      VNI,
			VtepDevIndex: under.Attrs().Index,
			SrcAddr:      c.Local.AsSlice(),
			Port:         Port,
		}
		if err := h.LinkAdd(vx); err != nil {
			return fmt.Errorf("add %s: %w", TunnelInterface, err)
		}
		if l, err = h.LinkByName(TunnelInterface); err != nil {
			return err
		}
	}
	if err := h.AddrReplace(l, &netlink.Addr{IPNet: ipNet(c.VTEP)}); err != nil {
		return fmt.Errorf("address %s on %s: %w", c.VTEP, TunnelInterface, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	for _, r := range c.Remotes {
		fdb := &netlink.Neigh{
			LinkIndex:    l.Attrs().Index,
			Family:       unix.AF_BRIDGE,
			State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
			Flags:        netlink.NTF_SELF,
			IP:           r.AsSlice(),
			HardwareAddr: net.HardwareAddr{0, 0, 0, 0, 0, 0},
		}
		if err := h.NeighAppend(fdb); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("forwarding entry to %s on %s: %w", r, TunnelInterface, err)
		}
	}
	return nil
}

// handle is the part of a netlink handle applyCable uses.
type handle interface {
	LinkByName(string) (netlink.Link, error)
	LinkAdd(netlink.Link) error
	LinkSetUp(netlink.Link) error
	AddrReplace(netlink.Link, *netlink.Addr) error
	NeighAppend(*netlink.Neigh) error
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// CableCounters are a gateway's tunnel interface packet counters.
type CableCounters struct {
	TxPackets, RxPackets uint64
}

// Counters reads the cable's counters in a gateway's namespace.
func Counters(n *netbed.Netns) (CableCounters, error) {
	h, err := n.Netlink()
	if err != nil {
		return CableCounters{}, err
	}
	defer h.Close()
	l, err := h.LinkByName(TunnelInterface)
	if err != nil {
		return CableCounters{}, fmt.Errorf("%s has no %s: %w", n.Name, TunnelInterface, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return CableCounters{}, fmt.Errorf("%s: no statistics for %s", n.Name, TunnelInterface)
	}
	return CableCounters{TxPackets: s.TxPackets, RxPackets: s.RxPackets}, nil
}

// Probe pings a remote gateway's VTEP through the cable from a gateway, as Submariner's health check
// does, and returns the round-trip time of the fastest of count echoes.
func Probe(from *netbed.Netns, remoteVTEP netip.Addr, count int) (time.Duration, error) {
	best := time.Duration(0)
	for i := 0; i < count; i++ {
		start := time.Now()
		if err := netbed.Ping(from, remoteVTEP, 1, 5*time.Second); err != nil {
			return 0, err
		}
		if d := time.Since(start); best == 0 || d < best {
			best = d
		}
	}
	return best, nil
}
