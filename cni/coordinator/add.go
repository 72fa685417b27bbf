package coordinator

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/underlink/underlink/cni/probe"
	"github.com/underlink/underlink/cni/routes"
)

// Add runs ADD and returns the result to print: the previous result with the veth pair appended to its
// interfaces. On failure every change already made is undone before it returns.
func (p *Plugin) Add(args *skel.CmdArgs) (types.Result, error) {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return nil, err
	}
	if c.Mode == routes.ModeDisabled {
		if c.prev == nil {
			return printable(&current.Result{CNIVersion: current.ImplementedSpecVersion}, c.Raw.CNIVersion)
		}
		return printable(c.prev, c.Raw.CNIVersion)
	}
	if c.prev == nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "underlink-coordinator config: prevResult is missing: chain underlink-coordinator after macvlan (with an ipam) in the same configuration list", "")
	}
	pod, err := ns.GetNS(args.Netns)
	if err != nil {
		return nil, cniError(fmt.Errorf("open pod netns %q: %w", args.Netns, err))
	}
	defer pod.Close()
	host, err := p.hostHandle()
	if err != nil {
		return nil, cniError(fmt.Errorf("netlink in the node namespace: %w", err))
	}
	defer host.Close()
	podH, err := podHandle(pod)
	if err != nil {
		return nil, cniError(fmt.Errorf("netlink in pod netns %s: %w", args.Netns, err))
	}
	defer podH.Close()

	node, err := discoverNode(host, p.HostNS)
	if err != nil {
		return nil, cniError(err)
	}
	in := planInput(c.prev, args.IfName)
	in.NodeIPs, in.NodeNextHops = node.IPs, node.NextHops
	in.HostVeth, in.PodVeth = HostVethName(args.ContainerID, args.IfName), routes.PodVethName(args.IfName)
	if c.Tuned(args.IfName) {
		if in.Table, err = freePodTable(podH); err != nil {
			return nil, cniError(fmt.Errorf("routing tables of pod netns %s: %w", args.Netns, err))
		}
	}
	plan, err := routes.Build(c.Config, in)
	if err != nil {
		return nil, cniError(err)
	}

	log := p.Log.WithValues("containerID", args.ContainerID, "ifName", args.IfName, "hostVeth", in.HostVeth, "podVeth", in.PodVeth)
	if in.Table != 0 {
		log = log.WithValues("podTable", in.Table)
	}
	tx := &txn{hook: p.Hook, log: log}
	a := &adder{tx: tx, c: c, args: args, pod: pod, podH: podH, host: host, plan: plan, in: in, hostVeth: in.HostVeth}
	if err := a.run(); err != nil {
		if rerr := tx.rollback(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("rollback left changes behind: %w", rerr))
		}
		log.Error(err, "ADD failed; changes rolled back")
		return nil, cniError(fmt.Errorf("underlink-coordinator ADD: %w", err))
	}
	log.Info("attached", "podRoutes", len(plan.PodRoutes), "hostRoutes", len(plan.HostRoutes))

	res := c.prev
	res.Interfaces = append(res.Interfaces,
		&current.Interface{Name: in.HostVeth, Mac: a.hostMAC.String()},
		&current.Interface{Name: in.PodVeth, Mac: a.podMAC.String(), Sandbox: args.Netns},
	)
	return printable(res, c.Raw.CNIVersion)
}

// adder holds one ADD's state between steps.
type adder struct {
	tx       *txn
	c        *conf
	args     *skel.CmdArgs
	pod      ns.NetNS
	podH     netlinksafe.Handle
	host     netlinksafe.Handle
	plan     *routes.Plan
	in       routes.Input
	hostVeth string

	hostIndex, podIndex int
	hostMAC, podMAC     net.HardwareAddr
}

