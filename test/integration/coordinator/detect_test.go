//go:build integration

package coordinator

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	spv2 "github.com/underlink/underlink/api/spiderpool/v2beta1"
	"github.com/underlink/underlink/cni/agent/service"
	"github.com/underlink/underlink/cni/ipam/protocol"
	"github.com/underlink/underlink/test/controlplane"
	"github.com/underlink/underlink/test/integration/bed"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// detectChain is the full chain of a network with spec.coordinator.detectIPConflict and detectGateway
// on, from pool, as admission generates it.
func detectChain(socket, pool string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"kube-system-macvlan-detect","plugins":[
	 {"type":"macvlan","master":"ens224","mode":"bridge",
	  "ipam":{"type":"underlink-ipam","socket":%q,"ipv4Pools":[%q],"defaultRouteNIC":"eth0","detectIPConflict":true,"detectGateway":true}},
	 {"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
	  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0}]}`, socket, pool)
}

// TestConflictAndGatewayDetection, on a real agent and apiserver: a foreign host on cluster-a's segment
// holds the first address of the pool. The ADD that gets it fails before the pod's interface is
// configured, with a CNI error naming the address, the foreign host's MAC and the pool; the pool
// records the conflict (status.allocatedIPs keeps the address with ipConflict.mac, for no pod); an
// Event lands on the pod; nothing is left in the pod or on the node. The runtime's next ADD gets the
// next address. An operator's annotation clears the conflict. A pool whose gateway nobody holds fails
// the ADD naming the gateway and spec.gateway, and gives the address back.
func TestConflictAndGatewayDetection(t *testing.T) {
	c := bed.NewCluster(t, controlplane.EnvOptions{})
	n := c.AddNode(t, "a-node1", nil)
	c.StartAgent(t, n, "--gc-interval", "1s")
	foreign, err := c.Bed.Host("foreign", c.Underlay, netip.MustParsePrefix("172.110.1.50/16"))
	if err != nil {
		t.Fatal(err)
	}
	fh, err := foreign.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	fl, err := fh.LinkByName(netbed.HostNIC)
	fh.Close()
	if err != nil {
		t.Fatal(err)
	}
	foreignMAC := fl.Attrs().HardwareAddr.String()
	c.CreatePool(t, "detect", "172.110.0.0/16", "172.110.0.1", []string{"172.110.1.50-172.110.1.52"})
	c.CreatePool(t, "silent-gw", "172.110.0.0/16", "172.110.0.254", []string{"172.110.2.10-172.110.2.11"},
		func(p *spv2.SpiderIPPool) { p.Spec.ExcludeIPs = nil })
	bin := c.Bed.PluginDir("underlink-ipam", "underlink-coordinator")
	cni := c.Bed.CNI(n.NS, bin)
	ctx := context.Background()
	list, err := netbed.ParseConfList(detectChain(n.Socket, "detect"))
	if err != nil {
		t.Fatal(err)
	}

	before := snapshotLinks(t, n.NS)
	pod := c.CreatePod(t, "default", "web-1", n.Spec.Name, nil)
	ns1 := c.Bed.Pod("web-1-a")
	args := netbed.PodArgs("default", "web-1", string(pod.UID))
	start := time.Now()
	_, err = cni.Add(ctx, list, netbed.Attachment("cid-web-1-a", ns1, "eth0", args...))
	took := time.Since(start)
	if err == nil {
		t.Fatal("ADD of an address the foreign host holds succeeded")
	}
	t.Logf("ADD failed after %s: %v", took.Round(time.Millisecond), err)
	if errCode(err) != protocol.CodeIPConflict || !strings.Contains(err.Error(), "172.110.1.50") || !strings.Contains(err.Error(), foreignMAC) ||
		!strings.Contains(err.Error(), "SpiderIPPool detect") {
		t.Errorf("error %v (code %d), want code %d naming 172.110.1.50, %s and the pool", err, errCode(err), protocol.CodeIPConflict, foreignMAC)
	}
	allocs, _ := c.PoolAllocations(t, "detect")
	rec, ok := allocs["172.110.1.50"]
	if !ok || rec.IPConflict.MAC != foreignMAC || rec.PodUID != "" || rec.IPConflict.Node != n.Spec.Name || len(allocs) != 1 {
		t.Errorf("pool detect records %+v, want 172.110.1.50 set aside with MAC %s only", allocs, foreignMAC)
	}
	var events corev1.EventList
	poll.Until(t, 10*time.Second, "the IPConflict Event on web-1", func() (bool, string) {
		if err := c.Env.Client.List(ctx, &events, client.InNamespace("default")); err != nil {
			return false, err.Error()
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == "web-1" && e.Reason == service.ReasonIPConflict {
				t.Logf("Event %s: %s", e.Reason, e.Message)
				return strings.Contains(e.Message, foreignMAC) && strings.Contains(e.Message, "172.110.1.50"), e.Message
			}
		}
		return false, fmt.Sprintf("%d events", len(events.Items))
	})
	if after := snapshotLinks(t, n.NS); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("the failed ADD left links on the node: %v, before %v", after, before)
	}
	// The reference macvlan (v1.9.1) keeps its own link when its IPAM fails (the error is shadowed
	// before its deferred cleanup), and the runtime removes it with the sandbox's namespace. Nothing of
	// underlink's is there: no veth, no address, and the interface down as macvlan made it.
	h, err := ns1.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		addrs, _ := h.AddrList(l, 2 /* AF_INET */)
		switch {
		case l.Attrs().Name == "lo":
		case l.Attrs().Name == "eth0" && len(addrs) == 0 && l.Attrs().Flags&1 == 0:
		default:
			t.Errorf("the failed ADD left %s (%s, up=%v, %v) in the pod", l.Attrs().Name, l.Type(), l.Attrs().Flags&1 != 0, addrs)
		}
	}
	h.Close()

	// The runtime tries again with a new sandbox: the next address.
	ns2 := c.Bed.Pod("web-1-b")
	start = time.Now()
	res, err := cni.Add(ctx, list, netbed.Attachment("cid-web-1-b", ns2, "eth0", args...))
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	r, err := current.NewResultFromResult(res)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second ADD with both detections took %s: %s", time.Since(start).Round(time.Millisecond), r.IPs[0].Address.String())
	if got := r.IPs[0].Address.IP.String(); got != "172.110.1.51" {
		t.Errorf("second ADD got %s, want 172.110.1.51", got)
	}
	if err := cni.Check(ctx, list, netbed.Attachment("cid-web-1-b", ns2, "eth0", args...)); err != nil {
		t.Errorf("CHECK: %v", err)
	}

	// An operator clears the conflict: the agent collecting garbage frees the address and removes the
	// annotation.
	p := &spv2.SpiderIPPool{}
	p.Name = "detect"
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"172.110.1.50"}}}`, spv2.AnnoClearIPConflicts)
	if err := c.Env.Client.Patch(ctx, p, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "172.110.1.50 cleared", func() (bool, string) {
		allocs, pool := c.PoolAllocations(t, "detect")
		_, held := allocs["172.110.1.50"]
		_, annotated := pool.Annotations[spv2.AnnoClearIPConflicts]
		return !held && !annotated, fmt.Sprintf("allocations %v, annotations %v", allocs, pool.Annotations)
	})

	// A gateway nobody holds.
	gwPod := c.CreatePod(t, "default", "web-2", n.Spec.Name, nil)
	gwList, err := netbed.ParseConfList(detectChain(n.Socket, "silent-gw"))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	_, err = cni.Add(ctx, gwList, netbed.Attachment("cid-web-2", c.Bed.Pod("web-2"), "eth0", netbed.PodArgs("default", "web-2", string(gwPod.UID))...))
	t.Logf("ADD with a silent gateway failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if errCode(err) != protocol.CodeGatewayUnreachable || !strings.Contains(err.Error(), "172.110.0.254") || !strings.Contains(err.Error(), "SpiderIPPool silent-gw spec.gateway") {
		t.Errorf("error %v (code %d), want code %d naming the gateway and spec.gateway", err, errCode(err), protocol.CodeGatewayUnreachable)
	}
	if allocs, _ := c.PoolAllocations(t, "silent-gw"); len(allocs) != 0 {
		t.Errorf("pool silent-gw holds %v after the failed ADD", allocs)
	}
	if err := cni.Del(ctx, list, netbed.Attachment("cid-web-1-b", ns2, "eth0", args...)); err != nil {
		t.Fatal(err)
	}
}

// snapshotLinks names the links of a namespace.
func snapshotLinks(t *testing.T, n *netbed.Netns) []string {
	t.Helper()
	h, err := n.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	return out
}
