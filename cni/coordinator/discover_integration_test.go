//go:build integration

package coordinator

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/underlink/underlink/test/netbed"
)

// TestDiscoverNodeOnABusyNode fills a node with 60 pods' worth of host veths (up, so each has an IPv6
// link-local address and route) and host routes, a coordinator veth with a global address, a global
// address on loopback and an IPv6 default route, then checks discoverNode against the expected addresses
// and next hops, and against a reading of every link, address and route decoded in full.
func TestDiscoverNodeOnABusyNode(t *testing.T) {
	b := netbed.New(t)
	node := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: b.Cluster(netbed.ClusterA), IP: netip.MustParsePrefix("10.7.168.73/24")})
	h, err := node.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for i := range 60 {
		name := fmt.Sprintf("ul%011d", i)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, Flags: net.FlagUp}, PeerName: fmt.Sprintf("pp%011d", i)}
		must("veth "+name, h.LinkAdd(v))
		l, err := h.LinkByName(name)
		must("find "+name, err)
		must("alias", h.LinkSetAlias(l, hostVethAlias("kube-system-macvlan-conf", fmt.Sprintf("c%d", i), "eth0")))
		must("up", h.LinkSetUp(l))
		dst := &net.IPNet{IP: net.IPv4(172, 110, 1, byte(10+i)).To4(), Mask: net.CIDRMask(32, 32)}
		must("host route", h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}))
		if i == 0 { // a vethLinkAddress that is global: still the coordinator's, not the node's
			must("veth address", h.AddrAdd(l, &netlink.Addr{IPNet: mustNet("192.0.2.10/32")}))
		}
	}
	lo, err := h.LinkByName("lo")
	must("lo", err)
	must("lo address", h.AddrAdd(lo, &netlink.Addr{IPNet: mustNet("198.51.100.1/32")}))
	nic, err := h.RouteGet(net.IPv4(10, 7, 168, 1))
	must("node NIC", err)
	link, err := h.LinkByIndex(nic[0].LinkIndex)
	must("node NIC link", err)
	must("IPv6 address", h.AddrAdd(link, &netlink.Addr{IPNet: mustNet("2001:db8:73::73/64"), Flags: unix.IFA_F_NODAD}))
	must("IPv6 default", h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: mustNet("::/0"), Gw: net.ParseIP("2001:db8:73::1")}))

	got, err := discoverNode(h, node.NS)
	must("discoverNode", err)
	want, err := discoverNodeInFull(h)
	must("full reading", err)
	if !slices.Equal(got.IPs, want.IPs) || !slices.Equal(got.NextHops, want.NextHops) {
		t.Errorf("discoverNode = %v via %v, a full reading gives %v via %v", got.IPs, got.NextHops, want.IPs, want.NextHops)
	}
	for _, ip := range []string{"192.0.2.10", "198.51.100.1"} {
		if slices.Contains(got.IPs, netip.MustParseAddr(ip)) {
			t.Errorf("node IPs %v hold %s, an address of a coordinator veth or of loopback", got.IPs, ip)
		}
	}
	for _, ip := range []string{node.IP.Addr().String(), "2001:db8:73::73"} {
		if !slices.Contains(got.IPs, netip.MustParseAddr(ip)) {
			t.Errorf("node IPs %v lack %s", got.IPs, ip)
		}
	}
	wantHops := []netip.Addr{node.IP.Addr(), netip.MustParseAddr("2001:db8:73::73")}
	if !slices.Equal(got.NextHops, wantHops) {
		t.Errorf("next hops %v, want %v", got.NextHops, wantHops)
	}
}

func mustNet(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return ipNet(p)
}

// discoverNodeInFull is what discoverNode must equal, decoded the slow way: every link, each link's
// addresses, every route of the main table.
func discoverNodeInFull(h netlinksafe.Handle) (nodeAddrs, error) {
	var out nodeAddrs
	links, err := h.LinkList()
	if err != nil {
		return out, err
	}
	byLink := map[int][]netlink.Addr{}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || strings.HasPrefix(a.Alias, aliasPrefix) {
			continue
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return out, err
		}
		for _, ad := range addrs {
			ip := toAddr(ad.IP)
			if !ip.IsGlobalUnicast() || ad.Scope != int(netlink.SCOPE_UNIVERSE) {
				continue
			}
			byLink[a.Index] = append(byLink[a.Index], ad)
			if !slices.Contains(out.IPs, ip) {
				out.IPs = append(out.IPs, ip)
			}
		}
	}
	slices.SortFunc(out.IPs, netip.Addr.Compare)
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		defs, err := h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return out, err
		}
		if hop, ok := nextHop(defs, byLink, fam); ok {
			out.NextHops = append(out.NextHops, hop)
		}
	}
	return out, nil
}