func (a *adder) run() error {
	type step struct {
		name string
		f    func() error
	}
	steps := []step{
		{"veth", a.createVeth},
		{"host-veth-up", a.hostVethUp},
		{"pod-veth-up", a.podVethUp},
	}
	if a.c.VethLinkAddress.IsValid() {
		steps = append(steps, step{"host-veth-address " + a.c.VethLinkAddress.String(), a.vethLinkAddress})
	}
	if len(a.c.PodMACPrefix) == 2 {
		steps = append(steps, step{"pod-mac", a.podMACAddress})
	}
	// Before any route with a pod address as its source.
	steps = append(steps, step{"pod-ipv6-settled " + a.args.IfName, a.settleIPv6})
	for _, s := range steps {
		if err := a.tx.do(s.name, s.f); err != nil {
			return err
		}
	}
	for _, s := range a.plan.PodSysctls {
		if err := a.tx.do("pod-sysctl "+s.Key, func() error { return a.sysctl(s) }); err != nil {
			return err
		}
	}
	for _, n := range a.plan.PodNeighbours {
		if err := a.tx.do("pod-neighbour "+n.IP.String(), func() error { return a.neighbour(a.podH, a.podIndex, n, a.hostMAC, "pod") }); err != nil {
			return err
		}
	}
	for _, r := range a.plan.PodRoutes {
		if r.Owner != routes.ByCoordinator {
			continue
		}
		if err := a.tx.do("pod-route "+r.String(), func() error { return a.podRoute(r) }); err != nil {
			return err
		}
	}
	for _, r := range a.plan.PodRules {
		if err := a.tx.do("pod-rule "+r.String(), func() error { return a.podRule(r) }); err != nil {
			return err
		}
	}
	for _, n := range a.plan.HostNeighbours {
		if err := a.tx.do("host-neighbour "+n.IP.String(), func() error { return a.neighbour(a.host, a.hostIndex, n, a.podMAC, "node") }); err != nil {
			return err
		}
	}
	for _, r := range a.plan.HostRoutes {
		if err := a.tx.do("host-route "+r.String(), func() error { return a.hostRoute(r) }); err != nil {
			return err
		}
	}
	for _, r := range a.plan.HostRules {
		if err := a.tx.do("host-rule "+r.String(), func() error { return a.hostRule(r) }); err != nil {
			return err
		}
	}
	// Last, with the interface's final MAC: the segment learns where the address now is.
	return a.tx.do("pod-announce "+a.args.IfName, a.announce)
}

// createVeth makes the pair in one call: the host end in the node namespace, veth0 directly in the pod.
func (a *adder) createVeth() error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = a.hostVeth
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: a.in.PodVeth, PeerNamespace: netlink.NsFd(int(a.pod.Fd())), PeerTxQLen: -1}
	if a.c.TxQueueLen > 0 {
		v.TxQLen, v.PeerTxQLen = a.c.TxQueueLen, a.c.TxQueueLen
	}
	if a.c.VethMTU > 0 {
		v.MTU, v.PeerMTU = a.c.VethMTU, uint32(a.c.VethMTU)
	}
	if err := a.host.LinkAdd(v); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("host veth %s or the pod's %s already exists: a previous ADD of container %s/%s was not deleted (run DEL first): %w", a.hostVeth, a.in.PodVeth, a.args.ContainerID, a.args.IfName, err)
		}
		return fmt.Errorf("create veth pair %s/%s: %w", a.hostVeth, a.in.PodVeth, err)
	}
	a.tx.onUndo("delete veth "+a.hostVeth, func() error {
		l, err := a.host.LinkByName(a.hostVeth)
		if err != nil {
			return err
		}
		return a.host.LinkDel(l)
	})
	hl, err := a.host.LinkByName(a.hostVeth)
	if err != nil {
		return err
	}
	if err := a.host.LinkSetAlias(hl, hostVethAlias(a.c.Raw.Name, a.args.ContainerID, a.args.IfName)); err != nil {
		return fmt.Errorf("label %s: %w", a.hostVeth, err)
	}
	pl, err := a.podH.LinkByName(a.in.PodVeth)
	if err != nil {
		return fmt.Errorf("find %s in the pod: %w", a.in.PodVeth, err)
	}
	a.hostIndex, a.hostMAC = hl.Attrs().Index, hl.Attrs().HardwareAddr
	a.podIndex, a.podMAC = pl.Attrs().Index, pl.Attrs().HardwareAddr
	return nil
}

func (a *adder) hostVethUp() error {
	return a.host.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: a.hostIndex}})
}

func (a *adder) podVethUp() error {
	return a.podH.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: a.podIndex}})
}

func (a *adder) vethLinkAddress() error {
	addr := &netlink.Addr{IPNet: ipNet(netipPrefixHost(a.c.VethLinkAddress))}
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: a.hostIndex}}
	if err := a.host.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("add %s to %s: %w", a.c.VethLinkAddress, a.hostVeth, err)
	}
	a.tx.onUndo("delete address "+a.c.VethLinkAddress.String(), func() error { return a.host.AddrDel(link, addr) })
	return nil
}

func (a *adder) podMACAddress() error {
	var mac net.HardwareAddr
	for _, pa := range a.in.PodAddrs {
		if m, ok := routes.PodMAC(a.c.PodMACPrefix, pa.Addr()); ok {
			mac = m
			break
		}
	}
	if mac == nil {
		return nil // an IPv6-only pod has no four bytes to put in the MAC
	}
	ifName := a.args.IfName
	l, err := a.podH.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("find %s in the pod: %w", ifName, err)
	}
	old := l.Attrs().HardwareAddr
	if err := a.podH.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("set %s MAC %s: %w", ifName, mac, err)
	}
	a.tx.onUndo("restore MAC of "+ifName, func() error { return a.podH.LinkSetHardwareAddr(l, old) })
	for _, intf := range a.c.prev.Interfaces {
		if intf.Name == ifName && intf.Sandbox != "" {
			intf.Mac = mac.String()
		}
	}
	return nil
}

