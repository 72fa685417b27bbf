package rules

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	spiderv2beta1 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// checkInvariants holds for every result of every Check function: a known rule, a subject, a message,
// a deny always on a field, and a field error kubectl can print; and the same input gives the same
// answer.
func checkInvariants(t *testing.T, vs, again []Violation) {
	t.Helper()
	for _, v := range vs {
		if _, ok := RuleByID(v.Rule); !ok {
			t.Fatalf("unknown rule %q: %s", v.Rule, v)
		}
		if v.Subject == "" || v.Message == "" || (v.Severity != Deny && v.Severity != Warn) {
			t.Fatalf("incomplete violation %+v", v)
		}
		if v.Severity == Deny && v.Field == nil && v.Rule != RuleDefaultNetworkExists {
			t.Fatalf("a denial without a field: %+v", v)
		}
		if v.String() == "" {
			t.Fatalf("empty line for %+v", v)
		}
	}
	if len(ToErrorList(vs))+len(Warnings(vs)) != len(vs) {
		t.Fatalf("violations lost between errors and warnings")
	}
	if !reflect.DeepEqual(lines(vs), lines(again)) {
		t.Fatalf("not deterministic:\n%v\n%v", lines(vs), lines(again))
	}
}

func lines(vs []Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	l := strings.Split(s, "\n")
	if len(l) > 2*MaxListEntries {
		l = l[:2*MaxListEntries] // the fuzzer may build huge lists; past the bound the answer is the same
	}
	return l
}

// FuzzCheckPool feeds arbitrary pool specs (and an old version) through CheckPool in the seed's world.
func FuzzCheckPool(f *testing.F) {
	f.Add("172.110.1.0/24", "172.110.0.1", "172.110.1.1-172.110.1.200", "", "10.6.0.0/16", "172.110.1.253", int64(0), "172.110.1.0/24", `{"172.110.1.150":{"pod":"a/b"}}`)
	f.Add("0.0.0.0/0", "fd00::1", "fd00::1\n172.110.1.300", "172.110.1.1-", "0.0.0.0/0", "x", int64(6), "", "not json")
	f.Add("fd00::/8", "fe80::1", "fd00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00::5", "fd01::/64", "fd00::1", int64(6), "fd00::/8", "")
	f.Add("172.111.1.0/24", "172.111.1.254", "172.111.1.1-172.111.1.200", "172.111.1.255", "", "", int64(4), "172.111.0.0/24", "")
	f.Add("10.243.1.5/24", "10.243.1.1%eth0", "10.243.1.1-10.243.1.2-10.243.1.3", "", "10.243.0.0/18", "10.243.1.1", int64(5), "", "")
	w := seedWorld([]spiderv2beta1.SpiderIPPool{fixedPool(), pool("v6", "fd00::/64", "", []string{"fd00::1-fd00::ff"})}, seedConfig())
	f.Fuzz(func(t *testing.T, subnet, gateway, ips, excludes, routeDst, routeGw string, ipVersion int64, oldSubnet, allocated string) {
		p := spiderv2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "fuzz"}, Spec: spiderv2beta1.IPPoolSpec{
			Subnet: subnet, IPs: splitList(ips), ExcludeIPs: splitList(excludes), Default: ptr(true)}}
		if gateway != "" {
			p.Spec.Gateway = ptr(gateway)
		}
		if ipVersion != 0 {
			p.Spec.IPVersion = ptr(ipVersion)
		}
		if routeDst != "" || routeGw != "" {
			p.Spec.Routes = []spiderv2beta1.Route{{Dst: routeDst, Gw: routeGw}}
		}
		var old *spiderv2beta1.SpiderIPPool
		if oldSubnet != "" {
			old = p.DeepCopy()
			old.Spec.Subnet = oldSubnet
			old.Status.AllocatedIPs = ptr(allocated)
		}
		checkInvariants(t, CheckPool(w, &p, old), CheckPool(w, &p, old))
	})
}

// FuzzCheckPod feeds arbitrary network and pool annotations through CheckPod and Check of a Deployment.
func FuzzCheckPod(f *testing.F) {
	f.Add("kube-system/macvlan-confg", "", "", "", "default")
	f.Add("macvlan-conf", "a/b@net1, c", `{"ipv4":["cluster-a"]}`, `[{"interface":"eth0","ipv4":["cluster-a"]}]`, "team")
	f.Add("[", `[{"name":"x","namespace":"Bad_NS","interface":"a very long interface"}]`, `{"ipv4s":[1]}`, `[{"interface":"eth0"},{"interface":"eth0"}]`, "")
	f.Add("a,b", ",,", "null", "[]", "kube-system")
	f.Add(strings.Repeat("x", 300), strings.Repeat("a,", 100), `{"ipv4":["v6"],"ipv6":["cluster-a"]}`, "", "default")
	w := podWorld()
	f.Fuzz(func(t *testing.T, defNet, networks, ippool, ippools, ns string) {
		annos := map[string]string{}
		for k, v := range map[string]string{nadv1.DefaultNetworkAnnotation: defNet, nadv1.NetworksAnnotation: networks,
			spiderv2beta1.AnnoPodIPPool: ippool, spiderv2beta1.AnnoPodIPPools: ippools} {
			if v != "" {
				annos[k] = v
			}
		}
		meta := metav1.ObjectMeta{Name: "p", Namespace: ns, Annotations: annos, Labels: map[string]string{"app": "db"}}
		spec := corev1.PodSpec{}
		checkInvariants(t, CheckPod(w, ns, &meta, &spec, nil), CheckPod(w, ns, &meta, &spec, nil))
		pod := &corev1.Pod{ObjectMeta: meta, Spec: spec}
		vs, handled := Check(w, pod, nil)
		if !handled {
			t.Fatal("a Pod is handled")
		}
		again, _ := Check(w, pod, nil)
		checkInvariants(t, vs, again)
	})
}

// FuzzCheckMultusConfig feeds arbitrary hijack routes, masters and pool names through CheckMultusConfig
// and Alignment.
func FuzzCheckMultusConfig(f *testing.F) {
	f.Add("10.243.0.0/18\n172.111.0.0/16", "ens224", "cluster-a", int32(0))
	f.Add("0.0.0.0/0\n172.110.0.0/16\nbogus\n10.243.0.1/18", "a-very-long-interface-name\nbad/name", "v6\ncluster-a\ncluster-a", int32(5000))
	f.Add("", "", "", int32(-1))
	f.Add("::/0\nfd00::/8", "eth0\neth1", "nope", int32(4094))
	w := seedWorld([]spiderv2beta1.SpiderIPPool{fixedPool(), pool("v6", "fd00::/64", "", nil)})
	f.Fuzz(func(t *testing.T, hijack, masters, pools string, vlan int32) {
		c := config("kube-system", "fuzz", splitList(pools), splitList(hijack)...)
		c.Spec.MacvlanConfig.Master = splitList(masters)
		c.Spec.MacvlanConfig.VlanID = ptr(vlan)
		checkInvariants(t, CheckMultusConfig(w, &c), CheckMultusConfig(w, &c))
		st := Alignment(w, &c)
		if st.Status == "" || st.Reason == "" {
			t.Fatalf("empty alignment status %+v", st)
		}
		if st.Status == metav1.ConditionFalse && !Denied(st.Violations) {
			t.Fatalf("False without a denial: %+v", st)
		}
	})
}
