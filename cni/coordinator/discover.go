package coordinator

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
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

// discoverNode reads the node's addresses and default routes: h is a handle in the node's namespace,
// hostNS that namespace (nil: the one the plugin runs in).
//
// Every pod of the node adds entries to what it reads: its host veth (a link with an IPv6 link-local
// address and a link-local route) and its host route. Parsing each of them would make an ADD's cost grow
// with the pods already on the node: with 110 pods, listing the node's links, then their addresses and
// routes, took longer than the rest of the ADD. So it reads one dump of addresses and one of routes per
// family, looks at each message's fixed header only (scope, prefix length), and decodes the few that
// can matter: global addresses and default routes. Only the links holding a global address are looked
// up, to leave out loopback and the coordinator's own veths.
func discoverNode(h netlinksafe.Handle, hostNS ns.NetNS) (nodeAddrs, error) {
	var out nodeAddrs
	sock, err := routeSocket(hostNS)
	if err != nil {
		return out, fmt.Errorf("netlink socket in the node namespace: %w", err)
	}
	defer sock.Close()
	candidates, err := globalAddrs(sock)
	if err != nil {
		return out, fmt.Errorf("list node addresses: %w", err)
	}
	byLink := map[int][]netlink.Addr{}
	for index, addrs := range candidates {
		l, err := h.LinkByIndex(index)
		if err != nil {
			var lnf netlink.LinkNotFoundError
			if errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) {
				continue // gone since the dump
			}
			return out, fmt.Errorf("node link %d: %w", index, err)
		}
		if a := l.Attrs(); a.Flags&net.FlagLoopback != 0 || strings.HasPrefix(a.Alias, aliasPrefix) {
			continue
		}
		byLink[index] = addrs
		for _, ad := range addrs {
			if ip := toAddr(ad.IP); !slices.Contains(out.IPs, ip) {
				out.IPs = append(out.IPs, ip)
			}
		}
	}
	slices.SortFunc(out.IPs, netip.Addr.Compare)

	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		if !slices.ContainsFunc(out.IPs, func(ip netip.Addr) bool { return familyOf(ip) == fam }) {
			continue // no address of fam to be a next hop: an IPv4-only node reads no IPv6 routes
		}
		defs, err := defaultRoutes(sock, fam)
		if err != nil {
			return out, fmt.Errorf("list node routes: %w", err)
		}
		if hop, ok := nextHop(defs, byLink, fam); ok {
			out.NextHops = append(out.NextHops, hop)
		}
	}
	return out, nil
}

// routeSocket opens a NETLINK_ROUTE socket in hostNS (nil: the current namespace).
func routeSocket(hostNS ns.NetNS) (*nl.SocketHandle, error) {
	target := netns.None()
	if hostNS != nil {
		target = netns.NsHandle(int(hostNS.Fd()))
	}
	s, err := nl.GetNetlinkSocketAt(target, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	return &nl.SocketHandle{Socket: s}, nil
}

// dump runs one NLM_F_DUMP request on sock and calls f with each answer's payload, again from the
// start when the kernel reports the dump interrupted by a change (f must then forget what it saw).
func dump(sock *nl.SocketHandle, proto int, msg nl.NetlinkRequestData, answer uint16, reset func(), f func([]byte)) error {
	var err error
	for range 5 {
		reset()
		req := nl.NewNetlinkRequest(proto, unix.NLM_F_DUMP)
		req.AddData(msg)
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: sock}
		err = req.ExecuteIter(unix.NETLINK_ROUTE, answer, func(m []byte) bool { f(m); return true })
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}

// globalAddrs returns, per link index, the node's global unicast addresses of universe scope.
func globalAddrs(sock *nl.SocketHandle) (map[int][]netlink.Addr, error) {
	var out map[int][]netlink.Addr
	err := dump(sock, unix.RTM_GETADDR, nl.NewIfAddrmsg(unix.AF_UNSPEC), unix.RTM_NEWADDR,
		func() { out = map[int][]netlink.Addr{} },
		func(m []byte) {
			if len(m) < unix.SizeofIfAddrmsg {
				return
			}
			hdr := nl.DeserializeIfAddrmsg(m)
			if hdr.Scope != unix.RT_SCOPE_UNIVERSE {
				return // link-local, host: among them every host veth's fe80::/64
			}
			attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfAddrmsg:])
			if err != nil {
				return
			}
			var local, address net.IP
			for _, a := range attrs {
				switch a.Attr.Type {
				case unix.IFA_LOCAL:
					local = net.IP(a.Value)
				case unix.IFA_ADDRESS:
					address = net.IP(a.Value)
				}
			}
			ip := local // a point-to-point address's own end; IFA_ADDRESS is then the peer
			if ip == nil {
				ip = address
			}
			if !toAddr(ip).IsGlobalUnicast() {
				return
			}
			bits := 8 * len(ip)
			out[int(hdr.Index)] = append(out[int(hdr.Index)], netlink.Addr{
				IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(int(hdr.Prefixlen), bits)},
				Scope: int(hdr.Scope),
			})
		})
	return out, err
}

// defaultRoutes returns the default routes of family fam in the main table, in the kernel's order,
// with their link and gateway.
func defaultRoutes(sock *nl.SocketHandle, fam int) ([]netlink.Route, error) {
	var out []netlink.Route
	msg := &nl.RtMsg{}
	msg.Family = uint8(fam)
	err := dump(sock, unix.RTM_GETROUTE, msg, unix.RTM_NEWROUTE,
		func() { out = nil },
		func(m []byte) {
			if len(m) < unix.SizeofRtMsg {
				return
			}
			hdr := nl.DeserializeRtMsg(m)
			// Every host route, veth link-local route and local-table entry stops at the header.
			if hdr.Dst_len != 0 || hdr.Flags&unix.RTM_F_CLONED != 0 {
				return
			}
			attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
			if err != nil {
				return
			}
			r := netlink.Route{Family: int(hdr.Family), Table: int(hdr.Table), Type: int(hdr.Type)}
			for _, a := range attrs {
				switch a.Attr.Type {
				case unix.RTA_OIF:
					r.LinkIndex = int(native32(a))
				case unix.RTA_GATEWAY:
					r.Gw = net.IP(a.Value)
				case unix.RTA_TABLE:
					r.Table = int(native32(a))
				}
			}
			if r.Table == unix.RT_TABLE_MAIN {
				out = append(out, r)
			}
		})
	return out, err
}

// native32 reads a 32-bit attribute in the host's byte order, as netlink writes it.
func native32(a syscall.NetlinkRouteAttr) uint32 {
	if len(a.Value) < 4 {
		return 0
	}
	return nl.NativeEndian().Uint32(a.Value[:4])
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