func (a *adder) sysctl(s routes.Sysctl) error {
	old, err := sysctlIn(a.pod, s.Key, "")
	if err != nil {
		return fmt.Errorf("read %s in the pod: %w", s.Key, err)
	}
	if old == s.Value {
		return nil
	}
	if _, err := sysctlIn(a.pod, s.Key, s.Value); err != nil {
		return fmt.Errorf("set %s=%s in the pod: %w", s.Key, s.Value, err)
	}
	a.tx.onUndo("restore "+s.Key+"="+old, func() error {
		_, err := sysctlIn(a.pod, s.Key, old)
		return err
	})
	return nil
}

// neighbour adds a permanent entry, so neither side of the pair depends on ARP/ND across it: a node
// with arp_ignore=1 (kube-proxy IPVS mode) would not answer ARP for its eth0 address on the host veth.
func (a *adder) neighbour(h netlinksafe.Handle, linkIndex int, n routes.Neighbour, mac net.HardwareAddr, side string) error {
	e := &netlink.Neigh{LinkIndex: linkIndex, Family: familyOf(n.IP), State: netlink.NUD_PERMANENT, IP: n.IP.AsSlice(), HardwareAddr: mac}
	if err := h.NeighAdd(e); err != nil {
		return fmt.Errorf("add %s neighbour %s lladdr %s dev %s: %w", side, n.IP, mac, n.Dev, err)
	}
	a.tx.onUndo(side+" neighbour "+n.IP.String(), func() error { return h.NeighDel(e) })
	return nil
}

func (a *adder) podRoute(r routes.Route) error {
	idx := a.podIndex
	if r.Dev != a.in.PodVeth {
		l, err := a.podH.LinkByName(r.Dev)
		if err != nil {
			return fmt.Errorf("find %s in the pod: %w", r.Dev, err)
		}
		idx = l.Attrs().Index
	}
	nr := toNetlink(r, idx)
	if err := a.podH.RouteAdd(nr); err != nil {
		if errors.Is(err, unix.EEXIST) && r.Dev != a.in.PodVeth && r.Table == 0 {
			// The pod NIC's default route is already there (an IPAM returned it as a plain route with
			// the gateway on-link): it is not ours to add, nor to remove.
			if have, lerr := listRoutes(a.podH, idx); lerr == nil && hasRoute(have, r, idx) {
				return nil
			}
		}
		return fmt.Errorf("add pod route %s: %w", r, err)
	}
	a.tx.onUndo("pod route "+r.String(), func() error { return a.podH.RouteDel(nr) })
	return nil
}

// podRule adds the pod's rule that sends what the interface's address sends to its own table.
func (a *adder) podRule(r routes.Rule) error {
	nr := newRule(r)
	if err := a.podH.RuleAdd(nr); err != nil {
		return fmt.Errorf("add pod rule %s: %w", r, err)
	}
	a.tx.onUndo("pod rule "+r.String(), func() error { return a.podH.RuleDel(nr) })
	return nil
}

// announce sends gratuitous ARP and unsolicited neighbour advertisements for the interface's addresses
// from inside the pod: neighbours and switches of the segment that knew the address at another MAC (a
// pod that had it before, on another node) learn the new one at once, without asking. Nothing to undo:
// a rolled-back ADD leaves the address to whoever takes it next, which announces it again.
func (a *adder) announce() error {
	var addrs []netip.Addr
	var fam probe.Families
	for _, pa := range a.in.PodAddrs {
		ip := pa.Addr().Unmap()
		addrs = append(addrs, ip)
		fam.IPv4, fam.IPv6 = fam.IPv4 || ip.Is4(), fam.IPv6 || ip.Is6()
	}
	var l *probe.Link
	if err := a.pod.Do(func(ns.NetNS) error {
		var err error
		l, err = probe.Open(a.args.IfName, fam)
		return err
	}); err != nil {
		return fmt.Errorf("open %s in the pod to announce %v: %w", a.args.IfName, addrs, err)
	}
	defer l.Close()
	if err := probe.Announce(l, addrs); err != nil {
		return fmt.Errorf("announce %v: %w", addrs, err)
	}
	return nil
}

func (a *adder) hostRoute(r routes.Route) error {
	nr := toNetlink(r, a.hostIndex)
	if err := a.host.RouteAdd(nr); err != nil {
		return fmt.Errorf("add node route %s: %w", r, err)
	}
	a.tx.onUndo("node route "+r.String(), func() error { return a.host.RouteDel(nr) })
	return nil
}

func (a *adder) hostRule(r routes.Rule) error {
	nr := newRule(r)
	if err := a.host.RuleAdd(nr); err != nil {
		return fmt.Errorf("add node rule %s: %w", r, err)
	}
	a.tx.onUndo("node rule "+r.String(), func() error { return a.host.RuleDel(nr) })
	return nil
}

func netipPrefixHost(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }
