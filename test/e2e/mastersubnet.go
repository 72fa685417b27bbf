package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"

	nadv1 "github.com/underlink/underlink/api/nad/v1"
	"github.com/underlink/underlink/api/underlay"
	"github.com/underlink/underlink/pkg/iprange"
	"github.com/underlink/underlink/test/netbed"
	"github.com/underlink/underlink/test/poll"
)

// The matchMasterSubnet step's objects on cluster-a. The nodes' ens224 are on the underlay's subnet
// (the cluster pools' 172.110.0.0/16); for the step, the second node's ens224 moves to another subnet,
// as a node in a rack of its own would be. The network's one pool is on the underlay's subnet, with
// matchMasterSubnet.
const (
	mmNet  = "mm-net"
	mmPool = "mm-pool"
	// mmLabel labels the step's pods.
	mmLabel = "mm"
	// mmRange are mmPool's addresses, disjoint from the other pools of the subnet.
	mmRange = "172.110.219.10-172.110.219.19"
)

// mmElsewhere is the second node's address for the step, on a subnet no pool has.
var mmElsewhere = netip.MustParsePrefix("172.120.7.5/24")

// underlayAddrs are the IPv4 addresses of node n's underlay NIC.
func underlayAddrs(n TargetNode) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := onNodeLink(n, netbed.UnderlayNIC, func(h netlinksafe.Handle, l netlink.Link) error {
		list, err := h.AddrList(l, netlink.FAMILY_V4)
		for _, a := range list {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
				ones, _ := a.Mask.Size()
				out = append(out, netip.PrefixFrom(ip, ones))
			}
		}
		return err
	})
	return out, err
}

// moveUnderlayAddrs replaces the addresses from on node n's underlay NIC with to.
func moveUnderlayAddrs(n TargetNode, from, to []netip.Prefix) error {
	return onNodeLink(n, netbed.UnderlayNIC, func(h netlinksafe.Handle, l netlink.Link) error {
		for _, a := range to {
			if err := nodeAddr(h, l, n.Name, a, true); err != nil {
				return err
			}
		}
		for _, a := range from {
			if slices.Contains(to, a) {
				continue
			}
			if err := nodeAddr(h, l, n.Name, a, false); err != nil {
				return err
			}
		}
		return nil
	})
}

// cleanMasterSubnet deletes what an earlier run's step left on c.
func (r *runner) cleanMasterSubnet(c TargetCluster) error {
	return r.deleteLeftovers(c, [][]string{
		{"delete", "pod", "-n", appNamespace, "-l", "underlink-e2e=" + mmLabel, "--ignore-not-found", "--wait=true", "--timeout=60s", "--grace-period=1"},
		{"delete", "spidermultusconfig", mmNet, "-n", configNS, "--ignore-not-found"},
		{"delete", "spiderippool", mmPool, "--ignore-not-found", "--timeout=60s"},
	})
}

// mmPod is a pod of mmNet pinned to node, or placed by the scheduler when node is "".
func (r *runner) mmPod(name, node string) []byte {
	m := string(r.pinnedPod(name, node, mmLabel, nadv1.DefaultNetworkAnnotation, configNS+"/"+mmNet))
	if node == "" {
		m = strings.Replace(m, "  nodeSelector:\n    kubernetes.io/hostname: \n", "", 1)
	}
	return []byte(m)
}

// awaitPublished waits until node's published addresses of the underlay NIC are want.
func (r *runner) awaitPublished(c TargetCluster, node string, want []netip.Prefix) error {
	key := underlay.AddressesKey(underlay.LabelPrefix, netbed.UnderlayNIC)
	var got string
	start := time.Now()
	err := poll.Wait(r.ctx, 30*time.Second, pollInterval, "the agent publishes "+key, func() (bool, string, error) {
		got, _ = r.kubectlQuiet(c, nil, "get", "node", node, "-o", "go-template={{index .metadata.annotations \""+key+"\"}}")
		return got == underlay.FormatAddresses(want), got, nil
	})
	return r.check(err == nil, fmt.Sprintf("%s: underlink-agent publishes %s=%s (after %s)", node, key, underlay.FormatAddresses(want), time.Since(start).Round(10*time.Millisecond)), got)
}

