package coordinator

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/underlink/underlink/cni/routes"
)

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func familyOf(a netip.Addr) int {
	if a.Unmap().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

func toAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// toNetlink turns a planned route into a netlink route on linkIndex.
func toNetlink(r routes.Route, linkIndex int) *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: linkIndex,
		Dst:       ipNet(r.Dst),
		Scope:     netlink.Scope(r.Scope),
		Table:     r.Table,
		Family:    familyOf(r.Dst.Addr()),
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.OnLink {
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return nr
}

// routeDst is a route's destination; the kernel's default route may come back without one.
func routeDst(r netlink.Route) netip.Prefix {
	if r.Dst == nil {
		if r.Family == netlink.FAMILY_V6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	a := toAddr(r.Dst.IP)
	ones, _ := r.Dst.Mask.Size()
	return netip.PrefixFrom(a, ones)
}

// hasRoute reports whether have holds the planned route on linkIndex (same destination, gateway, source
// and table). A previous plugin's route written without a gateway gets the interface's gateway or none,
// depending on the plugin (macvlan fills in the IP's gateway), so only its destination and link count.
func hasRoute(have []netlink.Route, want routes.Route, linkIndex int) bool {
	table := want.Table
	if table == 0 {
		table = unix.RT_TABLE_MAIN
	}
	anyGw := want.Owner == routes.ByPrevious && !want.Via.IsValid()
	return slices.ContainsFunc(have, func(r netlink.Route) bool {
		return r.LinkIndex == linkIndex && routeDst(r) == want.Dst &&
			(anyGw || toAddr(r.Gw) == want.Via.Unmap()) && (!want.Src.IsValid() || toAddr(r.Src) == want.Src) &&
			(r.Table == table || (r.Table == 0 && table == unix.RT_TABLE_MAIN))
	})
}

// listRoutes lists every route of both families on a link, in every table.
func listRoutes(h netlinksafe.Handle, linkIndex int) ([]netlink.Route, error) {
	filter := &netlink.Route{LinkIndex: linkIndex, Table: unix.RT_TABLE_UNSPEC}
	return h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
}

// listAllRoutes lists every route of both families in every table.
func listAllRoutes(h netlinksafe.Handle) ([]netlink.Route, error) {
	return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
}

func newRule(r routes.Rule) *netlink.Rule {
	nr := netlink.NewRule()
	if r.Src.IsValid() {
		nr.Src = ipNet(r.Src)
		nr.Family = familyOf(r.Src.Addr())
	} else {
		nr.Dst = ipNet(r.Dst)
		nr.Family = familyOf(r.Dst.Addr())
	}
	nr.Table = r.Table
	nr.Priority = r.Priority
	return nr
}

// findPodRules returns the pod's "from <src> lookup <table>" rules at routes.PodRulePriority for the
// addresses srcs (host prefixes).
func findPodRules(h netlinksafe.Handle, srcs []netip.Prefix) ([]netlink.Rule, error) {
	var out []netlink.Rule
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			return nil, fmt.Errorf("list pod rules: %w", err)
		}
		for _, r := range rules {
			if r.Priority != routes.PodRulePriority || r.Src == nil {
				continue
			}
			ones, _ := r.Src.Mask.Size()
			if slices.Contains(srcs, netip.PrefixFrom(toAddr(r.Src.IP), ones)) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// freePodTable is the lowest routing table from routes.FirstPodTable that no rule and no route of the
// pod uses yet: the table of an interface the pod gets besides its default-route NIC. Multus attaches
// a pod's networks one after the other, so two ADDs of one pod never choose at once.
func freePodTable(h netlinksafe.Handle) (int, error) {
	used := map[int]bool{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			return 0, fmt.Errorf("list pod rules: %w", err)
		}
		for _, r := range rules {
			used[r.Table] = true
		}
	}
	rs, err := listAllRoutes(h)
	if err != nil {
		return 0, fmt.Errorf("list pod routes: %w", err)
	}
	for _, r := range rs {
		used[r.Table] = true
	}
	t := routes.FirstPodTable
	for used[t] || t == unix.RT_TABLE_DEFAULT || t == unix.RT_TABLE_MAIN || t == unix.RT_TABLE_LOCAL {
		t++
	}
	return t, nil
}

// flushTable deletes every route of a pod routing table (a table the coordinator chose for an
// interface: nobody else's routes are there).
func flushTable(h netlinksafe.Handle, table int) error {
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes of table %d: %w", table, err)
	}
	for _, r := range rs {
		if err := h.RouteDel(&r); err != nil && !gone(err) {
			return fmt.Errorf("delete route %s of table %d: %w", routeDst(r), table, err)
		}
	}
	return nil
}

// findRules returns the coordinator's rules ("to <dst> lookup <table>" at HostRulePriority) for dst.
func findRules(h netlinksafe.Handle, dst netip.Prefix) ([]netlink.Rule, error) {
	rules, err := h.RuleList(familyOf(dst.Addr()))
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	var out []netlink.Rule
	for _, r := range rules {
		if r.Priority != routes.HostRulePriority || r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if netip.PrefixFrom(toAddr(r.Dst.IP), ones) == dst {
			out = append(out, r)
		}
	}
	return out, nil
}

// neighList lists a link's neighbours with retries, as netlinksafe does for other dumps.
func neighList(h netlinksafe.Handle, linkIndex int) ([]netlink.Neigh, error) {
	var out []netlink.Neigh
	var err error
	for range 5 {
		out, err = h.NeighList(linkIndex, netlink.FAMILY_ALL)
		if err == nil || !strings.Contains(err.Error(), "dump interrupted") {
			break
		}
	}
	return out, err
}

// addrList lists a link's addresses with retries.
func addrList(h netlinksafe.Handle, link netlink.Link) ([]netlink.Addr, error) {
	var out []netlink.Addr
	var err error
	for range 5 {
		out, err = h.AddrList(link, netlink.FAMILY_ALL)
		if err == nil || !strings.Contains(err.Error(), "dump interrupted") {
			break
		}
	}
	return out, err
}

// sysctlIn reads (value == "") or writes a sysctl inside netns n.
func sysctlIn(n ns.NetNS, key, value string) (string, error) {
	var out string
	err := n.Do(func(ns.NetNS) error {
		p := filepath.Join("/proc/sys", key)
		if value != "" {
			return os.WriteFile(p, []byte(value), 0o644)
		}
		b, err := os.ReadFile(p)
		out = strings.TrimSpace(string(b))
		return err
	})
	return out, err
}
