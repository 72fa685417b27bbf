// Package hostaddr reads the addresses of a host NIC, as Spiderpool's matchMasterSubnet compares pools
// with them: the NIC's IPv4 and IPv6 addresses with their prefix lengths, link-local ones left out (no
// pool's subnet is meant to match fe80::/64). underlink-agent's IPAM reads them at ADD, and its link
// watcher publishes them for the scheduler (api/underlay.AddressesKey).
package hostaddr

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Reader reads NIC addresses in one network namespace.
type Reader struct {
	// Netns, when set, is the namespace to read instead of the caller's own (the host's, for the agent).
	Netns *netns.NsHandle
}

// ErrNoLink is returned for a NIC that does not exist.
var ErrNoLink = errors.New("no such link")

// Of returns nic's addresses, in the kernel's order.
func (r Reader) Of(nic string) ([]netip.Prefix, error) {
	h, err := r.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return of(h, nic)
}

// Each returns the addresses of each of nics that exists; a missing NIC is left out of the map.
func (r Reader) Each(nics []string) (map[string][]netip.Prefix, error) {
	h, err := r.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	out := make(map[string][]netip.Prefix, len(nics))
	for _, nic := range nics {
		addrs, err := of(h, nic)
		if errors.Is(err, ErrNoLink) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[nic] = addrs
	}
	return out, nil
}

// Handle opens a netlink handle in the reader's namespace; the caller closes it.
func (r Reader) Handle() (*netlink.Handle, error) {
	var h *netlink.Handle
	var err error
	if r.Netns != nil {
		h, err = netlink.NewHandleAt(*r.Netns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	return h, nil
}

func of(h *netlink.Handle, nic string) ([]netip.Prefix, error) {
	l, err := h.LinkByName(nic)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("host NIC %s: %w", nic, ErrNoLink)
		}
		return nil, fmt.Errorf("host NIC %s: %w", nic, err)
	}
	list, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of host NIC %s: %w", nic, err)
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out, nil
}
