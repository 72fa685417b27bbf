//go:build integration

package coordinator

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/underlink/underlink/cni/coordinator"
	"github.com/underlink/underlink/test/netbed"
)

// chainConf is the seed's cluster-a NAD chain (macvlan on ens224, then underlink-coordinator with the
// seed's hijackCIDR and cluster-a's service CIDR), with the reference static IPAM standing in for
// underlink-ipam so this test needs no control plane.
func chainConf(ip string, hostRuleTable int) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
	 {"type":"macvlan","master":"ens224","mode":"bridge",
	  "ipam":{"type":"static","addresses":[{"address":%q,"gateway":"172.110.0.1"}]}},
	 {"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
	  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0,"hostRuleTable":%d}]}`, ip, hostRuleTable))
}

type chainPod struct {
	name string
	node *netbed.Node
	ns   *netbed.Netns
	ip   netip.Addr
	conf []byte
}

func (p *chainPod) containerID() string { return "cid-" + p.name }

// podRoutes renders a pod's IPv4 main-table routes like `ip route`.
func podRoutes(t *testing.T, n *netbed.Netns) []string {
	t.Helper()
	h, err := n.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rs, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		l, err := h.LinkByIndex(r.LinkIndex)
		if err != nil {
			t.Fatal(err)
		}
		s := "default"
		if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
			s = strings.TrimSuffix(r.Dst.String(), "/32")
		}
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		s += " dev " + l.Attrs().Name
		if r.Scope == netlink.SCOPE_LINK {
			s += " scope link"
		}
		if r.Src != nil {
			s += " src " + r.Src.String()
		}
		if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
			s += " onlink"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestCoordinatorChainTwoNodes runs the seed's chain the way a runtime does (libcni, plugins executed in
// the node's namespace, real reference macvlan and the real underlink-coordinator binary) for two pods
// on each of two cluster-a nodes, then checks the seed's route shape, reachability over veth0 and the
// underlay, CHECK, DEL twice and GC.
func TestCoordinatorChainTwoNodes(t *testing.T) {
	b := netbed.New(t)
	bin := b.PluginDir("underlink-coordinator")
	a := b.Cluster(netbed.ClusterA)
	n1 := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a, IP: netip.MustParsePrefix("10.7.168.73/24")})
	n2 := b.Node(netbed.NodeSpec{Name: "a-node2", Cluster: a, IP: netip.MustParsePrefix("10.7.168.74/24")})
	ctx := context.Background()

	// Node 2's pods put their host route in table 500 behind a rule, so node → pod also proves the rule.
	pods := []*chainPod{
		{name: "a1", node: n1, ip: netip.MustParseAddr("172.110.1.11"), conf: chainConf("172.110.1.11/24", 0)},
		{name: "a2", node: n1, ip: netip.MustParseAddr("172.110.1.12"), conf: chainConf("172.110.1.12/24", 0)},
		{name: "a3", node: n2, ip: netip.MustParseAddr("172.110.1.13"), conf: chainConf("172.110.1.13/24", 500)},
		{name: "a4", node: n2, ip: netip.MustParseAddr("172.110.1.14"), conf: chainConf("172.110.1.14/24", 500)},
	}
	run := func(p *chainPod, op string) error {
		list, err := netbed.ParseConfList(p.conf)
		if err != nil {
			t.Fatal(err)
		}
		rt := netbed.Attachment(p.containerID(), p.ns, "eth0", netbed.PodArgs("default", p.name, "uid-"+p.name)...)
		c := b.CNI(p.node.NS, bin)
		switch op {
		case "ADD":
			_, err = c.Add(ctx, list, rt)
		case "DEL":
			err = c.Del(ctx, list, rt)
		case "CHECK":
			err = c.Check(ctx, list, rt)
		}
		return err
	}
	for _, p := range pods {
		p.ns = b.Pod(p.name)
		if err := run(p, "ADD"); err != nil {
			t.Fatalf("ADD %s on %s: %v", p.name, p.node.Spec.Name, err)
		}
	}

	// The seed's route shape, node by node.
	for _, p := range pods {
		node := p.node.IP.Addr().String()
		src := p.ip.String()
		want := []string{
			"10.233.0.0/18 via " + node + " dev veth0 src " + src,
			"10.243.0.0/18 via " + node + " dev veth0 src " + src,
			node + " dev veth0 scope link src " + src,
			"172.110.1.0/24 dev eth0 scope link src " + src,
			"172.111.0.0/16 via " + node + " dev veth0 src " + src,
			"default via 172.110.0.1 dev eth0 onlink",
		}
		slices.Sort(want)
		if got := podRoutes(t, p.ns); !slices.Equal(got, want) {
			t.Errorf("pod %s routes:\n got %q\nwant %q", p.name, got, want)
		}
		if out, err := netbed.Run(p.ns, exec.Command("ip", "route")); err == nil {
			t.Logf("pod %s `ip route`:\n%s", p.name, out)
		}
	}

	ping := func(from *netbed.Netns, to netip.Addr) {
		t.Helper()
		if err := netbed.Ping(from, to, 2, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	for _, p := range pods {
		ping(p.ns, p.node.IP.Addr()) // pod → node, over veth0
		ping(p.node.NS, p.ip)        // node → pod, over the host veth (table 500 + rule on node 2)
		ping(p.ns, netip.MustParseAddr("172.110.0.1"))
		for _, q := range pods {
			if q != p {
				ping(p.ns, q.ip) // same node and across nodes over the underlay
			}
		}
	}

	// CHECK passes, then names the route someone removed.
	for _, p := range pods {
		if err := run(p, "CHECK"); err != nil {
			t.Errorf("CHECK %s: %v", p.name, err)
		}
	}
	h, err := pods[0].ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	veth0, err := h.LinkByName("veth0")
	if err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("10.243.0.0/18")
	if err := h.RouteDel(&netlink.Route{LinkIndex: veth0.Attrs().Index, Dst: dst}); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := run(pods[0], "CHECK"); err == nil || !strings.Contains(err.Error(), `"10.243.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.11" is missing`) {
		t.Errorf("CHECK after removing 10.243.0.0/18 from a1: %v", err)
	}

	// DEL twice: the second finds nothing and succeeds; the host veth, its route and the pod's veth0 are gone.
	for i := range 2 {
		if err := run(pods[0], "DEL"); err != nil {
			t.Fatalf("DEL #%d of a1: %v", i+1, err)
		}
	}
	assertNoHostVeth(t, n1, pods[0])
	if got := podRoutes(t, pods[0].ns); len(got) != 0 {
		t.Errorf("a1 after DEL still has routes %q", got)
	}

	// Older result versions: the same chain in CNI 0.3.1 and 0.4.0 (prevResult converted, result printed in
	// the invocation's version); STATUS of the 1.1.0 chain.
	for i, v := range []string{"0.3.1", "0.4.0"} {
		p := &chainPod{name: "v" + strings.ReplaceAll(v, ".", ""), node: n1, ip: netip.AddrFrom4([4]byte{172, 110, 1, byte(21 + i)})}
		p.conf = []byte(strings.Replace(string(chainConf(p.ip.String()+"/24", 0)), `"cniVersion":"1.1.0"`, fmt.Sprintf("%q:%q", "cniVersion", v), 1))
		p.ns = b.Pod(p.name)
		if err := run(p, "ADD"); err != nil {
			t.Fatalf("ADD in CNI %s: %v", v, err)
		}
		if got := podRoutes(t, p.ns); !slices.Contains(got, "172.111.0.0/16 via 10.7.168.73 dev veth0 src "+p.ip.String()) {
			t.Errorf("CNI %s pod routes %q", v, got)
		}
		ping(p.ns, n1.IP.Addr())
		if v != "0.3.1" { // CHECK exists from 0.4.0 on
			if err := run(p, "CHECK"); err != nil {
				t.Errorf("CHECK in CNI %s: %v", v, err)
			}
		}
		if err := run(p, "DEL"); err != nil {
			t.Errorf("DEL in CNI %s: %v", v, err)
		}
		assertNoHostVeth(t, n1, p)
	}
	statusList, _ := netbed.ParseConfList(pods[1].conf)
	if err := b.CNI(n1.NS, bin).Status(ctx, statusList); err != nil {
		t.Errorf("STATUS: %v", err)
	}

	// GC: a4's runtime state is lost (its cache entry removed, as after a crash), so only the plugin's
	// own GC can find its host veth; a3 stays valid.
	matches, _ := filepath.Glob(filepath.Join(b.Dir(), "cni-cache", n2.NS.Role, "results", "*"+pods[3].containerID()+"*"))
	if len(matches) == 0 {
		t.Fatal("no libcni cache entry for a4")
	}
	for _, m := range matches {
		if err := os.Remove(m); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := netbed.ParseConfList(pods[3].conf)
	valid := []types.GCAttachment{{ContainerID: pods[2].containerID(), IfName: "eth0"}}
	if err := b.CNI(n2.NS, bin).GC(ctx, list, valid); err != nil {
		t.Fatalf("GC: %v", err)
	}
	assertNoHostVeth(t, n2, pods[3])
	ping(n2.NS, pods[2].ip)
	if err := run(pods[2], "CHECK"); err != nil {
		t.Errorf("CHECK of a3 after GC: %v", err)
	}
}

func assertNoHostVeth(t *testing.T, n *netbed.Node, p *chainPod) {
	t.Helper()
	h, err := n.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	name := coordinator.HostVethName(p.containerID(), "eth0")
	if _, err := h.LinkByName(name); err == nil {
		t.Errorf("host veth %s of %s still exists on %s", name, p.name, n.Spec.Name)
	}
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst != nil && r.Dst.IP.Equal(p.ip.AsSlice()) {
			t.Errorf("route to %s left on %s: %v", p.ip, n.Spec.Name, r)
		}
	}
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Dst != nil && r.Dst.IP.Equal(p.ip.AsSlice()) {
			t.Errorf("rule for %s left on %s: %v", p.ip, n.Spec.Name, r)
		}
	}
}
