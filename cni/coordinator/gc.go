package coordinator

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/underlink/underlink/cni/routes"
)

// GC removes the host veths (with their routes and rules) of this network's attachments that are not
// in cni.dev/valid-attachments: what a crashed runtime or a lost DEL left behind. Veths of other
// networks are told apart by the network tag in their alias and left alone.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	if c.Mode == routes.ModeDisabled {
		return nil
	}
	valid := map[string]bool{}
	for _, a := range c.Raw.ValidAttachments {
		valid[HostVethName(a.ContainerID, a.IfName)] = true
	}
	host, err := p.hostHandle()
	if err != nil {
		return cniError(fmt.Errorf("netlink in the node namespace: %w", err))
	}
	defer host.Close()
	links, err := host.LinkList()
	if err != nil {
		return cniError(fmt.Errorf("list node links: %w", err))
	}
	tag := networkTag(c.Raw.Name)
	var errs []error
	removed := 0
	for _, l := range links {
		name := l.Attrs().Name
		t, cid, ifName, ok := parseAlias(l.Attrs().Alias)
		if !ok || t != tag || valid[name] || name != HostVethName(cid, ifName) {
			continue
		}
		log := p.Log.WithValues("containerID", cid, "ifName", ifName, "hostVeth", name)
		if err := removeHostVeth(host, name, nil, log); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
		log.Info("garbage-collected stale attachment")
	}
	p.Log.V(1).Info("gc done", "network", c.Raw.Name, "valid", len(valid), "removed", removed)
	if err := errors.Join(errs...); err != nil {
		return cniError(fmt.Errorf("underlink-coordinator GC: %w", err))
	}
	return nil
}
