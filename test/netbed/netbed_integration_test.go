//go:build integration

package netbed_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// rootLinks lists the root namespace's links and addresses, to prove a bed never touches it.
func rootLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
		s := l.Attrs().Name
		for _, a := range addrs {
			s += " " + a.IPNet.String()
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func bedNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netbed.RunDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestBedTopologyAndTeardown(t *testing.T) {
	before := rootLinks(t)
	var prefix string
	var sleeper *netbed.Process
	t.Run("bed", func(t *testing.T) {
		b := netbed.New(t)
		prefix = b.Prefix()
		a := b.Cluster(netbed.ClusterA)
		n1 := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a, IP: netip.MustParsePrefix("10.7.168.73/24"), InterDC: netip.MustParsePrefix("10.6.168.73/16")})
		n2 := b.Node(netbed.NodeSpec{Name: "a-node2", Cluster: a})
		b2 := b.Cluster(netbed.ClusterB)
		n3 := b.Node(netbed.NodeSpec{Name: "b-node1", Cluster: b2, IP: netip.MustParsePrefix("10.7.168.74/24"), InterDC: netip.MustParsePrefix("10.6.168.74/16")})

		// The seed's NICs, with ens224 up and address-free as a macvlan master is.
		out, err := netbed.Run(n1.NS, exec.Command("ip", "-o", "addr", "show"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"eth0    inet 10.7.168.73/24", "ens192    inet 10.6.168.73/16"} {
			if !strings.Contains(strings.Join(strings.Fields(string(out)), " "), strings.Join(strings.Fields(want), " ")) {
				t.Errorf("node a-node1 lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "ens224 inet ") || strings.Contains(string(out), "ens224    inet ") {
			t.Errorf("ens224 must carry no address:\n%s", out)
		}
		h, err := n1.NS.Netlink()
		if err != nil {
			t.Fatal(err)
		}
		l, err := h.LinkByName(netbed.UnderlayNIC)
		h.Close()
		if err != nil || l.Attrs().OperState != netlink.OperUp {
			t.Errorf("ens224 in a-node1: %v, state %v", err, l)
		}

		// Node to node over the mgmt segment; gateway nodes over the inter-DC segment.
		for _, c := range []struct {
			from *netbed.Netns
			to   string
		}{
			{n1.NS, n2.IP.Addr().String()},
			{n2.NS, "10.7.168.73"},
			{n1.NS, netbed.MgmtRouter.Addr().String()},
			{n1.NS, "10.6.168.74"},
			{n3.NS, "10.6.168.73"},
		} {
			if err := netbed.Ping(c.from, netip.MustParseAddr(c.to), 2, 5*time.Second); err != nil {
				t.Error(err)
			}
		}
		// The mgmt segment routes nowhere, so nothing leaves the bed.
		if err := netbed.Ping(n1.NS, netip.MustParseAddr("192.0.2.1"), 1, 300*time.Millisecond); err == nil {
			t.Error("192.0.2.1 answered from inside the bed; the mgmt namespace must not route")
		}

		// A process in a node namespace sees that namespace, and dies with the bed.
		sleeper, err = b.Start(n1.NS, "sleeper", exec.Command("sh", "-c", "ip -o link show ens224 && exec sleep 600"))
		if err != nil {
			t.Fatal(err)
		}
		poll.UntilEvery(t, 5*time.Second, 50*time.Millisecond, "the process seeing ens224 in its namespace", func() (bool, string) {
			logs, _ := os.ReadFile(sleeper.Stdout)
			return strings.Contains(string(logs), "ens224"), "\n" + sleeper.Logs()
		})
		if got := bedNamespaces(t, prefix); len(got) != 7 {
			t.Errorf("bed namespaces: %v, want 7 (2 underlays, mgmt, interdc, 3 nodes)", got)
		}
	})
	if got := bedNamespaces(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after teardown: %v", got)
	}
	select {
	case <-sleeper.Done():
	default:
		t.Error("process still running after teardown")
	}
	if after := rootLinks(t); !slices.Equal(before, after) {
		t.Errorf("root namespace changed:\nbefore %v\nafter  %v", before, after)
	}
}

// A node whose setup fails half-way (its underlay segment is already gone) leaves nothing behind.
func TestBedTeardownAfterPartialSetup(t *testing.T) {
	var stale *netbed.Cluster
	t.Run("first", func(t *testing.T) {
		stale = netbed.New(t).Cluster(netbed.ClusterA)
	})
	var prefix string
	t.Run("second", func(t *testing.T) {
		b := netbed.New(t)
		prefix = b.Prefix()
		b.Node(netbed.NodeSpec{Name: "n0"})
		if _, err := b.AddNode(netbed.NodeSpec{Name: "n1", Cluster: stale}); err == nil {
			t.Fatal("node setup on a removed segment succeeded")
		} else {
			t.Logf("expected failure: %v", err)
		}
		if got := bedNamespaces(t, prefix); !slices.Contains(got, prefix+"n1") {
			t.Fatalf("the failed node's namespace should exist until teardown, have %v", got)
		}
	})
	if got := bedNamespaces(t, prefix); len(got) != 0 {
		t.Errorf("namespaces left after a failed setup: %v", got)
	}
}

func TestRelayReachesRootLoopback(t *testing.T) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "apiserver stand-in")
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	b := netbed.New(t)
	n := b.Node(netbed.NodeSpec{Name: "n1"})
	port := l.Addr().(*net.TCPAddr).Port
	get := fmt.Sprintf(`exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`, port)

	// Without the relay, the node's 127.0.0.1 is its own loopback.
	if out, err := netbed.Run(n.NS, exec.Command("bash", "-c", get)); err == nil {
		t.Fatalf("root loopback reachable from a node without a relay: %s", out)
	}
	r, err := b.Relay(n.NS, "", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Listen != l.Addr().String() {
		t.Errorf("relay listens on %s, want the target's own address %s", r.Listen, l.Addr())
	}
	for i := 0; i < 3; i++ {
		out, err := netbed.Run(n.NS, exec.Command("bash", "-c", get))
		if err != nil || !strings.Contains(string(out), "apiserver stand-in") {
			t.Fatalf("through the relay: %v\n%s", err, out)
		}
	}
}

func TestCNIChainMacvlanOnUnderlay(t *testing.T) {
	b := netbed.New(t)
	bin := b.PluginDir()
	a := b.Cluster(netbed.ClusterA)
	n1 := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a})
	n2 := b.Node(netbed.NodeSpec{Name: "a-node2", Cluster: a})
	conf := func(ip string) []byte {
		return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"macvlan-conf","plugins":[
		 {"type":"macvlan","master":"ens224","mode":"bridge","ipam":{"type":"static","addresses":[{"address":%q}]}}]}`, ip))
	}
	ctx := context.Background()
	p1, p2 := b.Pod("p1"), b.Pod("p2")
	for _, c := range []struct {
		node *netbed.Node
		pod  *netbed.Netns
		ip   string
	}{{n1, p1, "172.110.1.10/16"}, {n2, p2, "172.110.1.11/16"}} {
		list, err := netbed.ParseConfList(conf(c.ip))
		if err != nil {
			t.Fatal(err)
		}
		rt := netbed.Attachment("c-"+c.pod.Role, c.pod, "eth0")
		if _, err := b.CNI(c.node.NS, bin).Add(ctx, list, rt); err != nil {
			t.Fatalf("ADD on %s: %v", c.node.Spec.Name, err)
		}
	}
	for _, dst := range []string{"172.110.1.11", "172.110.0.1"} {
		if err := netbed.Ping(p1, netip.MustParseAddr(dst), 2, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(b.Dir(), "cni-cache", "a-node1")); err != nil {
		t.Errorf("libcni cache not in the bed directory: %v", err)
	}
}
