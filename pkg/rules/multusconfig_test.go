package rules

import (
	"testing"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

func TestCheckMultusConfig(t *testing.T) {
	pools := []spiderv2beta1.SpiderIPPool{fixedPool()}
	withCfg := func(mut func(*spiderv2beta1.SpiderMultusConfig)) spiderv2beta1.SpiderMultusConfig {
		c := seedConfig()
		mut(&c)
		return c
	}
	tests := []struct {
		name     string
		world    *World
		config   spiderv2beta1.SpiderMultusConfig
		want     []string
		contains []string
	}{
		{name: "the seed's config with its pool", world: seedWorld(pools), config: seedConfig()},
		{
			name: "the seed's config before its pool exists", world: seedWorld(nil), config: seedConfig(),
			want: []string{"Warn config-pools-exist spec.macvlan.ippools.ipv4[0]"}, contains: []string{"SpiderIPPool cluster-a does not exist yet"},
		},
		{
			name: "a typo in a pool name", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv4IPPool = []string{"cluster-aa"}
			}),
			want: []string{"Warn config-pools-exist spec.macvlan.ippools.ipv4[0]"}, contains: []string{"did you mean cluster-a?"},
		},
		{
			name: "hijackCIDR lacks cluster-b's service CIDR", world: seedWorld(pools),
			config:   config("kube-system", "macvlan-conf", []string{"cluster-a"}, "172.111.0.0/16"),
			want:     []string{"Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR"},
			contains: []string{`spec.coordinator.hijackCIDR: Invalid value: ["172.111.0.0/16"]: missing 10.243.0.0/18 (service CIDR of cluster cluster-b); add 10.243.0.0/18 so pods reach cluster-b's services via the node`},
		},
		{
			name: "hijackCIDR lacks cluster-b's pod CIDR", world: seedWorld(pools),
			config:   config("kube-system", "macvlan-conf", []string{"cluster-a"}, "10.243.0.0/18"),
			want:     []string{"Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR"},
			contains: []string{"missing 172.111.0.0/16 (pod CIDR of cluster cluster-b); add 172.111.0.0/16 so pods reach cluster-b's pods via the node"},
		},
		{
			name: "no hijackCIDR at all", world: seedWorld(pools),
			config:   config("kube-system", "macvlan-conf", []string{"cluster-a"}),
			want:     []string{"Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR", "Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR"},
			contains: []string{"spec.coordinator.hijackCIDR: Required value: missing 172.111.0.0/16"},
		},
		{
			name: "an aggregate and two halves cover the remote CIDRs", world: seedWorld(pools),
			config: config("kube-system", "macvlan-conf", []string{"cluster-a"}, "10.243.0.0/19", "10.243.32.0/19", "172.110.0.0/15"),
			want:   []string{"Deny hijack-avoids-local-pools spec.coordinator.hijackCIDR[2]"}, // 172.110.0.0/15 holds the local pool too
		},
		{
			name: "two halves cover a remote CIDR", world: seedWorld(pools),
			config: config("kube-system", "macvlan-conf", []string{"cluster-a"}, "10.243.0.0/19", "10.243.32.0/19", "172.111.0.0/17", "172.111.128.0/17"),
		},
		{
			name: "a remote CIDR covered only in part", world: seedWorld(pools),
			config: config("kube-system", "macvlan-conf", []string{"cluster-a"}, "10.243.0.0/19", "172.111.0.0/16"),
			want:   []string{"Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR"}, contains: []string{"covers only part of 10.243.0.0/18 (service CIDR of cluster cluster-b)"},
		},
		{
			name: "hijackCIDR covers a local pool", world: seedWorld(pools),
			config:   config("kube-system", "macvlan-conf", []string{"cluster-a"}, "10.243.0.0/18", "172.111.0.0/16", "172.110.0.0/16"),
			want:     []string{"Deny hijack-avoids-local-pools spec.coordinator.hijackCIDR[2]"},
			contains: []string{`spec.coordinator.hijackCIDR[2]: Invalid value: "172.110.0.0/16": covers SpiderIPPool/cluster-a (subnet 172.110.1.0/24), a local pool`},
		},
		{
			name: "cluster-b's config applied in cluster-a", world: seedWorld(pools),
			config: config("kube-system", "macvlan-conf", []string{"cluster-b"}, "10.233.0.0/18", "172.110.0.0/16"),
			want: []string{"Warn config-pools-exist spec.macvlan.ippools.ipv4[0]", "Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR",
				"Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR", "Deny hijack-avoids-local-pools spec.coordinator.hijackCIDR[1]"},
		},
		{
			name: "hijackCIDR entries that are not CIDRs", world: seedWorld(pools),
			config: config("kube-system", "macvlan-conf", []string{"cluster-a"}, "10.243.0.0/18", "172.111.0.0/16", "10.243.0.1/18", "bogus", "0.0.0.0/0"),
			want: []string{"Deny hijack-cidr-valid spec.coordinator.hijackCIDR[2]", "Deny hijack-cidr-valid spec.coordinator.hijackCIDR[3]",
				"Deny hijack-cidr-valid spec.coordinator.hijackCIDR[4]"},
			contains: []string{"the network is 10.243.0.0/18", "a /0 hijack route sends all traffic"},
		},
		{
			name:   "rule 1 from the config: its pool lies outside the local cluster CIDR",
			world:  seedWorld([]spiderv2beta1.SpiderIPPool{pool("far", "192.168.1.0/24", "192.168.1.254", []string{"192.168.1.1"})}),
			config: config("kube-system", "macvlan-conf", []string{"far"}, "10.243.0.0/18", "172.111.0.0/16"),
			want:   []string{"Deny pool-in-local-cluster-cidr spec.macvlan.ippools.ipv4[0]"}, contains: []string{"SpiderIPPool far (subnet 192.168.1.0/24) lies outside 172.110.0.0/16"},
		},
		{
			name:  "an IPv6 pool listed as IPv4, and a pool listed twice",
			world: seedWorld([]spiderv2beta1.SpiderIPPool{fixedPool(), pool("v6", "fd00::/64", "", nil)}),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.MacvlanConfig.SpiderpoolConfigPools.IPv4IPPool = []string{"cluster-a", "v6", "cluster-a"}
			}),
			want:     []string{"Deny config-pools-exist spec.macvlan.ippools.ipv4[1]", "Deny config-pools-exist spec.macvlan.ippools.ipv4[2]"},
			contains: []string{"SpiderIPPool v6 is IPv6 (subnet fd00::/64) but is listed under ipv4", "Duplicate value"},
		},
		{
			name: "macvlan without a master", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) { c.Spec.MacvlanConfig.Master = nil }),
			want:   []string{"Deny config-spec-valid spec.macvlan.master"}, contains: []string{"spec.macvlan.master: Required value"},
		},
		{
			name: "bad master names, two masters without a bond, vlanID and mtu out of range", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.MacvlanConfig.Master = []string{"ens224", "a-very-long-interface-name", "bad/name"}
				c.Spec.MacvlanConfig.VlanID = ptr(int32(5000))
				c.Spec.MacvlanConfig.MTU = ptr(int32(100))
			}),
			want: []string{"Deny config-spec-valid spec.macvlan.master[1]", "Deny config-spec-valid spec.macvlan.master[2]", "Deny config-spec-valid spec.macvlan.master",
				"Deny config-spec-valid spec.macvlan.vlanID", "Deny config-spec-valid spec.macvlan.mtu"},
		},
		{
			// Pods attach to bond0.100: a warning that it must exist on every node, naming it.
			name: "two masters bonded, on a VLAN", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.MacvlanConfig.Master = []string{"ens224", "ens256"}
				c.Spec.MacvlanConfig.Bond = &spiderv2beta1.BondConfig{Name: "bond0", Mode: 1}
				c.Spec.MacvlanConfig.VlanID = ptr(int32(100))
			}),
			want:     []string{"Warn config-spec-valid spec.macvlan.vlanID"},
			contains: []string{"pods of this network attach to bond0.100, which underlink does not create: it must exist and be up on every node", "create bond0.100 on the nodes", "`underlink doctor` lists the nodes without it"},
		},
		{
			name: "a bond without a VLAN: the bond must exist", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.MacvlanConfig.Master = []string{"ens224", "ens256"}
				c.Spec.MacvlanConfig.Bond = &spiderv2beta1.BondConfig{Name: "bond0", Mode: 1}
			}),
			want: []string{"Warn config-spec-valid spec.macvlan.bond.name"}, contains: []string{"attach to bond0,"},
		},
		{
			name: "a VLAN on the master", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) { c.Spec.MacvlanConfig.VlanID = ptr(int32(100)) }),
			want:   []string{"Warn config-spec-valid spec.macvlan.vlanID"}, contains: []string{"attach to ens224.100, which"},
		},
		{
			name: "VLAN 0 is no VLAN", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) { c.Spec.MacvlanConfig.VlanID = ptr(int32(0)) }),
		},
		{
			// The VLAN link's name would be too long for Linux: denied, naming the field and the length.
			name: "a VLAN link name over 15 characters", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.MacvlanConfig.Master = []string{"enp130s0f1np1"}
				c.Spec.MacvlanConfig.VlanID = ptr(int32(4000))
			}),
			want: []string{"Deny config-spec-valid spec.macvlan.vlanID"}, contains: []string{"makes the VLAN link enp130s0f1np1.4000, 18 characters"},
		},
		{
			name: "the coordinator disabled leaves remotes unrouted (a warning)", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.EnableCoordinator = ptr(false)
				c.Spec.CoordinatorConfig = nil
			}),
			want: []string{"Warn hijack-covers-remote-cidrs spec.enableCoordinator", "Warn hijack-covers-remote-cidrs spec.enableCoordinator"},
		},
		{
			name: "a custom (non-underlay) config is outside the alignment rules", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.CniType = nil
				c.Spec.MacvlanConfig = nil
				c.Spec.CoordinatorConfig = nil
			}),
		},
		{
			name: "an ipvlan config is denied (no NAD); its spec.macvlan is ignored", world: seedWorld(pools),
			config:   withCfg(func(c *spiderv2beta1.SpiderMultusConfig) { c.Spec.CniType = ptr("ipvlan") }),
			want:     []string{"Deny config-spec-valid spec.cniType", "Warn config-spec-valid spec.macvlan"},
			contains: []string{"generates no NetworkAttachmentDefinition for cniType ipvlan", "cniType custom with the whole CNI configuration in spec.customCNI"},
		},
		{
			name: "fields underlink keeps but does not use are each named", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.SriovConfig = &spiderv2beta1.SpiderSRIOVCniConfig{}
				c.Spec.MacvlanConfig.RdmaResourceName = ptr("rdma/hca")
				c.Spec.CoordinatorConfig.VethMTU = ptr(int64(1400))                                                               // implemented: no warning
				c.Spec.CoordinatorConfig.PolicyRoutes = []spiderv2beta1.PolicyRoute{{Dst: "192.168.9.0/24", Gw: "172.110.1.254"}} // implemented
			}),
			want:     []string{"Warn config-spec-valid spec.sriov", "Warn config-spec-valid spec.macvlan.rdmaResourceName"},
			contains: []string{"kept but not used: underlink generates networks for cniType macvlan and custom only"},
		},
		{
			name: "policy routes: a destination that is not a CIDR, a next hop of the other family or off the pools' subnet", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.CoordinatorConfig.PolicyRoutes = []spiderv2beta1.PolicyRoute{
					{Dst: "192.168.9", Gw: "172.110.1.254"}, {Dst: "192.168.9.0/24", Gw: "fd00::1"}, {Dst: "192.168.9.7", Gw: "172.110.0.254"},
				}
			}),
			want: []string{"Deny config-spec-valid spec.coordinator.policyRoutes[0].dst", "Deny config-spec-valid spec.coordinator.policyRoutes[1].gw",
				"Deny config-spec-valid spec.coordinator.policyRoutes[2].gw"},
			contains: []string{"is not a CIDR or an IP address", "is not an IPv4 address like dst 192.168.9.0/24", "lies outside 172.110.1.0/24"},
		},
		{
			name: "podCIDRType is named as not implemented, matchMasterSubnet is not (the IPAM and the scheduler implement it); overlay mode is denied", world: seedWorld(pools),
			config: withCfg(func(c *spiderv2beta1.SpiderMultusConfig) {
				c.Spec.MacvlanConfig.SpiderpoolConfigPools.MatchMasterSubnet = ptr(true)
				c.Spec.CoordinatorConfig.PodCIDRType = ptr("calico")
				c.Spec.CoordinatorConfig.Mode = ptr("overlay")
				c.Spec.CoordinatorConfig.VethMTU = ptr(int64(100))
			}),
			want: []string{"Warn config-spec-valid spec.coordinator.podCIDRType",
				"Deny config-spec-valid spec.coordinator.mode", "Deny config-spec-valid spec.coordinator.vethMTU"},
			contains: []string{"Submariner's Cluster objects", "use mode underlay (or auto)"},
		},
		{
			name:     "a third cluster joins: its CIDRs are missing",
			world:    NewWorld(Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB, clusterC}, LocalCluster: "cluster-a", Pools: pools}),
			config:   seedConfig(),
			want:     []string{"Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR", "Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR"},
			contains: []string{"missing 172.112.0.0/16 (pod CIDR of cluster cluster-c)", "missing 10.253.0.0/18 (service CIDR of cluster cluster-c)"},
		},
		{
			name: "globalnet: the remote's global CIDR is what to hijack",
			world: NewWorld(Input{Clusters: []submarinerv1.Cluster{cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18", "242.0.0.0/16"),
				cluster("cluster-b", "172.110.0.0/16", "10.233.0.0/18", "242.1.0.0/16")}, LocalCluster: "cluster-a", Pools: pools}),
			config: seedConfig(),
			want:   []string{"Deny hijack-covers-remote-cidrs spec.coordinator.hijackCIDR"}, contains: []string{"missing 242.1.0.0/16 (global CIDR of cluster cluster-b)"},
		},
		{
			name: "no Submariner clusters: alignment unchecked", world: NewWorld(Input{Pools: pools}), config: seedConfig(),
			want: []string{"Warn submariner-clusters-known -"}, contains: []string{"no Submariner Cluster objects found, alignment unchecked"},
		},
		{name: "nil world", world: nil, config: seedConfig(), want: []string{"Warn config-pools-exist spec.macvlan.ippools.ipv4[0]", "Warn submariner-clusters-known -"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.config
			expectViolations(t, CheckMultusConfig(tt.world, &c), tt.want, tt.contains...)
		})
	}
}
