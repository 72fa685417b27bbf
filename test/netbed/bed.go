package netbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/underlink/underlink/test/poll"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Names of the links the bed creates inside its namespaces. They are the seed's NIC names, so configs
// written for the seed's nodes (master ens224) run unchanged in the bed.
const (
	// UnderlayNIC is a node's NIC on its cluster's underlay segment, the macvlan master.
	UnderlayNIC = "ens224"
	// NodeNIC is a node's NIC on the management network; it carries the node IP and the default route.
	NodeNIC = "eth0"
	// InterDCNIC is a gateway node's NIC on the inter-data-centre network (the seed's 10.6.0.0/16).
	InterDCNIC = "ens192"
	// BridgeName is the segment bridge inside the underlay, mgmt and inter-DC namespaces.
	BridgeName = "br0"
)

// Default address plan, from the seed: node IPs in 10.7.168.0/24 (its `ip route` shows node
// 10.7.168.73), gateway nodes on 10.6.0.0/16, and one underlay segment per cluster holding the pool
// gateway.
var (
	// MgmtRouter is the mgmt namespace's address on the mgmt bridge and every node's default gateway.
	MgmtRouter = netip.MustParsePrefix("10.7.168.1/24")
	// ClusterA is the seed's cluster-a underlay (pool gateway 172.110.0.1 on 172.110.0.0/16).
	ClusterA = ClusterSpec{Name: "cluster-a", Gateway: netip.MustParsePrefix("172.110.0.1/16")}
	// ClusterB is the seed's cluster-b underlay (pool gateway 172.111.0.1 on 172.111.0.0/16).
	ClusterB = ClusterSpec{Name: "cluster-b", Gateway: netip.MustParsePrefix("172.111.0.1/16")}
)

var bedSeq atomic.Int64

// Bed is a set of network namespaces, links, processes and relays for one test. Everything it makes is
// removed by t.Cleanup, in reverse order of creation, also when the test fails half-way through setup.
type Bed struct {
	t      testing.TB
	prefix string
	dir    string

	mu       sync.Mutex // guards undo, nodes and seq
	segMu    sync.Mutex // serialises creating shared segments (mgmt, inter-DC, underlays)
	undo     []func() error
	clusters map[string]*Cluster
	nodes    map[string]*Node
	mgmt     *Netns
	interDC  *Netns
	seq      int
}

// Cluster is one cluster's underlay segment: a namespace holding a bridge with the pool gateway address.
type Cluster struct {
	Spec ClusterSpec
	// Underlay holds the segment bridge (BridgeName) and the gateway address.
	Underlay *Netns
}

// ClusterSpec describes a cluster's underlay segment.
type ClusterSpec struct {
	// Name is the cluster's name, e.g. "cluster-a".
	Name string
	// Gateway is the pool gateway with the segment's prefix length, e.g. 172.110.0.1/16.
	Gateway netip.Prefix
	// Routed are further subnets the segment's gateway holds an address of and routes to (forwarding
	// on), e.g. 192.168.57.1/24: hosts there reach the segment's pods only through the gateway.
	Routed []netip.Prefix
}

// NodeSpec describes a node.
type NodeSpec struct {
	// Name is unique in the bed, e.g. "a-node1".
	Name string
	// Cluster is the underlay segment the node's UnderlayNIC plugs into; nil means no underlay NIC.
	Cluster *Cluster
	// IP is the node IP on NodeNIC; the zero value picks 10.7.168.(10+n)/24.
	IP netip.Prefix
	// InterDC, when valid, gives the node an InterDCNIC with this address (gateway nodes).
	InterDC netip.Prefix
	// Extra are further underlay NICs of the node, each on a segment of its own (a second underlay NIC
	// such as ens256 on a storage segment); up, without an address, like UnderlayNIC.
	Extra []NIC
}

// NIC is an extra underlay NIC of a node.
type NIC struct {
	// Name is the NIC's name in the node, e.g. "ens256".
	Name string
	// Segment is the segment it plugs into (Bed.Cluster makes one per name).
	Segment *Cluster
}

// Node is a node namespace with its NICs.
type Node struct {
	Spec NodeSpec
	// NS is the node's network namespace; run the node's processes and CNI chains there.
	NS *Netns
	// IP is the node IP on NodeNIC.
	IP netip.Prefix
}

