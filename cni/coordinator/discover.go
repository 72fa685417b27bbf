package coordinator

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nodeAddrs are the node's addresses as the route plan needs them.
type nodeAddrs struct {
	// IPs are every global unicast address on the node's links, except the coordinator's own veths.
	IPs []netip.Addr
	// NextHops are, per family, the node's address on the link of its default route: the seed's
	// "via 10.7.168.73". With a gatewayed default route, the address whose subnet holds the gateway wins.
	NextHops []netip.Addr
}

// discoverNode reads the node's addresses and default routes through h (the node's namespace).
func discoverNode(h netlinksafe.Handle) (nodeAddrs, error) {
	var out nodeAddrs
	links, err := h.LinkList()
	if err != nil {
		return out, fmt.Errorf("list node links: %w", err)
	}
	byLink := map[int][]netlink.Addr{}
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 || strings.HasPrefix(a.Alias, aliasPrefix) {
			continue
		}
		addrs, err := addrList(h, l)
		if err != nil {
			return out, fmt.Errorf("list addresses of node link %s: %w", a.Name, err)
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
			return out, fmt.Errorf("list node routes: %w", err)
		}
		if hop, ok := nextHop(defs, byLink, fam); ok {
			out.NextHops = append(out.NextHops, hop)
		}
	}
	return out, nil
}

// nextHop picks the node address of family fam on the default route's link.
func nextHop(rs []netlink.Route, byLink map[int][]netlink.Addr, fam int) (netip.Addr, bool) {
	for _, r := range rs {
		if routeDst(r).Bits() != 0 || r.LinkIndex == 0 {
			continue
		}
		var first netip.Addr
		for _, ad := range byLink[r.LinkIndex] {
			ip := toAddr(ad.IP)
			if familyOf(ip) != fam {
				continue
			}
			if !first.IsValid() {
				first = ip
			}
			if gw := toAddr(r.Gw); gw.IsValid() && ad.IPNet.Contains(r.Gw) {
				return ip, true
			}
		}
		if first.IsValid() {
			return first, true
		}
	}
	return netip.Addr{}, false
}
