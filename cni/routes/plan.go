package routes

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Scope of a route, as the kernel's rtm_scope.
type Scope uint8

const (
	// ScopeUniverse is a gatewayed route.
	ScopeUniverse Scope = 0
	// ScopeLink is a directly attached destination.
	ScopeLink Scope = 253
)

// Owner says who creates a planned route.
type Owner string

const (
	// ByCoordinator routes are created by the coordinator and removed with its undo.
	ByCoordinator Owner = "coordinator"
	// ByPrevious routes are made by the previous plugin (the kernel's connected route of the address
	// macvlan added, or routes the IPAM returned); the coordinator only checks them.
	ByPrevious Owner = "previous"
)

// Route is one route of the plan.
type Route struct {
	Dst netip.Prefix
	// Via is the gateway; invalid for a link-scope route.
	Via netip.Addr
	Dev string
	// Src is the preferred source; invalid means none.
	Src   netip.Addr
	Scope Scope
	// Table is the routing table; 0 is the main table.
	Table int
	// OnLink marks a gateway outside every subnet of Dev (the pool gateway 172.110.0.1 of the pod
	// subnet 172.110.1.0/24), which the kernel accepts only with RTNH_F_ONLINK.
	OnLink bool
	Owner  Owner
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	s += " dev " + r.Dev
	if r.Scope == ScopeLink {
		s += " scope link"
	}
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	if r.Table != 0 {
		s += fmt.Sprintf(" table %d", r.Table)
	}
	if r.OnLink {
		s += " onlink"
	}
	return s
}

// Rule is a policy routing rule "to Dst lookup Table".
type Rule struct {
	Dst      netip.Prefix
	Table    int
	Priority int
}

func (r Rule) String() string {
	return fmt.Sprintf("%d: to %s lookup %d", r.Priority, r.Dst, r.Table)
}

// Neighbour is a permanent neighbour entry on Dev for IP, whose MAC is the other end of the veth pair
// (known only once the pair exists).
type Neighbour struct {
	Dev string
	IP  netip.Addr
}

// Sysctl is a sysctl to set, by its /proc/sys path ("net/ipv4/conf/all/rp_filter").
type Sysctl struct {
	Key, Value string
}

// Input is what the coordinator knows when it plans an attachment.
type Input struct {
	// PodAddrs are the addresses the previous plugin put on the pod NIC, with their prefix length.
	PodAddrs []netip.Prefix
	// Gateways are the pool gateways of those addresses (one per family at most).
	Gateways []netip.Addr
	// PrevRoutes are the routes of the previous result, which the previous plugin installed on the pod NIC.
	PrevRoutes []Route
	// NodeIPs are the node's global unicast addresses (all of its NICs, host veths excluded).
	NodeIPs []netip.Addr
	// NodeNextHops are the node's addresses on its default-route NIC, one per family: the "via" of the
	// hijack routes (the seed's 10.7.168.73).
	NodeNextHops []netip.Addr
	// HostVeth is the node side of the veth pair.
	HostVeth string
}

// Plan is everything the coordinator creates or expects for one attachment.
type Plan struct {
	// PodRoutes, in the order to create them: node addresses (link scope) before the routes via them.
	PodRoutes []Route
	// HostRoutes go on the node.
	HostRoutes []Route
	// HostRules exist only with a HostRuleTable.
	HostRules []Rule
	// PodNeighbours are on PodVeth (MAC of the host veth); HostNeighbours on the host veth (MAC of PodVeth).
	PodNeighbours, HostNeighbours []Neighbour
	// PodSysctls are set in the pod.
	PodSysctls []Sysctl
}

// PlanError is an input the plan cannot serve, e.g. a hijack CIDR that holds the pod's own gateway.
type PlanError struct{ Msg string }

func (e *PlanError) Error() string { return "underlink-coordinator: " + e.Msg }