// New makes an empty bed for t. It fails t unless it runs as root (integration tests only), and first
// sweeps namespaces that crashed earlier runs left behind.
func New(t testing.TB) *Bed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("netbed needs root (network namespaces, veth, bridges): run the integration tests as root")
	}
	if err := Sweep(); err != nil {
		t.Logf("netbed: sweeping stale namespaces: %v", err)
	}
	// A short directory of its own rather than t.TempDir(): unix socket paths must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "ulbed-")
	if err != nil {
		t.Fatal(err)
	}
	b := &Bed{
		t:        t,
		prefix:   fmt.Sprintf("%s%d-%d-", NamePrefix, os.Getpid(), bedSeq.Add(1)),
		dir:      dir,
		clusters: map[string]*Cluster{},
		nodes:    map[string]*Node{},
	}
	t.Cleanup(func() {
		if err := b.teardown(); err != nil {
			t.Errorf("netbed teardown: %v", err)
		}
		if t.Failed() {
			if os.Remove(dir) == nil { // nothing was written there
				return
			}
			t.Logf("netbed: test failed; process logs and CNI cache kept in %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("netbed: remove %s: %v", dir, err)
		}
	})
	return b
}

// Dir is the bed's directory for process logs, sockets and the CNI cache; it is removed with the bed
// unless the test failed.
func (b *Bed) Dir() string { return b.dir }

// Prefix is the bed's unique namespace name prefix ("ulbed-<pid>-<n>-").
func (b *Bed) Prefix() string { return b.prefix }

// OnTeardown registers f to run when the bed is removed, before anything registered earlier.
func (b *Bed) OnTeardown(f func() error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.undo = append(b.undo, f)
}

func (b *Bed) teardown() error {
	b.mu.Lock()
	undo := b.undo
	b.undo = nil
	b.mu.Unlock()
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		if err := undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NewNetns creates an empty network namespace (loopback up) named after role, removed with the bed.
func (b *Bed) NewNetns(role string) (*Netns, error) {
	name := b.prefix + role
	p, err := createNamed(name)
	if err != nil {
		return nil, fmt.Errorf("netns for %s: %w", role, err)
	}
	b.OnTeardown(func() error { return removeNamed(name) })
	h, err := ns.GetNS(p)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", p, err)
	}
	b.OnTeardown(h.Close)
	n := &Netns{NetNS: h, Name: name, Role: role}
	nl, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	if err := linkUp(nl, "lo"); err != nil {
		return nil, fmt.Errorf("netns %s: %w", name, err)
	}
	return n, nil
}

// MustNetns is NewNetns that fails the test on error.
func (b *Bed) MustNetns(role string) *Netns {
	b.t.Helper()
	n, err := b.NewNetns(role)
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// Pod creates a pod namespace (loopback up, nothing else): the CNI_NETNS of an attachment.
func (b *Bed) Pod(name string) *Netns {
	b.t.Helper()
	return b.MustNetns("pod-" + name)
}

// newSegment makes a namespace with an up bridge, optionally holding an address.
func (b *Bed) newSegment(role string, addr netip.Prefix) (*Netns, error) {
	n, err := b.NewNetns(role)
	if err != nil {
		return nil, err
	}
	h, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName}}
	if err := h.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add bridge %s in %s: %w", BridgeName, n.Name, err)
	}
	if addr.IsValid() {
		if err := addAddr(h, BridgeName, addr.String()); err != nil {
			return nil, fmt.Errorf("netns %s: %w", n.Name, err)
		}
	}
	if err := linkUp(h, BridgeName); err != nil {
		return nil, fmt.Errorf("netns %s: %w", n.Name, err)
	}
	return n, nil
}

// Cluster creates (once per name) a cluster's underlay segment.
func (b *Bed) Cluster(spec ClusterSpec) *Cluster {
	b.t.Helper()
	b.segMu.Lock()
	defer b.segMu.Unlock()
	if c, ok := b.clusters[spec.Name]; ok {
		return c
	}
	if !spec.Gateway.IsValid() {
		b.t.Fatalf("netbed: cluster %q needs a Gateway such as 172.110.0.1/16", spec.Name)
	}
	n, err := b.newSegment(spec.Name+"-underlay", spec.Gateway)
	if err != nil {
		b.t.Fatal(err)
	}
	if len(spec.Routed) > 0 {
		if err := routeSegment(n, spec.Routed); err != nil {
			b.t.Fatalf("netbed: segment %s: %v", spec.Name, err)
		}
	}
	c := &Cluster{Spec: spec, Underlay: n}
	b.clusters[spec.Name] = c
	return c
}

