package ipam

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

func subject(annotations map[string]string) Subject {
	return Subject{
		Holder:          Holder{Namespace: "team-a", Name: "web-0", UID: "u", NIC: "eth0"},
		PodLabels:       map[string]string{"app": "web"},
		PodAnnotations:  annotations,
		NamespaceLabels: map[string]string{"tier": "prod"},
		NodeName:        "node1",
		NodeLabels:      map[string]string{"underlay.underlink.io/ens224": "up", "zone": "a"},
	}
}

func sel(k, v string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
}

func def(p *spv2.SpiderIPPool) { p.Spec.Default = ptr(true) }

func testPools() []*spv2.SpiderIPPool {
	return []*spv2.SpiderIPPool{
		pool("cluster-a", "172.110.1.0/24", []string{"172.110.1.1-172.110.1.200"}, withGateway("172.110.0.1"), def),
		pool("cluster-a2", "172.110.2.0/24", []string{"172.110.2.1-172.110.2.200"}),
		pool("v6", "fd00::/120", []string{"fd00::10-fd00::20"}, def),
		pool("v6b", "fd00:1::/120", []string{"fd00:1::10-fd00:1::20"}),
		pool("disabled", "172.110.3.0/24", []string{"172.110.3.1"}, func(p *spv2.SpiderIPPool) { p.Spec.Disable = ptr(true) }),
		pool("zone-b", "172.110.4.0/24", []string{"172.110.4.1"}, func(p *spv2.SpiderIPPool) { p.Spec.NodeAffinity = sel("zone", "b") }),
		pool("zone-a", "172.110.5.0/24", []string{"172.110.5.1"}, func(p *spv2.SpiderIPPool) { p.Spec.NodeAffinity = sel("zone", "a") }),
		pool("node2-only", "172.110.6.0/24", []string{"172.110.6.1"}, func(p *spv2.SpiderIPPool) {
			p.Spec.NodeName = []string{"node2"}
			p.Spec.NodeAffinity = sel("zone", "a") // ignored: nodeName wins
		}),
		pool("node1-only", "172.110.7.0/24", []string{"172.110.7.1"}, func(p *spv2.SpiderIPPool) {
			p.Spec.NodeName = []string{"node1"}
			p.Spec.NodeAffinity = sel("zone", "b") // ignored: nodeName wins
		}),
		pool("ns-b", "172.110.8.0/24", []string{"172.110.8.1"}, func(p *spv2.SpiderIPPool) { p.Spec.NamespaceName = []string{"team-b"} }),
		pool("ns-dev", "172.110.9.0/24", []string{"172.110.9.1"}, func(p *spv2.SpiderIPPool) { p.Spec.NamespaceAffinity = sel("tier", "dev") }),
		pool("db-only", "172.110.10.0/24", []string{"172.110.10.1"}, func(p *spv2.SpiderIPPool) { p.Spec.PodAffinity = sel("app", "db") }),
		pool("web-only", "172.110.11.0/24", []string{"172.110.11.1"}, func(p *spv2.SpiderIPPool) { p.Spec.PodAffinity = sel("app", "web") }),
		pool("terminating", "172.110.12.0/24", []string{"172.110.12.1"}, func(p *spv2.SpiderIPPool) { p.DeletionTimestamp = &metav1.Time{} }),
		pool("bad-selector", "172.110.13.0/24", []string{"172.110.13.1"}, func(p *spv2.SpiderIPPool) {
			p.Spec.PodAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Bogus"}}}
		}),
	}
}

type famPools map[int][]string

func TestChoosePoolsInOrderOfPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name   string
		annos  map[string]string
		conf   ConfPools
		source string
		want   famPools
		clean  bool
	}{
		{"defaults when nothing is named", nil, ConfPools{}, SourceDefault, famPools{4: {"cluster-a"}, 6: {"v6"}}, false},
		{"config before defaults", nil, ConfPools{IPv4: []string{"cluster-a2", "cluster-a"}}, SourceConfig, famPools{4: {"cluster-a2", "cluster-a"}}, false},
		{"seed's config: ipv4 cluster-a", nil, ConfPools{IPv4: []string{"cluster-a"}}, SourceConfig, famPools{4: {"cluster-a"}}, false},
		{"ippool annotation before config", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["cluster-a2"],"ipv6":["v6b"]}`}, ConfPools{IPv4: []string{"cluster-a"}}, SourcePodIPPool, famPools{4: {"cluster-a2"}, 6: {"v6b"}}, false},
		{"ippools annotation before ippool", map[string]string{
			spv2.AnnoPodIPPool:  `{"ipv4":["cluster-a"]}`,
			spv2.AnnoPodIPPools: `[{"interface":"net1","ipv4":["cluster-a"]},{"interface":"eth0","ipv4":["cluster-a2"],"cleangateway":true}]`,
		}, ConfPools{}, SourcePodIPPools, famPools{4: {"cluster-a2"}}, true},
		{"ineligible pools are skipped, order kept", nil, ConfPools{IPv4: []string{"disabled", "zone-b", "zone-a", "cluster-a"}}, SourceConfig, famPools{4: {"zone-a", "cluster-a"}}, false},
		{"nodeName replaces nodeAffinity", nil, ConfPools{IPv4: []string{"node2-only", "node1-only"}}, SourceConfig, famPools{4: {"node1-only"}}, false},
		{"pod affinity", nil, ConfPools{IPv4: []string{"db-only", "web-only"}}, SourceConfig, famPools{4: {"web-only"}}, false},
		{"duplicates are tried once", nil, ConfPools{IPv4: []string{"cluster-a", "cluster-a"}}, SourceConfig, famPools{4: {"cluster-a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := Choose(subject(tc.annos), tc.conf, testPools())
			if err != nil {
				t.Fatal(err)
			}
			if plan.Source != tc.source || plan.CleanGateway != tc.clean {
				t.Errorf("source %q clean %v, want %q %v", plan.Source, plan.CleanGateway, tc.source, tc.clean)
			}
			got := famPools{}
			for _, f := range plan.Families {
				got[f.Family] = f.Pools
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
	pools := []*spv2.SpiderIPPool{
		pool("b-plain", "10.0.1.0/24", []string{"10.0.1.1"}, def),
		pool("a-plain", "10.0.2.0/24", []string{"10.0.2.1"}, def),
		pool("ns", "10.0.3.0/24", []string{"10.0.3.1"}, def, func(p *spv2.SpiderIPPool) { p.Spec.NamespaceName = []string{"team-a"} }),
		pool("node", "10.0.4.0/24", []string{"10.0.4.1"}, def, func(p *spv2.SpiderIPPool) { p.Spec.NodeName = []string{"node1"} }),
		pool("pod", "10.0.5.0/24", []string{"10.0.5.1"}, def, func(p *spv2.SpiderIPPool) { p.Spec.PodAffinity = sel("app", "web") }),
		pool("not-default", "10.0.6.0/24", []string{"10.0.6.1"}),
		pool("net", "10.0.7.0/24", []string{"10.0.7.1"}, def, func(p *spv2.SpiderIPPool) { p.Spec.MultusName = []string{"kube-system/macvlan-conf"} }),
	}
	s := subject(nil)
	s.Network = "kube-system/macvlan-conf"
	plan, err := Choose(s, ConfPools{}, pools)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(plan.Families[0].Pools, ","); got != "pod,node,ns,net,a-plain,b-plain" {
		t.Fatalf("default order %s", got)
	}
}

func TestChooseRejectsBadConfigNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		annos map[string]string
		conf  ConfPools
		field string
		msg   string
	}{
		{"unknown config pool", nil, ConfPools{IPv4: []string{"cluster-a", "nope"}}, "ipam.ipv4Pools[1]", "no SpiderIPPool of that name exists"},
		{"config pool of the wrong family", nil, ConfPools{IPv6: []string{"cluster-a"}}, "ipam.ipv6Pools[0]", "SpiderIPPool is IPv4"},
		{"bad config is reported even under an annotation", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["cluster-a"]}`}, ConfPools{IPv4: []string{"nope"}}, "ipam.ipv4Pools[0]", "no SpiderIPPool"},
		{"unknown annotation pool", map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["nope"]}`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippool ipv4[0]", "no SpiderIPPool"},
		{"annotation not JSON", map[string]string{spv2.AnnoPodIPPool: `cluster-a`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippool", "not a JSON object"},
		{"annotation names nothing", map[string]string{spv2.AnnoPodIPPool: `{}`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippool", "names no ipv4 or ipv6 pools"},
		{"ippools not a list", map[string]string{spv2.AnnoPodIPPools: `{"ipv4":["cluster-a"]}`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippools", "not a JSON list"},
		{"ippools empty", map[string]string{spv2.AnnoPodIPPools: `[]`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippools", "lists no interface"},
		{"ippools item without interface", map[string]string{spv2.AnnoPodIPPools: `[{"ipv4":["cluster-a"]}]`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippools[0].interface", "is empty"},
		{"ippools interface twice", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["cluster-a"]},{"interface":"eth0","ipv4":["cluster-a"]}]`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippools[1].interface", "listed twice"},
		{"ippools without this interface", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"net1","ipv4":["cluster-a"]}]`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippools", `no pools for interface "eth0"`},
		{"ippools wrong family", map[string]string{spv2.AnnoPodIPPools: `[{"interface":"eth0","ipv4":["v6"]}]`}, ConfPools{}, "pod annotation ipam.spidernet.io/ippools ipv4[0]", "SpiderIPPool is IPv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Choose(subject(tc.annos), tc.conf, testPools())
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want ConfigError on %q saying %q", err, tc.field, tc.msg)
			}
		})
	}
}

func TestChooseWithoutAnyPool(t *testing.T) {
	_, err := Choose(subject(nil), ConfPools{}, []*spv2.SpiderIPPool{pool("x", "10.0.0.0/24", nil)})
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no SpiderIPPool has spec.default: true") {
		t.Fatalf("err = %v", err)
	}
}

func TestChooseExplainsEveryRejection(t *testing.T) {
	_, err := Choose(subject(nil), ConfPools{IPv4: []string{"disabled", "zone-b", "node2-only", "ns-b", "ns-dev", "db-only", "terminating", "bad-selector"}}, testPools())
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
		"no IPv4 SpiderIPPool can serve this pod (pools from CNI config",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// A pool's spec.multusName limits it to the pods whose interface is attached to one of those networks,
// whichever list names the pool; two networks on two NICs with default pools each get their own.
func TestChooseByNetwork(t *testing.T) {
	onNet := func(name string, multusName ...string) *spv2.SpiderIPPool {
		return pool(name, "10.1."+fmt.Sprint(len(name))+".0/24", []string{"10.1." + fmt.Sprint(len(name)) + ".1"}, def,
			func(p *spv2.SpiderIPPool) { p.Spec.MultusName = multusName })
	}
	pools := []*spv2.SpiderIPPool{onNet("ens224", "kube-system/macvlan-conf"), onNet("ens256pool", "macvlan-ens256")}
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
		plan, err := Choose(s, ConfPools{}, pools)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("network %q: err = %v, want %q", tc.network, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("network %q: %v", tc.network, err)
		}
		if got := strings.Join(plan.Families[0].Pools, ","); got != tc.want {
			t.Errorf("network %q: pools %s, want %s", tc.network, got, tc.want)
		}
	}
	// Named pools are held to it too: the annotation cannot take another network's pool.
	s := subject(map[string]string{spv2.AnnoPodIPPool: `{"ipv4":["ens224"]}`})
	s.Network = "kube-system/macvlan-ens256"
	if _, err := Choose(s, ConfPools{}, pools); err == nil || !strings.Contains(err.Error(), "does not include network kube-system/macvlan-ens256") {
		t.Errorf("annotation naming another network's pool: err = %v", err)
	}
}

func TestPoolFamily(t *testing.T) {
	for _, tc := range []struct {
		p    *spv2.SpiderIPPool
		want int
	}{
		{pool("a", "10.0.0.0/24", nil), 4},
		{pool("a", "fd00::/64", nil), 6},
		{pool("a", "garbage", nil), 0},
		{pool("a", "garbage", nil, func(p *spv2.SpiderIPPool) { p.Spec.IPVersion = ptr(int64(6)) }), 6},
	} {
		if got := PoolFamily(tc.p); got != tc.want {
			t.Errorf("PoolFamily(%s) = %d, want %d", tc.p.Spec.Subnet, got, tc.want)
		}
	}
}
