//go:build integration

package coordinator

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"

	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/netbed"
)

// seedFullChain is the seed's cluster-a NAD chain as admission generates it: macvlan on ens224 with
// underlink-ipam from pool cluster-a, then underlink-coordinator with the seed's hijackCIDR.
func seedFullChain(socket string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"kube-system-macvlan-conf","plugins":[
	 {"type":"macvlan","master":"ens224","mode":"bridge",
	  "ipam":{"type":"underlink-ipam","socket":%q,"ipv4Pools":["cluster-a"]}},
	 {"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
	  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0}]}`, socket))
}

// TestCoordinatorWithUnderlinkIPAM is the acceptance scenario on real parts: a control plane with the
// seed's pool, underlink-agent in each of two cluster-a node namespaces, and the full chain
// (reference macvlan → underlink-ipam → underlink-coordinator) run through libcni for two pods per node.
// Each pod has its pool IP and the seed's route shape, and reaches its node, the other pods and the pool
// gateway; the node reaches it; CHECK passes; DEL of all leaves the pool empty and the nodes clean.
func TestCoordinatorWithUnderlinkIPAM(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	bed.ApplySeed(t, c.Env.Client, "cluster-a-ippool.yaml")
	bed.ApplySeed(t, c.Env.Client, "cluster-a-multusconfig.yaml")
	nodes := []*bed.Node{c.AddNode(t, "a-node1", nil), c.AddNode(t, "a-node2", nil)}
	for _, n := range nodes {
		c.StartAgent(t, n)
	}
	bin := c.Bed.PluginDir("underlink-ipam", "underlink-coordinator")
	ctx := context.Background()

	type podRun struct {
		pod  *corev1.Pod
		node *bed.Node
		ns   *netbed.Netns
		cid  string
		ip   netip.Addr
	}
	var pods []*podRun
	for i, name := range []string{"web-1", "web-2", "web-3", "web-4"} {
		n := nodes[i/2]
		pr := &podRun{pod: c.CreatePod(t, "default", name, n.Spec.Name, nil), node: n, ns: c.Bed.Pod(name), cid: "cid-" + name}
		list, err := netbed.ParseConfList(seedFullChain(n.Socket))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Bed.CNI(n.NS, bin).Add(ctx, list, netbed.Attachment(pr.cid, pr.ns, "eth0", netbed.PodArgs("default", name, string(pr.pod.UID))...))
		if err != nil {
			t.Fatalf("ADD %s on %s: %v\n%s", name, n.Spec.Name, err, n.Agent.Logs())
		}
		r, err := current.NewResultFromResult(res)
		if err != nil {
			t.Fatal(err)
		}
		ip, _ := netip.AddrFromSlice(r.IPs[0].Address.IP)
		pr.ip = ip.Unmap()
		if !netip.MustParsePrefix("172.110.1.0/24").Contains(pr.ip) {
			t.Errorf("%s got %s, outside pool cluster-a", name, pr.ip)
		}
		pods = append(pods, pr)
	}

	for _, p := range pods {
		node, src := p.node.IP.Addr().String(), p.ip.String()
		want := []string{
			"10.233.0.0/18 via " + node + " dev veth0 src " + src,
			"10.243.0.0/18 via " + node + " dev veth0 src " + src,
			node + " dev veth0 scope link src " + src,
			"172.110.1.0/24 dev eth0 scope link src " + src,
			"172.111.0.0/16 via " + node + " dev veth0 src " + src,
			// The seed's gateway lies outside its /24: underlink-ipam returns no default route then, and
			// the coordinator installs it onlink (cni/README.md).
			"default via 172.110.0.1 dev eth0 onlink",
		}
		slices.Sort(want)
		if got := podRoutes(t, p.ns); !slices.Equal(got, want) {
			t.Errorf("pod %s routes:\n got %q\nwant %q", p.pod.Name, got, want)
		}
	}
	ping := func(from *netbed.Netns, to netip.Addr) {
		t.Helper()
		if err := netbed.Ping(from, to, 2, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	for _, p := range pods {
		ping(p.ns, p.node.IP.Addr())
		ping(p.node.NS, p.ip)
		ping(p.ns, netip.MustParseAddr("172.110.0.1"))
		for _, q := range pods {
			if q != p {
				ping(p.ns, q.ip)
			}
		}
	}
	for _, p := range pods {
		list, _ := netbed.ParseConfList(seedFullChain(p.node.Socket))
		rt := netbed.Attachment(p.cid, p.ns, "eth0", netbed.PodArgs("default", p.pod.Name, string(p.pod.UID))...)
		cni := c.Bed.CNI(p.node.NS, bin)
		if err := cni.Check(ctx, list, rt); err != nil {
			t.Errorf("CHECK %s: %v", p.pod.Name, err)
		}
		for i := range 2 {
			if err := cni.Del(ctx, list, rt); err != nil {
				t.Fatalf("DEL #%d of %s: %v", i+1, p.pod.Name, err)
			}
		}
	}
	if allocs, _ := c.PoolAllocations(t, "cluster-a"); len(allocs) != 0 {
		t.Errorf("pool cluster-a still holds %v after DEL of all", allocs)
	}
	for _, n := range nodes {
		h, err := n.NS.Netlink()
		if err != nil {
			t.Fatal(err)
		}
		links, err := h.LinkList()
		h.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			if l.Type() == "veth" && l.Attrs().Alias != "" {
				t.Errorf("node %s still has host veth %s (%s)", n.Spec.Name, l.Attrs().Name, l.Attrs().Alias)
			}
		}
	}
}