// Build plans an underlay attachment. For every family the pod has an address of:
//   - each node address of that family: /32 (/128) dev veth0 scope link src <pod IP>;
//   - each hijack CIDR, service CIDR and cluster CIDR not holding the pod's subnet: via <node next hop>
//     dev veth0 src <pod IP>;
//   - the pod subnet on the pod NIC (the kernel's, checked only) and the default route via the pool
//     gateway on the pod NIC, created unless the previous plugin already did;
//   - on the node: <pod IP>/32 dev <host veth> scope link (in HostRuleTable with a rule, if set).
func Build(c *Config, in Input) (*Plan, error) {
	p := &Plan{}
	if c.Mode == ModeDisabled {
		return p, nil
	}
	if len(in.PodAddrs) == 0 {
		return nil, &PlanError{Msg: "the previous result has no IP for the pod: chain the coordinator after macvlan with an IPAM"}
	}
	if in.HostVeth == "" {
		return nil, &PlanError{Msg: "no host veth name"}
	}
	seenFamily := map[bool]bool{}
	for _, pa := range in.PodAddrs {
		podIP := pa.Addr().Unmap()
		v4 := podIP.Is4()
		if seenFamily[v4] {
			continue // a second address of a family is reached through the first one's routes
		}
		seenFamily[v4] = true
		subnet := pa.Masked()
		gw := pick(in.Gateways, v4)
		hostLen := 32
		if !v4 {
			hostLen = 128
		}

		// Destinations via the node. A hijack CIDR or service CIDR holding the pod's own address or its
		// gateway would steer the pod's own segment through the node: refuse it.
		var via []netip.Prefix
		for _, set := range []struct {
			field string
			cidrs []netip.Prefix
		}{{"hijackCIDR", c.HijackCIDRs}, {"serviceCIDR", c.ServiceCIDRs}} {
			for _, d := range set.cidrs {
				if d.Addr().Is4() != v4 {
					continue
				}
				if d.Contains(podIP) || (gw.IsValid() && d.Contains(gw)) {
					return nil, &PlanError{Msg: fmt.Sprintf("%s %s holds the pod's own address %s or its gateway %s; it must list only remote clusters' pod and service CIDRs, never the local pool", set.field, d, podIP, gw)}
				}
				via = append(via, d)
			}
		}
		for _, d := range c.ClusterCIDRs {
			// The local cluster CIDR usually holds the pool itself (172.110.0.0/16 ⊃ 172.110.1.0/24); then
			// it stays on the underlay.
			if d.Addr().Is4() == v4 && !d.Contains(podIP) && !(gw.IsValid() && d.Contains(gw)) {
				via = append(via, d)
			}
		}
		via = sortedUnique(via)

		nodeIPs := family(in.NodeIPs, v4)
		nextHop := pick(in.NodeNextHops, v4)
		if len(via) > 0 && !nextHop.IsValid() {
			return nil, &PlanError{Msg: fmt.Sprintf("the node has no IPv%d address on its default-route NIC to route %v via; give the node an address of the pod's family", fam(v4), via)}
		}
		if nextHop.IsValid() && !slices.Contains(nodeIPs, nextHop) {
			nodeIPs = append(nodeIPs, nextHop)
		}
		slices.SortFunc(nodeIPs, netip.Addr.Compare)
		for _, n := range nodeIPs {
			if n == podIP {
				continue
			}
			p.PodRoutes = append(p.PodRoutes, Route{Dst: netip.PrefixFrom(n, hostLen), Dev: PodVeth, Src: podIP, Scope: ScopeLink, Owner: ByCoordinator})
			p.PodNeighbours = append(p.PodNeighbours, Neighbour{Dev: PodVeth, IP: n})
		}
		for _, d := range via {
			p.PodRoutes = append(p.PodRoutes, Route{Dst: d, Via: nextHop, Dev: PodVeth, Src: podIP, Owner: ByCoordinator})
		}

		// The pod NIC keeps its subnet and the pool's default route.
		p.PodRoutes = append(p.PodRoutes, Route{Dst: subnet, Dev: c.PodNIC, Src: podIP, Scope: ScopeLink, Owner: ByPrevious})
		for _, r := range in.PrevRoutes {
			if r.Dst.Addr().Is4() == v4 && r.Dev == c.PodNIC {
				r.Owner = ByPrevious
				p.PodRoutes = append(p.PodRoutes, r)
			}
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if !v4 {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if gw.IsValid() && !slices.ContainsFunc(in.PrevRoutes, func(r Route) bool { return r.Dst == def }) {
			p.PodRoutes = append(p.PodRoutes, Route{Dst: def, Via: gw, Dev: c.PodNIC, OnLink: !subnet.Contains(gw), Owner: ByCoordinator})
		}

		// The node reaches the pod over the host veth.
		host := netip.PrefixFrom(podIP, hostLen)
		p.HostRoutes = append(p.HostRoutes, Route{Dst: host, Dev: in.HostVeth, Scope: ScopeLink, Table: c.HostRuleTable, Owner: ByCoordinator})
		if c.HostRuleTable != 0 {
			p.HostRules = append(p.HostRules, Rule{Dst: host, Table: c.HostRuleTable, Priority: HostRulePriority})
		}
		p.HostNeighbours = append(p.HostNeighbours, Neighbour{Dev: in.HostVeth, IP: podIP})
	}
	if c.PodRPFilter != nil && seenFamily[true] {
		v := fmt.Sprint(*c.PodRPFilter)
		// The kernel uses max(all, <dev>), so both levels are set.
		for _, dev := range []string{"all", c.PodNIC, PodVeth} {
			p.PodSysctls = append(p.PodSysctls, Sysctl{Key: "net/ipv4/conf/" + dev + "/rp_filter", Value: v})
		}
	}
	return p, nil
}

// PodMAC is the MAC for the pod NIC with a podMACPrefix: the prefix's two bytes and the IPv4's four.
func PodMAC(prefix net.HardwareAddr, ip netip.Addr) (net.HardwareAddr, bool) {
	if len(prefix) != 2 || !ip.Unmap().Is4() {
		return nil, false
	}
	b := ip.Unmap().As4()
	return net.HardwareAddr{prefix[0], prefix[1], b[0], b[1], b[2], b[3]}, true
}

func pick(addrs []netip.Addr, v4 bool) netip.Addr {
	for _, a := range addrs {
		if a.Unmap().Is4() == v4 {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

func family(addrs []netip.Addr, v4 bool) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() == v4 && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func fam(v4 bool) int {
	if v4 {
		return 4
	}
	return 6
}

func sortedUnique(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	return slices.Compact(ps)
}
