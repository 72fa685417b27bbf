package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/underlink/underlink/cni/ipam/protocol"
	"github.com/underlink/underlink/cni/probe"
)

// detect probes the segment from the pod's interface for the addresses the agent gave (ipam.detectIPConflict)
// and their gateways (ipam.detectGateway), before macvlan configures the interface and announces them:
// a conflict found after the announcement would already have pointed the segment's neighbours at the
// pod. The interface is down, without an address, as macvlan hands it over; it is brought up for the
// probes and taken down again. A conflict is reported to the agent, which sets the address aside in its
// pool, frees the others and records an Event on the pod; a silent gateway gives the addresses back.
// Either fails the ADD with an error naming the address, the MAC or the gateway, and the pool.
func detect(args *skel.CmdArgs, conf *Conf, c Agent, req protocol.Request, alloc *protocol.Allocation) error {
	addrs := make([]probe.Address, 0, len(alloc.IPs))
	pools := map[netip.Addr]string{}
	var fam probe.Families
	for _, ip := range alloc.IPs {
		pfx, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			return types.NewError(types.ErrInternal, fmt.Sprintf("underlink-agent answered address %q", ip.Address), err.Error())
		}
		a := probe.Address{Addr: pfx.Addr()}
		if gw, err := netip.ParseAddr(ip.Gateway); err == nil {
			a.Gateway = gw
		}
		addrs = append(addrs, a)
		pools[a.Addr] = ip.Pool
		fam.IPv4 = fam.IPv4 || a.Addr.Is4()
		fam.IPv6 = fam.IPv6 || a.Addr.Is6()
	}
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return giveBack(c, req, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("underlink-ipam: open the pod's network namespace %s to probe: %v", args.Netns, err), ""))
	}
	defer netns.Close()
	var l *probe.Link
	if err := netns.Do(func(ns.NetNS) error {
		var err error
		l, err = probe.Open(args.IfName, fam)
		return err
	}); err != nil {
		return giveBack(c, req, types.NewError(types.ErrInternal, fmt.Sprintf("underlink-ipam: probe on %s: %v", args.IfName, err), ""))
	}
	derr := probe.Detect(l, addrs, probe.Options{Conflict: conf.IPAM.DetectIPConflict, Gateway: conf.IPAM.DetectGateway})
	if err := l.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "underlink-ipam: closing the probe on %s: %v\n", args.IfName, err)
	}
	var ce *probe.ConflictError
	var ge *probe.GatewayError
	switch {
	case derr == nil:
		return nil
	case errors.As(derr, &ce):
		pool := pools[ce.Addr]
		creq := protocol.ConflictRequest{Request: req, Conflicts: []protocol.AddressConflict{{Address: ce.Addr.String(), MAC: ce.MAC.String(), Probe: ce.By}}}
		var aside string
		if out, err := c.Conflict(context.Background(), creq); err != nil {
			// The address stays the pod's: its next ADD meets the same answer, and says so again.
			aside = fmt.Sprintf("underlink-agent could not set it aside (%v)", err)
		} else {
			aside = out.Msg
		}
		return types.NewError(protocol.CodeIPConflict, fmt.Sprintf("underlink-ipam: %s (SpiderIPPool %s) is already in use on the underlay by %s: that host answered %s for it on %s; %s; the pod's next attempt takes another address",
			ce.Addr, pool, ce.MAC, ce.By, args.IfName, aside), "")
	case errors.As(derr, &ge):
		pool := pools[ge.Addr]
		return giveBack(c, req, types.NewError(protocol.CodeGatewayUnreachable, fmt.Sprintf("underlink-ipam: gateway %s of %s (SpiderIPPool %s spec.gateway) did not answer %s on %s within %s: it is not on that segment, or is down; check spec.gateway and the network's VLAN, or turn off spec.coordinator.detectGateway",
			ge.Gateway, ge.Addr, pool, ge.Probe(), args.IfName, ge.Waited.Round(time.Millisecond)), ""))
	default:
		return giveBack(c, req, types.NewError(types.ErrInternal, fmt.Sprintf("underlink-ipam: probe on %s: %v", args.IfName, derr), ""))
	}
}

// giveBack releases the addresses of req, which the ADD that failed with cause does not use: macvlan does
// not call DEL for an IPAM that failed.
func giveBack(c Agent, req protocol.Request, cause *types.Error) error {
	if _, err := c.Release(context.Background(), req); err != nil {
		cause.Msg += "; giving the address back failed too (garbage collection frees it once the pod is gone): " + strings.TrimSpace(err.Error())
	}
	return cause
}
