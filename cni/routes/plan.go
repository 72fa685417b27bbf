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

// Rule is a policy routing rule "to Dst lookup Table" (the node's rule to a pod) or "from Src lookup
// Table" (the pod's rule of an interface with a table of its own).
type Rule struct {
	Dst      netip.Prefix
	Src      netip.Prefix
	Table    int
	Priority int
}

func (r Rule) String() string {
	if r.Src.IsValid() {
		return fmt.Sprintf("%d: from %s lookup %d", r.Priority, r.Src, r.Table)
	}
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
	// IfName is the pod interface of the attachment (CNI_IFNAME): the underlay interface the previous
	// plugin made, eth0 for the default network, net1, ... for the others. Empty: the config's PodNIC.
	IfName string
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
	// HostVeth is the node side of the veth pair; PodVeth its pod side (empty: PodVethName(IfName)).
	HostVeth, PodVeth string
	// Table is the pod routing table of an interface other than the config's PodNIC with
	// TunePodRoutes: chosen by the coordinator among the tables no pod rule uses (ADD), or read from
	// the interface's rule (CHECK, DEL). 0 for PodNIC.
	Table int
}

// Tuned reports whether the attachment of in gets a routing table and a source rule of its own: it is
// not the config's default-route NIC, and the config tunes pod routes.
func (c *Config) Tuned(ifName string) bool { return ifName != c.PodNIC && c.TunePodRoutes }

// Plan is everything the coordinator creates or expects for one attachment.
type Plan struct {
	// PodRoutes, in the order to create them: node addresses (link scope) before the routes via them.
	PodRoutes []Route
	// HostRoutes go on the node.
	HostRoutes []Route
	// HostRules exist only with a HostRuleTable.
	HostRules []Rule
	// PodRules select an interface's table by its source addresses (Input.Table).
	PodRules []Rule
	// PodNeighbours are on PodVeth (MAC of the host veth); HostNeighbours on the host veth (MAC of PodVeth).
	PodNeighbours, HostNeighbours []Neighbour
	// PodSysctls are set in the pod.
	PodSysctls []Sysctl
}

// PlanError is an input the plan cannot serve, e.g. a hijack CIDR that holds the pod's own gateway.
type PlanError struct{ Msg string }

func (e *PlanError) Error() string { return "underlink-coordinator: " + e.Msg }

// Build plans an underlay attachment. For every family the pod interface has an address of:
//   - each node address of that family: /32 (/128) dev <pod veth> scope link src <pod IP>;
//   - each hijack CIDR, service CIDR and cluster CIDR not holding the pod's subnet: via <node next hop>
//     dev <pod veth> src <pod IP>;
//   - the pod subnet on the pod interface (the kernel's, checked only) and the default route via the
//     pool gateway on it, created unless the previous plugin already did;
//   - on the node: <pod IP>/32 dev <host veth> scope link (in HostRuleTable with a rule, if set).
//
// That is for the config's PodNIC (eth0 by default), in the main table. Any other interface (net1 of a
// second network) gets the same routes in its own table Input.Table, with copies of its subnet and
// routes and its own default route via its gateway, and a rule "from <pod IP> lookup <table>": what
// it sends, replies included, leaves by it, and its hijacked traffic by its own veth. Without
// TunePodRoutes such an interface gets only its veth and the node's route to it, since its routes in
// the main table would collide with PodNIC's.
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
	ifName := cmp.Or(in.IfName, c.PodNIC)
	podVeth := cmp.Or(in.PodVeth, PodVethName(ifName))
	if isCoordinatorVeth(ifName) {
		return nil, &PlanError{Msg: fmt.Sprintf("the pod interface %s has the name of the coordinator's own veths (%s, %s<name>); name it otherwise in the pod's network annotation", ifName, PodVeth, podVethPrefix)}
	}
	isDefault := ifName == c.PodNIC
	tuned := c.Tuned(ifName)
	if tuned && in.Table <= 0 {
		return nil, &PlanError{Msg: fmt.Sprintf("no routing table for %s, which is not the pod's default-route NIC %s", ifName, c.PodNIC)}
	}
	table := 0
	if tuned {
		table = in.Table
	}
	podSide := isDefault || tuned // routes to the node and hijacked destinations over the pod's veth
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

		if podSide {
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
				p.PodRoutes = append(p.PodRoutes, Route{Dst: netip.PrefixFrom(n, hostLen), Dev: podVeth, Src: podIP, Scope: ScopeLink, Table: table, Owner: ByCoordinator})
				p.PodNeighbours = append(p.PodNeighbours, Neighbour{Dev: podVeth, IP: n})
			}
			for _, d := range via {
				p.PodRoutes = append(p.PodRoutes, Route{Dst: d, Via: nextHop, Dev: podVeth, Src: podIP, Table: table, Owner: ByCoordinator})
			}
		}

		// The pod interface keeps its subnet (the kernel's route of its address) and the previous
		// plugin's routes, in the main table; an interface of its own table gets copies there, before
		// the routes via a gateway of the subnet.
		// The kernel's IPv4 route of an address carries it as source; its IPv6 prefix route carries none.
		kernelSrc := podIP
		if !v4 {
			kernelSrc = netip.Addr{}
		}
		p.PodRoutes = append(p.PodRoutes, Route{Dst: subnet, Dev: ifName, Src: kernelSrc, Scope: ScopeLink, Owner: ByPrevious})
		if tuned {
			p.PodRoutes = append(p.PodRoutes, Route{Dst: subnet, Dev: ifName, Src: podIP, Scope: ScopeLink, Table: table, Owner: ByCoordinator})
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if !v4 {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		prevDefault := false
		for _, r := range in.PrevRoutes {
			if r.Dst.Addr().Is4() != v4 || r.Dev != ifName {
				continue
			}
			r.Owner = ByPrevious
			p.PodRoutes = append(p.PodRoutes, r)
			prevDefault = prevDefault || r.Dst == def
			if tuned && r.Dst != def {
				r.Table, r.Owner = table, ByCoordinator
				p.PodRoutes = append(p.PodRoutes, r)
			}
		}
		// The configuration's policy routes of this family, via next hops on the pod interface's own
		// segment, where its other routes live.
		if isDefault || tuned {
			for _, pr := range c.PolicyRoutes {
				if pr.Dst.Addr().Is4() != v4 {
					continue
				}
				if !subnet.Contains(pr.Via) {
					return nil, &PlanError{Msg: fmt.Sprintf("policyRoutes %s via %s: the next hop is outside %s's subnet %s, so %s cannot reach it on-link; use a router of that subnet", pr.Dst, pr.Via, ifName, subnet, ifName)}
				}
				p.PodRoutes = append(p.PodRoutes, Route{Dst: pr.Dst, Via: pr.Via, Dev: ifName, Table: table, Owner: ByCoordinator})
			}
		}
		switch {
		case tuned && gw.IsValid():
			p.PodRoutes = append(p.PodRoutes, Route{Dst: def, Via: gw, Dev: ifName, OnLink: !subnet.Contains(gw), Table: table, Owner: ByCoordinator})
		case isDefault && gw.IsValid() && !prevDefault:
			p.PodRoutes = append(p.PodRoutes, Route{Dst: def, Via: gw, Dev: ifName, OnLink: !subnet.Contains(gw), Owner: ByCoordinator})
		}
		if tuned {
			p.PodRules = append(p.PodRules, Rule{Src: netip.PrefixFrom(podIP, hostLen), Table: table, Priority: PodRulePriority})
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
		for _, dev := range []string{"all", ifName, podVeth} {
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