// Mgmt returns (creating it once) the management segment that every node's NodeNIC plugs into. Its
// namespace holds MgmtRouter, the nodes' default gateway, and no route anywhere else, so traffic for
// unknown destinations stops there.
func (b *Bed) Mgmt() *Netns {
	b.t.Helper()
	b.segMu.Lock()
	defer b.segMu.Unlock()
	if b.mgmt == nil {
		n, err := b.newSegment("mgmt", MgmtRouter)
		if err != nil {
			b.t.Fatal(err)
		}
		b.mgmt = n
	}
	return b.mgmt
}

// InterDC returns (creating it once) the inter-data-centre segment of gateway nodes' InterDCNIC.
func (b *Bed) InterDC() *Netns {
	b.t.Helper()
	b.segMu.Lock()
	defer b.segMu.Unlock()
	if b.interDC == nil {
		n, err := b.newSegment("interdc", netip.Prefix{})
		if err != nil {
			b.t.Fatal(err)
		}
		b.interDC = n
	}
	return b.interDC
}

// Node creates a node namespace: NodeNIC on the mgmt segment with the node IP and a default route via
// MgmtRouter, UnderlayNIC (no address, up) on its cluster's underlay, and InterDCNIC if asked.
func (b *Bed) Node(spec NodeSpec) *Node {
	b.t.Helper()
	n, err := b.AddNode(spec)
	if err != nil {
		b.t.Fatal(err)
	}
	return n
}

// AddNode is Node returning the error; whatever it made before failing is still removed with the bed.
func (b *Bed) AddNode(spec NodeSpec) (*Node, error) {
	mgmt := b.Mgmt()
	var interDC *Netns
	if spec.InterDC.IsValid() {
		interDC = b.InterDC()
	}
	b.mu.Lock()
	if _, dup := b.nodes[spec.Name]; dup || spec.Name == "" {
		b.mu.Unlock()
		return nil, fmt.Errorf("netbed: node name %q is empty or already used", spec.Name)
	}
	b.seq++
	idx := b.seq
	b.mu.Unlock()
	if !spec.IP.IsValid() {
		spec.IP = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 7, 168, byte(10 + idx)}), 24)
	}
	n, err := b.NewNetns(spec.Name)
	if err != nil {
		return nil, err
	}
	h, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()

	// Each NIC is a veth created inside the node namespace with its peer created directly in the
	// segment's namespace, so no link or address ever appears in the root namespace.
	if err := plug(h, NodeNIC, fmt.Sprintf("n%d-%s", idx, NodeNIC), mgmt); err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.Name, err)
	}
	if err := addAddr(h, NodeNIC, spec.IP.String()); err != nil {
		return nil, fmt.Errorf("node %s: %w", spec.Name, err)
	}
	l, err := h.LinkByName(NodeNIC)
	if err != nil {
		return nil, err
	}
	def := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: MgmtRouter.Addr().AsSlice()}
	if err := h.RouteAdd(def); err != nil {
		return nil, fmt.Errorf("node %s: default route via %s: %w", spec.Name, MgmtRouter.Addr(), err)
	}
	if spec.Cluster != nil {
		if err := plug(h, UnderlayNIC, fmt.Sprintf("n%d-%s", idx, UnderlayNIC), spec.Cluster.Underlay); err != nil {
			return nil, fmt.Errorf("node %s: %w", spec.Name, err)
		}
	}
	for _, x := range spec.Extra {
		if x.Segment == nil || x.Name == "" {
			return nil, fmt.Errorf("node %s: extra NIC %q needs a name and a segment", spec.Name, x.Name)
		}
		if err := plug(h, x.Name, fmt.Sprintf("n%d-%s", idx, x.Name), x.Segment.Underlay); err != nil {
			return nil, fmt.Errorf("node %s: %w", spec.Name, err)
		}
	}
	if interDC != nil {
		if err := plug(h, InterDCNIC, fmt.Sprintf("n%d-%s", idx, InterDCNIC), interDC); err != nil {
			return nil, fmt.Errorf("node %s: %w", spec.Name, err)
		}
		if err := addAddr(h, InterDCNIC, spec.InterDC.String()); err != nil {
			return nil, fmt.Errorf("node %s: %w", spec.Name, err)
		}
	}
	node := &Node{Spec: spec, NS: n, IP: spec.IP}
	b.mu.Lock()
	b.nodes[spec.Name] = node
	b.mu.Unlock()
	return node, nil
}

