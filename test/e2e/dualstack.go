package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// The dual-stack step's objects on cluster-a: an IPv4 and an IPv6 pool on one network, which two pods
// (one per node) take as their default network. Submariner routes IPv4 only, so the IPv6 pool is
// admitted with a warning. The nodes get an IPv6 address and default route on their NIC for the step
// (the bed's nodes are IPv4 only), so that the coordinator has an IPv6 next hop.
const (
	dsNet    = "ds-net"
	dsV4Pool = "ds-v4"
	dsV6Pool = "ds-v6"
	// dsHijack6 is an IPv6 destination the network hijacks through the node, as a dual-stack cluster's
	// IPv6 service CIDR would be.
	dsHijack6 = "fd00:10:96::/112"
)

var (
	dsV4Range  = "172.110.215.10-172.110.215.19"
	dsV6Subnet = netip.MustParsePrefix("fd00:172:110::/64")
	dsV6Range  = "fd00:172:110::10-fd00:172:110::19"
	// dsNodeRouter is the IPv6 default gateway of the nodes' NIC for the step; nothing answers on it,
	// and nothing needs to: the pods reach the node itself.
	dsNodeRouter = netip.MustParseAddr("fd00:7:168::1")
)

// dsNodeAddr is node i's IPv6 address on its NIC for the step.
func dsNodeAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("fd00:7:168::%x", 0x10+i)), 64)
}

// nodeIPv6 adds (or, with add false, removes) node i's IPv6 address and default route on its NIC.
func nodeIPv6(n TargetNode, i int, add bool) error {
	return onNodeLink(n, netbed.NodeNIC, func(h netlinksafe.Handle, l netlink.Link) error {
		def := &netlink.Route{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V6, Gw: dsNodeRouter.AsSlice()}
		if !add {
			_ = h.RouteDel(def)
			return nodeAddr(h, l, n.Name, dsNodeAddr(i), false)
		}
		if err := nodeAddr(h, l, n.Name, dsNodeAddr(i), true); err != nil {
			return err
		}
		if err := h.RouteReplace(def); err != nil {
			return fmt.Errorf("IPv6 default route via %s on %s: %w", dsNodeRouter, n.Name, err)
		}
		return nil
	})
}

// onNodeLink runs do with a netlink handle in node n's namespace and its link nic.
func onNodeLink(n TargetNode, nic string, do func(h netlinksafe.Handle, l netlink.Link) error) error {
	h, err := n.Net.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(nic)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", nic, n.Name, err)
	}
	return do(h, l)
}

// nodeAddr adds a (without duplicate address detection), or with add false removes it, on link l of
// node.
func nodeAddr(h netlinksafe.Handle, l netlink.Link, node string, a netip.Prefix, add bool) error {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}, Flags: unix.IFA_F_NODAD}
	if !add {
		if err := h.AddrDel(l, addr); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s from %s on %s: %w", a, l.Attrs().Name, node, err)
		}
		return nil
	}
	if err := h.AddrReplace(l, addr); err != nil {
		return fmt.Errorf("add %s to %s on %s: %w", a, l.Attrs().Name, node, err)
	}
	return nil
}

