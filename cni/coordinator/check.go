package coordinator

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/underlink/underlink/cni/routes"
)

// Check compares the previous result and the route plan with the pod's and the node's namespaces:
// the pod NIC and its addresses, the veth pair (the attachment's pod veth paired with its host veth),
// every planned route in the pod (in its table for an interface with one) and on the node, the rules
// and the permanent neighbours. The first
// difference is the error, e.g. a pod route someone removed.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if c.Mode == routes.ModeDisabled {
		return nil
	}
	if c.prev == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "underlink-coordinator CHECK: prevResult is missing; the runtime must pass the ADD result", "")
	}
	pod, err := ns.GetNS(args.Netns)
	if err != nil {
		return cniError(fmt.Errorf("open pod netns %q: %w", args.Netns, err))
	}
	defer pod.Close()
	host, err := p.hostHandle()
	if err != nil {
		return cniError(err)
	}
	defer host.Close()
	podH, err := podHandle(pod)
	if err != nil {
		return cniError(err)
	}
	defer podH.Close()

	name := HostVethName(args.ContainerID, args.IfName)
	if err := checkAttachment(c, args, podH, host, p.HostNS, name); err != nil {
		return fmt.Errorf("underlink-coordinator CHECK of %s/%s: %w", args.ContainerID, args.IfName, err)
	}
	return nil
}

func checkAttachment(c *conf, args *skel.CmdArgs, podH, host netlinksafe.Handle, hostNS ns.NetNS, name string) error {
	// Links: the pod NIC with the result's addresses, the pod's veth paired with our host veth.
	ifName := args.IfName
	nic, err := podH.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("pod interface %s: %w", ifName, err)
	}
	have, err := addrList(podH, nic)
	if err != nil {
		return err
	}
	in := planInput(c.prev, ifName)
	for _, pa := range in.PodAddrs {
		if !slices.ContainsFunc(have, func(a netlink.Addr) bool {
			ones, _ := a.Mask.Size()
			return toAddr(a.IP) == pa.Addr() && ones == pa.Bits()
		}) {
			return fmt.Errorf("pod interface %s lacks address %s of the previous result", ifName, pa)
		}
	}
	hl, err := host.LinkByName(name)
	if err != nil {
		return fmt.Errorf("host veth %s: %w", name, err)
	}
	if want := hostVethAlias(c.Raw.Name, args.ContainerID, args.IfName); hl.Attrs().Alias != want {
		return fmt.Errorf("host veth %s is labelled %q, want %q", name, hl.Attrs().Alias, want)
	}
	podVeth := routes.PodVethName(ifName)
	pl, err := podH.LinkByName(podVeth)
	if err != nil {
		return fmt.Errorf("pod interface %s: %w", podVeth, err)
	}
	pv, ok := pl.(*netlink.Veth)
	if !ok {
		return fmt.Errorf("pod interface %s is a %s, not a veth", podVeth, pl.Type())
	}
	// IFLA_LINK of a veth is its peer's index (in the peer's namespace).
	if peer := pv.ParentIndex; peer != hl.Attrs().Index {
		return fmt.Errorf("pod interface %s is not paired with host veth %s (peer index %d, want %d)", podVeth, name, peer, hl.Attrs().Index)
	}
	if peer := hl.Attrs().ParentIndex; peer != pv.Index {
		return fmt.Errorf("host veth %s is not paired with the pod's %s (peer index %d, want %d)", name, podVeth, peer, pv.Index)
	}
	for _, l := range []netlink.Link{hl, pl} {
		if l.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("interface %s is down", l.Attrs().Name)
		}
	}
	for _, intf := range c.prev.Interfaces {
		var l netlink.Link
		switch {
		case intf.Name == name && intf.Sandbox == "":
			l = hl
		case intf.Name == podVeth && intf.Sandbox == args.Netns:
			l = pl
		default:
			continue
		}
		if intf.Mac != "" && intf.Mac != l.Attrs().HardwareAddr.String() {
			return fmt.Errorf("interface %s has MAC %s, the previous result says %s", intf.Name, l.Attrs().HardwareAddr, intf.Mac)
		}
	}

	// An interface with a table of its own: the table its rule names.
	if c.Tuned(ifName) {
		var srcs []netip.Prefix
		for _, pa := range in.PodAddrs {
			srcs = append(srcs, netip.PrefixFrom(pa.Addr(), pa.Addr().BitLen()))
		}
		rules, err := findPodRules(podH, srcs)
		if err != nil {
			return err
		}
		if len(rules) == 0 {
			return fmt.Errorf("pod rule \"%d: from %v lookup <table>\" of %s is missing", routes.PodRulePriority, srcs, ifName)
		}
		in.Table = rules[0].Table
	}

	// The plan, rebuilt from today's node: a node address that changed since ADD is drift too.
	node, err := discoverNode(host, hostNS)
	if err != nil {
		return err
	}
	in.NodeIPs, in.NodeNextHops, in.HostVeth, in.PodVeth = node.IPs, node.NextHops, name, podVeth
	plan, err := routes.Build(c.Config, in)
	if err != nil {
		return err
	}
	podRoutes, err := listAllRoutes(podH)
	if err != nil {
		return fmt.Errorf("list pod routes: %w", err)
	}
	for _, r := range plan.PodRoutes {
		idx := pl.Attrs().Index
		if r.Dev != podVeth {
			idx = nic.Attrs().Index
		}
		if !hasRoute(podRoutes, r, idx) {
			return fmt.Errorf("pod route %q is missing in %s", r, args.Netns)
		}
	}
	for _, r := range plan.PodRules {
		rules, err := findPodRules(podH, []netip.Prefix{r.Src})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(rules, func(nr netlink.Rule) bool { return nr.Table == r.Table }) {
			return fmt.Errorf("pod rule %q is missing in %s", r, args.Netns)
		}
	}
	hostRoutes, err := listAllRoutes(host)
	if err != nil {
		return fmt.Errorf("list node routes: %w", err)
	}
	for _, r := range plan.HostRoutes {
		if !hasRoute(hostRoutes, r, hl.Attrs().Index) {
			return fmt.Errorf("node route %q is missing", r)
		}
	}
	for _, r := range plan.HostRules {
		rules, err := findRules(host, r.Dst)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(rules, func(nr netlink.Rule) bool { return nr.Table == r.Table }) {
			return fmt.Errorf("node rule %q is missing", r)
		}
	}
	if err := checkNeighbours(podH, pl.Attrs().Index, plan.PodNeighbours, hl.Attrs().HardwareAddr, "pod"); err != nil {
		return err
	}
	return checkNeighbours(host, hl.Attrs().Index, plan.HostNeighbours, pl.Attrs().HardwareAddr, "node")
}

func checkNeighbours(h netlinksafe.Handle, linkIndex int, want []routes.Neighbour, mac []byte, side string) error {
	have, err := neighList(h, linkIndex)
	if err != nil {
		return fmt.Errorf("list %s neighbours: %w", side, err)
	}
	for _, n := range want {
		if !slices.ContainsFunc(have, func(e netlink.Neigh) bool {
			return toAddr(e.IP) == n.IP && e.State&netlink.NUD_PERMANENT != 0 && bytes.Equal(e.HardwareAddr, mac)
		}) {
			return fmt.Errorf("%s neighbour %s lladdr %x dev %s is missing", side, n.IP, mac, n.Dev)
		}
	}
	return nil
}
