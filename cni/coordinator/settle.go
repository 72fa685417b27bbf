package coordinator

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// settleTimeout bounds the wait for duplicate address detection of the pod's IPv6 addresses: the
// kernel's default is one probe and one second; a segment that delays the probe gets a few more.
const settleTimeout = 10 * time.Second

// settleIPv6 waits until the IPv6 addresses the previous plugin put on the pod interface have finished
// duplicate address detection. Until then they are tentative: the pod cannot use them, and the kernel
// refuses a route with one as its source (the coordinator's routes via veth0 carry it). An address
// whose detection failed is another host's on the segment: the ADD fails and says so.
func (a *adder) settleIPv6() error {
	var want []netip.Addr
	for _, p := range a.in.PodAddrs {
		if ip := p.Addr(); ip.Is6() && !ip.Is4In6() {
			want = append(want, ip)
		}
	}
	if len(want) == 0 {
		return nil
	}
	l, err := a.podH.LinkByName(a.args.IfName)
	if err != nil {
		return fmt.Errorf("find %s in the pod: %w", a.args.IfName, err)
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		addrs, err := a.podH.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("list the IPv6 addresses of %s in the pod: %w", a.args.IfName, err)
		}
		var pending []netip.Addr
		for _, ad := range addrs {
			ip := toAddr(ad.IP)
			if !slices.Contains(want, ip) {
				continue
			}
			if ad.Flags&unix.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("%s on %s failed duplicate address detection: another host on the segment answers for it; exclude it from the pool (spec.excludeIPs) or free the host's address", ip, a.args.IfName)
			}
			if ad.Flags&unix.IFA_F_TENTATIVE != 0 {
				pending = append(pending, ip)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%v on %s still in duplicate address detection after %s; check net.ipv6.conf.%s.dad_transmits and the segment", pending, a.args.IfName, settleTimeout, a.args.IfName)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
