package e2e

import (
	"reflect"
	"strings"
	"testing"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
)

// What Multus v4.3.0 wrote for a test-app pod of the demo: the default network on eth0, and the
// coordinator's veth0 in the same network, without an address.
const demoNetworkStatus = `[{
    "name": "kube-system/macvlan-conf",
    "interface": "eth0",
    "ips": ["172.110.1.2"],
    "mac": "4e:bd:0f:d5:78:37",
    "default": true,
    "dns": {},
    "gateway": ["172.110.0.1"]
},{
    "name": "kube-system/macvlan-conf",
    "interface": "veth0",
    "mac": "f6:87:5a:bd:39:88",
    "dns": {},
    "gateway": ["172.110.0.1"]
}]`

func TestNetworkStatusProblems(t *testing.T) {
	sts, err := ParseNetworkStatus(demoNetworkStatus)
	if err != nil || len(sts) != 2 || !sts[0].Default || sts[1].Interface != "veth0" {
		t.Fatalf("%+v %v", sts, err)
	}
	eth0 := []Attachment{{Network: "kube-system/macvlan-conf", Interface: "eth0", Default: true}}
	pool := "172.110.1.1-172.110.1.200"
	allocs := spv2.PoolIPAllocations{"172.110.1.2": {NIC: "eth0", NamespacedName: "default/p"}}
	if p := NetworkStatusProblems(sts, eth0, "default/p", []string{"172.110.1.2"}, allocs, pool); p != nil {
		t.Errorf("the demo's pod: %q", p)
	}
	for name, c := range map[string]struct {
		want   []Attachment
		podIPs []string
		allocs spv2.PoolIPAllocations
		pool   string
		expect string
	}{
		"-o wide shows another IP":  {eth0, []string{"172.110.1.9"}, allocs, pool, "but the pod's IPs (kubectl get pod -o wide) are [172.110.1.9]"},
		"the pool does not hold it": {eth0, []string{"172.110.1.2"}, spv2.PoolIPAllocations{}, pool, "which the pool does not hold"},
		"the pool holds it for another pod": {eth0, []string{"172.110.1.2"},
			spv2.PoolIPAllocations{"172.110.1.2": {NIC: "eth0", NamespacedName: "default/q"}}, pool, "which the pool holds for default/q eth0"},
		"outside the pool's range": {eth0, []string{"172.110.1.2"}, allocs, "172.110.1.100-172.110.1.200", "outside the pool's"},
		"a wanted interface is not there": {append(eth0, Attachment{Network: "kube-system/extra", Interface: "net1"}), []string{"172.110.1.2"}, allocs, pool,
			"no entry for net1 (network kube-system/extra)"},
		"another network on eth0": {[]Attachment{{Network: "kube-system/other", Interface: "eth0", Default: true}}, []string{"172.110.1.2"}, allocs, pool,
			`eth0 is from network "kube-system/macvlan-conf", want kube-system/other`},
	} {
		p := NetworkStatusProblems(sts, c.want, "default/p", c.podIPs, c.allocs, c.pool)
		if !strings.Contains(strings.Join(p, "; "), c.expect) {
			t.Errorf("%s: %q, want %q", name, p, c.expect)
		}
	}
	extra := append(sts, NetworkStatus{Name: "default/x", Interface: "net9", IPs: []string{"10.0.0.1"}})
	if p := NetworkStatusProblems(extra, eth0, "default/p", []string{"172.110.1.2"}, allocs, pool); len(p) != 1 || !strings.Contains(p[0], `unexpected interface "net9"`) {
		t.Errorf("an unwanted interface with an address: %q", p)
	}
	for _, bad := range []string{"", "{", `{"name":"x"}`} {
		if _, err := ParseNetworkStatus(bad); err == nil {
			t.Errorf("ParseNetworkStatus(%q) succeeded", bad)
		}
	}
}

func TestWideIPsAndInterfaceAddrs(t *testing.T) {
	wide := `NAME                       READY   STATUS              RESTARTS      AGE   IP            NODE      NOMINATED NODE   READINESS GATES
multi-net-list             1/1     Running             1 (5s ago)    9s    172.110.1.3   a-node1   <none>           <none>
missing-net                0/1     ContainerCreating   0             9s    <none>        a-node2   <none>           <none>
`
	if got := WideIPs(wide); !reflect.DeepEqual(got, map[string]string{"multi-net-list": "172.110.1.3", "missing-net": "<none>"}) {
		t.Errorf("WideIPs: %v", got)
	}
	routes := `default via 172.110.0.1 dev eth0
10.233.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.3
172.110.0.0/16 dev eth0 proto kernel scope link src 172.110.1.3
172.110.0.0/16 dev net1 proto kernel scope link src 172.110.1.4
172.110.0.0/16 dev net2 proto kernel scope link src 172.110.1.5
`
	if got := InterfaceAddrs(routes); !reflect.DeepEqual(got, map[string]string{"eth0": "172.110.1.3", "net1": "172.110.1.4", "net2": "172.110.1.5"}) {
		t.Errorf("InterfaceAddrs: %v", got)
	}
}

func TestClusterRoleEdits(t *testing.T) {
	role := []byte(`{"metadata":{"name":"multus","resourceVersion":"42"},"rules":[{"apiGroups":["k8s.cni.cncf.io"],"resources":["*"]},{"apiGroups":[""],"resources":["pods"]}]}`)
	out, err := withoutRulesFor(role, "k8s.cni.cncf.io")
	if err != nil || strings.Contains(string(out), "k8s.cni.cncf.io") || !strings.Contains(string(out), `"pods"`) || !strings.Contains(string(out), `"42"`) {
		t.Errorf("withoutRulesFor: %s %v", out, err)
	}
	if _, err := withoutRulesFor(out, "k8s.cni.cncf.io"); err == nil {
		t.Error("taking away a rule that is not there succeeded")
	}
	out, err = withoutResourceVersion(role)
	if err != nil || strings.Contains(string(out), "resourceVersion") || !strings.Contains(string(out), `"name":"multus"`) {
		t.Errorf("withoutResourceVersion: %s %v", out, err)
	}
	if got := newVeths(map[string]bool{"n1/a": true, "n1/b": true}, map[string]bool{"n1/b": true, "n2/c": true}); !reflect.DeepEqual(got, []string{"n2/c"}) {
		t.Errorf("newVeths: %v", got)
	}
}
