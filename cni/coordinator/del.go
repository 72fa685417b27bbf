package coordinator

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"

	"github.com/underlink/underlink/cni/routes"
)

// Del removes what ADD made for the attachment. It is idempotent: a missing pod namespace, veth, route
// or rule is success. Removing the host veth removes the pod's veth with it, and every route and
// neighbour on either end; rules, the interface's own routing table and the pod NIC's default route are
// removed explicitly. The pod's other attachments (eth0 when this is net1) are not touched. Pod
// sysctls and the pod NIC's MAC belong to the pod's namespace and end with it.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if c.Mode == routes.ModeDisabled {
		return nil
	}
	host, err := p.hostHandle()
	if err != nil {
		return cniError(fmt.Errorf("netlink in the node namespace: %w", err))
	}
	defer host.Close()
	name := HostVethName(args.ContainerID, args.IfName)
	log := p.Log.WithValues("containerID", args.ContainerID, "ifName", args.IfName, "hostVeth", name)

	var podIPs []netip.Prefix
	if c.prev != nil {
		for _, pa := range planInput(c.prev, args.IfName).PodAddrs {
			podIPs = append(podIPs, netip.PrefixFrom(pa.Addr(), pa.Addr().BitLen()))
		}
	}
	if err := removeHostVeth(host, name, podIPs, log); err != nil {
		return cniError(err)
	}
	if args.Netns == "" {
		log.Info("detached")
		return nil
	}
	pod, err := ns.GetNS(args.Netns)
	if err != nil {
		var missing ns.NSPathNotExistErr
		if errors.As(err, &missing) {
			return nil // the namespace took the rest with it
		}
		return cniError(fmt.Errorf("open pod netns %q: %w", args.Netns, err))
	}
	defer pod.Close()
	podH, err := podHandle(pod)
	if err != nil {
		return cniError(err)
	}
	defer podH.Close()

	// The interface's own rule and table (an interface other than the default-route NIC), found by
	// its addresses: prevResult's, or the interface's when the runtime kept no result.
	if podIPs == nil {
		podIPs = interfaceAddrs(podH, args.IfName)
	}
	tables, err := removePodRules(podH, podIPs, log)
	if err != nil {
		return cniError(err)
	}
	for _, t := range tables {
		if err := flushTable(podH, t); err != nil {
			return cniError(err)
		}
	}

	// The default route the coordinator put on the pod NIC outlives the pod's veth; macvlan's DEL
	// removes it with the NIC anyway, but DEL of the coordinator alone must leave nothing either.
	if c.prev != nil && !c.Tuned(args.IfName) {
		node, err := discoverNode(host, p.HostNS)
		if err != nil {
			return cniError(err)
		}
		in := planInput(c.prev, args.IfName)
		in.NodeIPs, in.NodeNextHops, in.HostVeth = node.IPs, node.NextHops, name
		plan, err := routes.Build(c.Config, in)
		if err != nil {
			// Nothing ADD could have made: the same config and result fail the same way there.
			return nil
		}
		if err := delPodNICRoutes(podH, args.IfName, plan); err != nil {
			return cniError(err)
		}
	}
	log.Info("detached")
	return nil
}

// interfaceAddrs lists the global addresses of pod interface ifName as host prefixes (none when it is
// gone).
func interfaceAddrs(podH netlinksafe.Handle, ifName string) []netip.Prefix {
	l, err := podH.LinkByName(ifName)
	if err != nil {
		return nil
	}
	addrs, err := addrList(podH, l)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if ip := toAddr(a.IP); ip.IsGlobalUnicast() {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	return out
}

// removePodRules deletes the pod's rules for srcs and returns their tables.
func removePodRules(podH netlinksafe.Handle, srcs []netip.Prefix, log logr.Logger) ([]int, error) {
	rules, err := findPodRules(podH, srcs)
	if err != nil {
		return nil, err
	}
	var tables []int
	for _, r := range rules {
		if err := podH.RuleDel(&r); err != nil && !gone(err) {
			return nil, fmt.Errorf("delete pod rule from %s lookup %d: %w", r.Src, r.Table, err)
		}
		if !slices.Contains(tables, r.Table) {
			tables = append(tables, r.Table)
		}
		log.V(1).Info("deleted pod rule", "src", r.Src.String(), "table", r.Table)
	}
	return tables, nil
}

// removeHostVeth deletes the coordinator's rules for the veth's routes (and for extra, the pod's
// addresses, in case the veth is already gone) and then the veth.
func removeHostVeth(host netlinksafe.Handle, name string, extra []netip.Prefix, log logr.Logger) error {
	dsts := append([]netip.Prefix(nil), extra...)
	link, err := host.LinkByName(name)
	if err != nil && !gone(err) {
		return fmt.Errorf("find host veth %s: %w", name, err)
	}
	if link != nil && err == nil {
		rs, err := listRoutes(host, link.Attrs().Index)
		if err != nil {
			return fmt.Errorf("list routes of %s: %w", name, err)
		}
		for _, r := range rs {
			if d := routeDst(r); d.IsSingleIP() {
				dsts = append(dsts, d)
			}
		}
	}
	for _, d := range dsts {
		rules, err := findRules(host, d)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if err := host.RuleDel(&r); err != nil && !gone(err) {
				return fmt.Errorf("delete rule to %s lookup %d: %w", d, r.Table, err)
			}
			log.V(1).Info("deleted rule", "dst", d.String(), "table", r.Table)
		}
	}
	if link != nil && err == nil {
		if err := host.LinkDel(link); err != nil && !gone(err) {
			return fmt.Errorf("delete host veth %s: %w", name, err)
		}
		log.V(1).Info("deleted host veth")
	}
	return nil
}

// delPodNICRoutes removes the coordinator's routes on the pod NIC if they are still there.
func delPodNICRoutes(podH netlinksafe.Handle, podNIC string, plan *routes.Plan) error {
	l, err := podH.LinkByName(podNIC)
	if err != nil {
		if gone(err) {
			return nil
		}
		return fmt.Errorf("find %s in the pod: %w", podNIC, err)
	}
	have, err := listRoutes(podH, l.Attrs().Index)
	if err != nil {
		return err
	}
	for _, r := range plan.PodRoutes {
		if r.Owner != routes.ByCoordinator || r.Dev != podNIC || !hasRoute(have, r, l.Attrs().Index) {
			continue
		}
		if err := podH.RouteDel(toNetlink(r, l.Attrs().Index)); err != nil && !gone(err) {
			return fmt.Errorf("delete pod route %s: %w", r, err)
		}
	}
	return nil
}