// cleanDualStack deletes what an earlier run's dual-stack step left on c, and the nodes' IPv6.
func (r *runner) cleanDualStack(c TargetCluster) error {
	err := r.deleteLeftovers(c, [][]string{
		{"delete", "pod", "-n", appNamespace, "-l", "underlink-e2e=" + dsNet, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"},
		{"delete", "spidermultusconfig", dsNet, "-n", configNS, "--ignore-not-found"},
		{"delete", "spiderippool", dsV4Pool, dsV6Pool, "--ignore-not-found", "--timeout=60s"},
	})
	for i, n := range c.Nodes {
		if n.Net != nil {
			err = errors.Join(err, nodeIPv6(n, i, false))
		}
	}
	return err
}

func (r *runner) dsPod(name, node string) []byte {
	return r.pinnedPod(name, node, dsNet, nadv1.DefaultNetworkAnnotation, configNS+"/"+dsNet)
}

// dualStack runs two pods on cluster-a's two nodes whose default network has an IPv4 and an IPv6 pool.
// Each pod has both addresses; they ping each other and their node over both families; `ip -6 route`
// in a pod shows the IPv6 hijack route and the node's address via veth0, as `ip route` does for IPv4.
func (r *runner) dualStack() error {
	c := r.a
	if len(c.Nodes) < 2 {
		return r.check(false, "two nodes on "+c.Name, fmt.Sprint(len(c.Nodes)))
	}
	for i, n := range c.Nodes {
		if err := nodeIPv6(n, i, true); err != nil {
			return r.check(false, "IPv6 on the nodes' "+netbed.NodeNIC, err.Error())
		}
		fmt.Fprintf(r.out, "[%s]# ip -6 addr add %s dev %s nodad; ip -6 route add default via %s   # on %s\n", c.Name, dsNodeAddr(i), netbed.NodeNIC, dsNodeRouter, n.Name)
	}
	defer func() { _ = r.cleanDualStack(c) }()

	gw := netip.MustParsePrefix(c.ClusterCIDR).Addr().Next()
	pools := poolManifest(dsV4Pool, c.ClusterCIDR, gw.String(), dsV4Range) + "---\n" +
		fmt.Sprintf("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: %s\nspec:\n  ipVersion: 6\n  subnet: %s\n  ips:\n  - %s\n", dsV6Pool, dsV6Subnet, dsV6Range)
	out, err := r.showManifest(c, "apply", []byte(pools))
	if err := r.check(err == nil && strings.Contains(out, "Warning:") && strings.Contains(out, "no IPv6 pod CIDR"),
		"SpiderIPPools "+dsV4Pool+" and "+dsV6Pool+" admitted, the IPv6 one with a warning that Submariner routes IPv4 only", lastLines(out, 3)); err != nil {
		return err
	}
	network := strings.Replace(r.coordinatedNetwork(dsNet, netbed.UnderlayNIC, dsV4Pool, "    - "+dsHijack6+"\n"),
		"      - "+dsV4Pool+"\n", "      - "+dsV4Pool+"\n      ipv6:\n      - "+dsV6Pool+"\n", 1)
	if err := r.applyNetwork(c, dsNet, network, "IPv4 and IPv6 pools, an IPv6 hijack CIDR"); err != nil {
		return err
	}
	names := []string{"ds-a", "ds-b"}
	for i, name := range names {
		if out, err := r.showManifest(c, "apply", r.dsPod(name, c.Nodes[i].Name)); err != nil {
			return r.check(false, name+" admitted", out)
		}
	}
	ips := map[string][2]string{} // pod → IPv4, IPv6
	for i, name := range names {
		if err := r.waitRunning(c, name, 2*time.Minute); err != nil {
			return r.check(false, name+" Running on "+c.Nodes[i].Name, err.Error())
		}
		out, err := r.kubectlQuiet(c, nil, "get", "pod", name, "-o", "jsonpath={.status.podIPs[*].ip}")
		var v4, v6 string
		for _, f := range strings.Fields(out) {
			if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
				v4 = f
			} else if err == nil && dsV6Subnet.Contains(a) {
				v6 = f
			}
		}
		if err := r.check(err == nil && v4 != "" && v6 != "", name+" on "+c.Nodes[i].Name+" has an IPv4 and an IPv6 address", out); err != nil {
			return err
		}
		ips[name] = [2]string{v4, v6}
	}
	nodeV4, err := r.kubectlQuiet(c, nil, "get", "node", c.Nodes[0].Name, "-o", `jsonpath={.status.addresses[?(@.type=="InternalIP")].address}`)
	if err != nil {
		return r.check(false, "InternalIP of "+c.Nodes[0].Name, nodeV4)
	}
	nodeV6 := dsNodeAddr(0).Addr().String()
	for _, p := range []struct{ what, dst string }{
		{"ds-b (" + c.Nodes[1].Name + ") over IPv4", ips["ds-b"][0]},
		{"ds-b (" + c.Nodes[1].Name + ") over IPv6", ips["ds-b"][1]},
		{"its node " + c.Nodes[0].Name + " over IPv4", strings.TrimSpace(nodeV4)},
		{"its node " + c.Nodes[0].Name + " over IPv6", nodeV6},
	} {
		out, err := r.kubectl(c, nil, "exec", "ds-a", "--", "ping", "-c2", p.dst)
		if err := r.check(err == nil && strings.Contains(out, "2 packets received"), "ping ds-a → "+p.what+" "+p.dst, firstLine(out, "packets transmitted")); err != nil {
			return err
		}
	}
	// The pod's IPv6 routes: the hijacked CIDR via the node's IPv6 address over veth0, and that address
	// on veth0 itself.
	out, err = r.kubectl(c, nil, "exec", "ds-a", "--", "ip", "-6", "route")
	if err != nil {
		return r.check(false, "ip -6 route in ds-a", out)
	}
	want := []string{
		dsHijack6 + " via " + nodeV6 + " dev veth0",
		nodeV6 + " dev veth0",
	}
	var missing []string
	for _, w := range want {
		if !strings.Contains(out, w) {
			missing = append(missing, w)
		}
	}
	detail := strings.Join(want, "; ")
	if len(missing) > 0 {
		detail = "missing: " + strings.Join(missing, "; ") + "; got:\n" + out
	}
	if err := r.check(len(missing) == 0, "ip -6 route in ds-a: "+dsHijack6+" via the node over veth0", detail); err != nil {
		return err
	}
	out, err = r.kubectl(c, nil, "exec", "ds-a", "--", "ip", "route")
	if err != nil {
		return r.check(false, "ip route in ds-a", out)
	}
	hijacked := []string{r.b.ServiceCIDR, r.b.ClusterCIDR}
	if err := r.check(len(HijackProblems(ParseRoutes(out), hijacked)) == 0, "ip route in ds-a: "+strings.Join(hijacked, ", ")+" via the node over veth0",
		strings.Join(HijackProblems(ParseRoutes(out), hijacked), "; ")); err != nil {
		return err
	}
	// Deleted, the pods give both families' addresses back.
	if out, err := r.kubectl(c, nil, "delete", "pod", "ds-a", "ds-b", "--wait=true", "--timeout=60s"); err != nil {
		return r.check(false, "ds-a and ds-b deleted", out)
	}
	var held []string
	err = poll.Wait(r.ctx, time.Minute, pollInterval, "both pools empty", func() (bool, string, error) {
		held = held[:0]
		for _, pool := range []string{dsV4Pool, dsV6Pool} {
			allocs, err := r.poolAllocations(c, pool)
			if err != nil {
				return false, err.Error(), nil
			}
			for ip := range allocs {
				held = append(held, pool+"="+ip)
			}
		}
		return len(held) == 0, strings.Join(held, ", "), nil
	})
	return r.check(err == nil, "ds-a and ds-b deleted: both pools' addresses released", strings.Join(held, ", "))
}
