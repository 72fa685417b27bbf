package rules

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

func withAllocs(allocs map[string]string) poolOpt {
	return func(p *spiderv2beta1.SpiderIPPool) {
		a := spiderv2beta1.PoolIPAllocations{}
		for ip, pod := range allocs {
			a[ip] = spiderv2beta1.PoolIPAllocation{NIC: "eth0", NamespacedName: pod, PodUID: "uid-" + ip}
		}
		s, err := a.Encode()
		if err != nil {
			panic(err)
		}
		p.Status.AllocatedIPs = s
		p.Status.AllocatedIPCount = ptr(int64(len(a)))
	}
}

func TestCheckPool(t *testing.T) {
	seedCfg := seedConfig()
	inLocal := func(pools ...spiderv2beta1.SpiderIPPool) *World { return seedWorld(pools, seedCfg) }
	manyIPs := make([]string, 1_000_000)
	for i := range manyIPs {
		manyIPs[i] = "172.110.1.1"
	}
	tests := []struct {
		name     string
		world    *World
		pool     spiderv2beta1.SpiderIPPool
		old      *spiderv2beta1.SpiderIPPool
		want     []string
		contains []string
	}{
		{
			name:  "the seed's pool: gateway outside the subnet gets both fixes",
			world: inLocal(), pool: seedPool(),
			want: []string{"Deny pool-gateway-in-subnet spec.gateway"},
			contains: []string{`spec.gateway: Invalid value: "172.110.0.1": outside spec.subnet 172.110.1.0/24`,
				"e.g. 172.110.1.254, not in spec.ips", "widen spec.subnet to 172.110.0.0/23, which contains 172.110.0.1"},
		},
		{name: "the corrected pool: gateway inside, not in ips", world: inLocal(), pool: fixedPool()},
		{
			name: "the corrected pool: subnet widened to hold the gateway", world: inLocal(),
			pool: func() spiderv2beta1.SpiderIPPool { p := seedPool(); p.Spec.Subnet = "172.110.0.0/23"; return p }(),
		},
		{
			name: "gateway in ips is allocatable", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.100", []string{"172.110.1.1-172.110.1.200"}),
			want: []string{"Deny pool-gateway-not-allocatable spec.gateway"}, contains: []string{"add 172.110.1.100 to spec.excludeIPs"},
		},
		{
			name: "gateway in ips but excluded", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.100", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) {
				p.Spec.ExcludeIPs = []string{"172.110.1.100"}
			}),
		},
		{
			name: "gateway suggestion skips addresses in ips", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.0.1", []string{"172.110.1.250-172.110.1.254"}),
			want: []string{"Deny pool-gateway-in-subnet spec.gateway"}, contains: []string{"e.g. 172.110.1.249, not in spec.ips"},
		},
		{
			name: "gateway is the broadcast address", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.255", []string{"172.110.1.1-172.110.1.200"}),
			want: []string{"Deny pool-gateway-in-subnet spec.gateway"}, contains: []string{"network or broadcast address"},
		},
		{
			name: "gateway of the wrong family", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "fd00::1", []string{"172.110.1.1-172.110.1.200"}),
			want: []string{"Deny pool-gateway-in-subnet spec.gateway"}, contains: []string{"is IPv6 in an IPv4 pool"},
		},
		{
			name: "gateway not an address", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "router", []string{"172.110.1.1-172.110.1.200"}),
			want: []string{"Deny pool-gateway-in-subnet spec.gateway"},
		},
		{
			name: "missing subnet", world: inLocal(),
			pool: pool("cluster-a", "", "", []string{"172.110.1.1"}),
			want: []string{"Deny pool-subnet-valid spec.subnet"}, contains: []string{"spec.subnet: Required value"},
		},
		{
			name: "subnet with host bits", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.5/24", "", []string{"172.110.1.10"}),
			want: []string{"Deny pool-subnet-valid spec.subnet"}, contains: []string{"the network is 172.110.1.0/24"},
		},
		{
			name: "absurd /0 subnet", world: inLocal(),
			pool: pool("cluster-a", "0.0.0.0/0", "", []string{"172.110.1.10"}),
			want: []string{"Deny pool-subnet-valid spec.subnet"}, contains: []string{"a /0 subnet spans every address"},
		},
		{
			name: "ipVersion against the subnet", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.10"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.IPVersion = ptr(int64(6)) }),
			want: []string{"Deny pool-subnet-valid spec.ipVersion"}, contains: []string{"set spec.ipVersion to 4"},
		},
		{
			name: "ipVersion not 4 or 6", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.10"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.IPVersion = ptr(int64(5)) }),
			want: []string{"Deny pool-subnet-valid spec.ipVersion"}, contains: []string{"Unsupported value: 5"},
		},
		{
			name: "an IPv6 address in an IPv4 pool", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.10", "fd00::1"}),
			want: []string{"Deny pool-ips-in-subnet spec.ips[1]"}, contains: []string{`spec.ips[1]: Invalid value: "fd00::1": is IPv6 in an IPv4 pool`},
		},
		{
			name: "ips outside the subnet", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.10", "172.110.1.250-172.110.2.3"}),
			want: []string{"Deny pool-ips-in-subnet spec.ips[1]"}, contains: []string{"lies outside spec.subnet 172.110.1.0/24"},
		},
		{
			name: "reversed range", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.200-172.110.1.1"}),
			want: []string{"Deny pool-ips-in-subnet spec.ips[0]"}, contains: []string{"write 172.110.1.1-172.110.1.200"},
		},
		{
			name: "excludeIPs outside the subnet", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.10"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = []string{"172.110.9.9"} }),
			want: []string{"Deny pool-ips-in-subnet spec.excludeIPs[0]"},
		},
		{
			name: "10^6 ranges are denied before parsing", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", manyIPs),
			want: []string{"Deny pool-ips-in-subnet spec.ips"}, contains: []string{"Too many: 1000000"},
		},
		{
			name: "ips include the network and broadcast addresses", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.0-172.110.1.255"}),
			want: []string{"Warn pool-ips-in-subnet spec.ips"}, contains: []string{"172.110.1.0 and 172.110.1.255"},
		},
		{
			name:  "routes: bad destination, next hop outside, duplicate, default route",
			world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) {
				p.Spec.Routes = []spiderv2beta1.Route{
					{Dst: "10.6.0.0/16", Gw: "172.110.1.253"},
					{Dst: "10.6.0.0/16", Gw: "172.110.1.253"},
					{Dst: "10.7.0.1/16", Gw: "172.110.1.253"},
					{Dst: "10.8.0.0/16", Gw: "10.8.0.1"},
					{Dst: "0.0.0.0/0", Gw: "172.110.1.253"},
					{Dst: "fd00::/64", Gw: "nope"},
				}
			}),
			want: []string{"Deny pool-routes-valid spec.routes[1].dst", "Deny pool-routes-valid spec.routes[2].dst", "Deny pool-routes-valid spec.routes[3].gw",
				"Deny pool-routes-valid spec.routes[4].dst", "Deny pool-routes-valid spec.routes[5].dst", "Deny pool-routes-valid spec.routes[5].gw"},
			contains: []string{"repeats spec.routes[0].dst", "the default route, which only spec.gateway sets", "next hop outside spec.subnet"},
		},
		{
			name: "a default route without a gateway", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) {
				p.Spec.Routes = []spiderv2beta1.Route{{Dst: "0.0.0.0/0", Gw: "172.110.1.254"}}
			}),
			want: []string{"Deny pool-routes-valid spec.routes[0].dst"}, contains: []string{"set spec.gateway to its next hop"},
		},
		{
			name: "affinity selectors: invalid, and an empty podAffinity", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) {
				p.Spec.PodAffinity = &metav1.LabelSelector{}
				p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Near"}}}
				p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"underlay.underlink.io/ens224": "up"}}
			}),
			want:     []string{"Deny pool-affinity-valid spec.podAffinity", "Deny pool-affinity-valid spec.namespaceAffinity"},
			contains: []string{"an empty podAffinity selects every pod", `spec.namespaceAffinity: Invalid value: "Near": matchExpressions[0].operator: not a valid selector operator`},
		},
		{
			// spec.multusName: a bare name is in kube-system; a name that exists nowhere warns with the nearest one.
			name: "multusName: existing networks, a typo and a malformed entry", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) {
				p.Spec.MultusName = []string{"kube-system/macvlan-conf", "macvlan-conf", "kube-system/macvlan-confg", "a/b/c"}
			}),
			want: []string{"Warn pool-affinity-valid spec.multusName[2]", "Deny pool-affinity-valid spec.multusName[3]"},
			contains: []string{`spec.multusName[2]: Not found: "kube-system/macvlan-confg": network kube-system/macvlan-confg does not exist, so the pool serves no pod until it does; did you mean kube-system/macvlan-conf?`,
				`spec.multusName[3]: Invalid value: "a/b/c": "a/b/c": write namespace/name`},
		},
		{
			name:  "same subnet: excluded addresses do not count as shared",
			world: inLocal(pool("other", "172.110.1.0/24", "", []string{"172.110.1.150-172.110.1.210"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = []string{"172.110.1.150-172.110.1.200"} })),
			pool:  fixedPool(),
		},
		{
			name:  "subnet overlapping another pool's",
			world: inLocal(pool("other", "172.110.0.0/23", "", []string{"172.110.0.10"})),
			pool:  fixedPool(),
			want:  []string{"Deny pool-no-overlap spec.subnet"}, contains: []string{"overlaps 172.110.0.0/23, the subnet of SpiderIPPool/other"},
		},
		{
			name:  "same subnet, disjoint addresses",
			world: inLocal(pool("other", "172.110.1.0/24", "", []string{"172.110.1.201-172.110.1.210"})),
			pool:  fixedPool(),
		},
		{
			name:  "same subnet, shared addresses",
			world: inLocal(pool("other", "172.110.1.0/24", "", []string{"172.110.1.150-172.110.1.210"})),
			pool:  fixedPool(),
			want:  []string{"Deny pool-no-overlap spec.ips"}, contains: []string{"shares 172.110.1.150-172.110.1.200 with SpiderIPPool/other"},
		},
		{
			name:  "update: the stored version of the same pool is not another pool",
			world: inLocal(fixedPool()), pool: fixedPool(), old: ptr(fixedPool()),
		},
		{
			name: "update: subnet is immutable", world: inLocal(fixedPool()),
			pool: func() spiderv2beta1.SpiderIPPool { p := fixedPool(); p.Spec.Subnet = "172.110.0.0/23"; return p }(), old: ptr(fixedPool()),
			want: []string{"Deny pool-subnet-immutable spec.subnet"}, contains: []string{"spec.subnet: Forbidden"},
		},
		{
			name: "update: ipVersion is immutable", world: inLocal(),
			pool: fixedPool(),
			old:  ptr(pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.IPVersion = ptr(int64(4)) })),
			want: []string{"Deny pool-subnet-immutable spec.ipVersion"},
		},
		{
			name: "update: shrinking ips below a pod's address", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.100"}),
			old:  ptr(pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, withAllocs(map[string]string{"172.110.1.5": "default/a", "172.110.1.150": "default/b"}))),
			want: []string{"Deny pool-keeps-allocated-ips spec.ips"}, contains: []string{"172.110.1.150 (pod default/b)"},
		},
		{
			name: "update: excluding a pod's address", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = []string{"172.110.1.5"} }),
			old:  ptr(pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, withAllocs(map[string]string{"172.110.1.5": "default/a"}))),
			want: []string{"Deny pool-keeps-allocated-ips spec.ips"}, contains: []string{"172.110.1.5 (pod default/a)"},
		},
		{
			name: "update: growing ips keeps every pod", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.250"}),
			old:  ptr(pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.200"}, withAllocs(map[string]string{"172.110.1.5": "default/a"}))),
		},
		{
			name: "a pool with nothing to give", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", nil),
			want: []string{"Warn pool-capacity spec.ips"}, contains: []string{"no address to give"},
		},
		{
			name: "over 90% allocated", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.10"}, withAllocs(map[string]string{
				"172.110.1.1": "a/1", "172.110.1.2": "a/2", "172.110.1.3": "a/3", "172.110.1.4": "a/4", "172.110.1.5": "a/5",
				"172.110.1.6": "a/6", "172.110.1.7": "a/7", "172.110.1.8": "a/8", "172.110.1.9": "a/9", "172.110.1.10": "a/10"})),
			want: []string{"Warn pool-capacity spec.ips"}, contains: []string{"10 of 10 addresses allocated (over 90%)"},
		},
		{
			name: "exactly 90% allocated is no warning", world: inLocal(),
			pool: pool("cluster-a", "172.110.1.0/24", "172.110.1.254", []string{"172.110.1.1-172.110.1.10"}, withAllocs(map[string]string{
				"172.110.1.1": "a/1", "172.110.1.2": "a/2", "172.110.1.3": "a/3", "172.110.1.4": "a/4", "172.110.1.5": "a/5",
				"172.110.1.6": "a/6", "172.110.1.7": "a/7", "172.110.1.8": "a/8", "172.110.1.9": "a/9"})),
		},
		{
			name: "rule 1: a pool a config uses lies outside the local cluster CIDR", world: inLocal(),
			pool:     pool("cluster-a", "192.168.1.0/24", "192.168.1.254", []string{"192.168.1.1-192.168.1.200"}),
			want:     []string{"Deny pool-in-local-cluster-cidr spec.subnet"},
			contains: []string{"outside 172.110.0.0/16, the pod CIDR (cluster_cidr) of the local cluster cluster-a", "SpiderMultusConfig/kube-system/macvlan-conf uses it"},
		},
		{
			name: "rule 1: an unused pool outside the local cluster CIDR warns", world: seedWorld(nil),
			pool: pool("spare", "192.168.1.0/24", "192.168.1.254", []string{"192.168.1.1-192.168.1.200"}),
			want: []string{"Warn pool-in-local-cluster-cidr spec.subnet"}, contains: []string{"no underlay SpiderMultusConfig uses the pool yet"},
		},
		{
			name:  "rule 1: a default pool is used by a config that names no pool",
			world: seedWorld(nil, config("kube-system", "any", nil, "10.243.0.0/18", "172.111.0.0/16")),
			pool:  pool("spare", "192.168.1.0/24", "192.168.1.254", []string{"192.168.1.1"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.Default = ptr(true) }),
			want:  []string{"Deny pool-in-local-cluster-cidr spec.subnet"}, contains: []string{"SpiderMultusConfig/kube-system/any (default pool) uses it"},
		},
		{
			name: "rule 2: the seed's cluster-b pool applied in cluster-a overlaps cluster-b's pod CIDR", world: seedWorld(nil),
			pool:     pool("cluster-b", "172.111.1.0/24", "172.111.1.254", []string{"172.111.1.1-172.111.1.200"}),
			want:     []string{"Warn pool-in-local-cluster-cidr spec.subnet", "Deny pool-clear-of-remote-cidrs spec.subnet"},
			contains: []string{"overlaps 172.111.0.0/16 (pod CIDR of cluster cluster-b)", "choose a subnet outside 172.111.0.0/16 and inside the local cluster CIDR 172.110.0.0/16"},
		},
		{
			name: "rule 2: a pool overlapping a remote service CIDR", world: seedWorld(nil),
			pool:     pool("svc", "10.243.1.0/24", "10.243.1.254", []string{"10.243.1.1-10.243.1.200"}),
			want:     []string{"Warn pool-in-local-cluster-cidr spec.subnet", "Deny pool-clear-of-remote-cidrs spec.subnet"},
			contains: []string{"overlaps 10.243.0.0/18 (service CIDR of cluster cluster-b)"},
		},
		{
			name: "rule 2 does not apply under globalnet",
			world: NewWorld(Input{Clusters: []submarinerv1.Cluster{cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18", "242.0.0.0/16"),
				cluster("cluster-b", "172.110.0.0/16", "10.233.0.0/18", "242.1.0.0/16")}, LocalCluster: "cluster-a"}),
			pool: fixedPool(),
		},
		{
			name: "a pool overlapping the local service CIDR", world: seedWorld(nil),
			pool:     pool("svc", "10.233.1.0/24", "10.233.1.254", []string{"10.233.1.1"}),
			want:     []string{"Warn pool-in-local-cluster-cidr spec.subnet", "Deny pool-clear-of-local-service-cidr spec.subnet"},
			contains: []string{"overlaps 10.233.0.0/18, the service CIDR of the local cluster cluster-a"},
		},
		{
			name: "no Submariner clusters: alignment unchecked", world: NewWorld(Input{}),
			pool: fixedPool(),
			want: []string{"Warn submariner-clusters-known -"}, contains: []string{"no Submariner Cluster objects found, alignment unchecked"},
		},
		{
			name: "local cluster unknown: alignment unchecked",
			world: NewWorld(Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB}, Pools: []spiderv2beta1.SpiderIPPool{
				pool("x", "10.1.0.0/24", "", nil)}}),
			pool: fixedPool(),
			want: []string{"Warn submariner-clusters-known -"}, contains: []string{"cannot tell which of the Submariner Clusters cluster-a, cluster-b is local"},
		},
		{
			name: "IPv6 pool", world: seedWorld(nil),
			pool: pool("v6", "fd00:110::/64", "fd00:110::1", []string{"fd00:110::10-fd00:110::ffff"}),
			want: []string{"Warn pool-in-local-cluster-cidr spec.subnet"},
		},
		{name: "nil world does not panic", world: nil, pool: seedPool(), want: []string{"Deny pool-gateway-in-subnet spec.gateway", "Warn submariner-clusters-known -"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pool
			expectViolations(t, CheckPool(tt.world, &p, tt.old), tt.want, tt.contains...)
		})
	}
}

// Absurd pools (10^6 entries, an IPv6 /8, a /0) are denied without walking their addresses; a runaway
// walk would show as this test hanging until go test's own timeout.
func TestCheckPoolDeniesAbsurdInputs(t *testing.T) {
	huge := make([]string, 1_000_000)
	for i := range huge {
		huge[i] = fmt.Sprintf("172.110.%d.%d", (i/250)%250, i%250+1)
	}
	cases := []spiderv2beta1.SpiderIPPool{
		pool("huge", "172.110.0.0/16", "", huge),
		pool("v6-wide", "fd00::/8", "fe80::1", []string{"fd00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}),
		pool("v6-gw-out", "fd00::/120", "fd01::1", []string{"fd00::-fd00::ff"}),
		pool("zero", "::/0", "::1", []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}),
	}
	for _, p := range cases {
		if vs := CheckPool(seedWorld(nil), &p, nil); !Denied(vs) {
			t.Errorf("%s: want a denial, got %v", p.Name, vs)
		}
	}
}