// matchMasterSubnet: a network whose pool is on the underlay's subnet, with matchMasterSubnet. The
// second node's ens224 moves to another subnet and the agent publishes it: a pod pinned there stays
// Pending with the reason, a pod the scheduler places goes to the first node, and a pod on the first node
// gets the pool's address. Moved back, the agent publishes the old address and the Pending pod is
// placed and runs.
func (r *runner) matchMasterSubnet() error {
	c := r.a
	if len(c.Nodes) < 2 {
		return r.check(false, "two nodes on "+c.Name, fmt.Sprint(len(c.Nodes)))
	}
	if err := r.cleanMasterSubnet(c); err != nil {
		return r.check(false, "leftovers of an earlier run removed", err.Error())
	}
	defer func() { _ = r.cleanMasterSubnet(c) }()
	// The node that moves is not the Submariner gateway, whose tunnel the other steps use.
	on, off := c.Nodes[0], c.Nodes[1]
	if off.Gateway {
		on, off = off, on
	}
	original, err := underlayAddrs(off)
	if err != nil || len(original) == 0 {
		return r.check(false, "the IPv4 address of "+netbed.UnderlayNIC+" on "+off.Name, fmt.Sprint(original, err))
	}
	if err := r.awaitPublished(c, off.Name, original); err != nil {
		return err
	}

	if out, err := r.showManifest(c, "apply", []byte(poolManifest(mmPool, c.ClusterCIDR, netip.MustParsePrefix(c.ClusterCIDR).Addr().Next().String(), mmRange))); err != nil {
		return r.check(false, "SpiderIPPool "+mmPool+" admitted", out)
	}
	network := strings.Replace(r.coordinatedNetwork(mmNet, netbed.UnderlayNIC, mmPool, ""),
		"    ippools:\n", "    ippools:\n      matchMasterSubnet: true\n", 1)
	if err := r.applyNetwork(c, mmNet, network, "pool "+mmPool+" with matchMasterSubnet"); err != nil {
		return err
	}

	if err := moveUnderlayAddrs(off, original, []netip.Prefix{mmElsewhere}); err != nil {
		return r.check(false, netbed.UnderlayNIC+" of "+off.Name+" moved to "+mmElsewhere.String(), err.Error())
	}
	fmt.Fprintf(r.out, "[%s]# ip addr add %s dev %s; ip addr del %s dev %s   # on %s\n", c.Name, mmElsewhere, netbed.UnderlayNIC, underlay.FormatAddresses(original), netbed.UnderlayNIC, off.Name)
	restored := false
	defer func() {
		if !restored {
			_ = moveUnderlayAddrs(off, []netip.Prefix{mmElsewhere}, original)
		}
	}()
	if err := r.awaitPublished(c, off.Name, []netip.Prefix{mmElsewhere}); err != nil {
		return err
	}

	// Pinned to the node off the pool's subnet: Pending, and the Event says why.
	if out, err := r.showManifest(c, "apply", r.mmPod("mm-off", off.Name)); err != nil {
		return r.check(false, "mm-off admitted", out)
	}
	ev, err := r.podFailure(c, "mm-off", schedulerEvents, "no address of master NIC "+netbed.UnderlayNIC+" in the subnet of pool "+mmPool)
	node, _ := r.kubectlQuiet(c, nil, "get", "pod", "mm-off", "-o", "jsonpath={.spec.nodeName}")
	if err := r.check(err == nil && node == "", "mm-off, pinned to "+off.Name+" ("+netbed.UnderlayNIC+" "+mmElsewhere.String()+"), stays Pending; its Event says why", ev.Message); err != nil {
		return err
	}
	// Placed by the scheduler, and pinned to the node on the subnet: both run there with the pool's
	// addresses.
	for _, p := range []struct{ name, node string }{{"mm-placed", ""}, {"mm-on", on.Name}} {
		if out, err := r.showManifest(c, "apply", r.mmPod(p.name, p.node)); err != nil {
			return r.check(false, p.name+" admitted", out)
		}
	}
	pool, err := iprange.Parse(mmRange)
	if err != nil {
		return err
	}
	for _, name := range []string{"mm-placed", "mm-on"} {
		if err := r.waitRunning(c, name, 2*time.Minute); err != nil {
			return r.check(false, name+" Running", err.Error())
		}
		out, _ := r.kubectlQuiet(c, nil, "get", "pod", name, "-o", "jsonpath={.spec.nodeName} {.status.podIP}")
		f := strings.Fields(out)
		ok := len(f) == 2 && f[0] == on.Name
		if ok {
			a, err := netip.ParseAddr(f[1])
			ok = err == nil && pool.Contains(a)
		}
		if err := r.check(ok, name+" runs on "+on.Name+" (the node on "+mmPool+"'s subnet) with an address of "+mmPool, out); err != nil {
			return err
		}
	}

	// Back on the subnet: the agent publishes it, the scheduler takes mm-off up again, and it runs.
	if err := moveUnderlayAddrs(off, []netip.Prefix{mmElsewhere}, original); err != nil {
		return r.check(false, netbed.UnderlayNIC+" of "+off.Name+" moved back", err.Error())
	}
	restored = true
	movedBack := time.Now()
	if err := r.awaitPublished(c, off.Name, original); err != nil {
		return err
	}
	if err := r.waitRunning(c, "mm-off", 2*time.Minute); err != nil {
		return r.check(false, "mm-off Running once "+off.Name+" is back on the subnet", err.Error())
	}
	out, _ := r.kubectlQuiet(c, nil, "get", "pod", "mm-off", "-o", "jsonpath={.spec.nodeName} {.status.podIP}")
	if err := r.check(strings.HasPrefix(out, off.Name+" "), fmt.Sprintf("mm-off placed on %s and Running %s after its %s is back on the subnet", off.Name, time.Since(movedBack).Round(100*time.Millisecond), netbed.UnderlayNIC), out); err != nil {
		return err
	}

	if out, err := r.kubectl(c, nil, "delete", "pod", "-l", "underlink-e2e="+mmLabel, "--wait=true", "--timeout=60s"); err != nil {
		return r.check(false, "the step's pods deleted", out)
	}
	var held []string
	err = poll.Wait(r.ctx, time.Minute, pollInterval, mmPool+" empty", func() (bool, string, error) {
		allocs, err := r.poolAllocations(c, mmPool)
		if err != nil {
			return false, err.Error(), nil
		}
		held = held[:0]
		for ip := range allocs {
			held = append(held, ip)
		}
		return len(held) == 0, strings.Join(held, ", "), nil
	})
	return r.check(err == nil, "the step's pods deleted: "+mmPool+"'s addresses released", strings.Join(held, ", "))
}
