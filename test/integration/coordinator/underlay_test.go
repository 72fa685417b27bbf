//go:build integration

package coordinator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/underlink/underlink/cni/coordinator"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// storageConf is a second network's chain: macvlan on the node's second underlay NIC ens256, with the
// static IPAM standing in for underlink-ipam, then the coordinator with cluster-a's hijack routes.
func storageConf(addr string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"kube-system-macvlan-ens256","plugins":[
	 {"type":"macvlan","master":"ens256","mode":"bridge",
	  "ipam":{"type":"static","addresses":[{"address":%q,"gateway":"192.168.56.1"}]}},
	 {"type":"underlink-coordinator","mode":"underlay","hijackCIDR":["10.243.0.0/18","172.111.0.0/16"],
	  "serviceCIDR":["10.233.0.0/18"],"clusterCIDR":["172.110.0.0/16"],"podRPFilter":0}]}`, addr)
}

func linkTx(t *testing.T, n *netbed.Netns, name string) uint64 {
	t.Helper()
	l, err := n.Link(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics.TxPackets
}

// routeDev is the interface the pod's kernel picks for dst, from src when valid (`ip route get`).
func routeDev(t *testing.T, n *netbed.Netns, dst, src netip.Addr) string {
	t.Helper()
	dev, err := n.RouteVia(dst, src)
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

// twoSegments is a bed with node a-node1 on cluster-a's underlay (ens224) and on a second segment
// (ens256, 192.168.56.0/24), whose gateway routes to a peer host at 192.168.57.5, and the coordinator's
// plugin directory.
func twoSegments(t *testing.T) (*netbed.Bed, string, *netbed.Node, *netbed.Netns) {
	t.Helper()
	b := netbed.New(t)
	a := b.Cluster(netbed.ClusterA)
	storage := b.Cluster(netbed.ClusterSpec{Name: "storage", Gateway: netip.MustParsePrefix("192.168.56.1/24"), Routed: []netip.Prefix{netip.MustParsePrefix("192.168.57.1/24")}})
	n1 := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a, IP: netip.MustParsePrefix("10.7.168.73/24"),
		Extra: []netbed.NIC{{Name: "ens256", Segment: storage}}})
	peer, err := b.Host("peer", storage, netip.MustParsePrefix("192.168.57.5/24"))
	if err != nil {
		t.Fatal(err)
	}
	return b, b.PluginDir("underlink-coordinator"), n1, peer
}

// TestSecondUnderlayNIC: a pod with eth0 on the default network (ens224, cluster-a's segment) and net1
// on a second network on the node's second underlay NIC ens256 (its own segment 192.168.56.0/24, whose
// gateway routes to a peer subnet 192.168.57.0/24), both coordinated, with the real binaries through
// libcni. Each has its address; a peer behind the second segment's gateway reaches net1 and the
// replies leave through net1 (by its table: the main table's default route is eth0's); hijacked
// destinations go via veth0 from eth0's address and via net1's own veth from net1's; the node reaches
// both. DEL of net1 alone leaves eth0 working and CHECK of eth0 passing.
func TestSecondUnderlayNIC(t *testing.T) {
	b, bin, n1, peer := twoSegments(t)

	ctx := context.Background()
	pod := b.Pod("multi")
	cni := b.CNI(n1.NS, bin)
	args := netbed.PodArgs("default", "multi", "uid-multi")
	eth0, net1 := netbed.Attachment("cid-multi", pod, "eth0", args...), netbed.Attachment("cid-multi", pod, "net1", args...)
	eth0List, err := netbed.ParseConfList(chainConf("172.110.1.11/24", 0))
	if err != nil {
		t.Fatal(err)
	}
	net1List, err := netbed.ParseConfList(storageConf("192.168.56.10/24"))
	if err != nil {
		t.Fatal(err)
	}
	for _, att := range []struct {
		list *libcni.NetworkConfigList
		rt   *libcni.RuntimeConf
	}{{eth0List, eth0}, {net1List, net1}} {
		res, err := cni.Add(ctx, att.list, att.rt)
		if err != nil {
			t.Fatalf("ADD %s: %v", att.rt.IfName, err)
		}
		r, _ := current.NewResultFromResult(res)
		var names []string
		for _, i := range r.Interfaces {
			names = append(names, i.Name)
		}
		t.Logf("%s: interfaces %v, ips %v", att.rt.IfName, names, r.IPs)
	}
	if out, err := netbed.Run(pod, exec.Command("ip", "-4", "rule")); err == nil {
		t.Logf("pod `ip rule`:\n%s", out)
	}
	if out, err := netbed.Run(pod, exec.Command("ip", "-4", "route", "show", "table", "all")); err == nil {
		t.Logf("pod `ip route show table all`:\n%s", out)
	}

	// The main table is eth0's, as with one interface, plus the kernel's route of net1's subnet.
	want := []string{
		"10.233.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.11",
		"10.243.0.0/18 via 10.7.168.73 dev veth0 src 172.110.1.11",
		"10.7.168.73 dev veth0 scope link src 172.110.1.11",
		"172.110.1.0/24 dev eth0 scope link src 172.110.1.11",
		"172.111.0.0/16 via 10.7.168.73 dev veth0 src 172.110.1.11",
		"192.168.56.0/24 dev net1 scope link src 192.168.56.10",
		"default via 172.110.0.1 dev eth0 onlink",
	}
	if got := podRoutes(t, pod); !slices.Equal(got, want) {
		t.Errorf("pod main table:\n got %q\nwant %q", got, want)
	}
	eth0IP, net1IP := netip.MustParseAddr("172.110.1.11"), netip.MustParseAddr("192.168.56.10")
	remote := netip.MustParseAddr("172.111.1.1")
	for _, tc := range []struct {
		src  netip.Addr
		want string
	}{{netip.Addr{}, "veth0"}, {eth0IP, "veth0"}, {net1IP, "veth-net1"}} {
		if got := routeDev(t, pod, remote, tc.src); got != tc.want {
			t.Errorf("route to remote pod %s from %v leaves by %s, want %s", remote, tc.src, got, tc.want)
		}
	}
	if got := routeDev(t, pod, netip.MustParseAddr("192.168.57.5"), net1IP); got != "net1" {
		t.Errorf("reply to the peer from %s leaves by %s, want net1", net1IP, got)
	}

	txBefore := linkTx(t, pod, "net1")
	if err := netbed.Ping(peer, net1IP, 3, 5*time.Second); err != nil {
		t.Errorf("peer 192.168.57.5 behind the second segment's gateway → net1: %v", err)
	}
	if tx := linkTx(t, pod, "net1") - txBefore; tx < 3 {
		t.Errorf("net1 sent %d packets for 3 echo replies: the replies left by another interface", tx)
	}
	for _, dst := range []netip.Addr{eth0IP, net1IP} {
		if err := netbed.Ping(n1.NS, dst, 2, 5*time.Second); err != nil {
			t.Errorf("node → %s: %v", dst, err)
		}
	}
	if err := netbed.Ping(pod, n1.IP.Addr(), 2, 5*time.Second); err != nil {
		t.Errorf("pod → node: %v", err)
	}
	for _, att := range []*libcni.RuntimeConf{eth0, net1} {
		list := eth0List
		if att.IfName == "net1" {
			list = net1List
		}
		if err := cni.Check(ctx, list, att); err != nil {
			t.Errorf("CHECK %s: %v", att.IfName, err)
		}
	}

	// DEL of net1 alone.
	if err := cni.Del(ctx, net1List, net1); err != nil {
		t.Fatalf("DEL net1: %v", err)
	}
	if err := cni.Check(ctx, eth0List, eth0); err != nil {
		t.Errorf("CHECK eth0 after DEL of net1: %v", err)
	}
	for _, dst := range []netip.Addr{n1.IP.Addr(), netip.MustParseAddr("172.110.0.1")} {
		if err := netbed.Ping(pod, dst, 2, 5*time.Second); err != nil {
			t.Errorf("eth0 after DEL of net1, pod → %s: %v", dst, err)
		}
	}
	if got := podRoutes(t, pod); !slices.Equal(got, want[:5:5]) && !slices.Equal(got, append(want[:5:5], want[6])) {
		t.Errorf("pod main table after DEL of net1: %q", got)
	}
	h, err := pod.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rules, _ := h.RuleList(netlink.FAMILY_V4)
	for _, r := range rules {
		if r.Table == 100 || (r.Src != nil && r.Src.IP.Equal(net1IP.AsSlice())) {
			t.Errorf("rule left: %v", r)
		}
	}
	if rs, _ := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE); len(rs) != 0 {
		t.Errorf("table 100 still holds %v", rs)
	}
	nh, err := n1.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	if _, err := nh.LinkByName(coordinator.HostVethName("cid-multi", "net1")); err == nil {
		t.Error("net1's host veth is left")
	}
	if _, err := nh.LinkByName(coordinator.HostVethName("cid-multi", "eth0")); err != nil {
		t.Errorf("eth0's host veth is gone: %v", err)
	}
	if err := cni.Del(ctx, eth0List, eth0); err != nil {
		t.Fatalf("DEL eth0: %v", err)
	}
}

// TestPodDefaultRouteNICPicksTheMainTable: with podDefaultRouteNIC net1 on both networks, the main table
// is net1's (its default route, its hijack routes by veth-net1) and eth0, though attached first, is the
// extra interface: a table of its own and a rule from its address, its hijack routes by veth0 from there.
func TestPodDefaultRouteNICPicksTheMainTable(t *testing.T) {
	b, bin, n1, peer := twoSegments(t)
	onNet1 := func(conf []byte) []byte {
		return bytes.Replace(conf, []byte(`"podRPFilter":0`), []byte(`"podRPFilter":0,"podDefaultRouteNIC":"net1"`), 1)
	}
	ctx := context.Background()
	pod := b.Pod("multi")
	cni := b.CNI(n1.NS, bin)
	args := netbed.PodArgs("default", "multi", "uid-multi")
	eth0, net1 := netbed.Attachment("cid-multi", pod, "eth0", args...), netbed.Attachment("cid-multi", pod, "net1", args...)
	eth0List, err := netbed.ParseConfList(onNet1(chainConf("172.110.1.11/24", 0)))
	if err != nil {
		t.Fatal(err)
	}
	net1List, err := netbed.ParseConfList(onNet1(storageConf("192.168.56.10/24")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cni.Add(ctx, eth0List, eth0); err != nil {
		t.Fatalf("ADD eth0: %v", err)
	}
	if _, err := cni.Add(ctx, net1List, net1); err != nil {
		t.Fatalf("ADD net1: %v", err)
	}
	if out, err := netbed.Run(pod, exec.Command("sh", "-c", "ip -4 rule; ip -4 route show table all")); err == nil {
		t.Logf("pod `ip rule; ip route show table all`:\n%s", out)
	}
	got := podRoutes(t, pod)
	for _, w := range []string{"default via 192.168.56.1 dev net1", "172.111.0.0/16 via 10.7.168.73 dev veth-net1 src 192.168.56.10"} {
		if !slices.Contains(got, w) {
			t.Errorf("pod main table lacks %q: %q", w, got)
		}
	}
	for _, r := range got {
		if strings.HasPrefix(r, "default") && !strings.Contains(r, "dev net1") {
			t.Errorf("a second default route in the main table: %q", r)
		}
	}
	eth0IP, net1IP := netip.MustParseAddr("172.110.1.11"), netip.MustParseAddr("192.168.56.10")
	remote := netip.MustParseAddr("172.111.1.1")
	for _, tc := range []struct {
		dst, src netip.Addr
		want     string
	}{{remote, netip.Addr{}, "veth-net1"}, {remote, net1IP, "veth-net1"}, {remote, eth0IP, "veth0"},
		{netip.MustParseAddr("192.168.57.5"), netip.Addr{}, "net1"}} {
		if dev := routeDev(t, pod, tc.dst, tc.src); dev != tc.want {
			t.Errorf("route to %s from %v leaves by %s, want %s", tc.dst, tc.src, dev, tc.want)
		}
	}
	if err := netbed.Ping(peer, net1IP, 2, 5*time.Second); err != nil {
		t.Errorf("peer → net1: %v", err)
	}
	for _, dst := range []netip.Addr{eth0IP, net1IP} {
		if err := netbed.Ping(n1.NS, dst, 2, 5*time.Second); err != nil {
			t.Errorf("node → %s: %v", dst, err)
		}
	}
	for _, att := range []struct {
		list *libcni.NetworkConfigList
		rt   *libcni.RuntimeConf
	}{{net1List, net1}, {eth0List, eth0}} {
		if err := cni.Check(ctx, att.list, att.rt); err != nil {
			t.Errorf("CHECK %s: %v", att.rt.IfName, err)
		}
		if err := cni.Del(ctx, att.list, att.rt); err != nil {
			t.Errorf("DEL %s: %v", att.rt.IfName, err)
		}
	}
}

// TestAddressMoveIsAnnounced: an address moves from a pod on one node to a pod on another. The foreign
// host on the segment talked to the first pod (its neighbour entry holds that pod's MAC); after the
// second pod's ADD, and without the foreign host sending anything, its entry points at the second pod's
// MAC within a second: the ADD announced the address.
func TestAddressMoveIsAnnounced(t *testing.T) {
	b := netbed.New(t)
	bin := b.PluginDir("underlink-coordinator")
	a := b.Cluster(netbed.ClusterA)
	n1 := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a, IP: netip.MustParsePrefix("10.7.168.73/24")})
	n2 := b.Node(netbed.NodeSpec{Name: "a-node2", Cluster: a, IP: netip.MustParsePrefix("10.7.168.74/24")})
	foreign, err := b.Host("foreign", a, netip.MustParsePrefix("172.110.1.200/16"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	moved := netip.MustParseAddr("172.110.1.30")
	list, err := netbed.ParseConfList(chainConf(moved.String()+"/24", 0))
	if err != nil {
		t.Fatal(err)
	}
	macOf := func(n *netbed.Netns) string {
		l, err := n.Link("eth0")
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().HardwareAddr.String()
	}
	entry := func() string {
		e, err := foreign.Neighbour(moved)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			return ""
		}
		return e.HardwareAddr.String()
	}
	first := b.Pod("first")
	rt1 := netbed.Attachment("cid-first", first, "eth0")
	if _, err := b.CNI(n1.NS, bin).Add(ctx, list, rt1); err != nil {
		t.Fatal(err)
	}
	if err := netbed.Ping(foreign, moved, 2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	firstMAC := macOf(first)
	if got := entry(); got != firstMAC {
		t.Fatalf("the foreign host's entry for %s is %q, want the first pod's %s", moved, got, firstMAC)
	}
	if err := b.CNI(n1.NS, bin).Del(ctx, list, rt1); err != nil {
		t.Fatal(err)
	}

	second := b.Pod("second")
	start := time.Now()
	if _, err := b.CNI(n2.NS, bin).Add(ctx, list, netbed.Attachment("cid-second", second, "eth0")); err != nil {
		t.Fatal(err)
	}
	secondMAC := macOf(second)
	poll.UntilEvery(t, time.Second, 5*time.Millisecond, "the foreign host's entry for "+moved.String()+" at the second pod's MAC", func() (bool, string) {
		got := entry()
		return got == secondMAC, got
	})
	t.Logf("%s moved from %s (a-node1) to %s (a-node2); the foreign host's entry followed %s after the ADD began", moved, firstMAC, secondMAC, time.Since(start).Round(time.Millisecond))
}

// errCode is the CNI error code of err, or 0.
func errCode(err error) uint {
	var te *types.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
