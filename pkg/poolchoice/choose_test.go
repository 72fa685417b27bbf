package poolchoice

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func ptr[T any](v T) *T { return &v }

func pool(name, subnet string, mut ...func(*spv2.SpiderIPPool)) *spv2.SpiderIPPool {
	p := &spv2.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	p.Spec.Subnet = subnet
	for _, m := range mut {
		m(p)
	}
	return p
}

func sel(k, v string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
}

func def(p *spv2.SpiderIPPool) { p.Spec.Default = ptr(true) }

func subject(annotations map[string]string) Subject {
	return Subject{
		Namespace: "team-a", Pod: "web-0", Interface: "eth0",
		PodLabels:       map[string]string{"app": "web"},
		PodAnnotations:  annotations,
		NamespaceLabels: map[string]string{"tier": "prod"},
	}
}

var node1 = Node{Name: "node1", Labels: map[string]string{"underlay.underlink.io/ens224": "up", "zone": "a"}}

func testPools() *Index {
	return IndexOf([]*spv2.SpiderIPPool{
		pool("cluster-a", "172.110.1.0/24", def),
		pool("cluster-a2", "172.110.2.0/24"),
		pool("v6", "fd00::/120", def),
		pool("v6b", "fd00:1::/120"),
		pool("disabled", "172.110.3.0/24", func(p *spv2.SpiderIPPool) { p.Spec.Disable = ptr(true) }),
		pool("zone-b", "172.110.4.0/24", func(p *spv2.SpiderIPPool) { p.Spec.NodeAffinity = sel("zone", "b") }),
		pool("zone-a", "172.110.5.0/24", func(p *spv2.SpiderIPPool) { p.Spec.NodeAffinity = sel("zone", "a") }),
		pool("node2-only", "172.110.6.0/24", func(p *spv2.SpiderIPPool) {
			p.Spec.NodeName = []string{"node2"}
			p.Spec.NodeAffinity = sel("zone", "a") // ignored: nodeName wins
		}),
		pool("node1-only", "172.110.7.0/24", func(p *spv2.SpiderIPPool) {
			p.Spec.NodeName = []string{"node1"}
			p.Spec.NodeAffinity = sel("zone", "b") // ignored: nodeName wins
		}),
		pool("ns-b", "172.110.8.0/24", func(p *spv2.SpiderIPPool) { p.Spec.NamespaceName = []string{"team-b"} }),
		pool("ns-dev", "172.110.9.0/24", func(p *spv2.SpiderIPPool) { p.Spec.NamespaceAffinity = sel("tier", "dev") }),
		pool("ns-a-not-dev", "172.110.14.0/24", func(p *spv2.SpiderIPPool) {
			p.Spec.NamespaceName = []string{"team-a"}
			p.Spec.NamespaceAffinity = sel("tier", "dev") // ignored: namespaceName wins
		}),
		pool("db-only", "172.110.10.0/24", func(p *spv2.SpiderIPPool) { p.Spec.PodAffinity = sel("app", "db") }),
		pool("web-only", "172.110.11.0/24", func(p *spv2.SpiderIPPool) { p.Spec.PodAffinity = sel("app", "web") }),
		pool("terminating", "172.110.12.0/24", func(p *spv2.SpiderIPPool) { p.DeletionTimestamp = &metav1.Time{} }),
		pool("bad-selector", "172.110.13.0/24", func(p *spv2.SpiderIPPool) {
			p.Spec.PodAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}
		}),
	})
}

type famPools map[int][]string

func choose(s Subject, network Names) (Plan, error) {
	return Choose(s, node1, NetworkPools{Names: network}, testPools())
}

func TestChoosePoolsInOrderOfPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		annos   map[string]string
		ifname  string
		network Names
		source  string
		want    famPools
		clean   bool
	}{
		{"defaults when nothing is named", nil, "", Names{}, SourceDefault, famPools{4: {"cluster-a"}, 6: {"v6"}}, false},
		{"network before defaults", nil, "", Names{IPv4: []string{"cluster-a2", "cluster-a"}}, SourceNetwork, famPools{4: {"cluster-a2", "cluster-a"}}, false},
		{"seed's config: ipv4 cluster-a", nil, "", Names{IPv4: []string{"cluster-a"}}, SourceNetwork, famPools{4: {"cluster-a"}}, false},
		{"ippool annotation before the network", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["cluster-a2"],"ipv6":["v6b"]}`}, "", Names{IPv4: []string{"cluster-a"}}, SourcePodIPPool, famPools{4: {"cluster-a2"}, 6: {"v6b"}}, false},
		{"ippools annotation before ippool", map[string]string{
			spv2.AnnoPodIPPool:  `{"ipv4":["cluster-a"]}`,
			spv2.AnnoPodIPPools: `[{"interface":"net1","ipv4":["cluster-a"]},{"interface":"eth0","ipv4":["cluster-a2"],"cleangateway":true}]`,
		}, "", Names{}, SourcePodIPPools, famPools{4: {"cluster-a2"}}, true},
		{"ippools: the item of the interface asking", map[string]string{
			spv2.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]},{"interface":"net1","ipv4":["cluster-a2"]}]`,
		}, "net1", Names{}, SourcePodIPPools, famPools{4: {"cluster-a2"}}, false},
		{"ippool serves whichever interface asks", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["cluster-a2"]}`}, "net2", Names{}, SourcePodIPPool, famPools{4: {"cluster-a2"}}, false},
		{"ineligible pools are skipped, order kept", nil, "", Names{IPv4: []string{"disabled", "zone-b", "zone-a", "cluster-a"}}, SourceNetwork, famPools{4: {"zone-a", "cluster-a"}}, false},
		{"nodeName replaces nodeAffinity", nil, "", Names{IPv4: []string{"node2-only", "node1-only"}}, SourceNetwork, famPools{4: {"node1-only"}}, false},
		{"namespaceName replaces namespaceAffinity", nil, "", Names{IPv4: []string{"ns-dev", "ns-a-not-dev"}}, SourceNetwork, famPools{4: {"ns-a-not-dev"}}, false},
		{"pod affinity", nil, "", Names{IPv4: []string{"db-only", "web-only"}}, SourceNetwork, famPools{4: {"web-only"}}, false},
		{"duplicates are tried once", nil, "", Names{IPv4: []string{"cluster-a", "cluster-a"}}, SourceNetwork, famPools{4: {"cluster-a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := subject(tc.annos)
			if tc.ifname != "" {
				s.Interface = tc.ifname
			}
			plan, err := choose(s, tc.network)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Source != tc.source || plan.CleanGateway != tc.clean {
				t.Errorf("source %q clean %v, want %q %v", plan.Source, plan.CleanGateway, tc.source, tc.clean)
			}
			got := famPools{}
			for _, f := range plan.Families {
				got[f.Family] = f.Names()
			}
			if len(got) != len(tc.want) {
				t.Fatalf("families %v, want %v", got, tc.want)
			}
			for fam, pools := range tc.want {
				if strings.Join(got[fam], ",") != strings.Join(pools, ",") {
					t.Errorf("IPv%d pools %v, want %v", fam, got[fam], pools)
				}
			}
		})
	}
}

func TestDefaultPoolsMostSpecificFirst(t *testing.T) {
	pools := IndexOf([]*spv2.SpiderIPPool{
		pool("b-plain", "10.0.1.0/24", def),
		pool("a-plain", "10.0.2.0/24", def),
		pool("ns", "10.0.3.0/24", def, func(p *spv2.SpiderIPPool) { p.Spec.NamespaceName = []string{"team-a"} }),
		pool("node", "10.0.4.0/24", def, func(p *spv2.SpiderIPPool) { p.Spec.NodeName = []string{"node1"} }),
		pool("pod", "10.0.5.0/24", def, func(p *spv2.SpiderIPPool) { p.Spec.PodAffinity = sel("app", "web") }),
		pool("not-default", "10.0.6.0/24"),
		pool("net", "10.0.7.0/24", def, func(p *spv2.SpiderIPPool) { p.Spec.MultusName = []string{"kube-system/macvlan-conf"} }),
	})
	s := subject(nil)
	s.Network = "kube-system/macvlan-conf"
	plan, err := Choose(s, node1, NetworkPools{}, pools)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Families[0].Names(), ","); got != "pod,node,ns,net,a-plain,b-plain" {
		t.Fatalf("default order %s", got)
	}
}

func TestChooseRejectsBadConfigNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name    string
		annos   map[string]string
		network Names
		field   string
		msg     string
	}{
		{"unknown network pool", nil, Names{IPv4: []string{"cluster-a", "nope"}}, "ipam.ipv4Pools[1]", "no SpiderIPPool of that name exists"},
		{"network pool of the wrong family", nil, Names{IPv6: []string{"cluster-a"}}, "ipam.ipv6Pools[0]", "SpiderIPPool is IPv4"},
		{"a bad network is reported even under an annotation", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["cluster-a"]}`}, Names{IPv4: []string{"nope"}}, "ipam.ipv4Pools[0]", "no SpiderIPPool"},
		{"unknown annotation pool", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["nope"]}`}, Names{}, "pod annotation ipam.spidernet.io/ippool ipv4[0]", "no SpiderIPPool"},
		{"annotation not JSON", map[string]string{spv2.AnnoPodIPPool: `cluster-a`}, Names{}, "pod annotation ipam.spidernet.io/ippool", "not a JSON object"},
		{"annotation names nothing", map[string]string{spv2.AnnoPodIPPool: `{}`}, Names{}, "pod annotation ipam.spidernet.io/ippool", "names no ipv4 or ipv6 pools"},
		{"ippools not a list", map[string]string{spv2.AnnoPodIPPools: `{"ipv4":["cluster-a"]}`}, Names{}, "pod annotation ipam.spidernet.io/ippools", "not a JSON list"},
		{"ippools empty", map[string]string{spv2.AnnoPodIPPools: `[]`}, Names{}, "pod annotation ipam.spidernet.io/ippools", "lists no interface"},
		{"ippools null", map[string]string{spv2.AnnoPodIPPools: `null`}, Names{}, "pod annotation ipam.spidernet.io/ippools", "lists no interface"},
		{"ippools item without interface", map[string]string{spv2.AnnoPodIPPools: `[{"ipv4":["cluster-a"]}]`}, Names{}, "pod annotation ipam.spidernet.io/ippools[0].interface", "is empty"},
		{"ippools interface not a name", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth/0","ipv4":["cluster-a"]}]`}, Names{}, "pod annotation ipam.spidernet.io/ippools[0].interface", "contains '/'"},
		{"ippools interface twice", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]},{"interface":"eth0","ipv4":["cluster-a"]}]`}, Names{}, "pod annotation ipam.spidernet.io/ippools[1].interface", "listed twice"},
		{"ippools without this interface", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"net1","ipv4":["cluster-a"]}]`}, Names{}, "pod annotation ipam.spidernet.io/ippools", "names no pools for interface eth0"},
		{"ippools without this interface, even with ippool", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"net1","ipv4":["cluster-a"]}]`, spv2.AnnoPodIPPool: `{"ipv4":["cluster-a"]}`}, Names{}, "pod annotation ipam.spidernet.io/ippools", "names no pools for interface eth0"},
		{"ippools item without pools", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth0"}]`}, Names{}, "pod annotation ipam.spidernet.io/ippools", "names no ipv4 or ipv6 pools"},
		{"ippools wrong family", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["v6"]}]`}, Names{}, "pod annotation ipam.spidernet.io/ippools[0].ipv4[0]", "SpiderIPPool is IPv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := choose(subject(tc.annos), tc.network)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Where() != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ConfigError on %q saying %q", err, tc.field, tc.msg)
			}
		})
	}
}

func TestChooseWithoutAnyPool(t *testing.T) {
	_, err := Choose(subject(nil), node1, NetworkPools{}, IndexOf([]*spv2.SpiderIPPool{pool("x", "10.0.0.0/24")}))
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no SpiderIPPool has spec.default: true") {
		t.Fatalf("err = %v", err)
	}
}

func TestChooseExplainsEveryRejection(t *testing.T) {
	_, err := choose(subject(nil), Names{IPv4: []string{"disabled", "zone-b", "node2-only", "ns-b", "ns-dev", "db-only", "terminating", "bad-selector"}})
	var ne *NoPoolError
	if !errors.As(err, &ne) || len(ne.Rejections) != 8 {
		t.Fatalf("err = %v, want NoPoolError with 8 rejections", err)
	}
	for _, want := range []string{
		`"disabled": spec.disable is true`,
		`"zone-b": spec.nodeAffinity (zone=b) does not match the labels of node "node1"`,
		`"node2-only": spec.nodeName [node2] does not include node "node1"`,
		`"ns-b": spec.namespaceName [team-b] does not include namespace "team-a"`,
		`"ns-dev": spec.namespaceAffinity (tier=dev) does not match the labels of namespace "team-a"`,
		`"db-only": spec.podAffinity (app=db) does not match the labels of pod "team-a/web-0"`,
		`"terminating": is being deleted`,
		`"bad-selector": spec.podAffinity is not a valid label selector`,
		"no IPv4 SpiderIPPool can serve this pod on eth0 (pools from the network's configuration)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if ne.OnlyTransient() {
		t.Error("a namespace mismatch is not transient")
	}
}

// Candidates decides without a node; OnNode then narrows to the node, so the scheduler (which asks once
// per cycle, then per node) and the IPAM (which asks once, on its node) decide alike.
func TestCandidatesThenOnNode(t *testing.T) {
	a, err := ParseAnnotations(nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := a.Candidates(subject(nil), NetworkPools{Names: Names{IPv4: []string{"zone-b", "node2-only", "ns-b"}}}, testPools())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Families[0].Names(), ","); got != "zone-b,node2-only" {
		t.Fatalf("candidates %s", got)
	}
	_, err = plan.OnNode(node1)
	var ne *NoPoolError
	if !errors.As(err, &ne) || len(ne.Rejections) != 3 || !ne.Rejections[1].Node || !ne.Rejections[2].Node {
		t.Fatalf("on node1: %v", err)
	}
	on2, err := plan.OnNode(Node{Name: "node2", Labels: map[string]string{"zone": "b"}})
	if err != nil || strings.Join(on2.Families[0].Names(), ",") != "zone-b,node2-only" {
		t.Fatalf("on node2: %v %v", on2, err)
	}
	// A namespace whose labels are unknown passes the namespace selector; the caller says so.
	s := subject(nil)
	s.NamespaceLabels, s.NamespaceUnknown = nil, true
	plan, err = a.Candidates(s, NetworkPools{Names: Names{IPv4: []string{"ns-dev"}}}, testPools())
	if err != nil || plan.Families[0].Names()[0] != "ns-dev" {
		t.Fatalf("unknown namespace labels: %v %v", plan, err)
	}
}

// A pool's spec.multusName limits it to the pods whose interface is attached to one of those networks,
// whichever list names the pool; two networks on two NICs with default pools each get their own.
func TestChooseByNetwork(t *testing.T) {
	onNet := func(name string, multusName ...string) *spv2.SpiderIPPool {
		return pool(name, "10.1."+fmt.Sprint(len(name))+".0/24", def, func(p *spv2.SpiderIPPool) { p.Spec.MultusName = multusName })
	}
	pools := IndexOf([]*spv2.SpiderIPPool{onNet("ens224", "kube-system/macvlan-conf"), onNet("ens256pool", "macvlan-ens256")})
	for _, tc := range []struct {
		network, want, wantErr string
	}{
		{network: "kube-system/macvlan-conf", want: "ens224"},
		{network: "kube-system/macvlan-ens256", want: "ens256pool"}, // a bare name is in Multus' namespace
		{network: "team-a/macvlan-ens256", wantErr: `"ens256pool": spec.multusName [macvlan-ens256] does not include network team-a/macvlan-ens256 of interface eth0`},
		{network: "", wantErr: `"ens224": spec.multusName [kube-system/macvlan-conf] limits it to those networks, and the pod's annotations attach no network on eth0`},
	} {
		s := subject(nil)
		s.Network = tc.network
		plan, err := Choose(s, node1, NetworkPools{}, pools)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("network %q: err = %v, want %q", tc.network, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("network %q: %v", tc.network, err)
		}
		if got := strings.Join(plan.Families[0].Names(), ","); got != tc.want {
			t.Errorf("network %q: pools %s, want %s", tc.network, got, tc.want)
		}
	}
	// Named pools are held to it too: the annotation cannot take another network's pool.
	s := subject(map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["ens224"]}`})
	s.Network = "kube-system/macvlan-ens256"
	if _, err := Choose(s, node1, NetworkPools{}, pools); err == nil || !strings.Contains(err.Error(), "does not include network kube-system/macvlan-ens256") {
		t.Errorf("annotation naming another network's pool: err = %v", err)
	}
}

func TestFamily(t *testing.T) {
	for _, tc := range []struct {
		p    *spv2.SpiderIPPool
		want int
	}{
		{pool("a", "10.0.0.0/24"), 4},
		{pool("a", "fd00::/64"), 6},
		{pool("a", "garbage"), 0},
		{pool("a", "garbage", func(p *spv2.SpiderIPPool) { p.Spec.IPVersion = ptr(int64(6)) }), 6},
		{pool("a", "10.0.0.0/24", func(p *spv2.SpiderIPPool) { p.Spec.IPVersion = ptr(int64(5)) }), 4},
	} {
		if got := Family(tc.p); got != tc.want {
			t.Errorf("Family(%s) = %d, want %d", tc.p.Spec.Subnet, got, tc.want)
		}
	}
}

func TestAnnotationsMentionedAndInterfaces(t *testing.T) {
	a, err := ParseAnnotations(map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["a"]},{"interface":"net1","ipv6":["b"]}]`})
	if err != nil || strings.Join(a.Mentioned(), ",") != "a,b" || strings.Join(a.Interfaces(), ",") != "eth0,net1" || !a.HasPools() {
		t.Errorf("%v %v %v", a.Mentioned(), a.Interfaces(), err)
	}
	// Under ippools the single annotation is never read, not even to be refused.
	if _, err := ParseAnnotations(map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["a"]}]`, spv2.AnnoPodIPPool: `not json`}); err != nil {
		t.Errorf("ippool under ippools: %v", err)
	}
}

// matchMasterSubnet: of the network's pools, those whose subnet holds an address of the master NIC on
// the node serve, in the network's order; a node whose NIC's addresses are not known is not checked.
func TestChooseMatchMasterSubnet(t *testing.T) {
	ix := IndexOf([]*spv2.SpiderIPPool{
		pool("dc1", "172.110.1.0/24"), pool("dc2", "172.110.2.0/24"), pool("dc2-v6", "fd00:2::/64"),
	})
	network := NetworkPools{Names: Names{IPv4: []string{"dc1", "dc2"}, IPv6: []string{"dc2-v6"}}, MatchMaster: "ens224"}
	onDC2 := Node{Name: "node7", Addrs: map[string][]netip.Prefix{
		"ens224": {netip.MustParsePrefix("172.110.2.17/24"), netip.MustParsePrefix("fd00:2::17/64")},
		"ens192": {netip.MustParsePrefix("172.110.1.17/24")}, // another NIC's subnet does not count
	}}
	plan, err := Choose(subject(nil), onDC2, network, ix)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Families) != 2 || fmt.Sprint(plan.Families[0].Names()) != "[dc2]" || fmt.Sprint(plan.Families[1].Names()) != "[dc2-v6]" {
		t.Fatalf("plan on a dc2 node = %+v, want dc2 and dc2-v6", plan.Families)
	}
	if r := plan.Families[0].Rejected; len(r) != 1 || r[0].Pool != "dc1" || r[0].Field != "spec.subnet" || !r[0].Node ||
		!strings.Contains(r[0].Reason, `spec.subnet 172.110.1.0/24 holds no address of master NIC ens224 on node "node7" (ens224 has 172.110.2.17/24, fd00:2::17/64)`) {
		t.Errorf("dc1's rejection = %+v", r)
	}

	// Without matchMasterSubnet, the first listed pool serves.
	off := network
	off.MatchMaster = ""
	if plan, err := Choose(subject(nil), onDC2, off, ix); err != nil || plan.Families[0].Names()[0] != "dc1" {
		t.Errorf("without matchMasterSubnet: %v, %v; want dc1 first", plan.Families, err)
	}
	// A node whose NIC's addresses are unknown is not checked: the scheduler before the agent published them.
	if plan, err := Choose(subject(nil), node1, network, ix); err != nil || len(plan.Families[0].Pools) != 2 {
		t.Errorf("unknown addresses: %v, %v; want both pools", plan.Families, err)
	}
	// A NIC without an address of any listed pool's subnet: no pool, and the error says why for each.
	bare := Node{Name: "node9", Addrs: map[string][]netip.Prefix{"ens224": {}}}
	_, err = Choose(subject(nil), bare, network, ix)
	var np *NoPoolError
	if !errors.As(err, &np) || np.Family != 4 || len(np.Rejections) != 2 || !strings.Contains(err.Error(), "ens224 has no address") {
		t.Errorf("a NIC without addresses: %v", err)
	}
}
