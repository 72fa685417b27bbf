package rules

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	submarinerv1 "github.com/underlink/underlink/api/submariner/v1"
)

// The seed's clusters as Submariner's broker would sync them (test/testdata/seed/spiderpool-submariner.md).
func cluster(id, pods, services string, globals ...string) submarinerv1.Cluster {
	c := submarinerv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: id, Namespace: "submariner-operator"},
		Spec: submarinerv1.ClusterSpec{ClusterID: id}}
	if pods != "" {
		c.Spec.ClusterCIDR = []string{pods}
	}
	if services != "" {
		c.Spec.ServiceCIDR = []string{services}
	}
	c.Spec.GlobalCIDR = globals
	return c
}

var (
	clusterA = cluster("cluster-a", "172.110.0.0/16", "10.233.0.0/18")
	clusterB = cluster("cluster-b", "172.111.0.0/16", "10.243.0.0/18")
	clusterC = cluster("cluster-c", "172.112.0.0/16", "10.253.0.0/18")
)

func ptr[T any](v T) *T { return &v }

type poolOpt func(*spiderv2beta1.SpiderIPPool)

func pool(name, subnet, gateway string, ips []string, opts ...poolOpt) spiderv2beta1.SpiderIPPool {
	p := spiderv2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spiderv2beta1.IPPoolSpec{Subnet: subnet, IPs: ips}}
	if gateway != "" {
		p.Spec.Gateway = ptr(gateway)
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

// seedPool is the user's SpiderIPPool cluster-a, byte for byte in meaning.
func seedPool() spiderv2beta1.SpiderIPPool {
	return pool("cluster-a", "172.110.1.0/24", "172.110.0.1", []string{"172.110.1.1-172.110.1.200"}, func(p *spiderv2beta1.SpiderIPPool) { p.Spec.Default = ptr(true) })
}

// fixedPool is the seed pool with its gateway inside the subnet.
func fixedPool() spiderv2beta1.SpiderIPPool {
	p := seedPool()
	p.Spec.Gateway = ptr("172.110.1.254")
	return p
}

func config(ns, name string, pools []string, hijack ...string) spiderv2beta1.SpiderMultusConfig {
	c := spiderv2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: spiderv2beta1.MultusCNIConfigSpec{CniType: ptr("macvlan"), MacvlanConfig: &spiderv2beta1.SpiderMacvlanCniConfig{Master: []string{"ens224"}}}}
	if pools != nil {
		c.Spec.MacvlanConfig.SpiderpoolConfigPools = &spiderv2beta1.SpiderpoolPools{IPv4IPPool: pools}
	}
	if hijack != nil {
		c.Spec.CoordinatorConfig = &spiderv2beta1.CoordinatorSpec{HijackCIDR: hijack}
	}
	return c
}

// seedConfig is the user's SpiderMultusConfig for cluster-a.
func seedConfig() spiderv2beta1.SpiderMultusConfig {
	return config("kube-system", "macvlan-conf", []string{"cluster-a"}, "10.243.0.0/18", "172.111.0.0/16")
}

// seedWorld is cluster-a's view with the seed's clusters, local cluster-a.
func seedWorld(pools []spiderv2beta1.SpiderIPPool, configs ...spiderv2beta1.SpiderMultusConfig) *World {
	return NewWorld(Input{Clusters: []submarinerv1.Cluster{clusterA, clusterB}, LocalCluster: "cluster-a", Pools: pools, MultusConfigs: configs})
}

// sig is a violation's identity for table tests: severity, rule and field.
func sig(v Violation) string {
	f := "-"
	if v.Field != nil {
		f = v.Field.String()
	}
	return fmt.Sprintf("%s %s %s", v.Severity, v.Rule, f)
}

// expectViolations asserts exactly the wanted violations (as sig strings, any order, duplicates count)
// and that the lines contain every wanted substring.
func expectViolations(t *testing.T, vs []Violation, want []string, contains ...string) {
	t.Helper()
	got := make([]string, len(vs))
	var lines []string
	for i, v := range vs {
		got[i] = sig(v)
		lines = append(lines, v.String())
		if v.Subject == "" {
			t.Errorf("violation without a subject: %s", v)
		}
		if v.Message == "" || v.Fix == "" {
			t.Errorf("violation without message or fix: %+v", v)
		}
		if _, ok := RuleByID(v.Rule); !ok {
			t.Errorf("violation of an unlisted rule %q", v.Rule)
		}
	}
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	if strings.Join(got, "\n") != strings.Join(w, "\n") {
		t.Errorf("violations:\n got  %q\n want %q\nlines:\n%s", got, w, strings.Join(lines, "\n"))
	}
	all := strings.Join(lines, "\n")
	for _, c := range contains {
		if !strings.Contains(all, c) {
			t.Errorf("no line contains %q; lines:\n%s", c, all)
		}
	}
}
