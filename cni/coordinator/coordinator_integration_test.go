//go:build integration

package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/go-logr/logr/testr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// snapshot renders everything the coordinator could leave behind in a namespace: links (name, MAC,
// up), addresses, routes of every table, neighbours, rules and the rp_filter sysctls.
func snapshot(t *testing.T, n *netbed.Netns) []string {
	t.Helper()
	h, err := n.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var out []string
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	name := map[int]string{}
	for _, l := range links {
		a := l.Attrs()
		name[a.Index] = a.Name
		out = append(out, fmt.Sprintf("link %s %s %s up=%v alias=%q", a.Name, l.Type(), a.HardwareAddr, a.Flags&1 != 0, a.Alias))
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			out = append(out, fmt.Sprintf("addr %s %s", a.Name, ad.IPNet))
		}
		neighs, err := h.NeighList(a.Index, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range neighs {
			if e.IP.IsMulticast() {
				continue // the kernel's own entries for IPv6 multicast (MLD/DAD), not anyone's state
			}
			out = append(out, fmt.Sprintf("neigh %s %s %s state=%#x", a.Name, e.IP, e.HardwareAddr, e.State))
		}
	}
	rs, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("route table %d %s via %s dev %s src %s scope %d flags %d", r.Table, routeDst(r), r.Gw, name[r.LinkIndex], r.Src, r.Scope, r.Flags))
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			out = append(out, fmt.Sprintf("rule %d %v table %d", r.Priority, r.Dst, r.Table))
		}
	}
	for _, dev := range []string{"all", "default", "eth0"} {
		v, err := sysctlIn(n, "net/ipv4/conf/"+dev+"/rp_filter", "")
		if err == nil {
			out = append(out, "sysctl "+dev+".rp_filter="+v)
		}
	}
	slices.Sort(out)
	return out
}

// addrconfSettled waits until no IPv6 address in n is tentative and each has its local route.
func addrconfSettled(t *testing.T, n *netbed.Netns) {
	t.Helper()
	h, err := n.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	poll.UntilEvery(t, 10*time.Second, 20*time.Millisecond, "IPv6 address configuration in "+n.Role+" settled", func() (bool, string) {
		pending, err := addrconfPending(h)
		if err != nil {
			t.Fatal(err)
		}
		return pending == "", pending
	})
}

// addrconfPending names an IPv6 address of h's namespace still in duplicate address detection or
// without its local route, or returns "".
func addrconfPending(h netlinksafe.Handle) (string, error) {
	addrs, err := h.AddrList(nil, netlink.FAMILY_V6)
	if err != nil {
		return "", err
	}
	local, err := h.RouteListFiltered(netlink.FAMILY_V6, &netlink.Route{Table: unix.RT_TABLE_LOCAL}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_DADFAILED != 0 {
			continue // stays as it is
		}
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return a.IPNet.String() + " tentative", nil
		}
		if !slices.ContainsFunc(local, func(r netlink.Route) bool { return r.Dst != nil && r.Dst.IP.Equal(a.IP) }) {
			return a.IPNet.String() + " without its local route", nil
		}
	}
	return "", nil
}

// diff lists lines added and removed, counting duplicates.
func diff(before, after []string) string {
	count := map[string]int{}
	for _, s := range after {
		count[s]++
	}
	for _, s := range before {
		count[s]--
	}
	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(count)) {
		switch n := count[s]; {
		case n > 0:
			fmt.Fprintf(&b, "  + %s (x%d)\n", s, n)
		case n < 0:
			fmt.Fprintf(&b, "  - %s (x%d)\n", s, -n)
		}
	}
	return b.String()
}

// fixture is a node of the bed with one pod that macvlan (reference plugin, static IPAM) has attached.
type fixture struct {
	node   *netbed.Node
	pod    *netbed.Netns
	args   *skel.CmdArgs
	plugin *Plugin
}

const faultConf = `{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","type":"underlink-coordinator","mode":"underlay",
 "hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],"serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],
 "podRPFilter":0,"hostRuleTable":500,"vethLinkAddress":"169.254.100.1","podMACPrefix":"0a:1b","txQueueLen":1000,"vethMTU":1400}`

// everyOptionConf is faultConf with a policy route on eth0's subnet too.
var everyOptionConf = strings.Replace(faultConf, `"vethMTU":1400}`, `"vethMTU":1400,"policyRoutes":[{"dst":"192.168.9.0/24","gw":"172.110.1.254"}]}`, 1)

