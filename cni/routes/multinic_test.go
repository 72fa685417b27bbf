package routes

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The pod side of each attachment's veth pair has a name of its own, stable per interface: eth0's is
// veth0 as before; every other interface's fits the kernel's 15 characters however long its name.
func TestPodVethName(t *testing.T) {
	for _, tc := range []struct{ ifName, want string }{
		{"eth0", "veth0"},
		{"net1", "veth-net1"},
		{"storage01", "veth-storage01"},
		{"eth1", "veth-eth1"},
	} {
		if got := PodVethName(tc.ifName); got != tc.want {
			t.Errorf("PodVethName(%q) = %q, want %q", tc.ifName, got, tc.want)
		}
	}
	long := PodVethName("interface-0123")
	if len(long) > 15 || !strings.HasPrefix(long, "veth-") || long == PodVethName("interface-0124") || long != PodVethName("interface-0123") {
		t.Errorf("PodVethName of a long name: %q (and %q)", long, PodVethName("interface-0124"))
	}
}

// A second underlay interface (net1 on ens256's segment, 192.168.56.0/24 with gateway 192.168.56.1)
// of a pod whose default-route NIC is eth0: everything of net1 goes into its own table, selected by
// its source address, so replies leave by net1 and its hijacked traffic by its own veth; the main
// table gets nothing of it but the kernel's subnet route, and the node a /32 to it on its host veth.
func TestBuildSecondInterfaceGetsATable(t *testing.T) {
	c := mustConfig(t, clusterAConf)
	p, err := Build(c, Input{
		IfName: "net1", PodAddrs: prefixes("192.168.56.10/24"), Gateways: addrs("192.168.56.1"),
		NodeIPs: addrs("10.7.168.73", "172.110.168.73"), NodeNextHops: addrs("10.7.168.73"),
		HostVeth: "ulnet1", Table: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"10.233.0.0/18 via 10.7.168.73 dev veth-net1 src 192.168.56.10 table 100",
		"10.243.0.0/18 via 10.7.168.73 dev veth-net1 src 192.168.56.10 table 100",
		"10.7.168.73 dev veth-net1 scope link src 192.168.56.10 table 100",
		"172.110.0.0/16 via 10.7.168.73 dev veth-net1 src 192.168.56.10 table 100", // its cluster CIDR does not hold net1
		"172.110.168.73 dev veth-net1 scope link src 192.168.56.10 table 100",
		"172.111.0.0/16 via 10.7.168.73 dev veth-net1 src 192.168.56.10 table 100",
		"192.168.56.0/24 dev net1 scope link src 192.168.56.10",
		"192.168.56.0/24 dev net1 scope link src 192.168.56.10 table 100",
		"default via 192.168.56.1 dev net1 table 100",
	}
	if got := ipRoute(p.PodRoutes); !slices.Equal(got, want) {
		t.Errorf("pod routes:\n got %q\nwant %q", got, want)
	}
	for _, r := range p.PodRoutes {
		if r.Table == 0 && r.Owner == ByCoordinator {
			t.Errorf("a second interface adds %s to the main table, where eth0's routes are", r)
		}
	}
	wantRules := []Rule{{Src: netip.MustParsePrefix("192.168.56.10/32"), Table: 100, Priority: PodRulePriority}}
	if !slices.Equal(p.PodRules, wantRules) || p.PodRules[0].String() != "1000: from 192.168.56.10/32 lookup 100" {
		t.Errorf("pod rules %v, want %v", p.PodRules, wantRules)
	}
	if got := ipRoute(p.HostRoutes); !slices.Equal(got, []string{"192.168.56.10 dev ulnet1 scope link"}) {
		t.Errorf("host routes %q", got)
	}
	for _, n := range p.PodNeighbours {
		if n.Dev != "veth-net1" {
			t.Errorf("pod neighbour %v on another veth than net1's", n)
		}
	}
	if len(p.PodSysctls) != 3 || p.PodSysctls[1].Key != "net/ipv4/conf/net1/rp_filter" || p.PodSysctls[2].Key != "net/ipv4/conf/veth-net1/rp_filter" {
		t.Errorf("sysctls %v", p.PodSysctls)
	}
	// The previous plugin's routes of net1 (a pool's spec.routes) are copied into its table; a default
	// route the IPAM returned in the main table would be eth0's business, not copied.
	p, err = Build(c, Input{
		IfName: "net1", PodAddrs: prefixes("192.168.56.10/24"), Gateways: addrs("192.168.56.1"),
		PrevRoutes: []Route{{Dst: netip.MustParsePrefix("10.20.0.0/16"), Via: netip.MustParseAddr("192.168.56.254"), Dev: "net1"}},
		NodeIPs:    addrs("10.7.168.73"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ulnet1", Table: 101,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := ipRoute(p.PodRoutes)
	for _, w := range []string{"10.20.0.0/16 via 192.168.56.254 dev net1", "10.20.0.0/16 via 192.168.56.254 dev net1 table 101", "default via 192.168.56.1 dev net1 table 101"} {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in %q", w, got)
		}
	}
	// Table routes to the gateway of a spec.route come after the subnet copy that makes it reachable.
	iSub := slices.IndexFunc(p.PodRoutes, func(r Route) bool { return r.Table == 101 && r.Scope == ScopeLink && r.Dev == "net1" })
	iVia := slices.IndexFunc(p.PodRoutes, func(r Route) bool { return r.Table == 101 && r.Dst.String() == "10.20.0.0/16" })
	if iSub < 0 || iVia < iSub {
		t.Errorf("subnet copy at %d, route via its gateway at %d", iSub, iVia)
	}
}

// podDefaultRouteNIC moves the main table: with net1 the default-route NIC, net1 is planned as eth0 is
// by default, and eth0 gets a table of its own.
func TestBuildPodDefaultRouteNIC(t *testing.T) {
	c := mustConfig(t, `{"podDefaultRouteNIC":"net1","hijackCIDR":["172.111.0.0/16"]}`)
	in := Input{PodAddrs: prefixes("192.168.56.10/24"), Gateways: addrs("192.168.56.1"), NodeIPs: addrs("10.7.168.73"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ul1"}
	in.IfName = "net1"
	p, err := Build(c, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := ipRoute(p.PodRoutes); !slices.Contains(got, "default via 192.168.56.1 dev net1") || !slices.Contains(got, "172.111.0.0/16 via 10.7.168.73 dev veth-net1 src 192.168.56.10") || len(p.PodRules) != 0 {
		t.Errorf("net1 as the default-route NIC: %q rules %v", got, p.PodRules)
	}
	in.IfName, in.PodAddrs, in.Gateways = "eth0", prefixes("172.110.1.10/24"), addrs("172.110.0.1")
	if _, err := Build(c, in); err == nil || !strings.Contains(err.Error(), "no routing table for eth0") {
		t.Errorf("eth0 without a table: %v", err)
	}
	in.Table = 100
	p, err = Build(c, in)
	if err != nil {
		t.Fatal(err)
	}
	if got := ipRoute(p.PodRoutes); !slices.Contains(got, "default via 172.110.0.1 dev eth0 table 100 onlink") || len(p.PodRules) != 1 {
		t.Errorf("eth0 as a second interface: %q rules %v", got, p.PodRules)
	}
}

// tunePodRoutes false leaves the routing tables to the previous plugins for a second interface: its
// routes would collide with the default-route NIC's in the main table. It keeps its veth and the
// node's route to it.
func TestBuildWithoutTunePodRoutes(t *testing.T) {
	c := mustConfig(t, `{"tunePodRoutes":false,"hijackCIDR":["172.111.0.0/16"]}`)
	p, err := Build(c, Input{IfName: "net1", PodAddrs: prefixes("192.168.56.10/24"), Gateways: addrs("192.168.56.1"),
		NodeIPs: addrs("10.7.168.73"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ul1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.PodRoutes {
		if r.Owner == ByCoordinator {
			t.Errorf("planned %s", r)
		}
	}
	if len(p.PodRules)+len(p.PodNeighbours) != 0 || len(p.HostRoutes) != 1 {
		t.Errorf("rules %v neighbours %v host routes %v", p.PodRules, p.PodNeighbours, p.HostRoutes)
	}
}

// A pod interface named like the coordinator's own veths is refused before anything is made.
func TestBuildRefusesAnInterfaceNamedLikeItsVeths(t *testing.T) {
	for _, name := range []string{"veth0", "veth-net1"} {
		_, err := Build(mustConfig(t, clusterAConf), Input{IfName: name, PodAddrs: prefixes("192.168.56.10/24"), HostVeth: "ul1", Table: 100})
		var pe *PlanError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "the pod interface "+name+" has the name of the coordinator's own veths") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ParseConfig([]byte(`{"podDefaultRouteNIC":"veth-net1"}`)); err == nil {
		t.Error("podDefaultRouteNIC veth-net1 accepted")
	}
}