// Host adds a machine on a segment that Kubernetes does not know (a "foreign host": a router, a
// storage array, a server outside the cluster): a namespace named role whose HostNIC plugs into the
// segment's bridge with addrs. Its default route goes via the segment's gateway (or a routed subnet's)
// of its first address that lies in one.
func (b *Bed) Host(role string, segment *Cluster, addrs ...netip.Prefix) (*Netns, error) {
	n, err := b.NewNetns(role)
	if err != nil {
		return nil, err
	}
	h, err := n.Netlink()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	b.mu.Lock()
	b.seq++
	idx := b.seq
	b.mu.Unlock()
	if err := plug(h, HostNIC, fmt.Sprintf("h%d-%s", idx, HostNIC), segment.Underlay); err != nil {
		return nil, fmt.Errorf("host %s: %w", role, err)
	}
	l, err := h.LinkByName(HostNIC)
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", role, err)
	}
	for _, a := range addrs {
		// No duplicate address detection: the host holds its address at once, as a test expects.
		ipn := &net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())}
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn, Flags: unix.IFA_F_NODAD}); err != nil {
			return nil, fmt.Errorf("host %s: add %s: %w", role, a, err)
		}
	}
	for _, gw := range append([]netip.Prefix{segment.Spec.Gateway}, segment.Spec.Routed...) {
		if !gw.IsValid() || !slices.ContainsFunc(addrs, func(a netip.Prefix) bool { return a.Contains(gw.Addr()) }) {
			continue
		}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.Addr().AsSlice()}); err != nil {
			return nil, fmt.Errorf("host %s: default route via %s: %w", role, gw.Addr(), err)
		}
		break
	}
	return n, nil
}

// routeSegment gives a segment's gateway the addresses of routed and makes it forward between them.
func routeSegment(n *Netns, routed []netip.Prefix) error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	for _, p := range routed {
		if err := addAddr(h, BridgeName, p.String()); err != nil {
			return err
		}
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if err := n.Sysctl(k, "1"); err != nil {
			return err
		}
	}
	return nil
}

// HostNIC is a foreign host's NIC on its segment.
const HostNIC = "eth0"

// plug creates veth name (in h's namespace, up) with its peer enslaved to the segment's bridge.
func plug(h netlinksafe.Handle, name, peer string, segment *Netns) error {
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name},
		PeerName:      peer,
		PeerNamespace: netlink.NsFd(int(segment.Fd())),
	}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s (peer %s in %s): %w", name, peer, segment.Name, err)
	}
	if err := linkUp(h, name); err != nil {
		return err
	}
	sh, err := segment.Netlink()
	if err != nil {
		return err
	}
	defer sh.Close()
	pl, err := sh.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", peer, segment.Name, err)
	}
	br, err := sh.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", BridgeName, segment.Name, err)
	}
	if err := sh.LinkSetMaster(pl, br); err != nil {
		return fmt.Errorf("enslave %s to %s in %s: %w", peer, BridgeName, segment.Name, err)
	}
	if err := sh.LinkSetUp(pl); err != nil {
		return fmt.Errorf("set %s up in %s: %w", peer, segment.Name, err)
	}
	// The kernel attaches a link's queue when it processes the carrier change, up to a second later
	// (linkwatch); until then every packet, the first ARP request too, is dropped. Return once both
	// ends say so, so a caller's first packet is not lost.
	if err := waitOperUp(h, name); err != nil {
		return err
	}
	if err := waitOperUp(sh, peer); err != nil {
		return fmt.Errorf("%s in %s: %w", peer, segment.Name, err)
	}
	return nil
}

// waitOperUp waits until a link's operational state is up.
func waitOperUp(h netlinksafe.Handle, name string) error {
	return poll.Wait(context.Background(), 5*time.Second, 10*time.Millisecond, "link "+name+" operationally up", func() (bool, string, error) {
		l, err := h.LinkByName(name)
		if err != nil {
			return false, "", fmt.Errorf("find link %s: %w", name, err)
		}
		return l.Attrs().OperState == netlink.OperUp, "state " + l.Attrs().OperState.String(), nil
	})
}