func newFixture(t *testing.T, conf string) *fixture {
	t.Helper()
	b := netbed.New(t)
	bin := b.PluginDir()
	a := b.Cluster(netbed.ClusterA)
	node := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a, IP: netip.MustParsePrefix("10.7.168.73/24"), InterDC: netip.MustParsePrefix("10.6.168.73/16")})
	pod := b.Pod("a1")
	list, err := netbed.ParseConfList([]byte(`{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
	 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"static","addresses":[{"address":"172.110.1.10/24","gateway":"172.110.0.1"}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rt := netbed.Attachment("c0ffee01", pod, "eth0")
	res, err := b.CNI(node.NS, bin).Add(context.Background(), list, rt)
	if err != nil {
		t.Fatalf("macvlan ADD: %v", err)
	}
	// The pod starts strict, so the coordinator's rp_filter change and its undo are visible.
	for _, k := range []string{"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/eth0/rp_filter"} {
		if err := pod.Sysctl(k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel finishes duplicate address detection of the links' IPv6 link-local addresses about a
	// second after they come up, and only then adds their local routes (table 255): a baseline taken
	// earlier sees those routes appear later, as if the coordinator had left them (a CI run caught it).
	addrconfSettled(t, node.NS)
	addrconfSettled(t, pod)
	var stdin map[string]any
	if err := json.Unmarshal([]byte(conf), &stdin); err != nil {
		t.Fatal(err)
	}
	prev, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	stdin["prevResult"] = json.RawMessage(prev)
	data, err := json.Marshal(stdin)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{
		node: node, pod: pod,
		args:   &skel.CmdArgs{ContainerID: "c0ffee01", Netns: pod.Path(), IfName: "eth0", StdinData: data},
		plugin: &Plugin{Log: testr.New(t), HostNS: node.NS},
	}
}

func (f *fixture) state(t *testing.T) []string {
	return append(snapshot(t, f.node.NS), snapshot(t, f.pod)...)
}

// Fault injection: ADD fails after each of its steps in turn; every time, the pod and the node are
// exactly as before ADD (links, addresses, routes, neighbours, rules, sysctls, the pod NIC's MAC).
func TestAddFailureAtEachStepLeavesNothing(t *testing.T) {
	f := newFixture(t, everyOptionConf)
	before := f.state(t)

	var steps []string
	f.plugin.Hook = func(step string) error { steps = append(steps, step); return nil }
	res, err := f.plugin.Add(f.args)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Interfaces) != 3 || r.Interfaces[2].Name != "veth0" || r.Interfaces[2].Sandbox != f.pod.Path() {
		t.Errorf("result interfaces: %s", mustMarshal(r.Interfaces))
	}
	if r.Interfaces[0].Mac != "0a:1b:ac:6e:01:0a" {
		t.Errorf("eth0 MAC in the result %s, want the podMACPrefix one", r.Interfaces[0].Mac)
	}
	if after := f.state(t); slices.Equal(before, after) {
		t.Fatal("ADD changed nothing")
	}
	t.Logf("ADD has %d steps: %q", len(steps), steps)
	for _, want := range []string{"veth", "host-veth-up", "pod-veth-up", "host-veth-address 169.254.100.1", "pod-mac",
		"pod-sysctl net/ipv4/conf/all/rp_filter", "pod-neighbour 10.7.168.73",
		"pod-route 172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10", "pod-route 0.0.0.0/0 via 172.110.0.1 dev eth0 onlink",
		"pod-route 192.168.9.0/24 via 172.110.1.254 dev eth0",
		"host-neighbour 172.110.1.10", "host-route 172.110.1.10/32 dev " + HostVethName("c0ffee01", "eth0") + " scope link table 500",
		"host-rule 1000: to 172.110.1.10/32 lookup 500"} {
		if !slices.Contains(steps, want) {
			t.Errorf("step %q not run", want)
		}
	}

	// A fresh node and pod for the failures, so the baseline is the state macvlan left.
	f = newFixture(t, everyOptionConf)
	failEachStep(t, f.plugin, f.args, steps, f.state)
}

// failEachStep fails ADD of args after each of steps in turn (through the plugin's hook), and checks
// every time that the error names the step, the rollback reports no leftover, and state is as before.
func failEachStep(t *testing.T, p *Plugin, args *skel.CmdArgs, steps []string, state func(*testing.T) []string) {
	t.Helper()
	before := state(t)
	for _, failAt := range steps {
		t.Run(failAt, func(t *testing.T) {
			p.Hook = func(step string) error {
				if step == failAt {
					return errors.New("injected failure")
				}
				return nil
			}
			_, err := p.Add(args)
			var te *types.Error
			if !errors.As(err, &te) || !strings.Contains(te.Msg, fmt.Sprintf("step %q: injected failure", failAt)) {
				t.Fatalf("ADD error %v, want the injected failure at %q", err, failAt)
			}
			if strings.Contains(te.Msg, "rollback left") {
				t.Errorf("rollback reported leftovers: %s", te.Msg)
			}
			if after := state(t); !slices.Equal(before, after) {
				t.Errorf("failure at %q left changes behind:\n%s", failAt, diff(before, after))
			}
		})
	}
}

// A real failure of the kernel (not the hook): veth0 already exists in the pod, so the pair cannot be
// created; nothing the coordinator did not make is touched.
func TestAddFailsCleanlyWhenVethExists(t *testing.T) {
	f := newFixture(t, faultConf)
	h, err := f.pod.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "veth0"
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	before := f.state(t)
	_, err = f.plugin.Add(f.args)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("ADD with veth0 taken: %v", err)
	}
	if after := f.state(t); !slices.Equal(before, after) {
		t.Errorf("failed ADD left changes:\n%s", diff(before, after))
	}
}

// DEL is idempotent: twice, after the pod namespace is gone, and for an attachment never added.
func TestDelIdempotent(t *testing.T) {
	f := newFixture(t, faultConf)
	before := snapshot(t, f.node.NS)
	if _, err := f.plugin.Add(f.args); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := f.plugin.Del(f.args); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	// In the pod, DEL leaves only what belongs to the pod's namespace and ends with it (rp_filter and
	// the eth0 MAC from podMACPrefix); no veth, route, neighbour or address of the coordinator.
	for _, line := range snapshot(t, f.pod) {
		if strings.Contains(line, "veth0") || strings.Contains(line, "via 172.110.0.1") || strings.Contains(line, "10.7.168.73") {
			t.Errorf("pod after DEL still has %s", line)
		}
	}
	gone := *f.args
	gone.Netns = filepath.Join(os.TempDir(), "no-such-netns")
	gone.ContainerID = "never-added"
	if err := f.plugin.Del(&gone); err != nil {
		t.Errorf("DEL of an unknown attachment with a missing netns: %v", err)
	}
	if after := snapshot(t, f.node.NS); !slices.Equal(before, after) {
		t.Errorf("node after DEL:\n%s", diff(before, after))
	}
}

// CHECK passes on a fresh attachment and names the route someone removed.
func TestCheckReportsRemovedRoute(t *testing.T) {
	f := newFixture(t, faultConf)
	res, err := f.plugin.Add(f.args)
	if err != nil {
		t.Fatal(err)
	}
	check := *f.args
	check.StdinData = withPrevResult(t, f.args.StdinData, res)
	if err := f.plugin.Check(&check); err != nil {
		t.Fatalf("CHECK of a fresh attachment: %v", err)
	}
	h, err := f.pod.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	veth, err := h.LinkByName("veth0")
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParsePrefix("172.111.0.0/16")
	if err := h.RouteDel(&netlink.Route{LinkIndex: veth.Attrs().Index, Dst: ipNet(dst)}); err != nil {
		t.Fatal(err)
	}
	err = f.plugin.Check(&check)
	if err == nil || !strings.Contains(err.Error(), `pod route "172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.10" is missing`) {
		t.Errorf("CHECK after removing a route: %v", err)
	}
}

// GC removes this network's attachments that are not valid, keeps valid ones and other networks'.
func TestGCRemovesStaleAttachments(t *testing.T) {
	f := newFixture(t, faultConf)
	if _, err := f.plugin.Add(f.args); err != nil {
		t.Fatal(err)
	}
	hostVeth := HostVethName(f.args.ContainerID, f.args.IfName)
	gc := func(network string, valid ...types.GCAttachment) {
		t.Helper()
		conf := map[string]any{"cniVersion": "1.1.0", "name": network, "type": "underlink-coordinator", "cni.dev/valid-attachments": valid}
		data, _ := json.Marshal(conf)
		if err := f.plugin.GC(&skel.CmdArgs{StdinData: data}); err != nil {
			t.Fatalf("GC: %v", err)
		}
	}
	exists := func() bool {
		h, err := f.node.NS.Netlink()
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		_, err = h.LinkByName(hostVeth)
		return err == nil
	}
	gc("kube-system-macvlan-conf", types.GCAttachment{ContainerID: "c0ffee01", IfName: "eth0"})
	if !exists() {
		t.Fatal("GC removed a valid attachment")
	}
	gc("another-network")
	if !exists() {
		t.Fatal("GC of another network removed this network's veth")
	}
	gc("kube-system-macvlan-conf", types.GCAttachment{ContainerID: "someone-else", IfName: "eth0"})
	if exists() {
		t.Fatal("GC kept a stale attachment")
	}
	h, err := f.node.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if rules, _ := findRules(h, netip.MustParsePrefix("172.110.1.10/32")); len(rules) != 0 {
		t.Errorf("GC left rules: %v", rules)
	}
}

func withPrevResult(t *testing.T, stdin []byte, res types.Result) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(stdin, &m); err != nil {
		t.Fatal(err)
	}
	m["prevResult"] = json.RawMessage(mustMarshal(res))
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestVethMTUOnBothEnds: the configuration's vethMTU is the MTU of the host veth and of the pod's veth0.
func TestVethMTUOnBothEnds(t *testing.T) {
	f := newFixture(t, faultConf)
	if _, err := f.plugin.Add(f.args); err != nil {
		t.Fatal(err)
	}
	for _, end := range []struct {
		ns   *netbed.Netns
		name string
	}{{f.node.NS, HostVethName(f.args.ContainerID, f.args.IfName)}, {f.pod, "veth0"}} {
		l, err := end.ns.Link(end.name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().MTU != 1400 {
			t.Errorf("%s in %s: MTU %d, want the configuration's 1400", end.name, end.ns.Role, l.Attrs().MTU)
		}
	}
}
