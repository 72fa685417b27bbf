//go:build integration

package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// segment is cluster-a's underlay with its gateway on both families, a node, a pod whose eth0 is a
// macvlan on the node's ens224 (down, without an address, as macvlan hands it to its IPAM), and a
// foreign host holding 172.110.1.50 and fd00:110::50.
type segment struct {
	pod, foreign *netbed.Netns
	foreignMAC   net.HardwareAddr
}

var (
	gateway4 = netip.MustParseAddr("172.110.0.1")
	gateway6 = netip.MustParseAddr("fd00:110::1")
	held4    = netip.MustParseAddr("172.110.1.50")
	held6    = netip.MustParseAddr("fd00:110::50")
)

func newSegment(t *testing.T) *segment {
	t.Helper()
	b := netbed.New(t)
	a := b.Cluster(netbed.ClusterA)
	h, err := a.Underlay.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br, err := h.LinkByName(netbed.BridgeName)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: ipNet("fd00:110::1/64"), Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}
	node := b.Node(netbed.NodeSpec{Name: "a-node1", Cluster: a})
	pod := b.Pod("p1")
	nh, err := node.NS.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	parent, err := nh.LinkByName(netbed.UnderlayNIC)
	if err != nil {
		t.Fatal(err)
	}
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "eth0", ParentIndex: parent.Attrs().Index, Namespace: netlink.NsFd(int(pod.Fd()))}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	if err := nh.LinkAdd(mv); err != nil {
		t.Fatal(err)
	}
	foreign, err := b.Host("foreign", a, netip.MustParsePrefix("172.110.1.50/16"), netip.MustParsePrefix("fd00:110::50/64"))
	if err != nil {
		t.Fatal(err)
	}
	fl, err := foreign.Link(netbed.HostNIC)
	if err != nil {
		t.Fatal(err)
	}
	return &segment{pod: pod, foreign: foreign, foreignMAC: fl.Attrs().HardwareAddr}
}

