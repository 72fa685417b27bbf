//go:build integration

package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/go-logr/logr/testr"

	"github.com/underlink/underlink/test/netbed"
)

// storageSegment is a second underlay segment (ens256's), with its own subnet and gateway.
var storageSegment = netbed.ClusterSpec{Name: "storage", Gateway: netip.MustParsePrefix("192.168.56.1/24")}

// twoNICs is a node with ens224 on cluster-a's underlay and ens256 on the storage segment, and a pod
// with eth0 (macvlan on ens224, 172.110.1.10/24) coordinated, and net1 (macvlan on ens256,
// 192.168.56.10/24) made by macvlan but not yet coordinated: the ADD under test.
type twoNICs struct {
	node       *netbed.Node
	pod        *netbed.Netns
	eth0, net1 *skel.CmdArgs
	plugin     *Plugin
}

func newTwoNICs(t *testing.T, conf string) *twoNICs {
	t.Helper()
	b := netbed.New(t)
	bin := b.PluginDir()
	a := b.Cluster(netbed.ClusterA)
	storage := b.Cluster(storageSegment)
	node := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a, IP: netip.MustParsePrefix("10.7.168.73/24"),
		Extra: []netbed.NIC{{Name: "ens256", Segment: storage}}})
	pod := b.Pod("a1")
	f := &twoNICs{node: node, pod: pod, plugin: &Plugin{Log: testr.New(t), HostNS: node.NS}}
	attach := func(ifName, master, addr, gw string) *skel.CmdArgs {
		list, err := netbed.ParseConfList(fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"net-%s","plugins":[
		 {"type":"macvlan","master":%q,"mode":"bridge","ipam":{"type":"static","addresses":[{"address":%q,"gateway":%q}]}}]}`, ifName, master, addr, gw))
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.CNI(node.NS, bin).Add(context.Background(), list, netbed.Attachment("c0ffee01", pod, ifName))
		if err != nil {
			t.Fatalf("macvlan ADD of %s: %v", ifName, err)
		}
		var stdin map[string]any
		if err := json.Unmarshal([]byte(conf), &stdin); err != nil {
			t.Fatal(err)
		}
		stdin["name"] = "net-" + ifName
		stdin["prevResult"] = json.RawMessage(mustMarshal(res))
		data, err := json.Marshal(stdin)
		if err != nil {
			t.Fatal(err)
		}
		return &skel.CmdArgs{ContainerID: "c0ffee01", Netns: pod.Path(), IfName: ifName, StdinData: data}
	}
	f.eth0 = attach("eth0", "ens224", "172.110.1.10/24", "172.110.0.1")
	f.net1 = attach("net1", "ens256", "192.168.56.10/24", "192.168.56.1")
	if _, err := f.plugin.Add(f.eth0); err != nil {
		t.Fatalf("coordinator ADD of eth0: %v", err)
	}
	addrconfSettled(t, node.NS)
	addrconfSettled(t, pod)
	return f
}

func (f *twoNICs) state(t *testing.T) []string {
	return append(snapshot(t, f.node.NS), snapshot(t, f.pod)...)
}

// A second coordinated interface gets a veth, a routing table and a rule of its own, its steps are
// named per interface, and a failure after each of them leaves the node and the pod exactly as eth0's
// ADD left them: no link, address, route of any table, rule, neighbour or sysctl of net1's remains, and
// eth0's are untouched.
func TestAddSecondInterfaceFailureAtEachStepLeavesNothing(t *testing.T) {
	f := newTwoNICs(t, faultConf)
	var steps []string
	f.plugin.Hook = func(step string) error { steps = append(steps, step); return nil }
	if _, err := f.plugin.Add(f.net1); err != nil {
		t.Fatalf("ADD of net1: %v", err)
	}
	t.Logf("ADD of net1 has %d steps: %q", len(steps), steps)
	hostVeth := HostVethName("c0ffee01", "net1")
	for _, want := range []string{"veth", "pod-mac", "pod-sysctl net/ipv4/conf/net1/rp_filter", "pod-neighbour 10.7.168.73",
		"pod-route 192.168.56.0/24 dev net1 scope link src 192.168.56.10 table 100",
		"pod-route 172.111.0.0/16 via 10.7.168.73 dev veth-net1 src 192.168.56.10 table 100",
		"pod-route 0.0.0.0/0 via 192.168.56.1 dev net1 table 100",
		"pod-rule 1000: from 192.168.56.10/32 lookup 100",
		"host-route 192.168.56.10/32 dev " + hostVeth + " scope link table 500",
		"host-rule 1000: to 192.168.56.10/32 lookup 500", "pod-announce net1"} {
		if !slices.Contains(steps, want) {
			t.Errorf("step %q not run", want)
		}
	}

	f = newTwoNICs(t, faultConf)
	failEachStep(t, f.plugin, f.net1, steps, f.state)
}

// DEL of net1 alone removes net1's veth, rule, table, node route and rule, and leaves eth0's
// attachment as it was: CHECK of eth0 passes, and the state equals the one before net1's ADD. CHECK of
// net1 passes while it is attached and names its rule when someone removes it.
func TestDelSecondInterfaceLeavesTheFirst(t *testing.T) {
	// Without podMACPrefix: DEL leaves an interface's MAC, which dies with it (cni/README.md).
	f := newTwoNICs(t, strings.Replace(faultConf, `"podMACPrefix":"0a:1b",`, "", 1))
	before := f.state(t)
	res, err := f.plugin.Add(f.net1)
	if err != nil {
		t.Fatal(err)
	}
	check := *f.net1
	check.StdinData = withPrevResult(t, f.net1.StdinData, res)
	if err := f.plugin.Check(&check); err != nil {
		t.Fatalf("CHECK of net1: %v", err)
	}
	h, err := f.pod.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rules, err := findPodRules(h, []netip.Prefix{netip.MustParsePrefix("192.168.56.10/32")})
	if err != nil || len(rules) != 1 || rules[0].Table != 100 {
		t.Fatalf("net1's rule: %v %v", rules, err)
	}
	if err := h.RuleDel(&rules[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.plugin.Check(&check); err == nil || !strings.Contains(err.Error(), "from [192.168.56.10/32] lookup <table>\" of net1 is missing") {
		t.Errorf("CHECK without net1's rule: %v", err)
	}
	if err := h.RuleAdd(&rules[0]); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := f.plugin.Del(f.net1); err != nil {
			t.Fatalf("DEL #%d of net1: %v", i+1, err)
		}
	}
	if after := f.state(t); !slices.Equal(before, after) {
		t.Errorf("DEL of net1 left, or took:\n%s", diff(before, after))
	}
	eth0 := *f.eth0
	if err := f.plugin.Check(&eth0); err != nil {
		t.Errorf("CHECK of eth0 after DEL of net1: %v", err)
	}
}
