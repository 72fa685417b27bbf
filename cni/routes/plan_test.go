package routes

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// ipRoute renders routes the way `ip route` prints them (host routes without /32), sorted.
func ipRoute(rs []Route) []string {
	var out []string
	for _, r := range rs {
		s := r.String()
		s = strings.Replace(s, "/32 ", " ", 1)
		s = strings.Replace(s, "0.0.0.0/0", "default", 1)
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func mustConfig(t *testing.T, js string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The NAD chain's coordinator entries for the seed's two SpiderMultusConfigs, as admission writes them.
const (
	clusterAConf = `{"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],"serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0}`
	clusterBConf = `{"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.233.0.0/18","172.110.0.0/16"],"serviceCIDR":["10.243.0.0/18"],"clusterCIDR":["172.111.0.0/16"]}`
)

func TestBuildSeedRouteShape(t *testing.T) {
	cases := []struct {
		name     string
		conf     string
		in       Input
		pod      []string
		host     []string
		podNeigh []string
	}{
		{
			// The seed's `ip route` in a cluster-a pod (its host also runs a CNI with pod CIDR
			// 10.233.64.0/18 and a tunnel address 10.233.74.89; the node has 172.110.168.73 on the underlay).
			name: "seed cluster-a pod, as printed in the seed",
			conf: `{"hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],"serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["10.233.64.0/18"]}`,
			in: Input{
				PodAddrs: prefixes("172.110.1.131/24"), Gateways: addrs("172.110.0.1"),
				NodeIPs: addrs("10.7.168.73", "10.233.74.89", "172.110.168.73"), NodeNextHops: addrs("10.7.168.73"),
				HostVeth: "ul0123456789a",
			},
			pod: []string{
				"10.233.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.131",
				"10.233.64.0/18 via 10.7.168.73 dev veth0 src 172.110.1.131",
				"10.233.74.89 dev veth0 scope link src 172.110.1.131",
				"10.243.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.131",
				"10.7.168.73 dev veth0 scope link src 172.110.1.131",
				"172.110.1.0/24 dev eth0 scope link src 172.110.1.131",
				"172.110.168.73 dev veth0 scope link src 172.110.1.131",
				"172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.131",
				"default via 172.110.0.1 dev eth0 onlink",
			},
			host:     []string{"172.110.1.131 dev ul0123456789a scope link"},
			podNeigh: []string{"10.233.74.89", "10.7.168.73", "172.110.168.73"},
		},
		{
			name: "cluster-a pod with the generated config: its own cluster CIDR stays on the underlay",
			conf: clusterAConf,
			in: Input{
				PodAddrs: prefixes("172.110.1.10/24"), Gateways: addrs("172.110.0.1"),
				NodeIPs: addrs("10.7.168.73", "10.6.168.73"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ulaa",
			},
			pod: []string{
				"10.233.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"10.243.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"10.6.168.73 dev veth0 scope link src 172.110.1.10",
				"10.7.168.73 dev veth0 scope link src 172.110.1.10",
				"172.110.1.0/24 dev eth0 scope link src 172.110.1.10",
				"172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"default via 172.110.0.1 dev eth0 onlink",
			},
			host:     []string{"172.110.1.10 dev ulaa scope link"},
			podNeigh: []string{"10.6.168.73", "10.7.168.73"},
		},
		{
			name: "cluster-b pod mirrors cluster-a",
			conf: clusterBConf,
			in: Input{
				PodAddrs: prefixes("172.111.1.136/24"), Gateways: addrs("172.111.0.1"),
				NodeIPs: addrs("10.7.168.74"), NodeNextHops: addrs("10.7.168.74"), HostVeth: "ulbb",
			},
			pod: []string{
				"10.233.0.0/18 via 10.7.168.74 dev veth0 src 172.111.1.136",
				"10.243.0.0/18 via 10.7.168.74 dev veth0 src 172.111.1.136",
				"10.7.168.74 dev veth0 scope link src 172.111.1.136",
				"172.110.0.0/16 via 10.7.168.74 dev veth0 src 172.111.1.136",
				"172.111.1.0/24 dev eth0 scope link src 172.111.1.136",
				"default via 172.111.0.1 dev eth0 onlink",
			},
			host:     []string{"172.111.1.136 dev ulbb scope link"},
			podNeigh: []string{"10.7.168.74"},
		},
		{
			name: "gateway inside the pod subnet needs no onlink; duplicates collapse",
			conf: `{"hijackCIDR":["172.111.0.0/16","172.111.0.0/16"],"serviceCIDR":["172.111.0.0/16"]}`,
			in: Input{
				PodAddrs: prefixes("172.110.1.10/16"), Gateways: addrs("172.110.0.1"),
				NodeIPs: addrs("10.7.168.73", "10.7.168.73"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ulcc",
			},
			pod: []string{
				"10.7.168.73 dev veth0 scope link src 172.110.1.10",
				"172.110.0.0/16 dev eth0 scope link src 172.110.1.10",
				"172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"default via 172.110.0.1 dev eth0",
			},
			host:     []string{"172.110.1.10 dev ulcc scope link"},
			podNeigh: []string{"10.7.168.73"},
		},
		{
			name: "a default route the IPAM returned is the previous plugin's, not created again",
			conf: clusterAConf,
			in: Input{
				PodAddrs: prefixes("172.110.1.10/16"), Gateways: addrs("172.110.0.1"),
				PrevRoutes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("172.110.0.1"), Dev: "eth0"}},
				NodeIPs:    addrs("10.7.168.73"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "uldd",
			},
			pod: []string{
				"10.233.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"10.243.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"10.7.168.73 dev veth0 scope link src 172.110.1.10",
				"172.110.0.0/16 dev eth0 scope link src 172.110.1.10",
				"172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"default via 172.110.0.1 dev eth0",
			},
			host:     []string{"172.110.1.10 dev uldd scope link"},
			podNeigh: []string{"10.7.168.73"},
		},
		{
			name: "host route in its own table with a rule",
			conf: `{"hijackCIDR":["172.111.0.0/16"],"hostRuleTable":500}`,
			in: Input{
				PodAddrs: prefixes("172.110.1.10/24"), NodeIPs: addrs("10.7.168.73"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ulee",
			},
			pod: []string{
				"10.7.168.73 dev veth0 scope link src 172.110.1.10",
				"172.110.1.0/24 dev eth0 scope link src 172.110.1.10",
				"172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10",
			},
			host:     []string{"172.110.1.10 dev ulee scope link table 500"},
			podNeigh: []string{"10.7.168.73"},
		},
		{
			name: "dual stack: one set of routes per family",
			conf: `{"hijackCIDR":["172.111.0.0/16","fd11::/64"],"serviceCIDR":["10.233.0.0/18"]}`,
			in: Input{
				PodAddrs: prefixes("172.110.1.10/24", "fd10::10/64"), Gateways: addrs("172.110.0.1", "fd10::1"),
				NodeIPs: addrs("10.7.168.73", "fd07::73"), NodeNextHops: addrs("10.7.168.73", "fd07::73"), HostVeth: "ulff",
			},
			pod: []string{
				"10.233.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"10.7.168.73 dev veth0 scope link src 172.110.1.10",
				"172.110.1.0/24 dev eth0 scope link src 172.110.1.10",
				"172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10",
				"::/0 via fd10::1 dev eth0",
				"default via 172.110.0.1 dev eth0 onlink",
				"fd07::73/128 dev veth0 scope link src fd10::10",
				"fd10::/64 dev eth0 scope link",
				"fd11::/64 via fd07::73 dev veth0 src fd10::10",
			},
			host:     []string{"172.110.1.10 dev ulff scope link", "fd10::10/128 dev ulff scope link"},
			podNeigh: []string{"10.7.168.73", "fd07::73"},
		},
		{
			name: "the pod's own address among the node's is not routed to the node",
			conf: `{}`,
			in: Input{
				PodAddrs: prefixes("172.110.1.10/24"), NodeIPs: addrs("172.110.1.10", "10.7.168.73"), HostVeth: "ulgg",
			},
			pod: []string{
				"10.7.168.73 dev veth0 scope link src 172.110.1.10",
				"172.110.1.0/24 dev eth0 scope link src 172.110.1.10",
			},
			host:     []string{"172.110.1.10 dev ulgg scope link"},
			podNeigh: []string{"10.7.168.73"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Build(mustConfig(t, tc.conf), tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := ipRoute(p.PodRoutes); !slices.Equal(got, tc.pod) {
				t.Errorf("pod routes:\n got %q\nwant %q", got, tc.pod)
			}
			if got := ipRoute(p.HostRoutes); !slices.Equal(got, tc.host) {
				t.Errorf("host routes:\n got %q\nwant %q", got, tc.host)
			}
			var neigh []string
			for _, n := range p.PodNeighbours {
				if n.Dev != PodVeth {
					t.Errorf("pod neighbour %v not on %s", n, PodVeth)
				}
				neigh = append(neigh, n.IP.String())
			}
			slices.Sort(neigh)
			if !slices.Equal(neigh, tc.podNeigh) {
				t.Errorf("pod neighbours %v, want %v", neigh, tc.podNeigh)
			}
			if len(p.HostNeighbours) != len(tc.host) {
				t.Errorf("host neighbours %v, want one per pod address", p.HostNeighbours)
			}
			// Routes via a node address come after that address's link route, or the kernel refuses them.
			linked := map[netip.Addr]bool{}
			for _, r := range p.PodRoutes {
				if r.Dev == PodVeth && r.Scope == ScopeLink {
					linked[r.Dst.Addr()] = true
				}
				if r.Dev == PodVeth && r.Via.IsValid() && !linked[r.Via] {
					t.Errorf("route %s comes before the link route to its gateway", r)
				}
			}
		})
	}
}

func TestBuildHostRuleAndSysctls(t *testing.T) {
	p, err := Build(mustConfig(t, `{"hostRuleTable":500,"podRPFilter":0}`), Input{
		PodAddrs: prefixes("172.110.1.10/24"), NodeIPs: addrs("10.7.168.73"), HostVeth: "ul1",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{{Dst: netip.MustParsePrefix("172.110.1.10/32"), Table: 500, Priority: HostRulePriority}}
	if !slices.Equal(p.HostRules, want) {
		t.Errorf("rules %v, want %v", p.HostRules, want)
	}
	wantS := []Sysctl{
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/eth0/rp_filter", "0"},
		{"net/ipv4/conf/veth0/rp_filter", "0"},
	}
	if !slices.Equal(p.PodSysctls, wantS) {
		t.Errorf("sysctls %v, want %v", p.PodSysctls, wantS)
	}
	p, _ = Build(mustConfig(t, `{}`), Input{PodAddrs: prefixes("172.110.1.10/24"), HostVeth: "ul1"})
	if len(p.HostRules) != 0 || len(p.PodSysctls) != 0 {
		t.Errorf("main table and no podRPFilter need no rule and no sysctl: %v %v", p.HostRules, p.PodSysctls)
	}
}

func TestBuildDisabledPlansNothing(t *testing.T) {
	p, err := Build(mustConfig(t, `{"mode":"disabled","hijackCIDR":["172.111.0.0/16"]}`), Input{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.PodRoutes)+len(p.HostRoutes)+len(p.HostRules)+len(p.PodNeighbours)+len(p.HostNeighbours)+len(p.PodSysctls) != 0 {
		t.Errorf("disabled mode planned %+v", p)
	}
}

func TestBuildRefuses(t *testing.T) {
	cases := []struct {
		name string
		conf string
		in   Input
		want string
	}{
		{
			// cluster-b's config used for a cluster-a pod: 172.110.0.0/16 would send the pod's own
			// segment and gateway through the node.
			name: "hijackCIDR holding the pod's own subnet",
			conf: clusterBConf,
			in:   Input{PodAddrs: prefixes("172.110.1.10/24"), Gateways: addrs("172.110.0.1"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ul1"},
			want: "hijackCIDR 172.110.0.0/16 holds the pod's own address 172.110.1.10",
		},
		{
			name: "serviceCIDR holding the gateway",
			conf: `{"serviceCIDR":["172.110.0.0/24"]}`,
			in:   Input{PodAddrs: prefixes("172.110.1.10/24"), Gateways: addrs("172.110.0.1"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ul1"},
			want: "serviceCIDR 172.110.0.0/24 holds the pod's own address 172.110.1.10 or its gateway 172.110.0.1",
		},
		{
			name: "no node address to route via",
			conf: clusterAConf,
			in:   Input{PodAddrs: prefixes("172.110.1.10/24"), HostVeth: "ul1"},
			want: "the node has no IPv4 address on its default-route NIC",
		},
		{
			name: "a policy route whose next hop is off the pod's subnet",
			conf: `{"policyRoutes":[{"dst":"192.168.9.0/24","gw":"172.110.9.1"}]}`,
			in:   Input{PodAddrs: prefixes("172.110.1.10/24"), Gateways: addrs("172.110.1.1"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ul1"},
			want: "policyRoutes 192.168.9.0/24 via 172.110.9.1: the next hop is outside eth0's subnet 172.110.1.0/24",
		},
		{
			name: "no pod address",
			conf: clusterAConf,
			in:   Input{HostVeth: "ul1"},
			want: "chain the coordinator after macvlan with an IPAM",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(mustConfig(t, tc.conf), tc.in)
			var pe *PlanError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a PlanError containing %q", err, tc.want)
			}
		})
	}
}

// TestBuildPolicyRoutes: each policy route of a family the pod interface has goes on that interface, in
// the table its routes live in (main for the default NIC, its own for a tuned one); the other family's
// are skipped.
func TestBuildPolicyRoutes(t *testing.T) {
	conf := mustConfig(t, `{"policyRoutes":[{"dst":"192.168.9.0/24","gw":"172.110.1.254"},{"dst":"192.168.10.7","gw":"172.110.1.253"},{"dst":"fd99::/64","gw":"fd10::1"}]}`)
	in := Input{PodAddrs: prefixes("172.110.1.10/24"), Gateways: addrs("172.110.1.1"), NodeNextHops: addrs("10.7.168.73"), HostVeth: "ul1"}
	p, err := Build(conf, in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.PodRoutes {
		if r.Dst.Addr().Is4() && (r.Dst.Addr().As4()[0] == 192) {
			got = append(got, r.String())
		}
	}
	want := []string{"192.168.9.0/24 via 172.110.1.254 dev eth0", "192.168.10.7/32 via 172.110.1.253 dev eth0"}
	if !slices.Equal(got, want) {
		t.Errorf("policy routes %v, want %v", got, want)
	}
	in.IfName, in.Table = "net1", 1001
	p, err = Build(conf, in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(p.PodRoutes, func(r Route) bool { return r.String() == "192.168.9.0/24 via 172.110.1.254 dev net1 table 1001" }) {
		t.Errorf("a tuned interface's policy route is not in its table: %v", p.PodRoutes)
	}
	for _, bad := range []struct{ conf, field string }{
		{`{"policyRoutes":[{"dst":"192.168.9","gw":"172.110.1.254"}]}`, "policyRoutes[0].dst"},
		{`{"policyRoutes":[{"dst":"192.168.9.0/24","gw":"fd10::1"}]}`, "policyRoutes[0].gw"},
		{`{"policyRoutes":[{"dst":"192.168.9.0/24","gw":"x"}]}`, "policyRoutes[0].gw"},
	} {
		_, err := ParseConfig([]byte(bad.conf))
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != bad.field {
			t.Errorf("%s: %v; want a ConfigError for %s", bad.conf, err, bad.field)
		}
	}
}

func TestPodMAC(t *testing.T) {
	mac, ok := PodMAC(net.HardwareAddr{0x0a, 0x1b}, netip.MustParseAddr("172.110.1.10"))
	if !ok || mac.String() != "0a:1b:ac:6e:01:0a" {
		t.Errorf("PodMAC = %v, %v", mac, ok)
	}
	if _, ok := PodMAC(net.HardwareAddr{0x0a, 0x1b}, netip.MustParseAddr("fd10::1")); ok {
		t.Error("an IPv6 pod address has no 4 bytes to fill the MAC")
	}
}
