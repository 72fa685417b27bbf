package coordinator

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"

	"github.com/underlink/underlink/cni/routes"
)

// Del removes what ADD made for the attachment. It is idempotent: a missing pod namespace, veth, route
// or rule is success. Removing the host veth removes veth0 with it, and every route and neighbour on
// either end; rules and the pod NIC's default route are removed explicitly. Pod sysctls and the pod
// NIC's MAC belong to the pod's namespace and end with it.
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
		for _, pa := range planInput(c.prev, args.IfName, c.PodNIC).PodAddrs {
			podIPs = append(podIPs, netip.PrefixFrom(pa.Addr(), pa.Addr().BitLen()))
		}
	}
	if err := removeHostVeth(host, name, podIPs, log); err != nil {
		return cniError(err)
	}

	// The default route the coordinator put on the pod NIC outlives veth0; macvlan's DEL removes it with
	// eth0 anyway, but DEL of the coordinator alone must leave nothing either.
	if c.prev != nil && args.Netns != "" {
		pod, err := ns.GetNS(args.Netns)
		if err != nil {
			var missing ns.NSPathNotExistErr
			if errors.As(err, &missing) {
				return nil
			}
			return cniError(fmt.Errorf("open pod netns %q: %w", args.Netns, err))
		}
		defer pod.Close()
		podH, err := podHandle(pod)
		if err != nil {
			return cniError(err)
		}
		defer podH.Close()
		node, err := discoverNode(host, p.HostNS)
		if err != nil {
			return cniError(err)
		}
		in := planInput(c.prev, args.IfName, c.PodNIC)
		in.NodeIPs, in.NodeNextHops, in.HostVeth = node.IPs, node.NextHops, name
		plan, err := routes.Build(c.Config, in)
		if err != nil {
			// Nothing ADD could have made: the same config and result fail the same way there.
			return nil
		}
		if err := delPodNICRoutes(podH, c.PodNIC, plan); err != nil {
			return cniError(err)
		}
	}
	log.Info("detached")
	return nil
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