func ipNet(s string) *net.IPNet {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// open opens the pod's eth0 as underlink-ipam does, from inside the pod's namespace.
func (s *segment) open(t *testing.T) *Link {
	t.Helper()
	var l *Link
	if err := s.pod.Do(func(ns.NetNS) error {
		var err error
		l, err = Open("eth0", Families{IPv4: true, IPv6: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

func (s *segment) eth0Up(t *testing.T) bool {
	t.Helper()
	l, err := s.pod.Link("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Flags&net.FlagUp != 0
}

// Detection on a real segment: a free address with a live gateway passes after the conflict window;
// an address the foreign host holds fails at once with the foreign host's MAC, for ARP and NDP; a
// gateway nobody holds fails after GatewayWait. The pod's interface is left down, as it was found.
func TestDetectOnASegment(t *testing.T) {
	s := newSegment(t)
	both := Options{Conflict: true, Gateway: true}
	for _, tc := range []struct {
		name     string
		addrs    []Address
		opts     Options
		conflict netip.Addr
		gateway  netip.Addr
		max      time.Duration
	}{
		{name: "free IPv4 address, gateway answers", addrs: []Address{{Addr: netip.MustParseAddr("172.110.1.10"), Gateway: gateway4}}, opts: both, max: ConflictWait + 20*time.Millisecond},
		{name: "free dual-stack address, gateways answer", opts: both, max: ConflictWait + 20*time.Millisecond,
			addrs: []Address{{Addr: netip.MustParseAddr("172.110.1.10"), Gateway: gateway4}, {Addr: netip.MustParseAddr("fd00:110::10"), Gateway: gateway6}}},
		{name: "IPv4 address held by the foreign host", addrs: []Address{{Addr: held4, Gateway: gateway4}}, opts: both, conflict: held4, max: ConflictWait},
		{name: "IPv6 address held by the foreign host", addrs: []Address{{Addr: held6, Gateway: gateway6}}, opts: both, conflict: held6, max: ConflictWait},
		{name: "held address, detection off", addrs: []Address{{Addr: held4, Gateway: gateway4}}, opts: Options{Gateway: true}, max: 20 * time.Millisecond},
		{name: "IPv4 gateway nobody holds", addrs: []Address{{Addr: netip.MustParseAddr("172.110.1.10"), Gateway: netip.MustParseAddr("172.110.0.254")}}, opts: both,
			gateway: netip.MustParseAddr("172.110.0.254"), max: GatewayWait + 50*time.Millisecond},
		{name: "IPv6 gateway nobody holds", addrs: []Address{{Addr: netip.MustParseAddr("fd00:110::10"), Gateway: netip.MustParseAddr("fd00:110::fe")}}, opts: Options{Gateway: true},
			gateway: netip.MustParseAddr("fd00:110::fe"), max: GatewayWait + 50*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := s.open(t)
			start := time.Now()
			err := Detect(l, tc.addrs, tc.opts)
			took := time.Since(start)
			if cerr := l.Close(); cerr != nil {
				t.Errorf("close: %v", cerr)
			}
			if s.eth0Up(t) {
				t.Error("eth0 left up; it was down before Open")
			}
			t.Logf("took %s: %v", took, err)
			var ce *ConflictError
			var ge *GatewayError
			switch {
			case tc.conflict.IsValid():
				if !errors.As(err, &ce) || ce.Addr != tc.conflict || ce.MAC.String() != s.foreignMAC.String() {
					t.Fatalf("error %v, want a conflict on %s with %s", err, tc.conflict, s.foreignMAC)
				}
				if !strings.Contains(err.Error(), s.foreignMAC.String()) || !strings.Contains(err.Error(), tc.conflict.String()) {
					t.Errorf("message %q does not name the address and the MAC", err)
				}
			case tc.gateway.IsValid():
				if !errors.As(err, &ge) || ge.Gateway != tc.gateway || !strings.Contains(err.Error(), tc.gateway.String()) {
					t.Fatalf("error %v, want gateway %s unreachable", err, tc.gateway)
				}
				if took < GatewayWait {
					t.Errorf("gave up after %s, before GatewayWait %s", took, GatewayWait)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
			}
			if took > tc.max {
				t.Errorf("took %s, more than %s", took, tc.max)
			}
		})
	}
}

// After an address moves, the announcement alone updates a neighbour's cache: the foreign host holds a
// stale entry for the pod's addresses with another MAC and sends nothing; within a second of Announce
// its entries point at the pod's MAC.
func TestAnnounceUpdatesANeighbour(t *testing.T) {
	s := newSegment(t)
	v4, v6 := netip.MustParseAddr("172.110.1.20"), netip.MustParseAddr("fd00:110::20")
	old, _ := net.ParseMAC("02:00:00:00:00:99")
	fh, err := s.foreign.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fl, err := fh.LinkByName(netbed.HostNIC)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{v4, v6} {
		fam := netlink.FAMILY_V4
		if ip.Is6() {
			fam = netlink.FAMILY_V6
		}
		if err := fh.NeighSet(&netlink.Neigh{LinkIndex: fl.Attrs().Index, Family: fam, State: netlink.NUD_STALE, IP: ip.AsSlice(), HardwareAddr: old}); err != nil {
			t.Fatal(err)
		}
	}
	l := s.open(t)
	defer l.Close()
	start := time.Now()
	if err := Announce(l, []netip.Addr{v4, v6}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{v4, v6} {
		poll.UntilEvery(t, time.Second, 5*time.Millisecond, "the foreign host's entry for "+ip.String()+" at the pod's MAC", func() (bool, string) {
			n, err := s.foreign.Neighbour(ip)
			if err != nil || n == nil {
				return false, fmt.Sprint("no entry ", err)
			}
			return n.HardwareAddr.String() == l.MAC.String(), n.HardwareAddr.String()
		})
		t.Logf("%s → %s after %s", ip, l.MAC, time.Since(start))
	}
}
